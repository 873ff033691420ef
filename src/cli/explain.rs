//! `costsplit explain --service S --month M`

use clap::Args;

use crate::config::Config;
use crate::jobs::{self, reports};

#[derive(Debug, Args)]
pub struct ExplainArgs {
    #[arg(long)]
    service: String,
    #[arg(long, value_name = "YYYY-MM")]
    month: String,
}

pub async fn run(config: &Config, args: ExplainArgs) -> anyhow::Result<i32> {
    // The rules (if they load) name the service's aliases; explaining needs only the store.
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref()).ok();
    let explanations = jobs::with_store(&config.store_url, async |store| {
        reports::explain(store, rules.as_ref(), &args.service, &args.month).await
    })
    .await?;
    for e in explanations {
        print!("{}", e.text());
    }
    Ok(0)
}
