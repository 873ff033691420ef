//! Slack: the only code that knows Slack's JSON. Renders an alert as Block Kit (within
//! Slack's limits) and posts it to an incoming webhook or with `chat.postMessage`, sorting
//! the answer into delivered, retry later, or never retry.

use std::time::Duration;

use serde_json::{json, Value};

use super::secret::Secret;
use crate::alert::{Alert, AlertKind};
use crate::forecast::budget::BudgetAlert;
use crate::money::human;

/// Slack's limits: at most 50 blocks, 3,000 characters per text field, 150 for a header.
const MAX_TEXT: usize = 3000;
const MAX_HEADER: usize = 150;

/// Where a message goes.
#[derive(Debug, Clone, Copy)]
pub enum Target<'a> {
    Webhook(&'a Secret),
    Bot { token: &'a Secret, channel: &'a str },
}

/// Why a message was not delivered. Reasons never contain URLs or tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    /// Try again (after `after` when Slack said so).
    Retry {
        reason: String,
        after: Option<Duration>,
    },
    /// Do not try again; the reason is recorded on the alert.
    Permanent { reason: String },
}

/// `text` cut to `max` characters, the last one `…` when it was cut.
pub(super) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// Text from billing data (service names, tags, provider service names) as mrkdwn shows it
/// literally: Slack's control characters `&`, `<` and `>` escaped, so a tag value cannot
/// mention `<!channel>` or plant a `<https://…|link>` in costsplit's messages.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// `text` as one URL path or query component (RFC 3986 unreserved characters kept).
pub(super) fn url_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Slack message for an alert: a `text` fallback and Block Kit `blocks`. The header is
/// `plain_text` (Slack parses no mentions or links there); every mrkdwn text escapes what
/// came from billing data.
pub fn message(alert: &Alert, dashboard_url: Option<&str>) -> Value {
    let c = alert.currency.as_str();
    let percent = alert
        .change_bp
        .map(|bp| format!(" ({}{}%)", if bp >= 0 { "+" } else { "-" }, bp.abs() / 100))
        .unwrap_or_default();
    let (title, when, against) = match alert.kind {
        AlertKind::Spike => ("Cost spike", "Day", "Expected"),
        AlertKind::Fall => ("Cost fall", "Day", "Expected"),
        AlertKind::Drift => ("Slow drift", "Up to", "Expected without the drift"),
        AlertKind::NewService => ("New service", "Day", "Before"),
        AlertKind::MonthOverMonth => ("Month-over-month", "Period", "Previous month"),
    };
    let header = format!(
        "{title}: {} {}{percent}",
        alert.service,
        human(alert.change(), c, true)
    );
    let field = |name: &str, value: String| json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{value}"), 2000)});
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&header, MAX_HEADER), "emoji": true}}),
        json!({"type": "section", "fields": [
            field("Service", escape(&alert.service)),
            field("Team", if alert.team.is_empty() { "-".to_string() } else { escape(&alert.team) }),
            field(when, escape(&alert.period)),
            field("Cost", human(alert.amount, c, false)),
            field(against, human(alert.baseline, c, false)),
            field("Change", format!("{}{percent}", human(alert.change(), c, true))),
        ]}),
    ];
    if !alert.drivers.is_empty() {
        let lines: Vec<String> = alert
            .drivers
            .iter()
            .map(|(k, v)| format!("• {}: {}", escape(k), human(*v, c, true)))
            .collect();
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": truncate(&format!("*What drove it*\n{}", lines.join("\n")), MAX_TEXT)}}));
    }
    let mut context = vec![json!({"type": "mrkdwn", "text": "costsplit"})];
    if alert.estimated {
        context.push(json!({"type": "mrkdwn", "text": ":warning: includes estimated days: the provider may still revise them"}));
    }
    blocks.push(json!({"type": "context", "elements": context}));
    if let Some(url) = dashboard_url {
        let url = url
            .replace("{service}", &url_component(&alert.service))
            .replace("{team}", &url_component(&alert.team));
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": url}
        ]}));
    }
    blocks.truncate(50);
    json!({"text": truncate(&escape(&alert.summary()), MAX_TEXT), "blocks": blocks})
}

