//! Billing sync runs: the facts of a window and the record of the calls that fetched them,
//! written together; failed runs are recorded too, since their calls were paid for.

use chrono::NaiveDate;
use sqlx::Row;

use super::connect::Store;
use super::facts::write_facts_sqlite;
use super::rows::{
    bind, insert_sync_run_sql, sync_run_decode, sync_run_params, ImportRecord, SyncRun,
    SYNC_RUN_COLUMNS,
};
use crate::model::{day_key, Fact, ImportSource};

impl Store {
    /// Replaces the window's facts and records the run, in one transaction.
    pub async fn commit_sync(
        &self,
        record: &ImportRecord,
        facts: &[Fact],
        run: &SyncRun,
    ) -> anyhow::Result<i64> {
        if let Some(file) = &self.sqlite_file {
            return file
                .write(|tx| {
                    let import_id = write_facts_sqlite(tx, record, facts)?;
                    tx.execute(
                        &insert_sync_run_sql(),
                        rusqlite::params_from_iter(sync_run_params(run, Some(import_id))),
                    )?;
                    Ok(import_id)
                })
                .await;
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
        source: ImportSource,
        account: &str,
        from: NaiveDate,
    ) -> anyhow::Result<Option<String>> {
        let row = sqlx::query(
            "SELECT fingerprint FROM sync_runs
             WHERE source = $1 AND account = $2 AND from_day = $3 AND status = 'ok'
             ORDER BY id DESC LIMIT 1",
        )
        .bind(source.as_str())
        .bind(account)
        .bind(day_key(from))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get(0)).transpose()?)
    }

    /// The most recent runs first.
    pub async fn sync_runs(&self, limit: i64) -> anyhow::Result<Vec<SyncRun>> {
        let sql = format!(
            "SELECT {} FROM sync_runs ORDER BY id DESC LIMIT $1",
            SYNC_RUN_COLUMNS.join(", ")
        );
        let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter().map(sync_run_decode).collect()
    }
}

async fn insert_run(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    run: &SyncRun,
    import_id: Option<i64>,
) -> anyhow::Result<()> {
    bind(
        sqlx::query(&insert_sync_run_sql()),
        sync_run_params(run, import_id),
    )
    .execute(&mut **tx)
    .await?;
    Ok(())
}
