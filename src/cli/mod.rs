//! Command-line interface, one file per command (as cargo lays out `commands/`): each parses
//! its arguments, calls a job and prints what it returns. Returns an exit code; never panics
//! on user input. This file holds the command list, the global flags and the argument types
//! several commands share.

mod alerts;
mod allocate;
mod args;
mod catalog;
mod demo;
mod engine;
mod explain;
mod export;
mod forecast;
mod generate;
mod import;
mod migrate;
mod notify;
mod report;
mod rules;
mod run;
mod sync;
mod units;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Overrides};
use crate::model::CostBasis;
use args::basis_arg;

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
    #[arg(long, global = true, value_name = "BASIS", value_parser = basis_arg)]
    pub basis: Option<CostBasis>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate a month of billing data, import it into a fresh SQLite store, allocate it
    /// with the rules and print the per-service table with the reconciliation line
    Demo(demo::DemoArgs),
    /// Import billing files: FOCUS 1.0-1.3 (.csv, .csv.gz, .parquet), AWS CUR 2.0 (.parquet,
    /// .csv, .csv.gz) or legacy CUR (.csv, .csv.gz); a FILE may be an export folder or an AWS
    /// export manifest. All of them are one batch: it replaces the billing periods they hold
    Import(import::ImportArgs),
    /// Validate split rules
    Rules(rules::RulesArgs),
    /// Service ownership from the service catalog ([catalog] in costsplit.toml)
    Catalog(catalog::CatalogArgs),
    /// Allocate stored facts with the rules and store the result (replaces that range)
    Allocate(allocate::AllocateArgs),
    /// Per-service totals from the store; `report slack` sends the per-team digests
    Report(report::ReportArgs),
    /// Finance's monthly chargeback statement (CSV, see the README's column contract) or the
    /// allocated month as FOCUS 1.3
    Export(export::ExportArgs),
    /// Where every dollar of one service's month came from: direct cost by provider service,
    /// each pool with its total, method, basis and daily ratio
    Explain(explain::ExplainArgs),
    /// Cost spike and month-over-month alerts (and budget alerts: `alerts check` evaluates
    /// the [[budget]] tables too)
    Alerts(alerts::AlertsArgs),
    /// Budgets: each one's month to date, month-end forecast (80% interval) and thresholds
    Forecast(forecast::ForecastArgs),
    /// Cost per unit ([[unit]]): a month against the one before, day by day
    Units(units::UnitsArgs),
    /// Deliver pending alerts to Slack, in order (webhooks and tokens from the environment)
    Notify,
    /// Fetch billing from a provider API into the store (Cost Explorer; see [aws] in
    /// costsplit.toml)
    Sync(sync::SyncArgs),
    /// Run as a daemon: the jobs on their schedules ([daemon] in costsplit.toml), /healthz,
    /// /readyz and /metrics, until SIGTERM or SIGINT
    Run,
    /// Serve the web page (/) and the read-only API (/api/v1/costs, Cost Insights' routes,
    /// OpenCost's /allocation/compute) over the store, without running jobs, until SIGTERM or
    /// SIGINT
    Serve,
    /// Apply database migrations (also done at every start)
    Migrate,
    /// Write a seeded synthetic month of FOCUS line items (for tests and benchmarks)
    Generate(generate::GenerateArgs),
    /// Line items to daily facts by the engine where the export lives: the SQL for Spark or
    /// Athena (`engine sql`), or run on a Spark cluster (`engine run`); docs/facts.md
    Engine(engine::EngineArgs),
}

/// Runs a parsed command line. Returns the process exit code.
pub async fn run(cli: Cli) -> anyhow::Result<i32> {
    let overrides = Overrides {
        config_file: cli.global.config.clone(),
        store_url: cli.global.store.clone(),
        rules_dir: cli.global.rules.clone(),
        cost_basis: cli.global.basis,
    };
    let config = Config::load(&overrides, &|k| std::env::var(k).ok())?;
    match cli.command {
        Command::Demo(args) => demo::run(&config, args).await,
        Command::Import(args) => import::run(&config, args).await,
        Command::Rules(args) => rules::run(&config, args),
        Command::Catalog(args) => catalog::run(&config, args).await,
        Command::Allocate(args) => allocate::run(&config, args).await,
        Command::Report(args) => report::run(&config, args).await,
        Command::Export(args) => export::run(&config, args).await,
        Command::Explain(args) => explain::run(&config, args).await,
        Command::Alerts(args) => alerts::run(&config, args).await,
        Command::Forecast(args) => forecast::run(&config, args).await,
        Command::Units(args) => units::run(&config, args).await,
        Command::Notify => notify::run(&config).await,
        Command::Sync(args) => sync::run(&config, args).await,
        Command::Run => run::run(config).await,
        Command::Serve => run::serve(config).await,
        Command::Migrate => migrate::run(&config).await,
        Command::Generate(args) => generate::run(&args),
        Command::Engine(args) => engine::run(args),
    }
}
