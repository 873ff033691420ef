//! Slack: where each message goes ([`SlackSettings`], [`routes`]), how an alert or a digest
//! looks ([`slack`], [`digest`]) and how one message is sent and its answer classified. The
//! delivery loop over the outbox is a job (`jobs::deliver`). Secrets come from the
//! environment or files, live in [`Secret`] and are never logged or stored.

pub mod digest;
pub mod routes;
mod secret;
pub mod slack;

pub use secret::Secret;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use rand::{Rng, SeedableRng};

use slack::Target;

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
    /// Alerts carry "Expected" and "Planned" buttons: the daemon verifies their clicks with
    /// the app's signing secret (`COSTSPLIT_SLACK_SIGNING_SECRET`), so they are shown only
    /// when one is set.
    pub feedback_buttons: bool,
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
        let secret = |name: &str| Secret::from_env(env, name);
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
            feedback_buttons: secret("COSTSPLIT_SLACK_SIGNING_SECRET")?.is_some(),
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
    pub fn target<'a>(&'a self, team: &str, channel: Option<&'a str>) -> Option<Target<'a>> {
        match (&self.bot_token, channel) {
            (Some(token), Some(channel)) => Some(Target::Bot { token, channel }),
            _ => self
                .team_webhooks
                .get(team)
                .or(self.default_webhook.as_ref())
                .map(Target::Webhook),
        }
    }

    /// How long to wait before try `attempt + 1`: exponential, capped, with jitter.
    pub fn backoff(&self, attempt: u32) -> Duration {
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

/// How long a deliverer's claim on an alert lasts unless it is renewed: the deliverer renews
/// it before each try and every quarter of a lease while it waits (`Retry-After`, backoff),
/// so a live deliverer keeps it however long Slack makes it wait, and a dead one's claim
/// holds the alerts behind it for two minutes at most.
pub const CLAIM_LEASE: Duration = Duration::from_secs(120);
