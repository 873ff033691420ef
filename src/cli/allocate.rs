//! `costsplit allocate --month M | --from D --to D [--dry-run]`

use clap::Args;

use super::args::RangeArgs;
use crate::config::Config;
use crate::jobs::{self, reports, Clock};

#[derive(Debug, Args)]
pub struct AllocateArgs {
    #[command(flatten)]
    range: RangeArgs,
    /// Compute with the rules (e.g. a candidate `--rules DIR`) and print the per-service
    /// difference against what is stored; stores nothing
    #[arg(long)]
    dry_run: bool,
}

pub async fn run(config: &Config, args: AllocateArgs) -> anyhow::Result<i32> {
    let range = args.range.resolve()?;
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    if args.dry_run {
        let diff = jobs::with_store(&config.store_url, async |store| {
            reports::dry_run(store, &rules, config.cost_basis, range).await
        })
        .await?;
        print!("{}", diff.table());
        return Ok(0);
    }
    let summary = jobs::with_store(&config.store_url, async |store| {
        jobs::allocate_range(store, &rules, config.cost_basis, range, Clock::System).await
    })
    .await?;
    println!(
        "allocated {} to {}: {} facts into {} allocations ({} with a fallback); allocated {} == billed {} ({} basis, rules {})",
        range.0, range.1, summary.facts, summary.allocations, summary.fallback_rows,
        summary.allocated.exact_text(), summary.billed.exact_text(), config.cost_basis, rules.hash
    );
    Ok(0)
}
