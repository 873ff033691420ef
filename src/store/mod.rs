//! The store: the only module that runs SQL. SQLite (embedded default) and PostgreSQL behind
//! one `sqlx::Any` pool, with one SQL text for both (`$N` placeholders, BIGINT money in
//! nano-units, TEXT days). Every write that replaces data runs in one transaction.
//!
//! One file per table (or family of tables); `rows.rs` declares each bulk row once for both
//! drivers, `sqlite_bulk.rs` runs work on SQLite's own fast connection, `connect.rs` opens it.

mod allocations;
mod connect;
mod daemon;
mod facts;
mod marks;
mod outbox;
mod phase;
mod rows;
mod runs;
mod sqlite_bulk;
mod units;
mod usage;

pub use crate::model::{SeriesRow, ServiceTotal};
pub use allocations::RowsOf;
pub use connect::{explain_busy, redact_url, sqlite_wait, Backend, Store, Table};
pub use daemon::{JobRun, Leadership};
pub use facts::DayMark;
pub use marks::{anomaly_of, AlertMark};
pub use outbox::{AttemptOutcome, EnqueueResult, NewAlert, OutboxRow};
pub use rows::{sort_facts, FactScope, ImportRecord, RunRecord, SyncRun, SyncStatus};
pub use usage::{UsageRun, UsageStatus};
