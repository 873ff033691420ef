//! The web page's routes (`/`, `/teams/{team}`, `/services/{service}`, each with `?month=`),
//! behind the API's guard: the same token rule, the same store.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};

use super::api::ApiState;
use crate::jobs::{self, ApiQueryError};
use crate::report::page::{message_page, render, Scope};

async fn show(state: &ApiState, scope: Scope, params: &HashMap<String, String>) -> Response {
    match jobs::page_view(
        &state.store,
        &state.cache,
        scope,
        params.get("month").map(String::as_str),
    )
    .await
    {
        Ok(view) => ([(header::CACHE_CONTROL, "no-store")], Html(render(&view))).into_response(),
        Err(e) => {
            let status = match e {
                ApiQueryError::BadRequest(_) | ApiQueryError::Currencies(_) => {
                    StatusCode::BAD_REQUEST
                }
                ApiQueryError::NotFound(_) | ApiQueryError::NoData(..) | ApiQueryError::Empty => {
                    StatusCode::NOT_FOUND
                }
                ApiQueryError::Store(ref e) => {
                    tracing::warn!(error = %format!("{e:#}"), "the page cannot read the store");
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        Html(message_page(
                            "The store does not answer",
                            "Try again in a moment; the daemon's log says why.",
                        )),
                    )
                        .into_response();
                }
            };
            (
                status,
                Html(message_page("Nothing to show", &e.to_string())),
            )
                .into_response()
        }
    }
}

/// Every team's cost this month.
pub(super) async fn overview(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    show(&state, Scope::All, &params).await
}

/// A team's services, ranked.
pub(super) async fn team(
    State(state): State<ApiState>,
    Path(team): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    show(&state, Scope::Team(team), &params).await
}

/// A service's pools and the basis of every share.
pub(super) async fn service(
    State(state): State<ApiState>,
    Path(service): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    show(&state, Scope::Service(service), &params).await
}
