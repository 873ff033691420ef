//! The demo job (`costsplit demo`): the other jobs composed over generated data (two seeded
//! months with a planted spike and a month-over-month rise) in a fresh SQLite store. Returns
//! what each step did; the CLI prints it.

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;

use super::alerts::{detect_alerts, Detected};
use super::allocate::{allocate_range, AllocateSummary};
use super::import::{import_files, ImportSummary};
use super::reports::{self, report};
use crate::clock::Clock;
use crate::demo::generate::{self, GenSpec, World};
use crate::model::CostBasis;
use crate::report::digest::{Digest, Period};
use crate::report::statement::{GroupBy, Statement};
use crate::report::Report;
use crate::rules::{self, Rules};
use crate::store::Store;

/// What the demo did, step by step.
pub struct Demo {
    /// The generator's settings (rows a month, seed, services, shared resources).
    pub spec: GenSpec,
    /// The service with the planted one-day spike, and the one with the March rise.
    pub spike: String,
    pub rise: String,
    pub url: String,
    pub imported: ImportSummary,
    pub rules: Rules,
    pub allocated: AllocateSummary,
    /// March, per service.
    pub report: Report,
    pub detected: Detected,
    pub statement: Statement,
    pub statement_file: PathBuf,
    /// The digest of the first team with a Slack channel.
    pub digests: Vec<Digest>,
    /// The rules' budgets in March as known on the 15th: what `costsplit forecast` says.
    pub budgets: Vec<crate::forecast::budget::BudgetStatus>,
}

fn date(month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, month, day).expect("valid demo date")
}

/// Generates two seeded months of FOCUS line items, imports them into a fresh SQLite store at
/// `db`, allocates them with the rules in `rules_dir`, and gathers March per service, the
/// alerts it would send, finance's statement (written beside `db`) and a team's digest.
pub async fn demo(
    rules_dir: &Path,
    basis: CostBasis,
    rows: usize,
    seed: u64,
    db: &Path,
) -> anyhow::Result<Demo> {
    let rules = rules::load_or_error(rules_dir)?;
    let workdir = tempfile::tempdir().context("creating a temporary directory")?;
    let (spec, spike, rise) = demo_spec(&rules, rows, seed);
    let mut files = Vec::new();
    let mut month_spec = spec.clone();
    for month in [2, 3] {
        month_spec.month = date(month, 1);
        let file = workdir
            .path()
            .join(format!("focus-demo-2025-{month:02}.csv.gz"));
        World::new(month_spec.clone()).write_csv(&file)?;
        files.push(file);
    }
    remove_old_store(db)?;
    let url = format!("sqlite://{}", db.display());
    let store = Store::connect(&url).await?;
    let imported = import_files(&store, &files, Clock::System).await?;
    let allocated = allocate_range(
        &store,
        &rules,
        basis,
        (date(2, 1), date(3, 31)),
        Clock::System,
    )
    .await?;
    let report = report(&store, (date(3, 1), date(3, 31)), Some(&rules)).await?;
    let detected = detect_alerts(&store, &rules, Some(date(3, 31)), Some(30)).await?;
    let statement = reports::statement(&store, "2025-03", GroupBy::Service, false, None, 7).await?;
    let team = rules
        .services
        .iter()
        .find(|s| s.slack_channel.is_some())
        .map(|s| s.team.clone());
    let digests = match &team {
        Some(team) => {
            reports::team_digests(&store, &rules, Period::Month, date(4, 1), Some(team)).await?
        }
        None => Vec::new(),
    };
    let budgets = super::budget_statuses(&store, &rules, "2025-03", Some(date(3, 15))).await?;
    store.close().await;
    let statement_file = db.with_file_name("costsplit-demo-statement-2025-03.csv");
    std::fs::write(&statement_file, statement.csv())
        .with_context(|| format!("writing {}", statement_file.display()))?;
    Ok(Demo {
        spec,
        spike,
        rise,
        url,
        imported,
        rules,
        allocated,
        report,
        detected,
        statement,
        statement_file,
        digests,
        budgets,
    })
}

/// The generator's settings for the rules' services (and one undeclared), with something for
/// the alerts to find: a one-day spike and a month-over-month rise.
fn demo_spec(rules: &Rules, rows: usize, seed: u64) -> (GenSpec, String, String) {
    let mut spec = GenSpec::standard(rows, seed);
    spec.services = rules.services.iter().map(|s| s.name.clone()).collect();
    spec.services.push("legacy-batch".to_string());
    spec.resources = 400;
    spec.accounts = 6;
    let spike = spec.services.get(5).cloned().unwrap_or_default();
    let rise = spec.services.get(4).cloned().unwrap_or_default();
    spec.adjustments = vec![
        generate::Adjustment {
            service: spike.clone(),
            from: date(3, 20),
            to: date(3, 20),
            percent: 600,
        },
        generate::Adjustment {
            service: rise.clone(),
            from: date(3, 1),
            to: date(3, 31),
            percent: 160,
        },
    ];
    (spec, spike, rise)
}

/// Removes the previous demo store (and its WAL files).
fn remove_old_store(db: &Path) -> anyhow::Result<()> {
    for suffix in ["", "-wal", "-shm"] {
        let path = PathBuf::from(format!("{}{suffix}", db.display()));
        if path.exists() {
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the old demo store {}", path.display()))?;
        }
    }
    Ok(())
}
