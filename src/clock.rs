//! The two things every job is handed besides its inputs: the clock it reads (the system
//! clock in the CLI and the daemon, a fixed instant in tests) and the shutdown signal that
//! every job which waits or sleeps selects on (as mini-redis passes it), so the daemon can
//! stop a job in a bounded time.

use chrono::{DateTime, NaiveDate, Utc};

use crate::model::Timestamp;
use tokio::sync::watch;

/// The one clock type of the jobs. `Copy`: pass it by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    System,
    /// A fixed instant, in seconds since the Unix epoch (tests, replays).
    Fixed(i64),
}

impl Clock {
    pub fn now(self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Fixed(secs) => {
                DateTime::from_timestamp(secs, 0).expect("a fixed clock holds a valid instant")
            }
        }
    }

    /// The time as stored on run records: RFC 3339 to the second, in UTC.
    pub fn stamp(self) -> Timestamp {
        Timestamp::at(self.now())
    }

    /// Today's date in UTC.
    pub fn today(self) -> NaiveDate {
        self.now().date_naive()
    }
}

/// Sets the shutdown signal for every [`Shutdown`] made from it.
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Whether shutdown was asked for, and a future that resolves when it is.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    pub fn channel() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// A signal that never fires (one-off CLI commands).
    pub fn never() -> Shutdown {
        let (trigger, shutdown) = Shutdown::channel();
        // The sender stays alive for the process: `requested` then waits forever.
        std::mem::forget(trigger);
        shutdown
    }

    pub fn is_requested(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once shutdown is asked for.
    pub async fn requested(&mut self) {
        while !*self.0.borrow_and_update() {
            if self.0.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// Sleeps for `duration` unless shutdown comes first. Returns false when it did.
    pub async fn sleep(&mut self, duration: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = self.requested() => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_sleep_ends_early_on_shutdown() {
        let (trigger, mut shutdown) = Shutdown::channel();
        let mut other = shutdown.clone();
        assert!(shutdown.sleep(std::time::Duration::from_millis(10)).await);
        let waiter =
            tokio::spawn(async move { other.sleep(std::time::Duration::from_secs(300)).await });
        tokio::task::yield_now().await;
        trigger.trigger();
        assert!(!waiter.await.expect("joins"));
        assert!(shutdown.is_requested());
        assert_eq!(
            Clock::Fixed(1_767_225_600).stamp().to_string(),
            "2026-01-01T00:00:00Z"
        );
    }
}
