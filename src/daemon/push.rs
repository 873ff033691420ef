//! `POST /api/v1/units/NAME`: a `[[unit]]`'s daily measure pushed by the service that counts
//! it (`{"values": [{"day": "2025-03-01", "value": "123456"}]}`). The read API's token does
//! not allow it: pushing needs its own token (`COSTSPLIT_API_PUSH_TOKEN` or
//! `COSTSPLIT_API_PUSH_TOKEN_FILE`); without one the route refuses every push. The unit must be
//! declared with `push = true` in the rules as they are on disk at the time of the push.

use std::path::PathBuf;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use super::api::ApiToken;
use crate::clock::Clock;
use crate::config::CatalogSettings;
use crate::jobs::{self, PushError, Store};

/// What pushing needs: its token and where the rules are.
#[derive(Clone)]
pub struct UnitPush {
    pub token: ApiToken,
    pub rules_dir: PathBuf,
    pub catalog: Option<CatalogSettings>,
}

impl UnitPush {
    /// From `COSTSPLIT_API_PUSH_TOKEN` (or `_FILE`); none when unset.
    pub fn from_env(
        env: &dyn Fn(&str) -> Option<String>,
        rules_dir: PathBuf,
        catalog: Option<CatalogSettings>,
    ) -> anyhow::Result<Option<UnitPush>> {
        let token = ApiToken::from_vars(env, "COSTSPLIT_API_PUSH_TOKEN")?;
        Ok(token.map(|token| UnitPush {
            token,
            rules_dir,
            catalog,
        }))
    }
}

#[derive(Clone)]
struct PushState {
    store: Store,
    push: Option<UnitPush>,
    clock: Clock,
}

/// The push route as `config` and the environment set it up.
pub fn routes_for(
    config: &crate::config::Config,
    store: Store,
    clock: Clock,
) -> anyhow::Result<Router> {
    let push = UnitPush::from_env(
        &|k| std::env::var(k).ok(),
        config.rules_dir.clone(),
        config.catalog.clone(),
    )?;
    Ok(routes(store, push, clock))
}

/// The push route.
pub fn routes(store: Store, push: Option<UnitPush>, clock: Clock) -> Router {
    Router::new()
        .route("/api/v1/units/{name}", post(push_values))
        .with_state(PushState { store, push, clock })
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

#[derive(Deserialize)]
struct Body {
    values: Vec<Record>,
}

#[derive(Deserialize)]
struct Record {
    day: String,
    /// A decimal string or a JSON number.
    value: serde_json::Value,
}

async fn push_values(
    State(state): State<PushState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let Some(push) = &state.push else {
        return refuse(
            StatusCode::FORBIDDEN,
            "pushing unit values is off: set COSTSPLIT_API_PUSH_TOKEN (or COSTSPLIT_API_PUSH_TOKEN_FILE) on the server",
        );
    };
    if !push.token.accepts(&headers) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "send the push token as `Authorization: Bearer <token>`",
        );
    }
    let body: Body = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"values\": [{{\"day\": \"YYYY-MM-DD\", \"value\": \"123\"}}, …]}}: {e}"),
            )
        }
    };
    let mut values = Vec::with_capacity(body.values.len());
    for (i, r) in body.values.iter().enumerate() {
        let Some(day) = crate::model::parse_day(&r.day) else {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("value {}: `day` must be YYYY-MM-DD, not `{}`", i + 1, r.day),
            );
        };
        let value = match &r.value {
            serde_json::Value::String(s) => s.trim().to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            other => other.to_string(),
        };
        values.push((day, value));
    }
    let rules = match jobs::load_rules(&push.rules_dir, push.catalog.as_ref()) {
        Ok(rules) => rules,
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "a unit push found the rules broken");
            return refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the server's rules do not load; nothing was stored (`costsplit rules check` says why)",
            );
        }
    };
    match jobs::push_unit_values(&state.store, &rules, &name, &values, state.clock).await {
        Ok(Ok(stored)) => (
            StatusCode::OK,
            Json(json!({"unit": name, "stored": stored})),
        )
            .into_response(),
        Ok(Err(e @ PushError::UnknownUnit(_))) => refuse(StatusCode::NOT_FOUND, e.to_string()),
        Ok(Err(e @ PushError::BadValue(_))) => refuse(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            tracing::warn!(error = %format!("{e:#}"), "a unit push could not be stored");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store does not answer; nothing was stored, push again",
            )
        }
    }
}