/// A budget alert as a Slack message: which budget, what passed (or will), the month so far
/// and the forecast.
pub fn budget_message(alert: &BudgetAlert, dashboard_url: Option<&str>) -> Value {
    let c = alert.currency.as_str();
    let header = if alert.basis == "actual" {
        format!(
            "Budget {}: {} spent on {}",
            alert.budget, alert.level, alert.passed_on
        )
    } else {
        format!(
            "Budget {}: forecast passes {} on {}",
            alert.budget, alert.level, alert.passed_on
        )
    };
    let field = |name: &str, value: String| json!({"type": "mrkdwn", "text": truncate(&format!("*{name}*\n{value}"), 2000)});
    let forecast = match alert.forecast {
        Some((point, low, high)) => format!(
            "{} (80%: {} to {})",
            human(point, c, false),
            human(low, c, false),
            human(high, c, false)
        ),
        None => "not enough history yet".to_string(),
    };
    let blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&header, MAX_HEADER), "emoji": true}}),
        json!({"type": "section", "fields": [
            field("Budget", format!("{} ({})", escape(&alert.budget), escape(&alert.scope))),
            field("Month", escape(&alert.month)),
            field("Budget amount", human(alert.budget_amount, c, false)),
            field("Threshold", format!("{} = {}", escape(&alert.threshold), human(alert.threshold_amount, c, false))),
            field("Month to date", format!("{} (to {})", human(alert.to_date, c, false), alert.as_of)),
            field("Month-end forecast", forecast),
        ]}),
        json!({"type": "context", "elements": [{"type": "mrkdwn", "text": "costsplit budgets: allocated cost, shares of shared pools included"}]}),
    ];
    let mut blocks = blocks;
    if let Some(url) = dashboard_url {
        let url = url
            .replace("{service}", "")
            .replace("{team}", &url_component(&alert.team));
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": url}
        ]}));
    }
    json!({"text": truncate(&escape(&alert.summary()), MAX_TEXT), "blocks": blocks})
}

/// The action ids of the feedback buttons, and the mark each stores.
pub const FEEDBACK_ACTIONS: [(&str, &str); 2] = [
    ("costsplit_mark_expected", "expected"),
    ("costsplit_mark_planned", "planned"),
];

/// `message` with the buttons that mark its anomaly "expected" or "planned" (the outbox id
/// of the alert as their value); a marked anomaly is not alerted again while it lasts.
pub fn with_feedback(mut message: Value, alert_id: i64) -> Value {
    let buttons: Vec<Value> = FEEDBACK_ACTIONS
        .iter()
        .map(|(action, mark)| {
            let text = if *mark == "expected" {
                "Expected"
            } else {
                "Planned"
            };
            json!({"type": "button", "action_id": action, "value": alert_id.to_string(),
                   "text": {"type": "plain_text", "text": text}})
        })
        .collect();
    if let Some(blocks) = message["blocks"].as_array_mut() {
        blocks.push(
            json!({"type": "actions", "block_id": "costsplit_feedback", "elements": buttons}),
        );
    }
    message
}

/// The most of an answer that is read. A `chat.postMessage` success echoes the whole message
/// back (kilobytes with its blocks); nothing Slack sends comes near this.
const MAX_ANSWER_BYTES: usize = 1 << 20;
/// How much of an answer is kept in a failure reason.
const MAX_REASON: usize = 200;

