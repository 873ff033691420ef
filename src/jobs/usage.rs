//! Measuring live usage: every `[[source]]` of the rules for a day, each stored with its run
//! record; a source that fails fails alone.

use std::time::Instant;

use chrono::NaiveDate;
use tracing::info;

use crate::clock::Clock;
use crate::ingest;
use crate::ingest::cost_explorer::AwsSettings;
use crate::rules::Rules;
use crate::store::{Store, UsageRun, UsageStatus};

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
        let record = |status, samples: usize, message: String| UsageRun {
            created_at,
            day,
            source: source.name.clone(),
            kind: source.kind.as_str().to_string(),
            status,
            samples: samples as i64,
            message,
        };
        let (run, samples) = match ingest::usage::collect(source, day, &ctx).await {
            Ok(collected) => (
                record(
                    UsageStatus::Ok,
                    collected.samples.len(),
                    collected.notes.join("; "),
                ),
                collected.samples,
            ),
            Err(reason) => {
                tracing::warn!(source = %source.name, %reason, "usage source failed; its earlier samples stay");
                (record(UsageStatus::Failed, 0, reason.0), Vec::new())
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
