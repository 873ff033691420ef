//! `costsplit migrate`

use crate::config::Config;
use crate::jobs;

pub async fn run(config: &Config) -> anyhow::Result<i32> {
    // Opening the store applies the migrations.
    jobs::with_store(&config.store_url, async |_| Ok(())).await?;
    println!("migrations applied");
    Ok(0)
}