/// Posts one message. `api_url` is Slack's Web API base (`https://slack.com/api`).
pub async fn send(
    client: &reqwest::Client,
    api_url: &str,
    target: Target<'_>,
    message: &Value,
) -> Result<(), SendError> {
    let (request, secret) = match target {
        Target::Webhook(url) => (client.post(url.expose()).json(message), url),
        Target::Bot { token, channel } => {
            let mut body = message.clone();
            body["channel"] = json!(channel);
            let request = client
                .post(format!(
                    "{}/chat.postMessage",
                    api_url.trim_end_matches('/')
                ))
                .bearer_auth(token.expose())
                .json(&body);
            (request, token)
        }
    };
    let response = request.send().await.map_err(|e| {
        if e.is_builder() {
            // Not Slack being down: the configured URL cannot be a request at all.
            SendError::Permanent {
                reason: match target {
                    Target::Webhook(_) => "the webhook URL is not a valid URL: set COSTSPLIT_SLACK_WEBHOOK_URL (or the team's) to the URL Slack gave for the incoming webhook".to_string(),
                    Target::Bot { .. } => "COSTSPLIT_SLACK_API_URL is not a valid URL".to_string(),
                },
            }
        } else {
            SendError::Retry {
                reason: format!("cannot reach Slack: {}", e.without_url()),
                after: None,
            }
        }
    })?;
    let answer = Answer {
        status: response.status().as_u16(),
        retry_after: response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs),
        body: read_body(response).await,
    };
    let outcome = match target {
        Target::Webhook(_) => answer.webhook_outcome(),
        Target::Bot { .. } => answer.post_message_outcome(),
    };
    // Whatever a server says, a reason never carries the URL or token it was sent with.
    outcome.map_err(|e| e.redact(secret.expose()))
}

/// Reads the whole body, up to `MAX_ANSWER_BYTES`; `Err` says why it could not.
async fn read_body(mut response: reqwest::Response) -> Result<String, String> {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > MAX_ANSWER_BYTES => {
                return Err(format!("answer larger than {MAX_ANSWER_BYTES} bytes"))
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(String::from_utf8_lossy(&body).into_owned()),
            Err(e) => return Err(format!("answer cut off: {}", e.without_url())),
        }
    }
}

/// What Slack answered: the status, its `Retry-After`, and the whole body (or why it could
/// not be read). Sorting it into an outcome is pure, so every answer shape is unit-tested.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub retry_after: Option<Duration>,
    pub body: Result<String, String>,
}

/// `chat.postMessage` errors after which the message was not posted and a later try can work.
const TRANSIENT_API_ERRORS: [&str; 4] = [
    "ratelimited",
    "request_timeout",
    "service_unavailable",
    "internal_error",
];

impl Answer {
    fn shown_body(&self) -> String {
        match &self.body {
            Ok(text) => truncate(text.trim(), MAX_REASON),
            Err(why) => why.clone(),
        }
    }

    /// The status codes every Slack endpoint shares: 429 and 5xx are tried again.
    fn retriable(&self, what: &str) -> Option<SendError> {
        match self.status {
            429 => Some(SendError::Retry {
                reason: format!("{what}: rate limited by Slack (HTTP 429)"),
                after: self.retry_after,
            }),
            500..=599 => Some(SendError::Retry {
                reason: format!("{what}: Slack answered HTTP {}", self.status),
                after: self.retry_after,
            }),
            _ => None,
        }
    }

    /// An incoming webhook answers `200 ok`, or a status with a plain-text error
    /// (`invalid_payload`, `channel_not_found`, …).
    pub fn webhook_outcome(&self) -> Result<(), SendError> {
        if let Some(retry) = self.retriable("webhook") {
            return Err(retry);
        }
        match (&self.body, self.status) {
            (Ok(text), 200..=299) if text.trim() == "ok" => Ok(()),
            (_, 200..=299) => Err(SendError::Permanent {
                reason: format!(
                    "webhook answered HTTP {} with `{}` instead of `ok`; the message may have been posted, check the channel",
                    self.status,
                    self.shown_body()
                ),
            }),
            _ => Err(SendError::Permanent {
                reason: format!(
                    "webhook refused the message: HTTP {} {}",
                    self.status,
                    self.shown_body()
                ),
            }),
        }
    }

