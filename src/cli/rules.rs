//! `costsplit rules check [DIR]` and `costsplit rules test [DIR]`

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use crate::config::Config;
use crate::jobs::{self, reports};

#[derive(Debug, Args)]
pub struct RulesArgs {
    #[command(subcommand)]
    command: RulesCommand,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
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

pub fn run(config: &Config, args: RulesArgs) -> anyhow::Result<i32> {
    match args.command {
        RulesCommand::Check { dir } => {
            Ok(check(dir.as_deref().unwrap_or(&config.rules_dir), config))
        }
        RulesCommand::Test { dir } => test(dir.as_deref().unwrap_or(&config.rules_dir), config),
    }
}

/// Checks the rules, and what costsplit.toml says of them: where each team's messages go and
/// when each daemon job runs.
fn check(dir: &Path, config: &Config) -> i32 {
    let checked = jobs::check_rules(dir, config.catalog.as_ref(), &config.slack);
    for d in &checked.loaded.diagnostics {
        println!("{d}");
    }
    for p in &checked.route_errors {
        println!("costsplit.toml: error: {p}");
    }
    let mut errors = checked.loaded.errors().count() + checked.route_errors.len();
    let warnings = checked.loaded.diagnostics.len() - checked.loaded.errors().count();
    match crate::daemon::describe_schedule(&config.daemon, chrono::Utc::now()) {
        Ok(lines) => {
            for line in lines {
                println!("schedule: {line}");
            }
        }
        Err(e) => {
            println!("costsplit.toml: error: {e}");
            errors += 1;
        }
    }
    match &checked.loaded.rules {
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

fn test(dir: &Path, config: &Config) -> anyhow::Result<i32> {
    let rules = jobs::load_rules(dir, config.catalog.as_ref())?;
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
