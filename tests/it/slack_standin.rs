//! A stand-in for Slack that answers as Slack does (shapes from Slack's API reference):
//! incoming webhooks answer `200 ok` in plain text, and refuse what Slack refuses with a 400
//! and its word for it (`invalid_payload`, `no_text`, `invalid_blocks`), a 404
//! `channel_not_found` or a 410 `channel_is_archived`; `chat.postMessage` checks the token and
//! the channel, answers `{"ok":false,"error":…}` with HTTP 200 for errors (`is_archived`,
//! `invalid_blocks`, `msg_too_long`, …), 429 `ratelimited` with `Retry-After`, and on success
//! echoes the whole message back with its blocks, the bot's profile and the
//! `missing_charset` warning Slack adds when the content type has no charset. Messages are
//! checked as Slack checks them: block types, required fields and Block Kit's limits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use wiremock::{Request, Respond, ResponseTemplate};

/// What Slack says of a message it would not post (the same words for a webhook and for
/// `chat.postMessage`), or `None` for one it posts.
pub fn refusal(body: &Value) -> Option<&'static str> {
    let text = body.get("text");
    let blocks = body.get("blocks");
    if text.is_none() && blocks.is_none() {
        return Some("no_text");
    }
    if let Some(text) = text {
        match text.as_str() {
            Some(t) if t.chars().count() > 40_000 => return Some("msg_too_long"),
            Some(_) => {}
            None => return Some("invalid_payload"),
        }
    }
    let blocks = blocks?;
    let Some(blocks) = blocks.as_array() else {
        return Some("invalid_blocks");
    };
    let text_object = |v: &Value, max: usize, kinds: &[&str]| {
        kinds.contains(&v["type"].as_str().unwrap_or_default())
            && v["text"]
                .as_str()
                .is_some_and(|t| !t.is_empty() && t.chars().count() <= max)
    };
    let valid = |block: &Value| match block["type"].as_str() {
        Some("header") => text_object(&block["text"], 150, &["plain_text"]),
        Some("section") => {
            let text = block.get("text");
            let fields = block.get("fields").and_then(Value::as_array);
            (text.is_some() || fields.is_some())
                && text.is_none_or(|t| text_object(t, 3000, &["mrkdwn", "plain_text"]))
                && fields.is_none_or(|f| {
                    !f.is_empty()
                        && f.len() <= 10
                        && f.iter()
                            .all(|x| text_object(x, 2000, &["mrkdwn", "plain_text"]))
                })
        }
        Some("context") => block["elements"].as_array().is_some_and(|e| {
            !e.is_empty()
                && e.len() <= 10
                && e.iter().all(|x| {
                    text_object(x, 3000, &["mrkdwn", "plain_text"]) || x["type"] == "image"
                })
        }),
        Some("divider") => true,
        Some("actions") => block["elements"]
            .as_array()
            .is_some_and(|e| !e.is_empty() && e.len() <= 25),
        Some("image") => block["image_url"].is_string() && block["alt_text"].is_string(),
        _ => false,
    };
    if blocks.len() > 50 || !blocks.iter().all(valid) {
        return Some("invalid_blocks");
    }
    None
}

/// Cheap to clone: mount one clone and keep another to ask what it answered.
#[derive(Clone)]
pub struct SlackStandIn(Arc<State>);

struct State {
    token: String,
    /// Channels the bot is a member of.
    channels: Vec<String>,
    /// The next this many `chat.postMessage` calls are rate limited.
    rate_limited: AtomicUsize,
    posted: AtomicUsize,
    largest_answer: AtomicUsize,
}

impl SlackStandIn {
    pub fn new(token: &str, channels: &[&str]) -> SlackStandIn {
        SlackStandIn::with_rate_limit(token, channels, 0)
    }

    /// The first `calls` calls to `chat.postMessage` are rate limited.
    pub fn with_rate_limit(token: &str, channels: &[&str], calls: usize) -> SlackStandIn {
        SlackStandIn(Arc::new(State {
            token: token.to_string(),
            channels: channels.iter().map(|c| c.to_string()).collect(),
            rate_limited: AtomicUsize::new(calls),
            posted: AtomicUsize::new(0),
            largest_answer: AtomicUsize::new(0),
        }))
    }

    /// A stand-in for incoming webhooks only (no bot token, no channels).
    pub fn webhook() -> SlackStandIn {
        SlackStandIn::new("", &[])
    }

    /// The largest success answer sent so far, in bytes.
    pub fn largest_answer(&self) -> usize {
        self.0.largest_answer.load(Ordering::SeqCst)
    }
}

impl State {
    fn api_error(error: &str, warnings: &[&str]) -> ResponseTemplate {
        let mut body = json!({"ok": false, "error": error});
        if !warnings.is_empty() {
            body["warning"] = json!(warnings.join(","));
            body["response_metadata"] = json!({"warnings": warnings});
        }
        ResponseTemplate::new(200).set_body_json(body)
    }

