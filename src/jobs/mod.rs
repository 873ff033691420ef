//! The jobs the CLI and the daemon run: import billing files, sync billing, exports and usage,
//! allocate a range, detect and enqueue alerts, deliver the outbox, build a report. Each is a
//! short composition of ingest, rules, allocate, alert, notify and store. Every job is given
//! the one [`Clock`]; a job that waits or sleeps is given the [`Shutdown`] signal too.

pub mod reports;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use tracing::info;

use crate::alert::{self, Alert, Series};
use crate::allocate::{self, conservation_gaps, Input, UsageWeights};
pub use crate::clock::{Clock, Shutdown, ShutdownTrigger};
use crate::ingest;
use crate::ingest::cost_explorer::{self, AwsSettings, CallBudget, FetchError, Query};
use crate::model::CostBasis;
use crate::money::{Nanos, PerCurrency};
use crate::report::Report;
use crate::rules::Rules;
use crate::store::{
    EnqueueResult, FactScope, ImportRecord, NewAlert, RunRecord, Store, SyncRun, SyncStatus,
    UsageRun, UsageStatus,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub import_id: i64,
    pub line_items: i64,
    pub facts: usize,
    pub periods: Vec<(String, String)>,
    /// Per currency: never one sum across currencies.
    pub effective: PerCurrency,
    pub billed: PerCurrency,
}

