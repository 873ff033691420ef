//! `costsplit import FILE... [--allocate]`

use std::path::PathBuf;

use clap::Args;

use crate::config::Config;
use crate::jobs::{self, Clock};

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Billing files or folders; with --facts also S3 folders (`s3://bucket/prefix/`, read
    /// with the standard AWS credential chain, AWS_REGION and AWS_ENDPOINT_URL)
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
    let (s3, mut files): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .partition(|f| f.to_string_lossy().starts_with("s3://"));
    anyhow::ensure!(
        s3.is_empty() || facts,
        "{}: S3 folders are read with --facts (an engine's daily facts); an export's parts are pulled by [[exports]] and `costsplit sync exports`",
        s3[0].display()
    );
    if facts {
        jobs::check_facts_files(&files)?;
    }
    // Kept until the import ends: the downloaded facts.
    let downloaded = tempfile::tempdir()?;
    if !s3.is_empty() {
        let uris: Vec<String> = s3
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        files.extend(jobs::fetch_s3_facts(&uris, downloaded.path()).await?);
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
