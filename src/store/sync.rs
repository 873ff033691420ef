//! Billing sync runs: the facts of a window and the record of the calls that fetched them,
//! written together; failed runs are recorded too, since their calls were paid for.

use chrono::NaiveDate;
use sqlx::Row;

use super::{day_from, ImportRecord, Store};
use crate::model::{day_key, Fact};
use crate::money::Nanos;

pub(super) const INSERT_RUN_SQL: &str =
    "INSERT INTO sync_runs (created_at, source, account, from_day, to_day, status, calls,
                            cost_nanos, facts, estimated_days, message, import_id, fingerprint)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// How a sync of one account's window ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// The window's facts replaced what the store held for those days.
    Ok,
    /// The API failed (after retries); nothing was written for the window.
    Failed,
    /// The per-run call cap stopped it; nothing was written for the window.
    Capped,
    /// The source had not changed since the last import; nothing was written.
    Unchanged,
}

impl SyncStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncStatus::Ok => "ok",
            SyncStatus::Failed => "failed",
            SyncStatus::Capped => "capped",
            SyncStatus::Unchanged => "unchanged",
        }
    }

    fn parse(text: &str) -> SyncStatus {
        match text {
            "ok" => SyncStatus::Ok,
            "capped" => SyncStatus::Capped,
            "unchanged" => SyncStatus::Unchanged,
            _ => SyncStatus::Failed,
        }
    }
}

/// One account's sync of one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub created_at: String,
    pub source: String,
    pub account: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub status: SyncStatus,
    /// API requests made (every page counts).
    pub calls: i64,
    /// What those requests cost.
    pub cost: Nanos,
    pub facts: i64,
    pub estimated_days: i64,
    pub message: String,
    /// What the sync saw of its source (see migration 0005); empty for Cost Explorer.
    pub fingerprint: String,
}

impl Store {
    /// Replaces the window's facts and records the run, in one transaction.
    pub async fn commit_sync(
        &self,
        record: &ImportRecord,
        facts: &[Fact],
        run: &SyncRun,
    ) -> anyhow::Result<i64> {
        if let Some(file) = &self.sqlite_file {
            return super::sqlite_bulk::replace_facts(file, record, facts, Some(run)).await;
        }
        let mut tx = self.pool.begin().await?;
        let import_id = self.replace_facts_in(&mut tx, record, facts).await?;
        insert_run(&mut tx, run, Some(import_id)).await?;
        tx.commit().await?;
        Ok(import_id)
    }

    /// Records a run that wrote no facts (failed, capped or unchanged).
    pub async fn record_sync_without_facts(&self, run: &SyncRun) -> anyhow::Result<()> {
        let mut tx = self.pool.begin().await?;
        insert_run(&mut tx, run, None).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The fingerprint of the last run of `source`/`account` starting on `from` that imported
    /// facts: what the store holds now.
    pub async fn last_imported_fingerprint(
        &self,
        source: &str,
        account: &str,
        from: NaiveDate,
    ) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(
            "SELECT fingerprint FROM sync_runs
             WHERE source = $1 AND account = $2 AND from_day = $3 AND status = 'ok'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(source)
        .bind(account)
        .bind(day_key(from))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The most recent runs first.
    pub async fn sync_runs(&self, limit: i64) -> anyhow::Result<Vec<SyncRun>> {
        let rows = sqlx::query(
            "SELECT created_at, source, account, from_day, to_day, status, calls, cost_nanos,
                    facts, estimated_days, message, fingerprint
             FROM sync_runs ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(SyncRun {
                    created_at: row.try_get(0)?,
                    source: row.try_get(1)?,
                    account: row.try_get(2)?,
                    from: day_from(row, 3)?,
                    to: day_from(row, 4)?,
                    status: SyncStatus::parse(&row.try_get::<String, _>(5)?),
                    calls: row.try_get(6)?,
                    cost: Nanos(row.try_get::<i64, _>(7)?.into()),
                    facts: row.try_get(8)?,
                    estimated_days: row.try_get(9)?,
                    message: row.try_get(10)?,
                    fingerprint: row.try_get(11)?,
                })
            })
            .collect()
    }
}

async fn insert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &SyncRun,
    import_id: Option<i64>,
) -> anyhow::Result<()> {
    sqlx::query(INSERT_RUN_SQL)
        .bind(&run.created_at)
        .bind(&run.source)
        .bind(&run.account)
        .bind(day_key(run.from))
        .bind(day_key(run.to))
        .bind(run.status.as_str())
        .bind(run.calls)
        .bind(api_cost_nanos(run.cost))
        .bind(run.facts)
        .bind(run.estimated_days)
        .bind(&run.message)
        .bind(import_id)
        .bind(&run.fingerprint)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The API cost of a run, in nano-units (cents a call: far inside an i64).
pub(super) fn api_cost_nanos(cost: Nanos) -> i64 {
    i64::try_from(cost.0).unwrap_or(i64::MAX)
}
