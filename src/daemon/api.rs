//! The read-only HTTP API over the stored allocations, served by `costsplit run` and
//! `costsplit serve`: `/api/v1/costs` (exact amounts per day, service and pool), OpenCost's
//! `/allocation/compute` (and `/allocation`), Backstage Cost Insights' routes under
//! `/api/v1/cost-insights/`, and the web page (`page.rs`). A bearer token
//! (`COSTSPLIT_API_TOKEN` or `COSTSPLIT_API_TOKEN_FILE`) is required when set, compared in
//! constant time; without one the API answers only on a loopback listener.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::clock::Clock;
use crate::jobs::{self, ApiQueryError, Store};
use crate::report::cost_insights;
use crate::report::opencost::{self, Aggregate};
use crate::store::RowsOf;

/// The API's bearer token; never printed.
#[derive(Clone)]
pub struct ApiToken(Arc<str>);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(***)")
    }
}

impl ApiToken {
    /// From `COSTSPLIT_API_TOKEN`, or the file `COSTSPLIT_API_TOKEN_FILE` names.
    pub fn from_env(env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<Option<ApiToken>> {
        ApiToken::from_vars(env, "COSTSPLIT_API_TOKEN")
    }

    /// From the variable `var`, or the file `{var}_FILE` names.
    pub fn from_vars(
        env: &dyn Fn(&str) -> Option<String>,
        var: &str,
    ) -> anyhow::Result<Option<ApiToken>> {
        let text = match (env(var), env(&format!("{var}_FILE"))) {
            (Some(t), _) => t,
            (None, Some(file)) => std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {var}_FILE ({file}): {e}"))?,
            (None, None) => return Ok(None),
        };
        let text = text.trim();
        anyhow::ensure!(
            !text.is_empty(),
            "the token in {var} is empty; set a non-empty one or leave it unset"
        );
        Ok(Some(ApiToken(text.into())))
    }

    pub(super) fn accepts(&self, headers: &HeaderMap) -> bool {
        let given = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        bool::from(given.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

#[derive(Clone)]
pub(super) struct ApiState {
    pub(super) store: Store,
    /// Month statements and recent names, kept while the data stays the same.
    pub(super) cache: Arc<jobs::ApiCache>,
    token: Option<ApiToken>,
    /// Without a token on a listener other than loopback, the API stays closed.
    open: bool,
    clock: Clock,
}

/// The API routes. `loopback`: the listener is on 127.0.0.1 / ::1.
pub fn routes(
    store: Store,
    cache: Arc<jobs::ApiCache>,
    token: Option<ApiToken>,
    loopback: bool,
    clock: Clock,
) -> Router {
    let state = ApiState {
        open: token.is_some() || loopback,
        store,
        cache,
        token,
        clock,
    };
    Router::new()
        .route("/", get(super::page::overview))
        .route("/teams/{team}", get(super::page::team))
        .route("/services/{service}", get(super::page::service))
        .route("/allocation/compute", get(allocation))
        .route("/allocation", get(allocation))
        .route("/api/v1/costs", get(costs))
        .route(
            "/api/v1/cost-insights/last-complete-billing-date",
            get(last_complete_billing_date),
        )
        .route("/api/v1/cost-insights/groups", get(groups))
        .route(
            "/api/v1/cost-insights/groups/{group}/daily-cost",
            get(group_daily_cost),
        )
        .route(
            "/api/v1/cost-insights/groups/{group}/alerts",
            get(group_alerts),
        )
        .route(
            "/api/v1/cost-insights/groups/{group}/projects",
            get(group_projects),
        )
        .route(
            "/api/v1/cost-insights/projects/{project}/daily-cost",
            get(project_daily_cost),
        )
        .route("/api/v1/cost-insights/products", get(products))
        .route(
            "/api/v1/cost-insights/product-insights",
            get(product_insights),
        )
        .route(
            "/api/v1/cost-insights/metrics/{metric}/daily-data",
            get(metric_data),
        )
        .route(
            "/api/v1/cost-insights/entities/{kind}/{namespace}/{name}/daily-cost",
            get(entity_daily_cost),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    let message = message.into();
    (
        status,
        Json(json!({"code": status.as_u16(), "message": message})),
    )
        .into_response()
}

/// Every API route passes here first: the token when one is set, loopback when none is.
async fn guard(
    State(state): State<ApiState>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    match check(&state, request.headers()) {
        Some(refused) => refused,
        None => next.run(request).await,
    }
}

/// The refusal, when the request may not be answered.
fn check(state: &ApiState, headers: &HeaderMap) -> Option<Response> {
    if !state.open {
        return Some(refuse(
            StatusCode::FORBIDDEN,
            "the API has no token and this listener is not loopback: set COSTSPLIT_API_TOKEN (or COSTSPLIT_API_TOKEN_FILE), or listen on 127.0.0.1",
        ));
    }
    match &state.token {
        Some(token) if !token.accepts(headers) => Some(refuse(
            StatusCode::UNAUTHORIZED,
            "send the API token as `Authorization: Bearer <token>`",
        )),
        _ => None,
    }
}

fn query_error(e: ApiQueryError) -> Response {
    match e {
        ApiQueryError::Currencies(_) | ApiQueryError::BadRequest(_) => {
            refuse(StatusCode::BAD_REQUEST, e.to_string())
        }
        ApiQueryError::NoData(..) | ApiQueryError::Empty | ApiQueryError::NotFound(_) => {
            refuse(StatusCode::NOT_FOUND, e.to_string())
        }
        ApiQueryError::Store(e) => {
            tracing::warn!(error = %format!("{e:#}"), "the API cannot read the store");
            refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "the store does not answer; try again (the daemon's log says why)",
            )
        }
    }
}

/// OpenCost's `/allocation/compute`: `window`, `aggregate` (service, team, pool, all), `step`,
/// and costsplit's `currency` when the store holds several.
async fn allocation(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let parsed = (|| {
        let window = params.get("window").ok_or_else(|| {
            "give a `window` (e.g. 7d, lastweek, or 2025-03-01T00:00:00Z,2025-03-08T00:00:00Z)"
                .to_string()
        })?;
        let window =
            opencost::parse_window(window, state.clock.today()).map_err(|e| e.to_string())?;
        let step = opencost::parse_step(
            params.get("step").map(String::as_str),
            (window.1 - window.0).num_days(),
        )
        .map_err(|e| e.to_string())?;
        let aggregate = Aggregate::parse(params.get("aggregate").map_or("", String::as_str))
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((window, step, aggregate))
    })();
    let (window, step, aggregate) = match parsed {
        Ok(p) => p,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let currency = params.get("currency").map(String::as_str);
    // Readers poll the same windows (dashboards, Port's integration): the answer is kept
    // while the data stays the same.
    let key = format!("{window:?} {step:?} {aggregate:?} {currency:?}");
    let answer = jobs::cached_answer(&state.store, &state.cache, &key, async || {
        let rows = jobs::cost_rows(&state.store, window, RowsOf::All, currency).await?;
        Ok(opencost::allocation_sets(&rows, window, step, aggregate).to_string())
    })
    .await;
    match answer {
        Ok(json) => (
            [(axum::http::header::CONTENT_TYPE, "application/json")],
            json.as_ref().clone(),
        )
            .into_response(),
        Err(e) => query_error(e),
    }
}

/// `/api/v1/costs?from=YYYY-MM-DD&to=YYYY-MM-DD[&service=…][&currency=…]`: per day and
/// service, the direct cost and each pool's share, as exact decimal text.
async fn costs(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let day = |key: &str| {
        params
            .get(key)
            .and_then(|t| crate::model::parse_day(t))
            .ok_or_else(|| format!("give `{key}` as a day, YYYY-MM-DD"))
    };
    let (from, to) = match (day("from"), day("to")) {
        (Ok(f), Ok(t)) if f <= t => (f, t),
        (Ok(_), Ok(_)) => return refuse(StatusCode::BAD_REQUEST, "`from` must not be after `to`"),
        (Err(m), _) | (_, Err(m)) => return refuse(StatusCode::BAD_REQUEST, m),
    };
    let next = to.succ_opt().unwrap_or(to);
    let of = params
        .get("service")
        .map_or(RowsOf::All, |s| RowsOf::Service(s));
    let rows = match jobs::cost_rows(
        &state.store,
        (from, next),
        of,
        params.get("currency").map(String::as_str),
    )
    .await
    {
        Ok(rows) => rows,
        Err(e) => return query_error(e),
    };
    let items = opencost::daily_costs(&rows, params.get("service").map(String::as_str));
    Json(json!({"from": from.to_string(), "to": to.to_string(), "items": items})).into_response()
}

/// Cost Insights' `getLastCompleteBillingDate`: never a day that is still estimated.
async fn last_complete_billing_date(State(state): State<ApiState>) -> Response {
    match jobs::recent_names(&state.store, &state.cache).await {
        Ok(names) => Json(json!(names
            .last_complete_day
            .map(|d| d.to_string())
            .unwrap_or_default()))
        .into_response(),
        Err(e) => query_error(e),
    }
}

/// Cost Insights' `getUserGroups`: the teams (`Group {id, name}`) of the last 90 days.
async fn groups(State(state): State<ApiState>) -> Response {
    match jobs::recent_names(&state.store, &state.cache).await {
        Ok(names) => Json(
            names
                .teams()
                .iter()
                .map(|t| json!({"id": t, "name": t}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => query_error(e),
    }
}

/// The request's `intervals`, or why not (a 400's sentence).
fn intervals(params: &HashMap<String, String>) -> Result<cost_insights::Intervals, String> {
    let Some(text) = params.get("intervals") else {
        return Err(
            "give `intervals` as an ISO 8601 repeating interval, e.g. R2/P30D/2025-03-01".into(),
        );
    };
    cost_insights::parse_intervals(text).map_err(|e| e.to_string())
}

/// The request's `intervals` and the stored allocations they span (in its `currency`).
async fn intervals_rows(
    state: &ApiState,
    params: &HashMap<String, String>,
    of: RowsOf<'_>,
) -> Result<(cost_insights::Intervals, Vec<crate::model::SeriesRow>), Response> {
    let iv = intervals(params).map_err(|m| refuse(StatusCode::BAD_REQUEST, m))?;
    let rows = jobs::cost_rows(
        &state.store,
        (iv.from, iv.end),
        of,
        params.get("currency").map(String::as_str),
    )
    .await
    .map_err(query_error)?;
    Ok((iv, rows))
}

/// The `Cost` of the rows `keep` selects over the request's `intervals`, or a 404 naming
/// `what` when there are none.
async fn insight(
    state: &ApiState,
    params: &HashMap<String, String>,
    (id, of): (&str, RowsOf<'_>),
    what: String,
    keep: impl Fn(&crate::model::SeriesRow) -> bool,
    by_service: bool,
) -> Response {
    let (iv, rows) = match intervals_rows(state, params, of).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    if !rows.iter().any(&keep) {
        return query_error(ApiQueryError::NotFound(what));
    }
    Json(cost_insights::daily_cost(id, &rows, iv, keep, by_service)).into_response()
}

/// Cost Insights' `getGroupDailyCost`: a team's cost, grouped by pool and by service.
async fn group_daily_cost(
    State(state): State<ApiState>,
    Path(group): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let what = format!("team `{group}` has no allocated cost in these intervals; `GET /api/v1/cost-insights/groups` lists the teams");
    let of = (group.as_str(), RowsOf::Team(&group));
    insight(&state, &params, of, what, |r| r.team == group, true).await
}

/// Cost Insights' `getCatalogEntityDailyCost`: a service's cost (its entity's name), its
/// shares of the shared pools in `groupedCosts.pool`.
async fn entity_daily_cost(
    State(state): State<ApiState>,
    Path((kind, namespace, name)): Path<(String, String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let service = name.to_lowercase();
    let id = format!("{kind}:{namespace}/{name}");
    let what = format!("no service `{service}` in these intervals' allocations; the entity's name must be the service's name");
    let of = (id.as_str(), RowsOf::Service(&service));
    insight(&state, &params, of, what, |r| r.service == service, false).await
}

/// Cost Insights' `getAlerts`: the team's open alerts (anomalies, month-over-month changes,
/// budgets).
async fn group_alerts(State(state): State<ApiState>, Path(group): Path<String>) -> Response {
    match jobs::team_alerts(&state.store, &group).await {
        Ok(rows) => Json(
            rows.iter()
                .map(|r| {
                    cost_insights::alert(
                        &r.summary,
                        r.kind.as_str(),
                        &r.subject(),
                        &r.period,
                        r.state.as_str(),
                    )
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => query_error(e),
    }
}

/// Cost Insights' `getGroupProjects`: a team's services are its projects (`Project {id, name}`),
/// those with allocated cost in the last 90 days.
async fn group_projects(State(state): State<ApiState>, Path(group): Path<String>) -> Response {
    let names = match jobs::recent_names(&state.store, &state.cache).await {
        Ok(names) => names,
        Err(e) => return query_error(e),
    };
    let mut services: Vec<&str> = names
        .names
        .iter()
        .filter(|n| n[0] == group)
        .map(|n| n[1].as_str())
        .collect();
    services.sort_unstable();
    services.dedup();
    Json(
        services
            .iter()
            .map(|s| json!({"id": s, "name": s}))
            .collect::<Vec<_>>(),
    )
    .into_response()
}

/// Cost Insights' `getProjectDailyCost`: a project is a service; its shares of the shared
/// pools in `groupedCosts.pool`.
async fn project_daily_cost(
    State(state): State<ApiState>,
    Path(project): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let what = format!("no service `{project}` in these intervals' allocations; `GET /api/v1/cost-insights/groups/<team>/projects` lists a team's services");
    let of = (project.as_str(), RowsOf::Service(&project));
    insight(&state, &params, of, what, |r| r.service == project, false).await
}

/// The provider services of the last 90 days as `Product`s, for app-config's
/// `costInsights.products`.
async fn products(State(state): State<ApiState>) -> Response {
    match jobs::recent_names(&state.store, &state.cache).await {
        Ok(names) => Json(cost_insights::products(
            names
                .names
                .iter()
                .map(|n| cost_insights::product(&n[2], &n[3])),
        ))
        .into_response(),
        Err(e) => query_error(e),
    }
}

/// Cost Insights' `getProductInsights`: `product` (a key from `/products`), `group`,
/// `intervals`, optionally `project` (a service).
async fn product_insights(
    State(state): State<ApiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (Some(product), Some(group)) = (params.get("product"), params.get("group")) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "give `product` (a key from /api/v1/cost-insights/products) and `group` (a team)",
        );
    };
    let (iv, rows) = match intervals_rows(&state, &params, RowsOf::Team(group)).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let key = cost_insights::product_key(product);
    let is_product = |r: &crate::model::SeriesRow| {
        !key.is_empty() && cost_insights::product_key(cost_insights::product_of(r)) == key
    };
    if !rows.iter().any(is_product) {
        return query_error(ApiQueryError::NotFound(format!(
            "no product `{product}` in team `{group}`'s cost in these intervals; `GET /api/v1/cost-insights/products` lists the products"
        )));
    }
    let project = params.get("project").filter(|p| !p.is_empty());
    let kept: Vec<&crate::model::SeriesRow> = rows
        .iter()
        .filter(|r| r.team == *group && project.is_none_or(|p| r.service == *p) && is_product(r))
        .collect();
    Json(cost_insights::product_insights(product, &kept, iv)).into_response()
}

/// Cost Insights' `getDailyMetricData`: a usage source (`[[source]]`) is a metric.
async fn metric_data(
    State(state): State<ApiState>,
    Path(metric): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let iv = match intervals(&params) {
        Ok(iv) => iv,
        Err(m) => return refuse(StatusCode::BAD_REQUEST, m),
    };
    match jobs::metric_daily(&state.store, &metric, (iv.from, iv.end)).await {
        Ok(daily) => Json(cost_insights::metric_data(&metric, &daily, iv)).into_response(),
        Err(e) => query_error(e),
    }
}
