//! The jobs the CLI and the daemon run, one file per kind: import billing files
//! (`import.rs`), allocate (`allocate.rs`), sync billing and exports (`sync.rs`), measure
//! usage (`usage.rs`), detect and enqueue alerts (`alerts.rs`), deliver the outbox
//! (`deliver.rs`), and the reports (`reports.rs`). Each is a short composition of ingest,
//! rules, allocate, alert, notify and store. Every job is given the one [`Clock`]; a job that
//! waits or sleeps is given the [`Shutdown`] signal too. The faces (CLI, daemon) reach the
//! rest of the library through here.

mod alerts;
mod allocate;
mod api;
mod budgets;
mod catalog;
mod deliver;
mod demo;
mod engine;
mod generate;
mod import;
mod page;
pub mod reports;
mod rules;
mod sync;
mod units;
mod usage;

pub use crate::clock::{Clock, Shutdown, ShutdownTrigger};
pub use crate::rules::Rules;
pub use crate::store::{anomaly_of, AlertMark, JobRun, Leadership, Store, SyncStatus, UsageStatus};
pub use alerts::{detect_alerts, enqueue_alerts, Detected};
pub use allocate::{
    allocate_range, allocation_window, compute_allocations, stale_months, AllocateSummary,
    Computed, StaleMonth, StaleReason,
};
pub use api::{
    cached_answer, cost_rows, last_complete_day, metric_daily, recent_names, team_alerts, ApiCache,
    ApiQueryError, RecentNames,
};
pub use budgets::{budget_histories, budget_statuses, check_budgets, last_allocated_day};
pub use catalog::{not_in_catalog, sync_catalog, CatalogSync, NotInCatalog};
pub use deliver::{deliver_alerts, DeliverySummary};
pub use demo::{demo, Demo};
pub use engine::{facts_query, run_spark, Dialect, EngineFormat, SparkOutcome, SparkRun};
pub use generate::{generate, generate_cur2, generate_split_cost};
pub use import::{
    check_facts_files, fetch_s3_facts, import_and_allocate, import_files, ImportSummary,
};
pub use page::{page_view, warm_api_cache};
pub use reports::report;
pub use rules::{
    catalog_in_force, check_rules, load_rules, load_rules_checked, rule_files, slack_settings,
    RulesCheck,
};
pub use sync::{sync_billing, sync_exports, SyncSummary, EXPORT_SOURCE};
pub use units::{push_unit_values, unit_summaries, PushError};
pub use usage::{sync_usage, UsageSyncSummary};

use crate::model::MessageState;
use crate::store::{OutboxRow, SyncRun, UsageRun};

/// Opens the store at `url`, runs `work` with it and closes it, whatever `work` returned:
/// the one way a one-off command uses the store.
pub async fn with_store<T>(
    url: &str,
    work: impl AsyncFnOnce(&Store) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let store = Store::connect(url).await?;
    let outcome = work(&store).await;
    store.close().await;
    outcome
}

/// The outbox, optionally only the messages in one state, oldest first.
pub async fn list_alerts(
    store: &Store,
    state: Option<MessageState>,
) -> anyhow::Result<Vec<OutboxRow>> {
    store.list_alerts(state).await
}

/// The anomalies marked from Slack ("expected", "planned").
pub async fn alert_marks(store: &Store) -> anyhow::Result<Vec<AlertMark>> {
    store.alert_marks().await
}

/// The latest billing sync runs, newest first.
pub async fn sync_runs(store: &Store, limit: i64) -> anyhow::Result<Vec<SyncRun>> {
    store.sync_runs(limit).await
}

/// The latest usage collections, newest first.
pub async fn usage_runs(store: &Store, limit: i64) -> anyhow::Result<Vec<UsageRun>> {
    store.usage_runs(limit).await
}
