//! Importing billing files: read a batch (off the async threads), replace the billing
//! periods it holds; with `--allocate`, allocate the months it touches in memory and store
//! the facts and the allocations in one transaction.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use tracing::info;

use super::allocate::{allocate_facts, per_currency, AllocateSummary, Computed};
use crate::clock::Clock;
use crate::ingest;
use crate::model::{CostBasis, ImportSource, Timestamp};
use crate::money::PerCurrency;
use crate::rules::Rules;
use crate::store::{FactScope, ImportRecord, RunRecord, Store};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub import_id: i64,
    pub line_items: i64,
    pub facts: usize,
    pub periods: Vec<(String, String)>,
    /// Per currency: never one sum across currencies.
    pub effective: PerCurrency,
    pub billed: PerCurrency,
}

/// Refuses, before anything is read or stored, any of `files` (folders expanded) that is not
/// a facts file (`import --facts`).
pub fn check_facts_files(files: &[PathBuf]) -> anyhow::Result<()> {
    for file in ingest::batch::expand(files)? {
        ingest::check_facts_file(&file)?;
    }
    Ok(())
}

/// Downloads the facts files under each S3 folder of `uris` (`import --facts s3://…`) into
/// `dir`, refusing any that is not a facts file by its `s3://` name. Returns the local files.
pub async fn fetch_s3_facts(
    uris: &[String],
    dir: &std::path::Path,
) -> anyhow::Result<Vec<PathBuf>> {
    let client = ingest::s3_exports::env_client().await;
    let mut locals = Vec::new();
    for (i, uri) in uris.iter().enumerate() {
        let folder = dir.join(format!("{i:03}"));
        std::fs::create_dir_all(&folder)
            .with_context(|| format!("a temporary folder for {uri}"))?;
        let files = ingest::s3_exports::download_folder(&client, uri, &folder)
            .await
            .map_err(anyhow::Error::msg)?;
        for (local, object) in files {
            ingest::check_facts_file(&local).map_err(|e| {
                anyhow::anyhow!(e.to_string().replace(&local.display().to_string(), &object))
            })?;
            locals.push(local);
        }
    }
    Ok(locals)
}

/// Reads the files and replaces the billing periods they hold, in one transaction.
pub async fn import_files(
    store: &Store,
    files: &[PathBuf],
    clock: Clock,
) -> anyhow::Result<ImportSummary> {
    let imported = read_batch(files).await?;
    let started = Instant::now();
    crate::memory::set_stage("storing the facts");
    let import_id = store
        .replace_facts(&import_record(&imported, clock.stamp()), &imported.facts)
        .await?;
    info!(
        stage = "store",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    let summary = ImportSummary::of(import_id, &imported, &imported.facts);
    info!(
        line_items = summary.line_items,
        facts = summary.facts,
        effective = %summary.effective.exact_text(),
        "imported"
    );
    Ok(summary)
}

/// Reads one batch of billing files (off the async threads).
async fn read_batch(files: &[PathBuf]) -> anyhow::Result<ingest::Imported> {
    let started = Instant::now();
    crate::memory::set_stage("reading the billing files into daily facts");
    let paths = files.to_vec();
    let imported = tokio::task::spawn_blocking(move || ingest::read_files(&paths))
        .await
        .context("the import task stopped")??;
    info!(
        stage = "read",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    Ok(imported)
}

/// The record of an import of `imported`: it replaces the billing periods the files hold.
fn import_record(imported: &ingest::Imported, created_at: Timestamp) -> ImportRecord {
    ImportRecord {
        created_at,
        source: ImportSource::of_files(imported.schemas.iter().copied()),
        files: imported.files.clone(),
        scope: FactScope::Periods(imported.periods.iter().cloned().collect()),
        line_items: imported.line_items,
    }
}

impl ImportSummary {
    fn of(import_id: i64, imported: &ingest::Imported, facts: &[crate::model::Fact]) -> Self {
        ImportSummary {
            import_id,
            line_items: imported.line_items,
            facts: facts.len(),
            periods: imported.periods.iter().cloned().collect(),
            effective: per_currency(facts, |f| f.effective),
            billed: per_currency(facts, |f| f.billed),
        }
    }
}

/// `import --allocate`: reads the files, allocates the whole months they touch in memory
/// (with whatever other facts the store holds for those months, read back only when there
/// are any) and stores the facts and the allocations in one transaction.
pub async fn import_and_allocate(
    store: &Store,
    files: &[PathBuf],
    rules: &Rules,
    basis: CostBasis,
    clock: Clock,
) -> anyhow::Result<(ImportSummary, AllocateSummary)> {
    use chrono::Datelike;
    let mut imported = read_batch(files).await?;
    let (Some(first), Some(last)) = (
        imported.facts.iter().map(|f| f.day).min(),
        imported.facts.iter().map(|f| f.day).max(),
    ) else {
        anyhow::bail!("the files hold no line items");
    };
    let from = first.with_day(1).expect("day 1 exists");
    let to = last
        .with_day(1)
        .and_then(|d| d.checked_add_months(chrono::Months::new(1)))
        .and_then(|d| d.pred_opt())
        .expect("a month's last day");
    // The months' other facts (another account, another billing period), which stay.
    let started = Instant::now();
    crate::memory::set_stage("loading the months' other stored facts");
    let replaced = &imported.periods;
    let stored = store.fact_periods(from, to).await?;
    let is_replaced = |f: &crate::model::Fact| {
        replaced
            .iter()
            .any(|(p, a)| *p == f.billing_period && *a == f.billing_account)
    };
    let mut others = Vec::new();
    if stored.iter().any(|p| !replaced.contains(p)) {
        others = store.facts(from, to).await?;
        others.retain(|f| !is_replaced(f));
    }
    info!(
        stage = "load other facts",
        facts = others.len(),
        ms = started.elapsed().as_millis() as u64,
        "allocate timing"
    );
    let has_others = !others.is_empty();
    let mut facts = std::mem::take(&mut imported.facts);
    facts.extend(others);
    // The order the store returns facts in, so an allocation in memory is the one a later
    // `allocate` of the stored facts makes.
    crate::store::sort_facts(&mut facts);
    let Computed {
        facts: mut new_facts,
        allocations,
        ..
    } = allocate_facts(store, rules, basis, (from, to), facts).await?;
    let billed = per_currency(&new_facts, |f| f.amount(basis));
    let all_facts = new_facts.len();
    if has_others {
        new_facts.retain(is_replaced);
    }
    let created_at = clock.stamp();
    let record = import_record(&imported, created_at);
    let run = RunRecord {
        created_at,
        from,
        to,
        rules_hash: rules.hash.clone(),
        basis,
        facts: all_facts as i64,
        billed: billed.checksum(),
        facts_mark: None,
    };
    let started = Instant::now();
    crate::memory::set_stage("storing the facts and allocations");
    let (import_id, run_id) = store
        .replace_facts_and_allocations(&record, &new_facts, &run, &allocations)
        .await?;
    info!(
        stage = "store facts and allocations",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    let import = ImportSummary::of(import_id, &imported, &new_facts);
    info!(run_id, facts = all_facts, allocations = allocations.len(), billed = %billed.exact_text(), "imported and allocated");
    let allocate = AllocateSummary::of(run_id, all_facts, &allocations, billed);
    Ok((import, allocate))
}
