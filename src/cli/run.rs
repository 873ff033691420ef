//! `costsplit run`: the daemon, until SIGTERM or SIGINT.

use crate::config::Config;
use crate::jobs::Shutdown;

pub async fn run(config: Config) -> anyhow::Result<i32> {
    let (trigger, shutdown) = Shutdown::channel();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop signal received; stopping");
        trigger.trigger();
    });
    crate::daemon::run(config, shutdown).await?;
    Ok(0)
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