/// Reads the files and replaces the billing periods they hold, in one transaction.
pub async fn import_files(
    store: &Store,
    files: &[PathBuf],
    clock: Clock,
) -> anyhow::Result<ImportSummary> {
    let imported = read_batch(files).await?;
    let started = Instant::now();
    let import_id = store
        .replace_facts(&import_record(&imported, clock.stamp()), &imported.facts)
        .await?;
    info!(
        stage = "store",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    let summary = ImportSummary::of(import_id, &imported, &imported.facts);
    info!(
        line_items = summary.line_items,
        facts = summary.facts,
        effective = %summary.effective.exact_text(),
        "imported"
    );
    Ok(summary)
}

/// An amount of each fact, added up per currency.
fn per_currency(
    facts: &[crate::model::Fact],
    amount: impl Fn(&crate::model::Fact) -> Nanos,
) -> PerCurrency {
    facts
        .iter()
        .map(|f| (f.currency.as_str(), amount(f)))
        .collect()
}

/// Reads one batch of billing files (off the async threads).
async fn read_batch(files: &[PathBuf]) -> anyhow::Result<ingest::Imported> {
    let started = Instant::now();
    let paths = files.to_vec();
    let imported = tokio::task::spawn_blocking(move || ingest::read_files(&paths))
        .await
        .context("the import task stopped")??;
    info!(
        stage = "read",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    Ok(imported)
}

/// The record of an import of `imported`: it replaces the billing periods the files hold.
fn import_record(imported: &ingest::Imported, created_at: String) -> ImportRecord {
    ImportRecord {
        created_at,
        source: "focus".to_string(),
        files: imported.files.clone(),
        scope: FactScope::Periods(imported.periods.iter().cloned().collect()),
        line_items: imported.line_items,
    }
}

impl ImportSummary {
    fn of(import_id: i64, imported: &ingest::Imported, facts: &[crate::model::Fact]) -> Self {
        ImportSummary {
            import_id,
            line_items: imported.line_items,
            facts: facts.len(),
            periods: imported.periods.iter().cloned().collect(),
            effective: per_currency(facts, |f| f.effective),
            billed: per_currency(facts, |f| f.billed),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocateSummary {
    pub run_id: i64,
    pub facts: usize,
    pub allocations: usize,
    /// Per currency: never one sum across currencies.
    pub billed: PerCurrency,
    pub allocated: PerCurrency,
    pub fallback_rows: usize,
}

/// `import --allocate`: reads the files, allocates the whole months they touch in memory
/// (with whatever other facts the store holds for those months, read back only when there
/// are any) and stores the facts and the allocations in one transaction.
pub async fn import_and_allocate(
    store: &Store,
    files: &[PathBuf],
    rules: &Rules,
    usage: &UsageWeights,
    basis: CostBasis,
    clock: Clock,
) -> anyhow::Result<(ImportSummary, AllocateSummary)> {
    use chrono::Datelike;
    let mut imported = read_batch(files).await?;
    let (Some(first), Some(last)) = (
        imported.facts.iter().map(|f| f.day).min(),
        imported.facts.iter().map(|f| f.day).max(),
    ) else {
        anyhow::bail!("the files hold no line items");
    };
    let from = first.with_day(1).expect("day 1 exists");
    let to = last
        .with_day(1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.pred_opt())
        .expect("a month's last day");
    // The months' other facts (another account, another billing period), which stay.
    let started = Instant::now();
    let replaced = &imported.periods;
    let stored = store.fact_periods(from, to).await?;
    let is_replaced = |f: &crate::model::Fact| {
        replaced
            .iter()
            .any(|(p, a)| *p == f.billing_period && *a == f.billing_account)
    };
    let mut others = Vec::new();
    if stored.iter().any(|p| !replaced.contains(p)) {
        others = store.facts(from, to).await?;
        others.retain(|f| !is_replaced(f));
    }
    info!(
        stage = "load other facts",
        facts = others.len(),
        ms = started.elapsed().as_millis() as u64,
        "allocate timing"
    );
    let has_others = !others.is_empty();
    let mut facts = std::mem::take(&mut imported.facts);
    facts.extend(others);
    // The order the store returns facts in, so an allocation in memory is the one a later
    // `allocate` of the stored facts makes.
    crate::store::sort_facts(&mut facts);
    let Computed {
        facts: mut new_facts,
        allocations,
        ..
    } = allocate_facts(store, rules, usage, basis, (from, to), facts).await?;
    let billed = per_currency(&new_facts, |f| f.amount(basis));
    let all_facts = new_facts.len();
    if has_others {
        new_facts.retain(is_replaced);
    }
    let created_at = clock.stamp();
    let record = import_record(&imported, created_at.clone());
    let run = RunRecord {
        created_at,
        from,
        to,
        rules_hash: rules.hash.clone(),
        basis,
        facts: all_facts as i64,
        billed: billed.checksum(),
        facts_mark: None,
    };
    let started = Instant::now();
    let (import_id, run_id) = store
        .replace_facts_and_allocations(&record, &new_facts, &run, &allocations)
        .await?;
    info!(
        stage = "store facts and allocations",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    let import = ImportSummary::of(import_id, &imported, &new_facts);
    info!(run_id, facts = all_facts, allocations = allocations.len(), billed = %billed.exact_text(), "imported and allocated");
    let allocate = AllocateSummary::of(run_id, all_facts, &allocations, billed);
    Ok((import, allocate))
}

/// Allocates `from..=to` from the stored facts and replaces that range's allocations.
pub async fn allocate_range(
    store: &Store,
    rules: &Rules,
    usage: &UsageWeights,
    basis: CostBasis,
    range: (NaiveDate, NaiveDate),
    clock: Clock,
) -> anyhow::Result<AllocateSummary> {
    let (from, to) = range;
    let Computed {
        facts,
        allocations,
        facts_mark,
    } = compute_allocations(store, rules, usage, basis, range).await?;
    let billed = per_currency(&facts, |f| f.amount(basis));
    let run = RunRecord {
        created_at: clock.stamp(),
        from,
        to,
        rules_hash: rules.hash.clone(),
        basis,
        facts: facts.len() as i64,
        billed: billed.checksum(),
        facts_mark,
    };
    let started = Instant::now();
    let run_id = store.replace_allocations(&run, &allocations).await?;
    info!(
        stage = "store",
        ms = started.elapsed().as_millis() as u64,
        "allocate timing"
    );
    info!(run_id, facts = facts.len(), allocations = allocations.len(), billed = %billed.exact_text(), "allocated");
    Ok(AllocateSummary::of(
        run_id,
        facts.len(),
        &allocations,
        billed,
    ))
}

impl AllocateSummary {
    fn of(
        run_id: i64,
        facts: usize,
        allocations: &[crate::model::Allocation],
        billed: PerCurrency,
    ) -> Self {
        AllocateSummary {
            run_id,
            facts,
            allocations: allocations.len(),
            billed,
            allocated: allocations
                .iter()
                .map(|a| (a.currency.as_str(), a.amount))
                .collect(),
            fallback_rows: allocations.iter().filter(|a| a.fallback_used).count(),
        }
    }
}

/// The days to re-allocate: `window` (the days a sync may have changed), widened to the first
/// of each month it touches whose stored allocations are stale — made with other rules or
/// another cost basis, or no longer adding up to the month's facts (a first allocation, an
/// export re-imported) — so a month is never left half on old rules. On an ordinary day
/// that is the few days of the window, not the month.
pub async fn allocation_window(
    store: &Store,
    rules: &Rules,
    basis: CostBasis,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<(NaiveDate, NaiveDate)> {
    use chrono::Datelike;
    let mut start = from;
    let mut month = from.with_day(1).expect("day 1 exists");
    while month <= to {
        let next = month
            .checked_add_months(chrono::Months::new(1))
            .expect("a month after");
        let range = (month, (next.pred_opt().expect("a day before")).min(to));
        let provenance = store.allocation_provenance(range.0, range.1).await?;
        let other_rules = provenance
            .iter()
            .any(|(b, h)| b != basis.as_str() || *h != rules.hash);
        let billed = store.billed_totals(range.0, range.1, basis).await?;
        let mut allocated: std::collections::BTreeMap<String, Nanos> = Default::default();
        for s in store.service_totals(range.0, range.1).await? {
            *allocated.entry(s.currency.clone()).or_default() += s.total();
        }
        allocated.retain(|_, n| n.0 != 0);
        let billed_nonzero: std::collections::BTreeMap<String, Nanos> =
            billed.into_iter().filter(|(_, n)| n.0 != 0).collect();
        if other_rules || allocated != billed_nonzero {
            start = start.min(month);
            info!(month = %month.format("%Y-%m"), "allocations stale (other rules, or facts changed): allocating the month");
        }
        month = next;
    }
    Ok((start, to))
}

/// A month whose stored allocations do not follow its stored facts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StaleMonth {
    /// The month's first day.
    pub month: NaiveDate,
    pub reason: StaleReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaleReason {
    /// Facts on days no allocation ever covered (a first import, a backfill).
    NeverAllocated,
    /// Facts imported after the month's last allocation (a re-imported or restated month).
    FactsChanged,
}

impl StaleReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StaleReason::NeverAllocated => "never allocated",
            StaleReason::FactsChanged => "facts changed since its last allocation",
        }
    }
}

impl StaleMonth {
    /// `YYYY-MM`.
    pub fn label(&self) -> String {
        self.month.format("%Y-%m").to_string()
    }

    /// The month's first and last day.
    pub fn range(&self) -> (NaiveDate, NaiveDate) {
        let next = self
            .month
            .checked_add_months(chrono::Months::new(1))
            .expect("a month after");
        (self.month, next.pred_opt().expect("a day before"))
    }
}

/// Every month with facts newer than its allocations, or with days never allocated, oldest
/// first. Rules edits do not make a month stale here: a closed month keeps the rules it was
/// allocated with (the restatement window follows rules edits).
pub async fn stale_months(store: &Store) -> anyhow::Result<Vec<StaleMonth>> {
    use chrono::Datelike;
    let mut months: std::collections::BTreeMap<NaiveDate, StaleReason> = Default::default();
    for mark in store.day_marks().await? {
        let reason = match mark.allocated {
            None => StaleReason::NeverAllocated,
            Some(allocated) if mark.facts > allocated => StaleReason::FactsChanged,
            Some(_) => continue,
        };
        let month = mark.day.with_day(1).expect("day 1 exists");
        // A month with changed facts says so, even if some of its days were never allocated.
        let entry = months.entry(month).or_insert(reason);
        if reason == StaleReason::FactsChanged {
            *entry = reason;
        }
    }
    Ok(months
        .into_iter()
        .map(|(month, reason)| StaleMonth { month, reason })
        .collect())
}

/// Facts of a range and the allocations the rules give them, checked for conservation.
pub struct Computed {
    pub facts: Vec<crate::model::Fact>,
    pub allocations: Vec<crate::model::Allocation>,
    /// The facts' mark read before they were loaded (stored facts only).
    pub facts_mark: Option<i64>,
}

/// Allocates `from..=to` from the stored facts with `rules` and checks that the result sums
/// to the bill. Stores nothing: `allocate_range` stores it, a dry run compares it.
pub async fn compute_allocations(
    store: &Store,
    rules: &Rules,
    usage: &UsageWeights,
    basis: CostBasis,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<Computed> {
    anyhow::ensure!(from <= to, "the range is empty: {from} is after {to}");
    let started = Instant::now();
    // Read before the facts: an import committed after it makes the range newer than its
    // allocation, never the other way round.
    let facts_mark = store.facts_mark(from, to).await?;
    let facts = store.facts(from, to).await?;
    info!(
        stage = "load facts",
        ms = started.elapsed().as_millis() as u64,
        "allocate timing"
    );
    anyhow::ensure!(
        !facts.is_empty(),
        "no billing facts between {from} and {to}; import a billing file for that period first (costsplit import FILE)"
    );
    let computed = allocate_facts(store, rules, usage, basis, (from, to), facts).await?;
    Ok(Computed {
        facts_mark: Some(facts_mark),
        ..computed
    })
}

/// Allocates `facts` (all the facts of `from..=to`) with `rules`, checked for conservation.
async fn allocate_facts(
    store: &Store,
    rules: &Rules,
    usage: &UsageWeights,
    basis: CostBasis,
    (from, to): (NaiveDate, NaiveDate),
    facts: Vec<crate::model::Fact>,
) -> anyhow::Result<Computed> {
    let usage = with_live_weights(store, rules, usage, (from, to)).await?;
    let started = Instant::now();
    // CPU-bound: off the async worker threads, as the import's read is.
    let owned_rules = rules.clone();
    let (facts, allocations) = tokio::task::spawn_blocking(move || {
        let allocations = allocate::allocate(&Input {
            facts: &facts,
            rules: &owned_rules,
            usage: &usage,
            basis,
        });
        (facts, allocations)
    })
    .await
    .context("the allocation task stopped")?;
    let allocations = allocations?;
    info!(
        stage = "compute",
        ms = started.elapsed().as_millis() as u64,
        "allocate timing"
    );
    let gaps = conservation_gaps(&facts, &allocations, basis);
    anyhow::ensure!(
        gaps.is_empty(),
        "internal error: allocations do not sum to the bill on {} day(s) (first: {:?}); nothing was stored, please report this",
        gaps.len(),
        gaps.first()
    );
    Ok(Computed {
        facts,
        allocations,
        facts_mark: None,
    })
}

/// `given` plus the day-by-day weights of the pools measured by live sources, from the stored
/// samples (reaching back each pool's `max_age_days`). Weights in `given` win.
pub(crate) async fn with_live_weights(
    store: &Store,
    rules: &Rules,
    given: &UsageWeights,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<UsageWeights> {
    let live: Vec<&crate::rules::LiveUsage> =
        rules.pools.iter().filter_map(|p| p.live.as_ref()).collect();
    if live.is_empty() {
        return Ok(given.clone());
    }
    let oldest = live.iter().map(|l| l.max_age_days).max().unwrap_or(0);
    let sources: Vec<String> = live.iter().flat_map(|l| l.sources.clone()).collect();
    let samples = store
        .usage_samples(
            &sources,
            from - chrono::Duration::days(i64::from(oldest)),
            to,
        )
        .await?;
    let mut weights = allocate::live_weights(rules, &samples, from, to);
    weights.by_pool.extend(given.by_pool.clone());
    weights.basis.extend(given.basis.clone());
    Ok(weights)
}

/// What `sync usage` did: one stored run per source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSyncSummary {
    pub day: NaiveDate,
    pub runs: Vec<UsageRun>,
}

impl UsageSyncSummary {
    pub fn failed(&self) -> usize {
        self.runs
            .iter()
            .filter(|r| r.status == UsageStatus::Failed)
            .count()
    }
}

/// Measures every `[[source]]` of the rules (or only `only`) for `day` and stores each one's
/// samples with its run record. A source that fails (down, slow, refused credentials) fails
/// alone: its failure is recorded with the reason, its earlier samples stay, and the other
/// sources go on. `clock` gives the time recorded, and the time today's measurement is taken.
pub async fn sync_usage(
    store: &Store,
    rules: &Rules,
    aws: Option<&AwsSettings>,
    day: NaiveDate,
    only: Option<&str>,
    clock: Clock,
) -> anyhow::Result<UsageSyncSummary> {
    let sources: Vec<_> = rules
        .sources
        .iter()
        .filter(|s| only.is_none_or(|name| s.name == name))
        .collect();
    if let Some(name) = only {
        anyhow::ensure!(
            !sources.is_empty(),
            "no [[source]] named `{name}` in the rules"
        );
    }
    let end_of_day = (day + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .expect("midnight exists")
        .and_utc();
    let ctx = ingest::usage::Context {
        aws,
        at: end_of_day.min(clock.now()),
    };
    let created_at = clock.stamp();
    let mut runs = Vec::new();
    for source in sources {
        let started = Instant::now();
        let (run, samples) = match ingest::usage::collect(source, day, &ctx).await {
            Ok(collected) => (
                UsageRun {
                    created_at: created_at.clone(),
                    day,
                    source: source.name.clone(),
                    kind: source.kind.as_str().to_string(),
                    status: UsageStatus::Ok,
                    samples: collected.samples.len() as i64,
                    message: collected.notes.join("; "),
                },
                collected.samples,
            ),
            Err(reason) => {
                tracing::warn!(source = %source.name, %reason, "usage source failed; its earlier samples stay");
                (
                    UsageRun {
                        created_at: created_at.clone(),
                        day,
                        source: source.name.clone(),
                        kind: source.kind.as_str().to_string(),
                        status: UsageStatus::Failed,
                        samples: 0,
                        message: reason,
                    },
                    Vec::new(),
                )
            }
        };
        store.record_usage(&run, &samples).await?;
        info!(
            source = %run.source,
            status = run.status.as_str(),
            samples = run.samples,
            ms = started.elapsed().as_millis() as u64,
            "usage collected"
        );
        runs.push(run);
    }
    Ok(UsageSyncSummary { day, runs })
}

/// Per-service totals over a range, with the reconciliation against the stored facts.
pub async fn report(store: &Store, (from, to): (NaiveDate, NaiveDate)) -> anyhow::Result<Report> {
    let provenance = store.allocation_provenance(from, to).await?;
    anyhow::ensure!(
        !provenance.is_empty(),
        "no allocations between {from} and {to}; run `costsplit allocate --from {from} --to {to}` first"
    );
    let basis: CostBasis = provenance[0].0.parse().map_err(anyhow::Error::msg)?;
    let services = store.service_totals(from, to).await?;
    let billed = store.billed_totals(from, to, basis).await?;
    let estimated = store.estimated_days(from, to).await?;
    let allocations = store.allocations(from, to).await?;
    Ok(Report::new(from, to, basis, provenance, services, billed)
        .with_estimated_days(estimated)
        .with_shares(&allocations))
}

/// Runs the detectors for `day` (default: the last allocated day) and the `lookback_days`
/// before it (default: the rules') over the stored allocations. Writes nothing.
pub async fn detect_alerts(
    store: &Store,
    rules: &Rules,
    day: Option<NaiveDate>,
    lookback_days: Option<u32>,
) -> anyhow::Result<Detected> {
    let day = match day {
        Some(day) => day,
        None => store
            .latest_allocation_day()
            .await?
            .context("no allocations yet; run `costsplit allocate` first")?,
    };
    let lookback = lookback_days.unwrap_or(rules.alerts.lookback_days);
    let history = rules.alerts.base.baseline_days as i64 + i64::from(lookback) + 70;
    let (rows, estimated) = store
        .series_rows(day - chrono::Duration::days(history), day)
        .await?;
    let mut series = alert::series_from_rows(&rows, &estimated);
    // The team in the rules now owns the service, whatever it was when allocated.
    for s in &mut series {
        if let Some(service) = rules.service(&s.service) {
            s.team = service.team.clone();
        }
    }
    let thresholds = |s: &Series| rules.alerts.thresholds_for(&s.service, &s.team);
    let alerts = alert::detect(&series, &thresholds, day, lookback);
    Ok(Detected {
        day,
        lookback,
        alerts,
    })
}

/// What the detectors found for a day.
#[derive(Debug, Clone)]
pub struct Detected {
    pub day: NaiveDate,
    pub lookback: u32,
    pub alerts: Vec<Alert>,
}

/// Puts newly detected alerts into the outbox and resolves the spikes of the checked window
/// that restated data no longer supports, in one transaction. An alert already in the outbox
/// (same fingerprint) is not enqueued again.
pub async fn enqueue_alerts(
    store: &Store,
    rules: &Rules,
    detected: &Detected,
    clock: Clock,
) -> anyhow::Result<EnqueueResult> {
    let Detected {
        day,
        lookback,
        alerts,
    } = detected;
    let rows: Vec<NewAlert> = alerts
        .iter()
        .map(|a| NewAlert {
            fingerprint: a.fingerprint(),
            kind: a.kind.as_str().to_string(),
            service: a.service.clone(),
            team: a.team.clone(),
            period: a.period.clone(),
            channel: rules
                .service(&a.service)
                .and_then(|s| s.slack_channel.clone())
                .unwrap_or_default(),
            summary: a.summary(),
            payload: serde_json::to_string(a).expect("alerts always serialise"),
        })
        .collect();
    let window = (*day - chrono::Duration::days(i64::from(*lookback)), *day);
    let result = store.enqueue_alerts(&rows, window, &clock.stamp()).await?;
    info!(
        new = result.inserted,
        known = result.already_known,
        resolved = result.resolved.len(),
        "alerts checked"
    );
    Ok(result)
}

/// Delivers the outbox to Slack, in order (see [`notify::deliver`]). A `Retry-After` or
/// backoff wait ends early on shutdown, leaving the alert pending for the next run.
pub async fn deliver_alerts(
    store: &Store,
    settings: &crate::notify::SlackSettings,
    clock: Clock,
    shutdown: &Shutdown,
) -> anyhow::Result<crate::notify::DeliverySummary> {
    crate::notify::deliver(store, settings, clock, shutdown.clone()).await
}

/// What a billing sync did, account by account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncSummary {
    /// One run record per account attempted (as stored in `sync_runs`).
    pub accounts: Vec<SyncRun>,
    /// Accounts not attempted because the call cap was reached first.
    pub skipped: Vec<String>,
}

impl SyncSummary {
    pub fn calls(&self) -> i64 {
        self.accounts.iter().map(|a| a.calls).sum()
    }

    pub fn complete(&self) -> bool {
        self.skipped.is_empty() && self.accounts.iter().all(|a| a.status == SyncStatus::Ok)
    }
}

/// The source name export syncs are recorded under in `sync_runs`.
pub const EXPORT_SOURCE: &str = "s3-export";

/// Pulls billing exports from S3: lists each export's prefix once, and for every billing
/// period whose manifest or objects changed since it was last imported (its fingerprint),
/// downloads the parts the manifest lists and replaces the period's facts, with the run
/// record, in one transaction. A period that fails (a missing or unreadable part, another
/// account's bill) is recorded and leaves its stored facts as they were; the other periods
/// and exports go on. Returns one run record per period seen (and one per export that could
/// not be listed).
pub async fn sync_exports(
    store: &Store,
    exports: &[ingest::s3_exports::ExportSource],
    clock: Clock,
) -> anyhow::Result<Vec<SyncRun>> {
    use ingest::s3_exports;
    let now = &clock.stamp();
    let mut runs = Vec::new();
    for source in exports {
        let name = source.name();
        let layout = source.layout().map_err(anyhow::Error::msg)?;
        let client = s3_exports::client(source).await;
        let today = clock.today();
        let run = |from: NaiveDate, to: NaiveDate| SyncRun {
            created_at: now.to_string(),
            source: EXPORT_SOURCE.to_string(),
            account: name.clone(),
            from,
            to,
            status: SyncStatus::Ok,
            calls: 0,
            cost: Nanos::ZERO,
            facts: 0,
            estimated_days: 0,
            message: String::new(),
            fingerprint: String::new(),
        };
        let listing = match s3_exports::list(&client, source).await {
            Ok(listing) => listing,
            Err(message) => {
                let failed = SyncRun {
                    status: SyncStatus::Failed,
                    calls: 1,
                    message,
                    ..run(today, today)
                };
                store.record_sync_without_facts(&failed).await?;
                runs.push(failed);
                continue;
            }
        };
        let periods = s3_exports::periods(layout, &listing);
        // The listing's requests are recorded once, on the first period this run records.
        let mut listing_calls = listing.requests;
        info!(export = %name, objects = listing.objects.len(), periods = periods.len(), "export listed");
        for period in &periods {
            if source
                .since
                .as_ref()
                .is_some_and(|since| period.period < *since)
            {
                continue;
            }
            let (from, to) =
                crate::model::month_bounds(&period.period).context("a listed period is a month")?;
            let mut this = SyncRun {
                calls: std::mem::take(&mut listing_calls),
                fingerprint: period.fingerprint.clone(),
                ..run(from, to)
            };
            let stored = store
                .last_imported_fingerprint(EXPORT_SOURCE, &name, from)
                .await?;
            if stored.as_deref() == Some(period.fingerprint.as_str()) {
                this.status = SyncStatus::Unchanged;
                this.message = format!("{} unchanged since it was imported", period.period);
                store.record_sync_without_facts(&this).await?;
                runs.push(this);
                continue;
            }
            match import_export_period(&client, source, &listing, period).await {
                Ok((imported, requests)) => {
                    this.calls += requests;
                    this.facts = imported.facts.len() as i64;
                    this.message = format!(
                        "{} imported: {} line items from {} part(s)",
                        period.period,
                        imported.line_items,
                        imported.files.len()
                    );
                    let record = ImportRecord {
                        created_at: now.to_string(),
                        source: EXPORT_SOURCE.to_string(),
                        files: imported.files.clone(),
                        scope: FactScope::Periods(imported.periods.iter().cloned().collect()),
                        line_items: imported.line_items,
                    };
                    store.commit_sync(&record, &imported.facts, &this).await?;
                }
                Err((message, requests)) => {
                    this.calls += requests;
                    this.status = SyncStatus::Failed;
                    this.fingerprint = String::new();
                    this.message = format!(
                        "{}: {message}; its stored facts are unchanged",
                        period.period
                    );
                    store.record_sync_without_facts(&this).await?;
                }
            }
            info!(export = %name, period = %period.period, status = this.status.as_str(), calls = this.calls, "export sync");
            runs.push(this);
        }
    }
    Ok(runs)
}

/// Downloads one period's parts into a temporary folder and reads them as one batch. Errors
/// name the S3 objects, not the temporary files.
async fn import_export_period(
    client: &aws_sdk_s3::Client,
    source: &ingest::s3_exports::ExportSource,
    listing: &ingest::s3_exports::Listing,
    period: &ingest::s3_exports::Period,
) -> Result<(ingest::Imported, i64), (String, i64)> {
    let dir = tempfile::tempdir().map_err(|e| (format!("a temporary folder: {e}"), 0))?;
    let (files, requests) =
        ingest::s3_exports::download(client, source, listing, period, dir.path()).await?;
    let locals: Vec<PathBuf> = files.iter().map(|(local, _)| local.clone()).collect();
    info!(export = %source.name(), period = %period.period, parts = locals.len(), "downloaded; reading the parts");
    let read = tokio::task::spawn_blocking(move || ingest::read_files(&locals))
        .await
        .map_err(|e| (format!("the import task stopped: {e}"), requests))?;
    let name_objects = |text: String| {
        files.iter().fold(text, |text, (local, uri)| {
            text.replace(&local.display().to_string(), uri)
        })
    };
    let mut imported = read.map_err(|e| (name_objects(e.to_string()), requests))?;
    imported.files = files.iter().map(|(_, uri)| uri.clone()).collect();
    if let Some((other, _)) = imported.periods.iter().find(|(p, _)| *p != period.period) {
        return Err((
            format!(
                "the parts of billing period {} hold line items of {other}; nothing was imported",
                period.period
            ),
            requests,
        ));
    }
    if let Some(account) = &source.account {
        if let Some((_, other)) = imported.periods.iter().find(|(_, a)| a != account) {
            return Err((
                format!("the export holds the bill of account {other}, not {account} (the export's `account`); nothing was imported"),
                requests,
            ));
        }
    }
    Ok((imported, requests))
}

/// Fetches each configured account's window from Cost Explorer (the restatement window for
/// `today`, or `window`) and replaces exactly those days' facts, one account at a time, each
/// in one transaction with its run record. A window that fails or hits the call cap writes no
/// facts; its run is still recorded with the calls it made.
pub async fn sync_billing(
    store: &Store,
    settings: &AwsSettings,
    service_tag: &str,
    window: Option<(NaiveDate, NaiveDate)>,
    clock: Clock,
) -> anyhow::Result<SyncSummary> {
    let (today, now) = (clock.today(), &clock.stamp());
    anyhow::ensure!(
        !settings.accounts.is_empty(),
        "no AWS account to sync: add one to costsplit.toml, e.g.\n\n[aws]\n[[aws.accounts]]\nid = \"123456789012\""
    );
    let (from, to) = window.unwrap_or_else(|| settings.restatement_window(today));
    anyhow::ensure!(from <= to, "the window is empty: {from} is after {to}");
    let group_by = settings
        .group_keys(service_tag)
        .map_err(anyhow::Error::msg)?;
    let mut budget = CallBudget {
        made: 0,
        max: settings.max_calls_per_run,
    };
    let mut summary = SyncSummary {
        accounts: Vec::new(),
        skipped: Vec::new(),
    };
    for (i, account) in settings.accounts.iter().enumerate() {
        let query = Query {
            account: account.id.clone(),
            from,
            to,
            group_by: group_by.clone(),
            effective_metric: settings.effective_metric.clone(),
            billed_metric: settings.billed_metric.clone(),
        };
        let started = Instant::now();
        let client = cost_explorer::client(settings, account).await;
        let before = budget.made;
        let fetched = cost_explorer::fetch(&client, &query, &mut budget)
            .await
            .and_then(|results| cost_explorer::to_raw_facts(&query, &results));
        let calls = budget.made - before;
        let mut run = SyncRun {
            created_at: now.to_string(),
            source: "cost-explorer".to_string(),
            account: account.id.clone(),
            from,
            to,
            status: SyncStatus::Ok,
            calls: i64::from(calls),
            cost: cost_explorer::calls_cost(i64::from(calls)),
            facts: 0,
            estimated_days: 0,
            message: String::new(),
            fingerprint: String::new(),
        };
        match fetched {
            Ok(raw) => {
                let facts = ingest::aggregate::round_to_nanos(ingest::aggregate::merge_facts(raw));
                let estimated: std::collections::BTreeSet<NaiveDate> = facts
                    .iter()
                    .filter(|f| f.estimated)
                    .map(|f| f.day)
                    .collect();
                run.facts = facts.len() as i64;
                run.estimated_days = estimated.len() as i64;
                let record = ImportRecord {
                    created_at: now.to_string(),
                    source: "cost-explorer".to_string(),
                    files: Vec::new(),
                    scope: FactScope::Days {
                        account: account.id.clone(),
                        from,
                        to,
                    },
                    line_items: facts.len() as i64,
                };
                store.commit_sync(&record, &facts, &run).await?;
            }
            Err(err) => {
                let capped = matches!(err, FetchError::CallCap { .. });
                run.status = if capped {
                    SyncStatus::Capped
                } else {
                    SyncStatus::Failed
                };
                run.message = format!("{err}; days {from}..{to} were not synced");
                store.record_sync_without_facts(&run).await?;
                if capped {
                    summary.accounts.push(run);
                    summary.skipped = settings.accounts[i + 1..]
                        .iter()
                        .map(|a| a.id.clone())
                        .collect();
                    return Ok(summary);
                }
            }
        }
        info!(
            account = %account.id,
            calls,
            facts = run.facts,
            ms = started.elapsed().as_millis() as u64,
            status = run.status.as_str(),
            "billing sync"
        );
        summary.accounts.push(run);
    }
    Ok(summary)
}
