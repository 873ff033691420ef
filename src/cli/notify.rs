//! `costsplit notify`: deliver the outbox to Slack.

use crate::config::Config;
use crate::jobs::{self, Clock, Shutdown};

pub async fn run(config: &Config) -> anyhow::Result<i32> {
    let rules = jobs::load_rules(&config.rules_dir, config.catalog.as_ref())?;
    let settings = jobs::slack_settings(&rules, &config.slack)?;
    // Ctrl-C during a Retry-After wait leaves the alert pending and stops cleanly.
    let (trigger, shutdown) = Shutdown::channel();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            trigger.trigger();
        }
    });
    let summary = jobs::with_store(&config.store_url, async |store| {
        jobs::deliver_alerts(store, &settings, Clock::System, &shutdown).await
    })
    .await?;
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
