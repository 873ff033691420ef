//! The daemon's HTTP endpoint: `/healthz` (the process answers), `/readyz` (the store answers
//! and rules are loaded; which rule set is active, whether this replica leads) and `/metrics`
//! (Prometheus text format). Nothing here holds a secret: metrics are counts and times.

use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use super::schedule::Job;
use crate::jobs::Store;

/// What one job did, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct JobStats {
    pub runs: u64,
    pub failures: u64,
    /// Unix seconds of the last success.
    pub last_success: Option<i64>,
    pub last_duration_seconds: f64,
}

/// The daemon's state the endpoint shows.
#[derive(Debug, Default)]
pub struct Status {
    pub rules_hash: Option<String>,
    /// The last rules edit that failed to validate, with its first error (file:line).
    pub rules_error: Option<String>,
    pub leader: bool,
    pub jobs: std::collections::BTreeMap<&'static str, JobStats>,
    pub cost_explorer_calls: u64,
    /// In nano-dollars.
    pub cost_explorer_cost_nanos: i128,
    pub facts_written: u64,
    pub alerts_detected: u64,
    pub alerts_sent: u64,
    pub alerts_failed: u64,
    /// Months whose allocations do not follow their facts (`YYYY-MM`, why), as the last
    /// sync or allocate left them; `None` before the first look.
    pub stale_months: Option<Vec<(String, &'static str)>>,
    /// No job has a tick to come: the daemon idles.
    pub no_future_tick: bool,
}

/// How long an endpoint waits for the store: a store that stopped answering shows as
/// `store: unreachable` at once, not after the pool's own 10 s.
const ENDPOINT_STORE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

#[derive(Clone)]
pub struct AppState {
    pub status: Arc<Mutex<Status>>,
    pub store: Store,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let store_ok = matches!(
        tokio::time::timeout(ENDPOINT_STORE_TIMEOUT, state.store.ping()).await,
        Ok(Ok(()))
    );
    let (hash, error, leader, stale, idle) = {
        let s = state.status.lock().expect("status lock");
        (
            s.rules_hash.clone(),
            s.rules_error.clone(),
            s.leader,
            s.stale_months.clone(),
            s.no_future_tick,
        )
    };
    let mut body = String::new();
    let _ = writeln!(
        body,
        "store: {}",
        if store_ok { "ok" } else { "unreachable" }
    );
    let _ = writeln!(body, "rules: {}", hash.as_deref().unwrap_or("none loaded"));
    if let Some(error) = error {
        let _ = writeln!(body, "rules edit refused: {error}");
    }
    let _ = writeln!(body, "role: {}", if leader { "leader" } else { "standby" });
    if idle {
        let _ = writeln!(
            body,
            "schedule: no job has a tick to come; nothing will run (check [daemon.schedule])"
        );
    }
    match stale.as_deref() {
        None => {}
        Some([]) => {
            let _ = writeln!(body, "stale months: none");
        }
        Some(months) => {
            let listed: Vec<String> = months
                .iter()
                .map(|(month, why)| format!("{month} ({why})"))
                .collect();
            let _ = writeln!(
                body,
                "stale months: {} (the next allocate job allocates them)",
                listed.join(", ")
            );
        }
    }
    let status = if store_ok && hash.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, body)
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    let depth = tokio::time::timeout(ENDPOINT_STORE_TIMEOUT, state.store.outbox_depth())
        .await
        .ok()
        .and_then(Result::ok);
    let s = state.status.lock().expect("status lock");
    let mut out = String::new();
    job_metrics(&s, &mut out);
    for (name, kind, help, value) in daemon_metrics(&s, depth) {
        if let Some(value) = value {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
            );
        }
    }
    if let Some(hash) = &s.rules_hash {
        let _ = writeln!(
            out,
            "# HELP costsplit_rules_info The active rule set.\n# TYPE costsplit_rules_info gauge\ncostsplit_rules_info{{hash=\"{hash}\"}} 1"
        );
    }
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        out,
    )
}

/// The per-job families: each family's HELP and TYPE, then all its samples together, as the
/// format requires.
fn job_metrics(s: &Status, out: &mut String) {
    let families: [(&str, &str, &str); 4] = [
        (
            "costsplit_job_runs_total",
            "counter",
            "Job runs since start.",
        ),
        (
            "costsplit_job_failures_total",
            "counter",
            "Failed job runs since start.",
        ),
        (
            "costsplit_job_last_success_timestamp_seconds",
            "gauge",
            "When the job last succeeded.",
        ),
        (
            "costsplit_job_last_duration_seconds",
            "gauge",
            "How long the job's last run took.",
        ),
    ];
    for (index, (name, kind, help)) in families.iter().enumerate() {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for job in Job::ALL {
            let stats = s.jobs.get(job.as_str()).cloned().unwrap_or_default();
            let value = match index {
                0 => Some(stats.runs.to_string()),
                1 => Some(stats.failures.to_string()),
                2 => stats.last_success.map(|t| t.to_string()),
                _ => Some(format!("{:.3}", stats.last_duration_seconds)),
            };
            if let Some(value) = value {
                let _ = writeln!(out, "{name}{{job=\"{}\"}} {value}", job.as_str());
            }
        }
    }
}

/// The daemon-wide single samples: (name, type, help, value when known).
fn daemon_metrics(
    s: &Status,
    depth: Option<i64>,
) -> [(&'static str, &'static str, &'static str, Option<String>); 9] {
    [
        (
            "costsplit_cost_explorer_calls_total",
            "counter",
            "Cost Explorer requests made (each is billed by AWS).",
            Some(s.cost_explorer_calls.to_string()),
        ),
        (
            "costsplit_cost_explorer_cost_dollars_total",
            "counter",
            "What those requests cost, in USD.",
            Some(crate::money::Nanos(s.cost_explorer_cost_nanos).to_string()),
        ),
        (
            "costsplit_facts_written_total",
            "counter",
            "Daily facts written by syncs.",
            Some(s.facts_written.to_string()),
        ),
        (
            "costsplit_alerts_detected_total",
            "counter",
            "Alerts newly put in the outbox.",
            Some(s.alerts_detected.to_string()),
        ),
        (
            "costsplit_alerts_sent_total",
            "counter",
            "Alerts delivered to Slack.",
            Some(s.alerts_sent.to_string()),
        ),
        (
            "costsplit_alerts_failed_total",
            "counter",
            "Alerts Slack refused for good.",
            Some(s.alerts_failed.to_string()),
        ),
        (
            "costsplit_leader",
            "gauge",
            "1 when this replica runs the jobs.",
            Some(u8::from(s.leader).to_string()),
        ),
        (
            "costsplit_outbox_depth",
            "gauge",
            "Alerts waiting for delivery.",
            depth.map(|d| d.to_string()),
        ),
        (
            "costsplit_stale_months",
            "gauge",
            "Months whose allocations do not follow their facts (allocated at the next allocate job).",
            s.stale_months.as_ref().map(|m| m.len().to_string()),
        ),
    ]
}