    /// `chat.postMessage` answers JSON: `{"ok":true,…}` echoing the posted message, or
    /// `{"ok":false,"error":…}` (also with HTTP 200).
    pub fn post_message_outcome(&self) -> Result<(), SendError> {
        let parsed = self
            .body
            .as_ref()
            .ok()
            .and_then(|text| serde_json::from_str::<Value>(text).ok());
        let error = parsed
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str);
        if let Some(retry) = self.retriable("chat.postMessage") {
            return Err(match (retry, error) {
                (SendError::Retry { after, .. }, Some(error)) => SendError::Retry {
                    reason: format!("chat.postMessage: {error} (HTTP {})", self.status),
                    after,
                },
                (retry, _) => retry,
            });
        }
        match parsed.as_ref().and_then(|v| v.get("ok")).and_then(Value::as_bool) {
            Some(true) if (200..300).contains(&self.status) => Ok(()),
            Some(_) => {
                let error = error.unwrap_or("no error code").to_string();
                if TRANSIENT_API_ERRORS.contains(&error.as_str()) {
                    Err(SendError::Retry {
                        reason: format!("chat.postMessage: {error}"),
                        after: self.retry_after,
                    })
                } else {
                    Err(SendError::Permanent {
                        reason: format!("chat.postMessage: {error}"),
                    })
                }
            }
            None if (200..300).contains(&self.status) => Err(SendError::Permanent {
                reason: format!(
                    "chat.postMessage: HTTP {} with an answer that is not Slack's JSON (`{}`); the message may have been posted, check the channel",
                    self.status,
                    self.shown_body()
                ),
            }),
            None => Err(SendError::Permanent {
                reason: format!(
                    "chat.postMessage: HTTP {} {}",
                    self.status,
                    self.shown_body()
                ),
            }),
        }
    }
}

