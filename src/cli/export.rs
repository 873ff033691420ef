//! `costsplit export --month M`: finance's statement, or the month as FOCUS 1.3.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};

use crate::config::Config;
use crate::jobs::{self, reports};
use crate::report::statement::GroupBy;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The billing month, YYYY-MM
    #[arg(long, value_name = "YYYY-MM")]
    month: String,
    /// One line per service (default), team or cost center
    #[arg(long, value_enum, default_value = "service")]
    by: ExportBy,
    /// One line per origin instead: direct cost by provider service, each pool and method,
    /// unallocated
    #[arg(long)]
    detail: bool,
    /// Only the reconciliation: billed total, allocated total and their difference per currency
    #[arg(long, conflicts_with = "detail")]
    summary: bool,
    #[arg(long, value_enum, default_value = "csv")]
    format: ExportFormat,
    /// Write here (atomically: a file is whole or not there) instead of standard output
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportBy {
    Service,
    Team,
    #[value(name = "cost_center", alias = "cost-center")]
    CostCenter,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ExportFormat {
    /// The chargeback statement (README: "Chargeback statements")
    Csv,
    /// The allocated month as a FOCUS 1.3 cost and usage dataset (CSV) with split shared
    /// charges; needs the rules the month was allocated with
    Focus,
}

pub async fn run(config: &Config, args: ExportArgs) -> anyhow::Result<i32> {
    let text = match args.format {
        ExportFormat::Csv => statement(config, &args).await?,
        ExportFormat::Focus => {
            anyhow::ensure!(
                !args.detail && !args.summary && matches!(args.by, ExportBy::Service),
                "--format focus writes every charge; --detail, --summary and --by are for the statement"
            );
            let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
            jobs::with_store(&config.store_url, async |store| {
                reports::focus_export(store, &rules, &args.month).await
            })
            .await?
        }
    };
    write_out(&text, args.out.as_deref())?;
    if let Some(out) = &args.out {
        eprintln!("wrote {} ({} bytes)", out.display(), text.len());
    }
    Ok(0)
}

/// The statement's CSV (or its summary).
async fn statement(config: &Config, args: &ExportArgs) -> anyhow::Result<String> {
    let by = match args.by {
        ExportBy::Service => GroupBy::Service,
        ExportBy::Team => GroupBy::Team,
        ExportBy::CostCenter => GroupBy::CostCenter,
    };
    // The summary lists the rules' budgets (when the rules load; the statement needs only the
    // store).
    let rules = match args.summary {
        true => jobs::load_rules(&config.rules_dir, config.catalog.as_ref()).ok(),
        false => None,
    };
    let (statement, budgets) = jobs::with_store(&config.store_url, async |store| {
        let statement = reports::statement(
            store,
            &args.month,
            by,
            args.detail,
            Some(config.cost_basis),
            config.restatement().1,
        )
        .await?;
        let budgets = match &rules {
            Some(rules) => jobs::budget_statuses(store, rules, &args.month, None).await?,
            None => Vec::new(),
        };
        Ok((statement, budgets))
    })
    .await?;
    anyhow::ensure!(
        statement.reconciled(),
        "internal error: the statement's amounts do not add up to the billed total; nothing was written, please report this"
    );
    Ok(match args.summary {
        true => statement.summary_csv_with_budgets(&budgets),
        false => statement.csv(),
    })
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
