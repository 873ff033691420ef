//! Allocating stored facts: a range (checked for conservation before it is stored), the
//! window the daemon re-allocates, and the months whose facts changed since their allocation.

use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use tracing::info;

use crate::allocate::{self, conservation_gaps, Input, UsageWeights};
use crate::clock::Clock;
use crate::model::CostBasis;
use crate::money::{Nanos, PerCurrency};
use crate::rules::Rules;
use crate::store::{RunRecord, Store};

/// An amount of each fact, added up per currency.
pub(super) fn per_currency(
    facts: &[crate::model::Fact],
    amount: impl Fn(&crate::model::Fact) -> Nanos,
) -> PerCurrency {
    facts
        .iter()
        .map(|f| (f.currency.as_str(), amount(f)))
        .collect()
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

/// Allocates `from..=to` from the stored facts and replaces that range's allocations.
pub async fn allocate_range(
    store: &Store,
    rules: &Rules,
    basis: CostBasis,
    range: (NaiveDate, NaiveDate),
    clock: Clock,
) -> anyhow::Result<AllocateSummary> {
    let (from, to) = range;
    let Computed {
        facts,
        allocations,
        facts_mark,
    } = compute_allocations(store, rules, basis, range).await?;
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
    crate::memory::set_stage("storing the allocations");
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
    pub(super) fn of(
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
            .any(|p| p.basis != basis || p.rules_hash != rules.hash);
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
    basis: CostBasis,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<Computed> {
    anyhow::ensure!(from <= to, "the range is empty: {from} is after {to}");
    let started = Instant::now();
    // Read before the facts: an import committed after it makes the range newer than its
    // allocation, never the other way round.
    let facts_mark = store.facts_mark(from, to).await?;
    crate::memory::set_stage("loading the stored facts");
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
    let computed = allocate_facts(store, rules, basis, (from, to), facts).await?;
    Ok(Computed {
        facts_mark: Some(facts_mark),
        ..computed
    })
}

/// Allocates `facts` (all the facts of `from..=to`) with `rules`, checked for conservation.
pub(super) async fn allocate_facts(
    store: &Store,
    rules: &Rules,
    basis: CostBasis,
    (from, to): (NaiveDate, NaiveDate),
    facts: Vec<crate::model::Fact>,
) -> anyhow::Result<Computed> {
    let usage = live_weights(store, rules, (from, to)).await?;
    let started = Instant::now();
    crate::memory::set_stage("allocating the facts");
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

/// The day-by-day weights of the pools measured by live sources, from the stored samples
/// (reaching back each pool's `max_age_days`).
pub(super) async fn live_weights(
    store: &Store,
    rules: &Rules,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<UsageWeights> {
    let live: Vec<&crate::rules::LiveUsage> =
        rules.pools.iter().filter_map(|p| p.live.as_ref()).collect();
    if live.is_empty() {
        return Ok(UsageWeights::default());
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
    Ok(allocate::live_weights(rules, &samples, from, to))
}
