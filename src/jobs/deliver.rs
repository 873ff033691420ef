//! Delivering the outbox: alerts and reports go out in the order they were queued, each
//! claimed before it is sent so that deliverers running at the same time never send the same
//! one; retriable failures back off (honouring `Retry-After`) and, if Slack stays down, the
//! run stops with the rest still pending for the next run; permanent failures are recorded
//! and not retried. `notify` renders and sends one message; this job decides what to send
//! when, and records what happened.

use std::time::Duration;

use anyhow::Context;
use tracing::{info, warn};

use crate::alert::Alert;
use crate::clock::{Clock, Shutdown};
use crate::model::{MessageKind, MessageState, Timestamp};
use crate::notify::slack::{self, SendError, Target};
use crate::notify::{routes, SlackSettings};
use crate::store::{AttemptOutcome, OutboxRow, Store};

/// What a delivery run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySummary {
    pub sent: usize,
    pub failed: usize,
    pub still_pending: usize,
    /// Why the run stopped early (Slack unavailable), if it did.
    pub stopped: Option<String>,
    /// Another deliverer holds the next alert (a live claim, or a dead process's until its
    /// lease ends): not a failure, the alerts wait in order.
    pub deferred: Option<String>,
}

/// Delivers pending alerts and reports in order. `clock` gives the time recorded; a wait
/// between tries ends early on `shutdown`, leaving that message pending (its claim released)
/// for the next run.
pub async fn deliver_alerts(
    store: &Store,
    settings: &SlackSettings,
    clock: Clock,
    shutdown: &Shutdown,
) -> anyhow::Result<DeliverySummary> {
    let delivery = Delivery {
        store,
        settings,
        clock,
        shutdown: shutdown.clone(),
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(15))
            .build()
            .context("building the HTTP client")?,
        lease: chrono::Duration::from_std(settings.claim_lease).expect("a lease of minutes"),
    };
    let mut summary = DeliverySummary::default();
    let mut after = 0;
    loop {
        let Some(row) = delivery.claim_after(after, &mut summary).await? else {
            break;
        };
        after = row.id;
        if let Some(at) = row.next_attempt_at.filter(|at| *at > clock.stamp()) {
            store.release_alert(row.id).await?;
            summary.stopped = Some(format!(
                "alert {} waits until {at} before its next try",
                row.id
            ));
            break;
        }
        let message = render(&row, settings)?;
        let Some(target) = settings.target(&row.team, row.channel.as_deref()) else {
            delivery.no_target(&row).await?;
            continue;
        };
        match delivery.send(&row, target, &message).await? {
            Outcome::Delivered => summary.sent += 1,
            Outcome::Refused => summary.failed += 1,
            Outcome::Stop(reason) => {
                summary.stopped = Some(reason);
                break;
            }
        }
    }
    summary.still_pending = store.list_alerts(Some(MessageState::Pending)).await?.len();
    Ok(summary)
}

/// The message to send for an outbox row: a report is stored as the very message, an alert
/// as costsplit's alert, rendered now.
fn render(row: &OutboxRow, settings: &SlackSettings) -> anyhow::Result<serde_json::Value> {
    Ok(match row.kind {
        MessageKind::Report => serde_json::from_str(&row.payload)
            .with_context(|| format!("report {} in the outbox is unreadable", row.id))?,
        MessageKind::Budget => {
            let alert: crate::forecast::budget::BudgetAlert = serde_json::from_str(&row.payload)
                .with_context(|| format!("budget alert {} in the outbox is unreadable", row.id))?;
            slack::budget_message(&alert, settings.dashboard_url.as_deref())
        }
        MessageKind::Alert(_) => {
            let alert: Alert = serde_json::from_str(&row.payload)
                .with_context(|| format!("alert {} in the outbox is unreadable", row.id))?;
            let message = slack::message(&alert, settings.dashboard_url.as_deref());
            if settings.feedback_buttons {
                slack::with_feedback(message, row.id)
            } else {
                message
            }
        }
    })
}

/// How sending one message ended.
enum Outcome {
    Delivered,
    /// Refused for good; recorded, and the run goes on.
    Refused,
    /// Slack stayed unavailable, or the process is stopping: the message stays pending and
    /// the run stops, so the rest keep their order.
    Stop(String),
}

/// One delivery run's means.
struct Delivery<'a> {
    store: &'a Store,
    settings: &'a SlackSettings,
    clock: Clock,
    shutdown: Shutdown,
    client: reqwest::Client,
    lease: chrono::Duration,
}

