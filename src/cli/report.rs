//! `costsplit report` (per-service totals with the reconciliation line) and `costsplit report
//! slack` (the per-team digests, through the outbox).

use chrono::NaiveDate;
use clap::{Args, Subcommand, ValueEnum};

use super::args::{day_arg, RangeArgs};
use crate::config::Config;
use crate::jobs::{self, reports, Clock};
use crate::report::digest::Period;
use crate::report::Format;

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    command: Option<ReportCommand>,
    #[command(flatten)]
    range: RangeArgs,
    /// Only this service
    #[arg(long)]
    service: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    format: OutputFormat,
}

#[derive(Debug, Subcommand)]
enum ReportCommand {
    /// Per-team cost digests for Slack (through the outbox, sent by `costsplit notify`)
    Slack(SlackReportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
struct SlackReportArgs {
    /// The last complete week (Monday to Sunday) or calendar month
    #[arg(long, value_enum)]
    period: PeriodArg,
    /// Only this team
    #[arg(long)]
    team: Option<String>,
    /// Print the messages instead of putting them in the outbox
    #[arg(long)]
    dry_run: bool,
    /// Report as if today were this day, YYYY-MM-DD (default: today, UTC)
    #[arg(long, value_name = "DAY", value_parser = day_arg)]
    today: Option<NaiveDate>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum PeriodArg {
    Week,
    Month,
}

pub async fn run(config: &Config, args: ReportArgs) -> anyhow::Result<i32> {
    if let Some(ReportCommand::Slack(slack)) = args.command {
        return run_slack(config, slack).await;
    }
    let range = args.range.resolve()?;
    // The report needs only the store; rules that load add their budgets.
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref()).ok();
    let mut report = jobs::with_store(&config.store_url, async |store| {
        jobs::report(store, range, rules.as_ref()).await
    })
    .await?;
    if let Some(service) = &args.service {
        anyhow::ensure!(
            report.services.iter().any(|s| &s.service == service),
            "no cost for service `{service}` between {} and {}",
            range.0,
            range.1
        );
        report = report.only_service(service);
    }
    let format = match args.format {
        OutputFormat::Table => Format::Table,
        OutputFormat::Json => Format::Json,
        OutputFormat::Csv => Format::Csv,
    };
    print!("{}", report.render(format, args.service.is_some()));
    if report.reconciled() {
        return Ok(0);
    }
    // Whatever the format, say on stderr why the exit code is 1.
    for line in report.reconciliation_lines() {
        if line.contains(" != ") {
            eprintln!("error: {line}");
        }
    }
    Ok(1)
}

async fn run_slack(config: &Config, args: SlackReportArgs) -> anyhow::Result<i32> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    let today = args
        .today
        .unwrap_or_else(|| chrono::Utc::now().date_naive());
    let period = match args.period {
        PeriodArg::Week => Period::Week,
        PeriodArg::Month => Period::Month,
    };
    let team = args.team.as_deref();
    let (digests, enqueued) = jobs::with_store(&config.store_url, async |store| {
        let digests = reports::team_digests(store, &rules, period, today, team).await?;
        if digests.is_empty() {
            let ((from, to), _) = period.last_complete(today);
            anyhow::bail!(
                "no allocations for the {} {from} to {to}; run `costsplit allocate --from {from} --to {to}` first",
                period.as_str()
            );
        }
        let enqueued = match args.dry_run {
            true => None,
            false => Some(reports::enqueue_digests(store, &rules, &digests, Clock::System).await?),
        };
        Ok((digests, enqueued))
    })
    .await?;
    let Some(result) = enqueued else {
        let rows = reports::digest_rows(&digests, rules.alerts.dashboard_url.as_deref());
        for row in &rows {
            let channel = row
                .channel
                .clone()
                .unwrap_or_else(|| "the team's webhook".to_string());
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
    };
    println!(
        "{} team digest(s): {} message(s) new in the outbox, {} already there; `costsplit notify` sends them",
        digests.len(),
        result.inserted,
        result.already_known
    );
    Ok(0)
}
