//! `costsplit sync billing | exports | runs | usage | usage-runs`

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Subcommand};

use super::args::day_arg;
use crate::config::Config;
use crate::jobs::{self, Clock, SyncStatus, UsageStatus};
use crate::money::human;

#[derive(Debug, Args)]
pub struct SyncArgs {
    #[command(subcommand)]
    command: SyncCommand,
}

#[derive(Debug, Subcommand)]
enum SyncCommand {
    /// Pull daily cost from AWS Cost Explorer for every configured account and replace those
    /// days' facts. Default window: the last `restate_days` complete days, plus the previous
    /// month until its bill is final (`month_final_day`)
    Billing {
        /// First day, YYYY-MM-DD (with --to: sync exactly this window)
        #[arg(long, value_name = "DAY", requires = "to", value_parser = day_arg)]
        from: Option<NaiveDate>,
        /// Last day (inclusive), YYYY-MM-DD
        #[arg(long, value_name = "DAY", requires = "from", value_parser = day_arg)]
        to: Option<NaiveDate>,
    },
    /// Pull billing exports (CUR 2.0, FOCUS, legacy CUR) from the S3 locations in
    /// `[[exports]]`: every billing period whose manifest or objects changed since it was
    /// imported replaces that period's facts
    Exports {
        /// Only the export with this name
        #[arg(long, value_name = "NAME")]
        export: Option<String>,
    },
    /// List recent sync runs: window, outcome, API calls and their cost
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Measure every live usage source of the rules ([[source]]: PostgreSQL, Redis,
    /// Prometheus, CloudWatch) for one day and store the samples; a failing source fails
    /// alone and keeps its earlier samples
    Usage {
        /// The day measured, YYYY-MM-DD (default: today, UTC)
        #[arg(long, value_name = "DAY", value_parser = day_arg)]
        day: Option<NaiveDate>,
        /// Only the source with this name
        #[arg(long, value_name = "NAME")]
        source: Option<String>,
    },
    /// List recent usage collections: day, source, outcome and notes
    UsageRuns {
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
}

pub async fn run(config: &Config, args: SyncArgs) -> anyhow::Result<i32> {
    match args.command {
        SyncCommand::Billing { from, to } => billing(config, from.zip(to)).await,
        SyncCommand::Exports { export } => exports(config, export).await,
        SyncCommand::Usage { day, source } => usage(config, day, source).await,
        SyncCommand::UsageRuns { limit } => usage_runs(config, limit).await,
        SyncCommand::Runs { limit } => runs(config, limit).await,
    }
}

async fn billing(config: &Config, window: Option<(NaiveDate, NaiveDate)>) -> anyhow::Result<i32> {
    let settings = config.aws.as_ref().context(
        "no [aws] section in the config file; add one with the accounts to sync, e.g.\n\n[aws]\n[[aws.accounts]]\nid = \"123456789012\"",
    )?;
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    let service_tag = rules.service_tag();
    let summary = jobs::with_store(&config.store_url, async |store| {
        jobs::sync_billing(store, settings, service_tag, window, Clock::System).await
    })
    .await?;
    for a in &summary.accounts {
        let calls = format!("{} call(s), {}", a.calls, human(a.cost, "USD", false));
        match a.status {
            SyncStatus::Ok => println!(
                "account {}: {}..{} synced: {} facts, {} estimated day(s); {calls}",
                a.account, a.from, a.to, a.facts, a.estimated_days
            ),
            _ => eprintln!("error: account {}: {}; {calls}", a.account, a.message),
        }
    }
    if !summary.skipped.is_empty() {
        eprintln!(
            "error: not attempted (call cap reached): account(s) {}",
            summary.skipped.join(", ")
        );
    }
    println!(
        "{} Cost Explorer call(s) this run ({})",
        summary.calls(),
        human(summary.cost(), "USD", false)
    );
    Ok(if summary.complete() { 0 } else { 1 })
}

async fn exports(config: &Config, export: Option<String>) -> anyhow::Result<i32> {
    let exports: Vec<_> = config
        .exports
        .iter()
        .filter(|e| export.as_ref().is_none_or(|name| e.name() == *name))
        .cloned()
        .collect();
    if exports.is_empty() {
        anyhow::bail!(match export {
            Some(name) => format!("no [[exports]] entry is named `{name}` in the config file"),
            None => "no [[exports]] entries in the config file; add one per S3 export, e.g.\n\n[[exports]]\nbucket = \"my-billing-bucket\"\nprefix = \"cur/my-export\"\nformat = \"cur2\"".to_string(),
        });
    }
    let runs = jobs::with_store(&config.store_url, async |store| {
        jobs::sync_exports(store, &exports, Clock::System).await
    })
    .await?;
    let mut failed = 0;
    for r in &runs {
        match r.status {
            SyncStatus::Failed => {
                failed += 1;
                eprintln!("error: export {}: {}", r.account, r.message);
            }
            _ => println!(
                "export {}: {} ({} request(s))",
                r.account, r.message, r.calls
            ),
        }
    }
    if runs.is_empty() {
        println!("no billing periods found under the exports' prefixes");
    }
    Ok(if failed == 0 { 0 } else { 1 })
}

async fn usage(
    config: &Config,
    day: Option<NaiveDate>,
    source: Option<String>,
) -> anyhow::Result<i32> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    anyhow::ensure!(
        !rules.sources.is_empty(),
        "the rules in {} declare no [[source]]; see rules/README.md for live usage sources",
        config.rules_dir.display()
    );
    let day = day.unwrap_or_else(|| chrono::Utc::now().date_naive());
    let summary = jobs::with_store(&config.store_url, async |store| {
        jobs::sync_usage(
            store,
            &rules,
            config.aws.as_ref(),
            day,
            source.as_deref(),
            Clock::System,
        )
        .await
    })
    .await?;
    for r in &summary.runs {
        match r.status {
            UsageStatus::Ok => println!(
                "source {} ({}): {} sample(s) for {}{}",
                r.source,
                r.kind,
                r.samples,
                r.day,
                if r.message.is_empty() {
                    String::new()
                } else {
                    format!("; {}", r.message)
                }
            ),
            UsageStatus::Failed => eprintln!(
                "error: source {} ({}): {}; its earlier samples are kept",
                r.source, r.kind, r.message
            ),
        }
    }
    Ok(if summary.failed() == 0 { 0 } else { 1 })
}

async fn usage_runs(config: &Config, limit: i64) -> anyhow::Result<i32> {
    let runs = jobs::with_store(&config.store_url, async |store| {
        jobs::usage_runs(store, limit).await
    })
    .await?;
    println!(
        "{:<20}  {:<10}  {:<16}  {:<10}  {:<6}  {:>7}  detail",
        "created", "day", "source", "kind", "status", "samples"
    );
    for r in &runs {
        println!(
            "{:<20}  {:<10}  {:<16}  {:<10}  {:<6}  {:>7}  {}",
            r.created_at.to_string(),
            r.day,
            r.source,
            r.kind,
            r.status.as_str(),
            r.samples,
            r.message
        );
    }
    Ok(0)
}

async fn runs(config: &Config, limit: i64) -> anyhow::Result<i32> {
    let runs = jobs::with_store(&config.store_url, async |store| {
        jobs::sync_runs(store, limit).await
    })
    .await?;
    println!(
        "{:<20}  {:<13}  {:<14}  {:<23}  {:<9}  {:>5}  {:>8}  {:>6}  detail",
        "created", "source", "account", "window", "status", "calls", "cost", "facts"
    );
    for r in &runs {
        println!(
            "{:<20}  {:<13}  {:<14}  {:<23}  {:<9}  {:>5}  {:>8}  {:>6}  {}",
            r.created_at.to_string(),
            r.source.as_str(),
            r.account,
            format!("{}..{}", r.from, r.to),
            r.status.as_str(),
            r.calls,
            r.cost.format(2),
            r.facts,
            r.message
        );
    }
    Ok(0)
}
