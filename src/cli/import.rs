//! `costsplit import FILE... [--allocate]`

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::jobs::{self, Clock};

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Also allocate the whole months the files touch, in memory, and store the facts
    /// and the allocations in one transaction (one command instead of import + allocate)
    #[arg(long)]
    allocate: bool,
    /// The files are daily facts an engine wrote (`costsplit engine run`, Athena's UNLOAD;
    /// docs/facts.md): refuse any that is not
    #[arg(long)]
    facts: bool,
}

pub async fn run(config: &Config, args: ImportArgs) -> anyhow::Result<i32> {
    let ImportArgs {
        files,
        allocate,
        facts,
    } = args;
    if facts {
        jobs::check_facts_files(&files)?;
    }
    // The rules first: a bad rules file stops the run before the file is read.
    let rules = match allocate {
        true => Some(jobs::load_rules(
            &config.rules_dir,
            config.catalog.as_ref(),
        )?),
        false => None,
    };
    let (summary, allocated) = jobs::with_store(&config.store_url, async |store| {
        Ok(match &rules {
            Some(rules) => {
                let (summary, allocated) = jobs::import_and_allocate(
                    store,
                    &files,
                    rules,
                    config.cost_basis,
                    Clock::System,
                )
                .await?;
                (summary, Some(allocated))
            }
            None => (
                jobs::import_files(store, &files, Clock::System).await?,
                None,
            ),
        })
    })
    .await?;
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
