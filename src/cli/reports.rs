//! The reporting commands: `export` (finance's statement), `report slack` (the per-team
//! digests), `explain`, `rules test` and `allocate --dry-run`. Each calls one job and prints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::jobs::{reports, Clock};
use crate::report::digest::Period;
use crate::report::statement::GroupBy;
use crate::rules;
use crate::store::Store;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The billing month, YYYY-MM
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
    /// One line per service (default), team or cost center
    #[arg(long, value_enum, default_value = "service")]
    pub by: ExportBy,
    /// One line per origin instead: direct cost by provider service, each pool and method,
    /// unallocated
    #[arg(long)]
    pub detail: bool,
    /// Only the reconciliation: billed total, allocated total and their difference per currency
    #[arg(long, conflicts_with = "detail")]
    pub summary: bool,
    #[arg(long, value_enum, default_value = "csv")]
    pub format: ExportFormat,
    /// Write here (atomically: a file is whole or not there) instead of standard output
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportBy {
    Service,
    Team,
    #[value(name = "cost_center", alias = "cost-center")]
    CostCenter,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// The chargeback statement (README: "Chargeback statements")
    Csv,
    /// The allocated month as a FOCUS 1.3 cost and usage dataset (CSV) with split shared
    /// charges; needs the rules the month was allocated with
    Focus,
}

