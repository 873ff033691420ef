//! Syncing billing data from AWS: Cost Explorer windows per account, and the billing periods
//! of S3 data exports, each replacing exactly what it fetched, with its run record.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use chrono::NaiveDate;
use tracing::info;

use crate::clock::Clock;
use crate::ingest;
use crate::ingest::cost_explorer::{self, AwsSettings, CallBudget, FetchError, Query};
use crate::model::ImportSource;
use crate::store::{FactScope, ImportRecord, Store, SyncRun, SyncStatus};

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

    /// What the run's API calls cost.
    pub fn cost(&self) -> crate::money::Nanos {
        self.accounts.iter().map(|a| a.cost).sum()
    }

    pub fn complete(&self) -> bool {
        self.skipped.is_empty() && self.accounts.iter().all(|a| a.status == SyncStatus::Ok)
    }
}

/// The source name export syncs are recorded under in `sync_runs`.
pub const EXPORT_SOURCE: ImportSource = ImportSource::S3Export;

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
    let now = clock.stamp();
    let mut runs = Vec::new();
    for source in exports {
        let name = source.name();
        let layout = source.layout()?;
        let client = s3_exports::client(source).await;
        let mut athena = match source.athena()? {
            Some(target) => Some(Athena {
                client: ingest::athena::client(source).await,
                target,
                columns: None,
            }),
            None => None,
        };
        let today = clock.today();
        let run = |from, to| SyncRun::begun(now, EXPORT_SOURCE, &name, from, to);
        let listing = match s3_exports::list(&client, source).await {
            Ok(listing) => listing,
            Err(failed) => {
                let failed = SyncRun {
                    status: SyncStatus::Failed,
                    calls: 1,
                    message: failed.0,
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
                fingerprint: Some(period.fingerprint.clone()),
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
            let (read, spent) = match athena.as_mut() {
                None => match import_export_period(&client, source, &listing, period).await {
                    Ok((imported, requests)) => (Ok(imported), Spent::requests(requests)),
                    Err((message, requests)) => (Err(message), Spent::requests(requests)),
                },
                Some(athena) => athena_period(&client, athena, source, period).await,
            };
            this.calls += spent.requests;
            this.cost += spent
                .queries
                .iter()
                .map(|q| q.cost)
                .sum::<crate::money::Nanos>();
            this.bytes_scanned = spent.queries.iter().map(|q| q.bytes_scanned).sum();
            this.query_id = spent.queries.last().map(|q| q.query_id.clone());
            match read.and_then(|imported| {
                check_period(&imported, source, period)?;
                Ok(imported)
            }) {
                Ok(imported) => {
                    this.facts = imported.facts.len() as i64;
                    this.message = match &athena {
                        None => format!(
                            "{} imported: {} line items from {} part(s)",
                            period.period,
                            imported.line_items,
                            imported.files.len()
                        ),
                        Some(_) => format!(
                            "{} imported by Athena ({}): {} line items as {} daily facts",
                            period.period,
                            spent.queries_text(),
                            imported.line_items,
                            imported.facts.len()
                        ),
                    };
                    let record = ImportRecord {
                        created_at: now,
                        source: EXPORT_SOURCE,
                        files: imported.files.clone(),
                        scope: FactScope::Periods(imported.periods.iter().cloned().collect()),
                        line_items: imported.line_items,
                    };
                    store.commit_sync(&record, &imported.facts, &this).await?;
                }
                Err(message) => {
                    this.status = SyncStatus::Failed;
                    this.fingerprint = None;
                    let spent = match spent.queries.is_empty() {
                        true => String::new(),
                        false => format!(" ({})", spent.queries_text()),
                    };
                    this.message = format!(
                        "{}: {message}{spent}; its stored facts are unchanged",
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
    Ok((imported, requests))
}

/// What a period's sync spent: requests, and the queries an engine ran.
#[derive(Debug, Default)]
struct Spent {
    requests: i64,
    queries: Vec<ingest::athena::QueryRun>,
}

impl Spent {
    fn requests(requests: i64) -> Spent {
        Spent {
            requests,
            queries: Vec::new(),
        }
    }

    /// `query 1f2e…, scanned 1.2 GB, $0.0059` for each query.
    fn queries_text(&self) -> String {
        self.queries
            .iter()
            .map(|q| {
                format!(
                    "query {}, scanned {}, {}",
                    q.query_id,
                    ingest::athena::bytes_text(q.bytes_scanned),
                    q.cost.format(6)
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// An export summed by Athena: its client, settings, and the table's columns once asked.
struct Athena {
    client: aws_sdk_athena::Client,
    target: ingest::athena::AthenaTarget,
    columns: Option<Vec<(String, ingest::engine::ColumnKind)>>,
}

/// One period through Athena: the table's columns (asked once per sync), the UNLOAD of the
/// period's facts into a fresh folder of the output location, polled to its end, and the
/// facts it wrote downloaded and read (each file must be a facts file).
async fn athena_period(
    s3: &aws_sdk_s3::Client,
    athena: &mut Athena,
    source: &ingest::s3_exports::ExportSource,
    period: &ingest::s3_exports::Period,
) -> (Result<ingest::Imported, String>, Spent) {
    use ingest::athena;
    let mut spent = Spent::default();
    let failed = |spent: &mut Spent, f: athena::QueryFailed| {
        spent.requests += f.requests;
        spent.queries.extend(f.run);
        Err(f.message)
    };
    let columns = match &athena.columns {
        Some(columns) => columns.clone(),
        None => match athena::table_columns(&athena.client, &athena.target).await {
            Ok((columns, run)) => {
                spent.requests += run.requests;
                spent.queries.push(run);
                athena.columns = Some(columns.clone());
                columns
            }
            Err(f) => return (failed(&mut spent, f), spent),
        },
    };
    let (prefix, uri) = athena::unload_folder(&athena.target, &source.name(), &period.period);
    let sql = athena::unload_sql(&athena.target, &columns, &period.period, &uri);
    info!(export = %source.name(), period = %period.period, to = %uri, "running the Athena UNLOAD");
    match athena::run_query(&athena.client, &athena.target, &sql).await {
        Ok(run) => {
            spent.requests += run.requests;
            spent.queries.push(run);
        }
        Err(f) => return (failed(&mut spent, f), spent),
    }
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => return (Err(format!("a temporary folder: {e}")), spent),
    };
    let files = match athena::download_unloaded(s3, &athena.target, &prefix, dir.path()).await {
        Ok(files) => {
            // The listing and each download.
            spent.requests += 1 + files.len() as i64;
            files
        }
        Err(message) => return (Err(message), spent),
    };
    let locals: Vec<PathBuf> = files.iter().map(|(local, _)| local.clone()).collect();
    let read = tokio::task::spawn_blocking(move || {
        for file in &locals {
            ingest::check_facts_file(file)?;
        }
        match locals.is_empty() {
            true => Ok(ingest::Imported::default()),
            false => ingest::read_files(&locals),
        }
    })
    .await;
    let name_objects = |text: String| {
        files.iter().fold(text, |text, (local, uri)| {
            text.replace(&local.display().to_string(), uri)
        })
    };
    let read = match read {
        Ok(Ok(mut imported)) => {
            imported.files = files.iter().map(|(_, uri)| uri.clone()).collect();
            Ok(imported)
        }
        Ok(Err(e)) => Err(format!(
            "the facts the UNLOAD wrote to {uri}: {}",
            name_objects(e.to_string())
        )),
        Err(e) => Err(format!("the import task stopped: {e}")),
    };
    (read, spent)
}

/// The checks every period's facts pass before they replace the stored ones: they are the
/// period's, and the export's account's.
fn check_period(
    imported: &ingest::Imported,
    source: &ingest::s3_exports::ExportSource,
    period: &ingest::s3_exports::Period,
) -> Result<(), String> {
    if let Some((other, _)) = imported.periods.iter().find(|(p, _)| *p != period.period) {
        return Err(format!(
            "the data of billing period {} holds line items of {other}; nothing was imported",
            period.period
        ));
    }
    if let Some(account) = &source.account {
        if let Some((_, other)) = imported.periods.iter().find(|(_, a)| a != account) {
            return Err(format!("the export holds the bill of account {other}, not {account} (the export's `account`); nothing was imported"));
        }
    }
    Ok(())
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
    let (today, now) = (clock.today(), clock.stamp());
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
            calls: i64::from(calls),
            cost: cost_explorer::calls_cost(i64::from(calls)),
            ..SyncRun::begun(now, ImportSource::CostExplorer, &account.id, from, to)
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
                    created_at: now,
                    source: ImportSource::CostExplorer,
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