    fn post_message(&self, request: &Request) -> ResponseTemplate {
        let content_type = request
            .headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let warnings: &[&str] = if content_type.contains("charset") {
            &[]
        } else {
            &["missing_charset"]
        };
        let auth = request
            .headers
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        match auth {
            None => return Self::api_error("not_authed", warnings),
            Some(a) if a != format!("Bearer {}", self.token) => {
                return Self::api_error("invalid_auth", warnings)
            }
            Some(_) => {}
        }
        if self
            .rate_limited
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"ok": false, "error": "ratelimited"}));
        }
        let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
            return Self::api_error("invalid_json", warnings);
        };
        let channel = body["channel"].as_str().unwrap_or_default();
        if channel.starts_with("#archived") {
            return Self::api_error("is_archived", warnings);
        }
        if !self.channels.iter().any(|c| c == channel) {
            return Self::api_error("channel_not_found", warnings);
        }
        if let Some(error) = refusal(&body) {
            return Self::api_error(error, warnings);
        }
        let n = self.posted.fetch_add(1, Ordering::SeqCst);
        let ts = format!("1732435200.{:06}", 100 + n);
        let blocks: Vec<Value> = body["blocks"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, mut block)| {
                block["block_id"] = json!(format!("Xk{i}9q"));
                block
            })
            .collect();
        let mut answer = json!({
            "ok": true,
            "channel": "C07QCRPA4",
            "ts": ts,
            "message": {
                "user": "U0G9QF9C6",
                "type": "message",
                "ts": ts,
                "bot_id": "B0G9QF9C6",
                "app_id": "A0G9QF9C6",
                "text": body["text"],
                "team": "T0G9PQBBK",
                "bot_profile": {
                    "id": "B0G9QF9C6",
                    "app_id": "A0G9QF9C6",
                    "name": "costsplit",
                    "icons": {
                        "image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
                        "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
                        "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png"
                    },
                    "deleted": false,
                    "updated": 1_732_400_000,
                    "team_id": "T0G9PQBBK"
                },
                "blocks": blocks
            }
        });
        if !warnings.is_empty() {
            answer["warning"] = json!(warnings.join(","));
            answer["response_metadata"] = json!({"warnings": warnings});
        }
        let text = answer.to_string();
        self.largest_answer.fetch_max(text.len(), Ordering::SeqCst);
        ResponseTemplate::new(200)
            .insert_header("content-type", "application/json; charset=utf-8")
            .set_body_string(text)
    }
}

impl Respond for SlackStandIn {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let path = request.url.path();
        if path.starts_with("/services/") {
            let plain = |status: u16, text: &str| {
                ResponseTemplate::new(status)
                    .insert_header("content-type", "text/html")
                    .set_body_string(text.to_string())
            };
            if path.contains("/archived/") {
                return plain(410, "channel_is_archived");
            }
            if path.contains("/gone/") {
                return plain(404, "channel_not_found");
            }
            return match serde_json::from_slice::<Value>(&request.body) {
                Err(_) => plain(400, "invalid_payload"),
                Ok(body) => match refusal(&body) {
                    Some(error) => plain(400, error),
                    None => plain(200, "ok"),
                },
            };
        }
        if path.ends_with("/chat.postMessage") {
            return self.0.post_message(request);
        }
        ResponseTemplate::new(404).set_body_string("unknown_method")
    }
}

#[test]
fn the_stand_in_refuses_what_slack_refuses() {
    let ok = json!({"text": "x", "blocks": [{"type": "header", "text": {"type": "plain_text", "text": "Cost"}}, {"type": "divider"}]});
    assert_eq!(refusal(&ok), None);
    assert_eq!(refusal(&json!({})), Some("no_text"));
    assert_eq!(
        refusal(&json!({"blocks": [{"type": "unknown"}]})),
        Some("invalid_blocks")
    );
    let long_header = json!({"blocks": [{"type": "header", "text": {"type": "plain_text", "text": "x".repeat(151)}}]});
    assert_eq!(refusal(&long_header), Some("invalid_blocks"));
    let mrkdwn_header =
        json!({"blocks": [{"type": "header", "text": {"type": "mrkdwn", "text": "x"}}]});
    assert_eq!(refusal(&mrkdwn_header), Some("invalid_blocks"));
    let many: Vec<Value> = (0..51).map(|_| json!({"type": "divider"})).collect();
    assert_eq!(
        refusal(&json!({"text": "x", "blocks": many})),
        Some("invalid_blocks")
    );
    let fields: Vec<Value> = (0..11)
        .map(|_| json!({"type": "mrkdwn", "text": "f"}))
        .collect();
    assert_eq!(
        refusal(&json!({"blocks": [{"type": "section", "fields": fields}]})),
        Some("invalid_blocks")
    );
    assert_eq!(
        refusal(&json!({"text": "x".repeat(40_001)})),
        Some("msg_too_long")
    );
}