impl Delivery<'_> {
    fn now(&self) -> Timestamp {
        self.clock.stamp()
    }

    /// Claims the next pending message after id `after`; none when there is none left, or
    /// when another deliverer is sending the next one (it goes on in order, so this run
    /// stops rather than pass it: said in `summary.deferred`).
    async fn claim_after(
        &self,
        after: i64,
        summary: &mut DeliverySummary,
    ) -> anyhow::Result<Option<OutboxRow>> {
        let now = self.now();
        if let Some(row) = self
            .store
            .claim_next_alert(after, now, now + self.lease)
            .await?
        {
            return Ok(Some(row));
        }
        if let Some((id, until)) = self.store.claimed_after(after, now).await? {
            info!(alert = id, claimed_until = %until, "another deliverer is sending the next alert; leaving the rest to it");
            summary.deferred = Some(format!(
                "alert {id} is being sent by another process (claimed until {until}); the rest follow it"
            ));
        }
        Ok(None)
    }

    async fn renew(&self, id: i64) -> anyhow::Result<()> {
        self.store
            .renew_alert_claim(id, self.now() + self.lease)
            .await
    }

    async fn record(
        &self,
        id: i64,
        attempts: i64,
        outcome: AttemptOutcome<'_>,
    ) -> anyhow::Result<()> {
        self.store.record_alert_attempt(id, attempts, outcome).await
    }

    /// No webhook or channel reaches the row's team: it stays pending, with the reason.
    async fn no_target(&self, row: &OutboxRow) -> anyhow::Result<()> {
        let reason = format!(
            "no Slack target for team `{}`: set {} or COSTSPLIT_SLACK_WEBHOOK_URL",
            row.team,
            self.settings
                .team_destinations
                .get(&row.team)
                .cloned()
                .unwrap_or_else(|| routes::conventional_variable(&row.team))
        );
        let outcome = AttemptOutcome::Retry {
            reason: &reason,
            next_attempt_at: None,
        };
        self.record(row.id, row.attempts, outcome).await?;
        warn!(alert = row.id, service = %row.service, "{reason}");
        Ok(())
    }

    /// Sends one message, trying again on retriable failures up to the settings' limit.
    async fn send(
        &self,
        row: &OutboxRow,
        target: Target<'_>,
        message: &serde_json::Value,
    ) -> anyhow::Result<Outcome> {
        let mut attempts = row.attempts;
        for tries in 1.. {
            attempts += 1;
            self.renew(row.id).await?;
            let (reason, after) = match slack::send(
                &self.client,
                &self.settings.api_url,
                target,
                message,
            )
            .await
            {
                Ok(()) => {
                    let outcome = AttemptOutcome::Sent { at: self.now() };
                    self.record(row.id, attempts, outcome).await?;
                    info!(alert = row.id, service = %row.service, kind = %row.kind, "alert delivered");
                    return Ok(Outcome::Delivered);
                }
                Err(SendError::Permanent { reason }) => {
                    let outcome = AttemptOutcome::Failed { reason: &reason };
                    self.record(row.id, attempts, outcome).await?;
                    warn!(alert = row.id, service = %row.service, %reason, "alert failed permanently");
                    return Ok(Outcome::Refused);
                }
                Err(SendError::Retry { reason, after }) => (reason, after),
            };
            let wait = after
                .unwrap_or_else(|| self.settings.backoff(tries))
                .min(Duration::from_secs(300));
            if tries >= self.settings.max_attempts {
                let next = self.now() + chrono::Duration::from_std(wait).unwrap_or_default();
                let outcome = AttemptOutcome::Retry {
                    reason: &reason,
                    next_attempt_at: Some(next),
                };
                self.record(row.id, attempts, outcome).await?;
                warn!(alert = row.id, %reason, "Slack unavailable; the alert stays pending");
                return Ok(Outcome::Stop(reason));
            }
            warn!(alert = row.id, %reason, wait_ms = wait.as_millis() as u64, "retrying");
            if !self.wait_renewing(row.id, wait).await? {
                let outcome = AttemptOutcome::Retry {
                    reason: &reason,
                    next_attempt_at: None,
                };
                self.record(row.id, attempts, outcome).await?;
                return Ok(Outcome::Stop(format!("shutting down; {reason}")));
            }
        }
        unreachable!("the tries end by returning")
    }

    /// Waits `wait` in quarters of a lease, renewing the claim after each. False when the
    /// wait ended on shutdown.
    async fn wait_renewing(&self, id: i64, wait: Duration) -> anyhow::Result<bool> {
        let mut shutdown = self.shutdown.clone();
        let mut left = wait;
        while !left.is_zero() {
            let step = left.min(self.settings.claim_lease / 4);
            if !shutdown.sleep(step).await {
                return Ok(false);
            }
            left -= step;
            self.renew(id).await?;
        }
        Ok(true)
    }
}
