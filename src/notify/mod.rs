//! Delivery of the alert outbox to Slack. Alerts go out in the order they were detected;
//! retriable failures back off (honouring `Retry-After`) and, if Slack stays down, the run
//! stops with the alerts still pending for the next run; permanent failures are recorded and
//! not retried. Secrets come from the environment or files and are never logged or stored.

pub mod digest;
pub mod routes;
pub mod slack;

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};
use tracing::{info, warn};

use crate::alert::Alert;
use crate::store::{AttemptOutcome, Store};
use slack::{SendError, Target};

/// A secret string (webhook URL, token). Its `Debug` shows `***`; it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Where and how to deliver.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    /// Slack Web API base, `https://slack.com/api` unless pointed elsewhere.
    pub api_url: String,
    pub default_webhook: Option<Secret>,
    /// Team name -> webhook.
    pub team_webhooks: HashMap<String, Secret>,
    /// Team name -> where its webhook is read from (for messages; never the secret).
    pub team_destinations: HashMap<String, String>,
    pub bot_token: Option<Secret>,
    pub dashboard_url: Option<String>,
    /// Tries per alert in one run before the run stops and leaves it pending.
    pub max_attempts: u32,
    /// How long a claim on an alert lasts unless renewed; the deliverer renews it before
    /// each try and during each wait, so only a dead deliverer's claim runs out.
    pub claim_lease: Duration,
    pub base_backoff: Duration,
    pub max_backoff: Duration,
}

impl SlackSettings {
    /// Reads `COSTSPLIT_SLACK_WEBHOOK_URL`, each team's webhook where [`routes`] says
    /// (a route's variable or file, else `COSTSPLIT_SLACK_WEBHOOK_URL_<TEAM>`),
    /// `COSTSPLIT_SLACK_BOT_TOKEN` (variables also as `..._FILE`, a path to read it from) and
    /// `COSTSPLIT_SLACK_API_URL`. Refuses team names that would share a webhook by accident.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        teams: &[String],
        slack: &routes::SlackConfig,
        dashboard_url: Option<String>,
    ) -> anyhow::Result<SlackSettings> {
        let secret = |name: &str| -> anyhow::Result<Option<Secret>> {
            if let Some(value) = env(name).filter(|v| !v.trim().is_empty()) {
                return Ok(Some(Secret::new(value.trim())));
            }
            match env(&format!("{name}_FILE")) {
                Some(path) => {
                    let value = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {name}_FILE ({path})"))?;
                    Ok(Some(Secret::new(value.trim())))
                }
                None => Ok(None),
            }
        };
        let destinations = routes::resolve(teams, slack).map_err(|errors| {
            anyhow::anyhow!(
                "the Slack routes are ambiguous, so nothing is sent until they are fixed: {}",
                errors.join("; ")
            )
        })?;
        let mut team_webhooks = HashMap::new();
        let mut team_destinations = HashMap::new();
        for (team, destination) in destinations {
            let found = match &destination {
                routes::Destination::Env(name) => secret(name)?,
                routes::Destination::File(path) => {
                    let value = std::fs::read_to_string(path).with_context(|| {
                        format!("reading team `{team}`'s webhook_file ({})", path.display())
                    })?;
                    Some(Secret::new(value.trim())).filter(|s| !s.expose().is_empty())
                }
            };
            if let Some(s) = found {
                team_webhooks.insert(team.clone(), s);
            }
            team_destinations.insert(team, destination.describe());
        }
        Ok(SlackSettings {
            api_url: env("COSTSPLIT_SLACK_API_URL")
                .unwrap_or_else(|| "https://slack.com/api".to_string()),
            default_webhook: secret("COSTSPLIT_SLACK_WEBHOOK_URL")?,
            team_webhooks,
            team_destinations,
            bot_token: secret("COSTSPLIT_SLACK_BOT_TOKEN")?,
            dashboard_url,
            max_attempts: 5,
            claim_lease: CLAIM_LEASE,
            base_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
        })
    }

    /// [`SlackSettings::from_env`] for the teams of `rules`, with their dashboard link.
    pub fn for_rules(
        env: &dyn Fn(&str) -> Option<String>,
        rules: &crate::rules::Rules,
        slack: &routes::SlackConfig,
    ) -> anyhow::Result<SlackSettings> {
        let teams: Vec<String> = rules.services.iter().map(|s| s.team.clone()).collect();
        SlackSettings::from_env(env, &teams, slack, rules.alerts.dashboard_url.clone())
    }

    /// A channel with a bot token, else the team's webhook, else the default webhook.
    fn target<'a>(&'a self, team: &str, channel: &'a str) -> Option<Target<'a>> {
        match (&self.bot_token, channel.is_empty()) {
            (Some(token), false) => Some(Target::Bot { token, channel }),
            _ => self
                .team_webhooks
                .get(team)
                .or(self.default_webhook.as_ref())
                .map(Target::Webhook),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
        let capped = exp.min(self.max_backoff);
        // Full jitter between half and all of the delay.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let jitter = rand_chacha::ChaCha8Rng::seed_from_u64(u64::from(seed) ^ u64::from(attempt))
            .random_range(0.5..=1.0);
        capped.mul_f64(jitter)
    }
}

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

/// The outbox kind of a per-team report message.
pub const REPORT_KIND: &str = "report";

/// How long a deliverer's claim on an alert lasts unless it is renewed: the deliverer renews
/// it before each try and every quarter of a lease while it waits (`Retry-After`, backoff),
/// so a live deliverer keeps it however long Slack makes it wait, and a dead one's claim
/// holds the alerts behind it for two minutes at most.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);

