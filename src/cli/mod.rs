//! Command-line interface: parse arguments, load config, call a job, print the result.
//! Returns an exit code; never panics on user input. The reporting commands are in
//! `reports.rs`.

mod reports;

use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::allocate::UsageWeights;
use crate::config::{Config, Overrides};
use crate::demo::generate::{GenSpec, World};
use crate::ingest::cost_explorer::calls_cost;
use crate::jobs::{self, Clock, Shutdown};
use crate::model::{month_bounds, parse_day};
use crate::money::human;
use crate::notify::{self, SlackSettings};
use crate::report::Format;
use crate::rules;
use crate::store::{Store, SyncStatus, UsageStatus};

#[derive(Debug, Parser)]
#[command(
    name = "costsplit",
    version,
    about = "Attribute every dollar of a cloud bill to a service"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Config file (default: ./costsplit.toml if present; env COSTSPLIT_CONFIG)
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Store URL: sqlite://FILE or postgres://... (env COSTSPLIT_STORE_URL)
    #[arg(long, global = true, value_name = "URL")]
    pub store: Option<String>,
    /// Rules directory (env COSTSPLIT_RULES_DIR; default ./rules)
    #[arg(long, global = true, value_name = "DIR")]
    pub rules: Option<PathBuf>,
    /// Cost basis: effective (amortized, default) or billed (env COSTSPLIT_COST_BASIS)
    #[arg(long, global = true, value_name = "BASIS")]
    pub basis: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a month of billing data, import it into a fresh SQLite store, allocate it
    /// with the rules and print the per-service table with the reconciliation line
    Demo(DemoArgs),
    /// Import billing files: FOCUS 1.0-1.3 (.csv, .csv.gz, .parquet), AWS CUR 2.0 (.parquet,
    /// .csv, .csv.gz) or legacy CUR (.csv, .csv.gz); a FILE may be an export folder or an AWS
    /// export manifest. All of them are one batch: it replaces the billing periods they hold
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Also allocate the whole months the files touch, in memory, and store the facts
        /// and the allocations in one transaction (one command instead of import + allocate)
        #[arg(long)]
        allocate: bool,
    },
    /// Validate split rules
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Allocate stored facts with the rules and store the result (replaces that range)
    Allocate(AllocateArgs),
    /// Per-service totals from the store; `report slack` sends the per-team digests
    Report(ReportArgs),
    /// Finance's monthly chargeback statement (CSV, see the README's column contract) or the
    /// allocated month as FOCUS 1.3
    Export(reports::ExportArgs),
    /// Where every dollar of one service's month came from: direct cost by provider service,
    /// each pool with its total, method, basis and daily ratio
    Explain(reports::ExplainArgs),
    /// Cost spike and month-over-month alerts
    Alerts {
        #[command(subcommand)]
        command: AlertsCommand,
    },
    /// Deliver pending alerts to Slack, in order (webhooks and tokens from the environment)
    Notify,
    /// Fetch billing from a provider API into the store (Cost Explorer; see [aws] in
    /// costsplit.toml)
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// Run as a daemon: the jobs on their schedules ([daemon] in costsplit.toml), /healthz,
    /// /readyz and /metrics, until SIGTERM or SIGINT
    Run,
    /// Apply database migrations (also done at every start)
    Migrate,
    /// Write a seeded synthetic month of FOCUS line items (for tests and benchmarks)
    Generate(GenerateArgs),
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Check rules/*.toml and print every error as file:line:col
    Check {
        /// Rules directory (default: the configured rules directory)
        dir: Option<PathBuf>,
    },
    /// Run the [[test]] cases of the rule files: sample facts in, expected shares out
    Test {
        /// Rules directory (default: the configured rules directory)
        dir: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SyncCommand {
    /// Pull daily cost from AWS Cost Explorer for every configured account and replace those
    /// days' facts. Default window: the last `restate_days` complete days, plus the previous
    /// month until its bill is final (`month_final_day`)
    Billing {
        /// First day, YYYY-MM-DD (with --to: sync exactly this window)
        #[arg(long, value_name = "DAY", requires = "to")]
        from: Option<String>,
        /// Last day (inclusive), YYYY-MM-DD
        #[arg(long, value_name = "DAY", requires = "from")]
        to: Option<String>,
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
        #[arg(long, value_name = "DAY")]
        day: Option<String>,
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

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Run the detectors and put new alerts in the outbox
    Check(CheckArgs),
    /// Print what would be sent (summary and Slack Block Kit JSON); writes nothing
    Preview(CheckArgs),
    /// List alerts in the outbox
    List {
        #[arg(long, value_enum)]
        state: Option<AlertState>,
    },
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// The day to check, YYYY-MM-DD (default: the last allocated day)
    #[arg(long, value_name = "DAY")]
    pub date: Option<String>,
    /// Days before it to re-examine for spikes (default: `lookback_days` in [alerts], 3)
    #[arg(long, value_name = "DAYS")]
    pub lookback: Option<u32>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum AlertState {
    Pending,
    Sent,
    Failed,
    Resolved,
}

#[derive(Debug, Args)]
pub struct RangeArgs {
    /// A calendar month, YYYY-MM
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"])]
    pub month: Option<String>,
    /// First day, YYYY-MM-DD
    #[arg(long, value_name = "DAY", requires = "to")]
    pub from: Option<String>,
    /// Last day (inclusive), YYYY-MM-DD
    #[arg(long, value_name = "DAY", requires = "from")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct AllocateArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Compute with the rules (e.g. a candidate `--rules DIR`) and print the per-service
    /// difference against what is stored; stores nothing
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ReportArgs {
    #[command(subcommand)]
    pub command: Option<ReportCommand>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Only this service
    #[arg(long)]
    pub service: Option<String>,
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum ReportCommand {
    /// Per-team cost digests for Slack (through the outbox, sent by `costsplit notify`)
    Slack(reports::SlackReportArgs),
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
    Csv,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Line items to generate
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// Where the demo store goes (replaced on each run)
    #[arg(long, default_value = "costsplit-demo.db")]
    pub db: PathBuf,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Output file: .csv, .csv.gz or .parquet
    #[arg(long)]
    pub out: PathBuf,
    /// Also write the shared resources' weight table (resource_id, service, weight) here
    #[arg(long)]
    pub weights: Option<PathBuf>,
    /// Services the line items are tagged with (default: the standard 60)
    #[arg(long)]
    pub services: Option<usize>,
}

impl RangeArgs {
    pub fn resolve(&self) -> anyhow::Result<(NaiveDate, NaiveDate)> {
        match (&self.month, &self.from, &self.to) {
            (Some(month), _, _) => month_bounds(month).with_context(|| {
                format!("`{month}` is not a month; write it as YYYY-MM, e.g. 2025-03")
            }),
            (None, Some(from), Some(to)) => Ok((day_arg(from)?, day_arg(to)?)),
            _ => anyhow::bail!("say which days: --month YYYY-MM, or --from DAY --to DAY"),
        }
    }
}

/// A `YYYY-MM-DD` command-line argument.
fn day_arg(text: &str) -> anyhow::Result<NaiveDate> {
    parse_day(text).with_context(|| format!("`{text}` is not a day; write it as YYYY-MM-DD"))
}

/// SIGTERM or SIGINT (Ctrl-C), whichever comes first.
async fn wait_for_stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs a parsed command line. Returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let overrides = Overrides {
        config_file: cli.global.config.clone(),
        store_url: cli.global.store.clone(),
        rules_dir: cli.global.rules.clone(),
        cost_basis: cli.global.basis.clone(),
    };
    let config = Config::load(&overrides, &|k| std::env::var(k).ok())?;
    match cli.command {
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => Ok(rules_check(
            dir.as_deref().unwrap_or(&config.rules_dir),
            &config,
        )),
        Command::Rules {
            command: RulesCommand::Test { dir },
        } => reports::rules_test(dir.as_deref().unwrap_or(&config.rules_dir)),
        Command::Export(args) => reports::export(&config, &args).await,
        Command::Explain(args) => reports::explain(&config, &args).await,
        Command::Report(ReportArgs {
            command: Some(ReportCommand::Slack(args)),
            ..
        }) => reports::report_slack(&config, &args).await,
        Command::Allocate(AllocateArgs {
            range,
            dry_run: true,
        }) => reports::dry_run(&config, range.resolve()?).await,
        Command::Generate(args) => {
            generate(&args)?;
            Ok(0)
        }
        Command::Run => {
            let (trigger, shutdown) = Shutdown::channel();
            tokio::spawn(async move {
                wait_for_stop_signal().await;
                tracing::info!("stop signal received; stopping");
                trigger.trigger();
            });
            crate::daemon::run(config, shutdown).await?;
            Ok(0)
        }
        Command::Migrate => {
            let store = Store::connect(&config.store_url).await?;
            store.close().await;
            println!("migrations applied");
            Ok(0)
        }
        Command::Import { files, allocate } => {
            // The rules first: a bad rules file stops the run before the file is read.
            let rules = match allocate {
                true => Some(rules::load_or_error(&config.rules_dir)?),
                false => None,
            };
            let store = Store::connect(&config.store_url).await?;
            let (summary, allocated) = match &rules {
                Some(rules) => {
                    let (summary, allocated) = jobs::import_and_allocate(
                        &store,
                        &files,
                        rules,
                        &UsageWeights::default(),
                        config.cost_basis,
                        Clock::System,
                    )
                    .await?;
                    (summary, Some(allocated))
                }
                None => (
                    jobs::import_files(&store, &files, Clock::System).await?,
                    None,
                ),
            };
            store.close().await;
            let periods: Vec<String> = summary
                .periods
                .iter()
                .map(|(p, a)| format!("{p} (account {a})"))
                .collect();
            println!(
                "imported {} line items as {} daily facts; replaced {}; effective {} billed {}",
                summary.line_items,
                summary.facts,
                periods.join(", "),
                summary.effective.text(),
                summary.billed.text()
            );
            if let (Some(a), Some(rules)) = (allocated, &rules) {
                println!(
                    "allocated {} facts into {} allocations ({} with a fallback); allocated {} == billed {} ({} basis, rules {})",
                    a.facts, a.allocations, a.fallback_rows, a.allocated.exact_text(), a.billed.exact_text(),
                    config.cost_basis, rules.hash
                );
            }
            Ok(0)
        }
        Command::Allocate(AllocateArgs { range, .. }) => {
            let range = range.resolve()?;
            let rules = rules::load_or_error(&config.rules_dir)?;
            let store = Store::connect(&config.store_url).await?;
            let summary = jobs::allocate_range(
                &store,
                &rules,
                &UsageWeights::default(),
                config.cost_basis,
                range,
                Clock::System,
            )
            .await?;
            store.close().await;
            println!(
                "allocated {} to {}: {} facts into {} allocations ({} with a fallback); allocated {} == billed {} ({} basis, rules {})",
                range.0, range.1, summary.facts, summary.allocations, summary.fallback_rows,
                summary.allocated.exact_text(), summary.billed.exact_text(), config.cost_basis, rules.hash
            );
            Ok(0)
        }
        Command::Report(args) => {
            let range = args.range.resolve()?;
            let store = Store::connect(&config.store_url).await?;
            let mut report = jobs::report(&store, range).await?;
            store.close().await;
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
        Command::Sync { command } => sync(&config, command).await,
        Command::Demo(args) => {
            crate::demo::run(
                &config.rules_dir,
                config.cost_basis,
                args.rows,
                args.seed,
                &args.db,
            )
            .await
        }
        Command::Alerts { command } => alerts(&config, command).await,
        Command::Notify => {
            let rules = rules::load_or_error(&config.rules_dir)?;
            let settings =
                SlackSettings::for_rules(&|k| std::env::var(k).ok(), &rules, &config.slack)?;
            let store = Store::connect(&config.store_url).await?;
            // Ctrl-C during a Retry-After wait leaves the alert pending and stops cleanly.
            let (trigger, shutdown) = Shutdown::channel();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    trigger.trigger();
                }
            });
            let summary = jobs::deliver_alerts(&store, &settings, Clock::System, &shutdown).await?;
            store.close().await;
            println!(
                "delivered {} alert(s), {} failed permanently, {} still pending",
                summary.sent, summary.failed, summary.still_pending
            );
            if let Some(why) = &summary.deferred {
                println!("{why}");
            }
            match summary.stopped {
                Some(reason) => {
                    eprintln!("error: delivery stopped: {reason}; the pending alerts go out on the next `costsplit notify`");
                    Ok(1)
                }
                None => Ok(0),
            }
        }
    }
}

async fn sync(config: &Config, command: SyncCommand) -> anyhow::Result<i32> {
    match command {
        SyncCommand::Billing { from, to } => {
            let settings = config.aws.as_ref().context(
                "no [aws] section in the config file; add one with the accounts to sync, e.g.\n\n[aws]\n[[aws.accounts]]\nid = \"123456789012\"",
            )?;
            let window = match (from, to) {
                (Some(from), Some(to)) => Some((day_arg(&from)?, day_arg(&to)?)),
                _ => None,
            };
            let rules = rules::load_or_error(&config.rules_dir)?;
            let service_tag = rules.service_tag();
            let store = Store::connect(&config.store_url).await?;
            let summary =
                jobs::sync_billing(&store, settings, service_tag, window, Clock::System).await;
            store.close().await;
            let summary = summary?;
            for a in &summary.accounts {
                let calls = format!(
                    "{} call(s), {}",
                    a.calls,
                    human(calls_cost(a.calls), "USD", false)
                );
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
                human(calls_cost(summary.calls()), "USD", false)
            );
            Ok(if summary.complete() { 0 } else { 1 })
        }
        SyncCommand::Exports { export } => {
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
            let store = Store::connect(&config.store_url).await?;
            let runs = jobs::sync_exports(&store, &exports, Clock::System).await;
            store.close().await;
            let runs = runs?;
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
        SyncCommand::Usage { day, source } => {
            let rules = rules::load_or_error(&config.rules_dir)?;
            anyhow::ensure!(
                !rules.sources.is_empty(),
                "the rules in {} declare no [[source]]; see rules/README.md for live usage sources",
                config.rules_dir.display()
            );
            let day = match day {
                Some(day) => day_arg(&day)?,
                None => chrono::Utc::now().date_naive(),
            };
            let store = Store::connect(&config.store_url).await?;
            let summary = jobs::sync_usage(
                &store,
                &rules,
                config.aws.as_ref(),
                day,
                source.as_deref(),
                Clock::System,
            )
            .await;
            store.close().await;
            let summary = summary?;
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
        SyncCommand::UsageRuns { limit } => {
            let store = Store::connect(&config.store_url).await?;
            let runs = store.usage_runs(limit).await?;
            store.close().await;
            println!(
                "{:<20}  {:<10}  {:<16}  {:<10}  {:<6}  {:>7}  detail",
                "created", "day", "source", "kind", "status", "samples"
            );
            for r in &runs {
                println!(
                    "{:<20}  {:<10}  {:<16}  {:<10}  {:<6}  {:>7}  {}",
                    r.created_at,
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
        SyncCommand::Runs { limit } => {
            let store = Store::connect(&config.store_url).await?;
            let runs = store.sync_runs(limit).await?;
            store.close().await;
            println!(
                "{:<20}  {:<13}  {:<14}  {:<23}  {:<9}  {:>5}  {:>8}  {:>6}  detail",
                "created", "source", "account", "window", "status", "calls", "cost", "facts"
            );
            for r in &runs {
                println!(
                    "{:<20}  {:<13}  {:<14}  {:<23}  {:<9}  {:>5}  {:>8}  {:>6}  {}",
                    r.created_at,
                    r.source,
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
    }
}

async fn alerts(config: &Config, command: AlertsCommand) -> anyhow::Result<i32> {
    let store = Store::connect(&config.store_url).await?;
    match command {
        AlertsCommand::List { state } => {
            let state = state.map(|s| match s {
                AlertState::Pending => "pending",
                AlertState::Sent => "sent",
                AlertState::Failed => "failed",
                AlertState::Resolved => "resolved",
            });
            let rows = store.list_alerts(state).await?;
            println!(
                "{:>5}  {:<9}  {:<16}  {:<20}  {:<18}  {:>8}  detail",
                "id", "state", "kind", "service", "period", "attempts"
            );
            for r in &rows {
                let detail = if r.last_error.is_empty() {
                    r.summary.clone()
                } else {
                    r.last_error.clone()
                };
                println!(
                    "{:>5}  {:<9}  {:<16}  {:<20}  {:<18}  {:>8}  {detail}",
                    r.id, r.state, r.kind, r.service, r.period, r.attempts
                );
            }
        }
        AlertsCommand::Check(args) => {
            let rules = rules::load_or_error(&config.rules_dir)?;
            let day = args.date.as_deref().map(day_arg).transpose()?;
            let detected = jobs::detect_alerts(&store, &rules, day, args.lookback).await?;
            let result = jobs::enqueue_alerts(&store, &rules, &detected, Clock::System).await?;
            println!(
                "checked {}: {} alert(s) detected, {} new in the outbox, {} already there, {} resolved by restated data",
                detected.day,
                detected.alerts.len(),
                result.inserted,
                result.already_known,
                result.resolved.len()
            );
        }
        AlertsCommand::Preview(args) => {
            let rules = rules::load_or_error(&config.rules_dir)?;
            let day = args.date.as_deref().map(day_arg).transpose()?;
            let detected = jobs::detect_alerts(&store, &rules, day, args.lookback).await?;
            print_preview(
                detected.day,
                &detected.alerts,
                rules.alerts.dashboard_url.as_deref(),
                true,
            );
        }
    }
    store.close().await;
    Ok(0)
}

fn print_preview(
    day: NaiveDate,
    alerts: &[crate::alert::Alert],
    dashboard: Option<&str>,
    with_json: bool,
) {
    println!("alerts for {day}: {}", alerts.len());
    for a in alerts {
        println!("\n- {}", a.summary());
        if with_json {
            let message = notify::slack::message(a, dashboard);
            println!(
                "{}",
                serde_json::to_string_pretty(&message).expect("JSON values always serialise")
            );
        }
    }
}

/// Checks the rules, and what costsplit.toml says of them: where each team's messages go and
/// when each daemon job runs.
fn rules_check(dir: &Path, config: &Config) -> i32 {
    let slack = &config.slack;
    let loaded = rules::load(dir);
    for d in &loaded.diagnostics {
        println!("{d}");
    }
    let mut errors = loaded.errors().count();
    let warnings = loaded.diagnostics.len() - errors;
    // Where each team's messages go: names that fold to one webhook are refused here too.
    if let Some(r) = &loaded.rules {
        let teams: Vec<String> = r.services.iter().map(|s| s.team.clone()).collect();
        if let Err(problems) = crate::notify::routes::resolve(&teams, slack) {
            for p in &problems {
                println!("costsplit.toml: error: {p}");
            }
            errors += problems.len();
        }
    }
    match config.daemon.schedule.compile(&config.daemon.timezone) {
        Ok(plan) => {
            for line in plan.describe(&config.daemon.schedule, chrono::Utc::now()) {
                println!("schedule: {line}");
            }
        }
        Err(e) => {
            println!("costsplit.toml: error: {e}");
            errors += 1;
        }
    }
    match &loaded.rules {
        Some(r) if errors == 0 => {
            println!(
                "{}: ok: {} services, {} pools, {} warning(s), rules hash {}",
                dir.display(),
                r.services.len(),
                r.pools.len(),
                warnings,
                r.hash
            );
            0
        }
        _ => {
            eprintln!(
                "{}: {errors} error(s), {warnings} warning(s)",
                dir.display()
            );
            1
        }
    }
}

fn generate(args: &GenerateArgs) -> anyhow::Result<()> {
    let mut spec = GenSpec::standard(args.rows, args.seed);
    if let Some(n) = args.services {
        anyhow::ensure!(n > 0, "--services must be at least 1");
        let base = spec.services.clone();
        spec.services = (0..n)
            .map(|i| match i / base.len() {
                0 => base[i].clone(),
                round => format!("{}-{round}", base[i % base.len()]),
            })
            .collect();
    }
    let world = World::new(spec);
    write_world(&world, &args.out)?;
    if let Some(weights) = &args.weights {
        world.write_weights(weights)?;
    }
    eprintln!("wrote {} line items to {}", args.rows, args.out.display());
    Ok(())
}

fn write_world(world: &World, out: &Path) -> anyhow::Result<()> {
    let name = out.to_string_lossy();
    if name.ends_with(".parquet") {
        world.write_parquet(out)
    } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        world.write_csv(out)
    } else {
        anyhow::bail!("--out must end in .csv, .csv.gz or .parquet")
    }
    .with_context(|| format!("writing {}", out.display()))
}
