//! `costsplit run` (the daemon) and `costsplit serve` (the API alone), until SIGTERM or SIGINT.

use crate::config::Config;
use crate::jobs::Shutdown;

pub async fn run(config: Config) -> anyhow::Result<i32> {
    crate::daemon::run(config, stop_on_signal()).await?;
    Ok(0)
}

/// `costsplit serve`: the read-only API over the store, until SIGTERM or SIGINT.
pub async fn serve(config: Config) -> anyhow::Result<i32> {
    crate::daemon::serve(config, stop_on_signal()).await?;
    Ok(0)
}

fn stop_on_signal() -> Shutdown {
    let (trigger, shutdown) = Shutdown::channel();
    tokio::spawn(async move {
        wait_for_stop_signal().await;
        tracing::info!("stop signal received; stopping");
        trigger.trigger();
    });
    shutdown
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
