//! `POST /slack/actions`: Slack's interactivity requests for the alerts' "Expected" and
//! "Planned" buttons. Each request is verified as Slack signs it (`X-Slack-Signature`:
//! `v0=` HMAC-SHA256 of `v0:{X-Slack-Request-Timestamp}:{body}` with the app's signing secret,
//! `COSTSPLIT_SLACK_SIGNING_SECRET` or `..._FILE`; at most five minutes old), then the alert's
//! anomaly is marked, so it is not alerted again while it lasts. Without a signing secret the
//! route refuses every request.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::json;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::jobs::Store;
use crate::notify::slack::FEEDBACK_ACTIONS;
use crate::notify::Secret;

/// How old a signed request may be (Slack's advice against replays).
const MAX_AGE_SECONDS: i64 = 300;

#[derive(Clone)]
struct ActionsState {
    store: Store,
    secret: Option<Secret>,
    clock: Clock,
}

/// The route, with the signing secret from the environment (none: every request refused).
pub fn routes_from_env(store: Store, clock: Clock) -> anyhow::Result<Router> {
    let secret = Secret::from_env(&|k| std::env::var(k).ok(), "COSTSPLIT_SLACK_SIGNING_SECRET")?;
    Ok(routes(store, secret, clock))
}

pub fn routes(store: Store, secret: Option<Secret>, clock: Clock) -> Router {
    Router::new()
        .route("/slack/actions", post(action))
        .with_state(ActionsState {
            store,
            secret,
            clock,
        })
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

/// Whether `headers` sign `body` with `secret` within the last five minutes of `now`.
pub fn signed(secret: &str, headers: &HeaderMap, body: &[u8], now: i64) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let (Some(timestamp), Some(signature)) = (
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
    ) else {
        return false;
    };
    let Ok(at) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - at).abs() > MAX_AGE_SECONDS {
        return false;
    }
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(format!("v0:{timestamp}:").as_bytes());
    mac.update(body);
    let expected = format!("v0={}", hex::encode(mac.finalize().into_bytes()));
    bool::from(expected.as_bytes().ct_eq(signature.as_bytes()))
}

#[derive(Deserialize)]
struct Form {
    payload: String,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(default)]
    user: User,
    #[serde(default)]
    actions: Vec<Action>,
}

#[derive(Deserialize, Default)]
struct User {
    #[serde(default)]
    id: String,
    #[serde(default)]
    username: String,
}

#[derive(Deserialize)]
struct Action {
    action_id: String,
    #[serde(default)]
    value: String,
}

async fn action(
    State(state): State<ActionsState>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(secret) = &state.secret else {
        return refuse(
            StatusCode::FORBIDDEN,
            "alert buttons are off: set COSTSPLIT_SLACK_SIGNING_SECRET (the Slack app's signing secret) on the server",
        );
    };
    let now = state.clock.now().timestamp();
    if !signed(secret.expose(), &headers, &body, now) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "not signed by Slack with this app's signing secret in the last five minutes",
        );
    }
    let payload: Payload = match serde_urlencoded::from_bytes::<Form>(&body)
        .map_err(|e| e.to_string())
        .and_then(|f| serde_json::from_str(&f.payload).map_err(|e| e.to_string()))
    {
        Ok(p) => p,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                &format!("expected Slack's form body with a `payload` of block actions: {e}"),
            )
        }
    };
    let by = if payload.user.username.is_empty() {
        payload.user.id.clone()
    } else {
        payload.user.username.clone()
    };
    for a in &payload.actions {
        let Some((_, mark)) = FEEDBACK_ACTIONS.iter().find(|(id, _)| *id == a.action_id) else {
            continue;
        };
        let Ok(alert_id) = a.value.parse::<i64>() else {
            return refuse(
                StatusCode::BAD_REQUEST,
                "the button's value is not an alert id",
            );
        };
        match state
            .store
            .mark_alert(alert_id, mark, &by, state.clock.stamp())
            .await
        {
            Ok(Some(anomaly)) => {
                tracing::info!(alert_id, mark, by = %by, anomaly = %anomaly, "alert marked from Slack");
            }
            Ok(None) => return refuse(StatusCode::NOT_FOUND, "no such alert about an anomaly"),
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "an alert mark could not be stored");
                return refuse(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the store does not answer; click again",
                );
            }
        }
    }
    StatusCode::OK.into_response()
}
