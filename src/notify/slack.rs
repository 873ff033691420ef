//! Slack: the only code that knows Slack's JSON. Renders an alert as Block Kit (within
//! Slack's limits) and posts it to an incoming webhook or with `chat.postMessage`, sorting
//! the answer into delivered, retry later, or never retry.

use std::time::Duration;

use serde_json::{json, Value};

use super::Secret;
use crate::alert::{Alert, AlertKind};
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

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// The Slack message for an alert: a `text` fallback and Block Kit `blocks`.
pub fn message(alert: &Alert, dashboard_url: Option<&str>) -> Value {
    let c = alert.currency.as_str();
    let percent = alert
        .change_bp
        .map(|bp| format!(" ({}{}%)", if bp >= 0 { "+" } else { "-" }, bp.abs() / 100))
        .unwrap_or_default();
    let (title, when, against) = match alert.kind {
        AlertKind::Spike => ("Cost spike", "Day", "Baseline (median)"),
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
            field("Service", alert.service.clone()),
            field("Team", if alert.team.is_empty() { "-".to_string() } else { alert.team.clone() }),
            field(when, alert.period.clone()),
            field("Cost", human(alert.amount, c, false)),
            field(against, human(alert.baseline, c, false)),
            field("Change", format!("{}{percent}", human(alert.change(), c, true))),
        ]}),
    ];
    if !alert.drivers.is_empty() {
        let lines: Vec<String> = alert
            .drivers
            .iter()
            .map(|(k, v)| format!("• {k}: {}", human(*v, c, true)))
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
            .replace("{service}", &alert.service)
            .replace("{team}", &alert.team);
        blocks.push(json!({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Open dashboard"}, "url": url}
        ]}));
    }
    blocks.truncate(50);
    json!({"text": truncate(&alert.summary(), MAX_TEXT), "blocks": blocks})
}

/// Posts one message. `api_url` is Slack's Web API base (`https://slack.com/api`).
pub async fn send(
    client: &reqwest::Client,
    api_url: &str,
    target: Target<'_>,
    message: &Value,
) -> Result<(), SendError> {
    let request = match target {
        Target::Webhook(url) => client.post(url.expose()).json(message),
        Target::Bot { token, channel } => {
            let mut body = message.clone();
            body["channel"] = json!(channel);
            client
                .post(format!(
                    "{}/chat.postMessage",
                    api_url.trim_end_matches('/')
                ))
                .bearer_auth(token.expose())
                .json(&body)
        }
    };
    let response = request.send().await.map_err(|e| SendError::Retry {
        reason: format!("cannot reach Slack: {}", e.without_url()),
        after: None,
    })?;
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = response.text().await.unwrap_or_default();
    let body = truncate(body.trim(), 200);
    if status.as_u16() == 429 {
        return Err(SendError::Retry {
            reason: "rate limited by Slack (HTTP 429)".into(),
            after: retry_after,
        });
    }
    if status.is_server_error() {
        return Err(SendError::Retry {
            reason: format!("Slack answered HTTP {}", status.as_u16()),
            after: retry_after,
        });
    }
    match target {
        Target::Webhook(_) if status.is_success() && body == "ok" => Ok(()),
        Target::Webhook(_) => Err(SendError::Permanent {
            reason: format!(
                "webhook refused the message: HTTP {} {body}",
                status.as_u16()
            ),
        }),
        Target::Bot { .. } => {
            let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
            if status.is_success() && parsed["ok"] == json!(true) {
                return Ok(());
            }
            let error = parsed["error"]
                .as_str()
                .unwrap_or("unreadable answer")
                .to_string();
            if error == "ratelimited" {
                Err(SendError::Retry {
                    reason: "chat.postMessage: ratelimited".into(),
                    after: retry_after,
                })
            } else {
                Err(SendError::Permanent {
                    reason: format!("chat.postMessage: {error}"),
                })
            }
        }
    }
}