#[derive(Debug, Args)]
pub struct SlackReportArgs {
    /// The last complete week (Monday to Sunday) or calendar month
    #[arg(long, value_enum)]
    pub period: PeriodArg,
    /// Only this team
    #[arg(long)]
    pub team: Option<String>,
    /// Print the messages instead of putting them in the outbox
    #[arg(long)]
    pub dry_run: bool,
    /// Report as if today were this day, YYYY-MM-DD (default: today, UTC)
    #[arg(long, value_name = "DAY")]
    pub today: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PeriodArg {
    Week,
    Month,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[arg(long)]
    pub service: String,
    #[arg(long, value_name = "YYYY-MM")]
    pub month: String,
}

/// Writes `text` to `out` by way of a temporary file renamed into place, or to stdout.
fn write_out(text: &str, out: Option<&Path>) -> anyhow::Result<()> {
    match out {
        None => {
            use std::io::Write as _;
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
            Ok(())
        }
        Some(path) => {
            let name = path
                .file_name()
                .with_context(|| format!("--out {} is not a file name", path.display()))?;
            let tmp = path.with_file_name(format!(".{}.partial", name.to_string_lossy()));
            std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
            std::fs::rename(&tmp, path)
                .with_context(|| format!("moving the export into {}", path.display()))?;
            Ok(())
        }
    }
}

pub async fn export(config: &Config, args: &ExportArgs) -> anyhow::Result<i32> {
    if matches!(args.format, ExportFormat::Focus) {
        anyhow::ensure!(
            !args.detail && !args.summary && matches!(args.by, ExportBy::Service),
            "--format focus writes every charge; --detail, --summary and --by are for the statement"
        );
    }
    let store = Store::connect(&config.store_url).await?;
    let by = match args.by {
        ExportBy::Service => GroupBy::Service,
        ExportBy::Team => GroupBy::Team,
        ExportBy::CostCenter => GroupBy::CostCenter,
    };
    let text = match args.format {
        ExportFormat::Csv => {
            let statement = reports::statement(
                &store,
                &args.month,
                by,
                args.detail,
                Some(config.cost_basis),
                config.restatement().1,
            )
            .await;
            store.close().await;
            let statement = statement?;
            anyhow::ensure!(
                statement.reconciled(),
                "internal error: the statement's amounts do not add up to the billed total; nothing was written, please report this"
            );
            if args.summary {
                statement.summary_csv()
            } else {
                statement.csv()
            }
        }
        ExportFormat::Focus => {
            let rules = rules::load_or_error(&config.rules_dir);
            let focus = match &rules {
                Ok(rules) => reports::focus_export(&store, rules, &args.month).await,
                Err(_) => Ok(String::new()),
            };
            store.close().await;
            rules?;
            focus?
        }
    };
    write_out(&text, args.out.as_deref())?;
    if let Some(out) = &args.out {
        eprintln!("wrote {} ({} bytes)", out.display(), text.len());
    }
    Ok(0)
}

pub async fn report_slack(config: &Config, args: &SlackReportArgs) -> anyhow::Result<i32> {
    let rules = rules::load_or_error(&config.rules_dir)?;
    let today = match &args.today {
        Some(day) => crate::model::parse_day(day)
            .with_context(|| format!("`{day}` is not a day; write it as YYYY-MM-DD"))?,
        None => chrono::Utc::now().date_naive(),
    };
    let period = match args.period {
        PeriodArg::Week => Period::Week,
        PeriodArg::Month => Period::Month,
    };
    let store = Store::connect(&config.store_url).await?;
    let digests = reports::team_digests(&store, &rules, period, today, args.team.as_deref()).await;
    let digests = match digests {
        Ok(d) if d.is_empty() => {
            store.close().await;
            let ((from, to), _) = period.last_complete(today);
            anyhow::bail!(
                "no allocations for the {} {from} to {to}; run `costsplit allocate --from {from} --to {to}` first",
                period.as_str()
            );
        }
        Ok(d) => d,
        Err(e) => {
            store.close().await;
            return Err(e);
        }
    };
    if args.dry_run {
        store.close().await;
        let rows = reports::digest_rows(&digests, rules.alerts.dashboard_url.as_deref());
        for row in &rows {
            let channel = if row.channel.is_empty() {
                "the team's webhook".to_string()
            } else {
                row.channel.clone()
            };
            println!("\n- {} -> {channel}", row.summary);
            let value: serde_json::Value =
                serde_json::from_str(&row.payload).expect("rendered messages are JSON");
            println!(
                "{}",
                serde_json::to_string_pretty(&value).expect("JSON values always serialise")
            );
        }
        println!(
            "\n{} message(s) for {} team digest(s); nothing was enqueued",
            rows.len(),
            digests.len()
        );
        return Ok(0);
    }
    let result = reports::enqueue_digests(&store, &rules, &digests, Clock::System).await;
    store.close().await;
    let result = result?;
    println!(
        "{} team digest(s): {} message(s) new in the outbox, {} already there; `costsplit notify` sends them",
        digests.len(),
        result.inserted,
        result.already_known
    );
    Ok(0)
}

pub async fn explain(config: &Config, args: &ExplainArgs) -> anyhow::Result<i32> {
    let rules = rules::load_or_error(&config.rules_dir).ok();
    let store = Store::connect(&config.store_url).await?;
    let out = reports::explain(&store, rules.as_ref(), &args.service, &args.month).await;
    store.close().await;
    for e in out? {
        print!("{}", e.text());
    }
    Ok(0)
}

pub fn rules_test(dir: &Path) -> anyhow::Result<i32> {
    let rules = rules::load_or_error(dir)?;
    let outcomes = reports::rules_test(&rules);
    let mut failed = 0;
    for o in &outcomes {
        if o.failures.is_empty() {
            println!("ok    {} ({})", o.name, o.location);
        } else {
            failed += 1;
            println!("FAIL  {} ({})", o.name, o.location);
            for f in &o.failures {
                println!("      {f}");
            }
        }
    }
    if outcomes.is_empty() {
        println!(
            "{}: no [[test]] cases; see rules/README.md to add some",
            dir.display()
        );
    }
    println!(
        "{} case(s): {} passed, {failed} failed",
        outcomes.len(),
        outcomes.len() - failed
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

pub async fn dry_run(
    config: &Config,
    range: (chrono::NaiveDate, chrono::NaiveDate),
) -> anyhow::Result<i32> {
    let rules = rules::load_or_error(&config.rules_dir)?;
    let store = Store::connect(&config.store_url).await?;
    let diff = reports::dry_run(&store, &rules, config.cost_basis, range).await;
    store.close().await;
    print!("{}", diff?.table());
    Ok(0)
}