impl SendError {
    fn redact(self, secret: &str) -> SendError {
        let clean = |reason: String| {
            if secret.is_empty() {
                reason
            } else {
                reason.replace(secret, "***")
            }
        };
        match self {
            SendError::Retry { reason, after } => SendError::Retry {
                reason: clean(reason),
                after,
            },
            SendError::Permanent { reason } => SendError::Permanent {
                reason: clean(reason),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status,
            retry_after: None,
            body: Ok(body.to_string()),
        }
    }

    /// The shape of a real `chat.postMessage` success (Slack's API reference): the whole
    /// message echoed back with its blocks, the bot's profile and the warnings Slack adds.
    fn echoed_success(blocks: usize) -> String {
        let blocks: Vec<Value> = (0..blocks)
            .map(|i| json!({"type": "section", "block_id": format!("b{i:04}"), "text": {"type": "mrkdwn", "text": "*Service*\ncheckout-api ".repeat(20), "verbatim": false}}))
            .collect();
        json!({
            "ok": true,
            "channel": "C0123ABCDEF",
            "ts": "1732435200.000100",
            "message": {
                "user": "U0123ABCDEF", "type": "message", "ts": "1732435200.000100",
                "bot_id": "B0123ABCDEF", "app_id": "A0123ABCDEF", "text": "Cost spike: checkout-api",
                "team": "T0123ABCDEF",
                "bot_profile": {"id": "B0123ABCDEF", "app_id": "A0123ABCDEF", "name": "costsplit",
                    "icons": {"image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png"},
                    "deleted": false, "updated": 1_732_000_000, "team_id": "T0123ABCDEF"},
                "blocks": blocks
            },
            "warning": "missing_charset",
            "response_metadata": {"warnings": ["missing_charset"]}
        })
        .to_string()
    }

    #[test]
    fn a_full_size_post_message_success_is_delivered() {
        let body = echoed_success(50);
        assert!(body.len() > 20_000, "{} bytes", body.len());
        assert_eq!(answer(200, &body).post_message_outcome(), Ok(()));
    }

    #[test]
    fn ok_false_with_http_200_is_a_permanent_failure_with_slacks_error() {
        let body = r#"{"ok":false,"error":"channel_not_found","warning":"missing_charset","response_metadata":{"warnings":["missing_charset"]}}"#;
        assert_eq!(
            answer(200, body).post_message_outcome(),
            Err(SendError::Permanent {
                reason: "chat.postMessage: channel_not_found".into()
            })
        );
    }

    #[test]
    fn ratelimited_is_retried_after_slacks_delay() {
        let limited = Answer {
            status: 429,
            retry_after: Some(Duration::from_secs(30)),
            body: Ok(r#"{"ok":false,"error":"ratelimited"}"#.into()),
        };
        assert_eq!(
            limited.post_message_outcome(),
            Err(SendError::Retry {
                reason: "chat.postMessage: ratelimited (HTTP 429)".into(),
                after: Some(Duration::from_secs(30))
            })
        );
        let in_body = answer(200, r#"{"ok":false,"error":"ratelimited"}"#);
        assert!(matches!(
            in_body.post_message_outcome(),
            Err(SendError::Retry { .. })
        ));
    }

    #[test]
    fn an_unreadable_success_is_failed_visibly_not_resent() {
        let cut = echoed_success(3)[..150].to_string();
        let Err(SendError::Permanent { reason }) = answer(200, &cut).post_message_outcome() else {
            panic!("a cut answer is not retried: the message may already be in the channel");
        };
        assert!(reason.contains("may have been posted"), "{reason}");
        assert!(reason.chars().count() < 400, "{reason}");
    }

    #[test]
    fn billing_text_cannot_mention_or_link_in_mrkdwn() {
        let alert = Alert {
            kind: AlertKind::Spike,
            service: "<!channel> *URGENT* <https://evil.example/login|click to verify billing>"
                .into(),
            team: "a & b".into(),
            currency: "USD".into(),
            anomaly_start: chrono::NaiveDate::from_ymd_opt(2025, 3, 1).expect("day"),
            period: "2025-03-01".into(),
            amount: crate::money::Nanos(3_000_000_000),
            baseline: crate::money::Nanos(1_000_000_000),
            change_bp: Some(20_000),
            drivers: vec![(
                "<!here> <https://evil.example|AWS>".into(),
                crate::money::Nanos(1),
            )],
            estimated: false,
        };
        let message = message(&alert, Some("https://dash.example/d?s={service}"));
        let mut mrkdwn = vec![message["text"].as_str().expect("fallback").to_string()];
        for block in message["blocks"].as_array().expect("blocks") {
            for field in block["fields"].as_array().into_iter().flatten() {
                mrkdwn.push(field["text"].as_str().expect("text").to_string());
            }
            if block["text"]["type"] == "mrkdwn" {
                mrkdwn.push(block["text"]["text"].as_str().expect("text").to_string());
            }
        }
        let all = mrkdwn.join("\n");
        assert!(!all.contains('<') && !all.contains('>'), "{all}");
        assert!(
            all.contains("&lt;!channel&gt;") && all.contains("&lt;!here&gt;"),
            "{all}"
        );
        assert!(all.contains("a &amp; b"), "{all}");
        let url = message.to_string();
        assert!(
            url.contains("https://dash.example/d?s=%3C%21channel%3E%20%2AURGENT"),
            "{url}"
        );
    }

    #[test]
    fn webhook_answers_are_plain_text() {
        assert_eq!(answer(200, "ok").webhook_outcome(), Ok(()));
        assert_eq!(
            answer(404, "channel_not_found").webhook_outcome(),
            Err(SendError::Permanent {
                reason: "webhook refused the message: HTTP 404 channel_not_found".into()
            })
        );
        assert!(matches!(
            answer(500, "rollup_error").webhook_outcome(),
            Err(SendError::Retry { .. })
        ));
        let Err(SendError::Permanent { reason }) =
            answer(200, &"<html>".repeat(10_000)).webhook_outcome()
        else {
            panic!("a 200 that is not `ok` is not counted as delivered");
        };
        assert!(reason.chars().count() < 400, "{reason}");
    }

    #[tokio::test]
    async fn a_malformed_webhook_url_is_configuration_not_slack_being_down() {
        let client = reqwest::Client::new();
        let secret = Secret::new("hooks.slack.com/services/T1/B1/not-a-url");
        let outcome = send(
            &client,
            "https://slack.com/api",
            Target::Webhook(&secret),
            &json!({"text": "x"}),
        )
        .await;
        let Err(SendError::Permanent { reason }) = outcome else {
            panic!("not retried as transient: {outcome:?}");
        };
        assert!(reason.contains("not a valid URL"), "{reason}");
        assert!(!reason.contains("not-a-url"), "{reason}");
    }

    #[test]
    fn reasons_never_repeat_the_secret_a_server_echoed() {
        let error = SendError::Permanent {
            reason: "webhook refused the message: HTTP 400 bad https://hooks.example/T1/B1/xyz"
                .into(),
        };
        assert_eq!(
            error.redact("https://hooks.example/T1/B1/xyz"),
            SendError::Permanent {
                reason: "webhook refused the message: HTTP 400 bad ***".into()
            }
        );
    }
}
