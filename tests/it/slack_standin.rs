//! A stand-in for Slack that answers as Slack does (shapes from Slack's API reference):
//! incoming webhooks answer `200 ok` in plain text; `chat.postMessage` checks the token and the
//! channel, answers `{"ok":false,"error":…}` with HTTP 200 for errors, 429 `ratelimited` with
//! `Retry-After`, and on success echoes the whole message back with its blocks, the bot's
//! profile and the `missing_charset` warning Slack adds when the content type has no charset.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use wiremock::{Request, Respond, ResponseTemplate};

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
        if !self.channels.iter().any(|c| c == channel) {
            return Self::api_error("channel_not_found", warnings);
        }
        if body["text"].as_str().is_none() && body["blocks"].as_array().is_none() {
            return Self::api_error("no_text", warnings);
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
            return ResponseTemplate::new(200)
                .insert_header("content-type", "text/html")
                .set_body_string("ok");
        }
        if path.ends_with("/chat.postMessage") {
            return self.0.post_message(request);
        }
        ResponseTemplate::new(404).set_body_string("unknown_method")
    }
}