/// Delivers pending alerts in order, claiming each before sending it, so that deliverers
/// running at the same time never send the same alert. `clock` gives the time to record; a
/// wait between tries ends early on `shutdown`, leaving that alert pending (its claim
/// released) for the next run.
pub async fn deliver(
    store: &Store,
    settings: &SlackSettings,
    clock: crate::clock::Clock,
    mut shutdown: crate::clock::Shutdown,
) -> anyhow::Result<DeliverySummary> {
    let now = || clock.now();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .context("building the HTTP client")?;
    let mut summary = DeliverySummary::default();
    let stamp =
        |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let lease = chrono::Duration::from_std(settings.claim_lease).expect("a lease of minutes");
    let renew = |id: i64| {
        let until = stamp(now() + lease);
        async move { store.renew_alert_claim(id, &until).await }
    };
    let mut after = 0;
    'alerts: loop {
        let Some(row) = store
            .claim_next_alert(after, &stamp(now()), &stamp(now() + lease))
            .await?
        else {
            // Nothing left, or another deliverer is sending the next alert: it goes on in
            // order, so this one stops rather than pass it.
            if let Some((id, until)) = store.claimed_after(after, &stamp(now())).await? {
                info!(alert = id, claimed_until = %until, "another deliverer is sending the next alert; leaving the rest to it");
                summary.deferred = Some(format!(
                    "alert {id} is being sent by another process (claimed until {until}); the rest follow it"
                ));
            }
            break;
        };
        after = row.id;
        if !row.next_attempt_at.is_empty() && row.next_attempt_at > stamp(now()) {
            store.release_alert(row.id).await?;
            summary.stopped = Some(format!(
                "alert {} waits until {} before its next try",
                row.id, row.next_attempt_at
            ));
            break;
        }
        // A report is stored as the very message to send; an alert as costsplit's alert.
        let message = if row.kind == REPORT_KIND {
            serde_json::from_str::<serde_json::Value>(&row.payload)
                .with_context(|| format!("report {} in the outbox is unreadable", row.id))?
        } else {
            let alert: Alert = serde_json::from_str(&row.payload)
                .with_context(|| format!("alert {} in the outbox is unreadable", row.id))?;
            slack::message(&alert, settings.dashboard_url.as_deref())
        };
        let Some(target) = settings.target(&row.team, &row.channel) else {
            let reason = format!(
                "no Slack target for team `{}`: set {} or COSTSPLIT_SLACK_WEBHOOK_URL",
                row.team,
                settings
                    .team_destinations
                    .get(&row.team)
                    .cloned()
                    .unwrap_or_else(|| routes::conventional_variable(&row.team))
            );
            store
                .record_alert_attempt(
                    row.id,
                    row.attempts,
                    AttemptOutcome::Retry {
                        reason: &reason,
                        next_attempt_at: "",
                    },
                )
                .await?;
            warn!(alert = row.id, service = %row.service, "{reason}");
            continue;
        };
        let mut attempts = row.attempts;
        let mut tries = 0;
        loop {
            attempts += 1;
            tries += 1;
            renew(row.id).await?;
            match slack::send(&client, &settings.api_url, target, &message).await {
                Ok(()) => {
                    store
                        .record_alert_attempt(
                            row.id,
                            attempts,
                            AttemptOutcome::Sent { at: &stamp(now()) },
                        )
                        .await?;
                    info!(alert = row.id, service = %row.service, kind = %row.kind, "alert delivered");
                    summary.sent += 1;
                    break;
                }
                Err(SendError::Permanent { reason }) => {
                    store
                        .record_alert_attempt(
                            row.id,
                            attempts,
                            AttemptOutcome::Failed { reason: &reason },
                        )
                        .await?;
                    warn!(alert = row.id, service = %row.service, %reason, "alert failed permanently");
                    summary.failed += 1;
                    break;
                }
                Err(SendError::Retry { reason, after }) => {
                    let wait = after
                        .unwrap_or_else(|| settings.backoff(tries))
                        .min(Duration::from_secs(300));
                    if tries >= settings.max_attempts {
                        let next = now() + chrono::Duration::from_std(wait).unwrap_or_default();
                        store
                            .record_alert_attempt(
                                row.id,
                                attempts,
                                AttemptOutcome::Retry {
                                    reason: &reason,
                                    next_attempt_at: &stamp(next),
                                },
                            )
                            .await?;
                        warn!(alert = row.id, %reason, "Slack unavailable; the alert stays pending");
                        summary.stopped = Some(reason);
                        break 'alerts;
                    }
                    warn!(alert = row.id, %reason, wait_ms = wait.as_millis() as u64, "retrying");
                    // Waits in quarters of a lease, renewing the claim after each.
                    let mut left = wait;
                    let mut awake = true;
                    while awake && !left.is_zero() {
                        let step = left.min(settings.claim_lease / 4);
                        awake = shutdown.sleep(step).await;
                        left -= step;
                        if awake {
                            renew(row.id).await?;
                        }
                    }
                    if !awake {
                        store
                            .record_alert_attempt(
                                row.id,
                                attempts,
                                AttemptOutcome::Retry {
                                    reason: &reason,
                                    next_attempt_at: "",
                                },
                            )
                            .await?;
                        summary.stopped = Some(format!("shutting down; {reason}"));
                        break 'alerts;
                    }
                }
            }
        }
    }
    summary.still_pending = store.list_alerts(Some("pending")).await?.len();
    Ok(summary)
}
