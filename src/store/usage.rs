//! Live usage samples: each (day, source) collection replaces that day's samples of the source
//! together with its run record, in one transaction; a failed collection writes only its run
//! record, so the samples it could not take are never replaced by nothing.

use chrono::NaiveDate;
use sqlx::Row;

use super::connect::{Store, Writer};
use super::rows::{insert_sql, Cells};
use crate::model::{day_key, Timestamp, UsageSample};

/// How a collection of one source for one day ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageStatus {
    Ok,
    Failed,
}

impl UsageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            UsageStatus::Ok => "ok",
            UsageStatus::Failed => "failed",
        }
    }
}

/// The record of one collection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRun {
    pub created_at: Timestamp,
    pub day: NaiveDate,
    pub source: String,
    pub kind: String,
    pub status: UsageStatus,
    pub samples: i64,
    /// What went wrong, or notes (members the map names no service for, a key budget hit).
    /// Never holds a secret: sources build it from their own words and redacted errors.
    pub message: String,
}

impl Store {
    /// Records a collection; when it succeeded, its samples replace that day's samples of the
    /// source, in the same transaction. Returns the run id.
    pub async fn record_usage(
        &self,
        run: &UsageRun,
        samples: &[UsageSample],
    ) -> anyhow::Result<i64> {
        let mut tx = self.pool.begin().await?;
        self.serialize(&mut tx, Writer::Usage).await?;
        let run_id: i64 = sqlx::query(
            "INSERT INTO usage_runs (created_at, day, source, kind, status, samples, message)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(run.created_at.to_string())
        .bind(day_key(run.day))
        .bind(&run.source)
        .bind(&run.kind)
        .bind(run.status.as_str())
        .bind(run.samples)
        .bind(&run.message)
        .fetch_one(&mut *tx)
        .await?
        .try_get(0)?;
        if run.status == UsageStatus::Ok {
            sqlx::query("DELETE FROM usage_samples WHERE source = $1 AND day = $2")
                .bind(&run.source)
                .bind(day_key(run.day))
                .execute(&mut *tx)
                .await?;
            const COLUMNS: [&str; 7] = [
                "day", "source", "member", "service", "value", "unit", "run_id",
            ];
            for chunk in samples.chunks(100) {
                let sql = insert_sql("usage_samples", &COLUMNS, chunk.len());
                let mut query = sqlx::query(&sql);
                for s in chunk {
                    query = query
                        .bind(day_key(s.day))
                        .bind(&s.source)
                        .bind(&s.member)
                        .bind(&s.service)
                        .bind(&s.value)
                        .bind(&s.unit)
                        .bind(run_id);
                }
                query.execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(run_id)
    }

    /// Samples of the named sources with `from <= day <= to`, by source, day and member.
    pub async fn usage_samples(
        &self,
        sources: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<UsageSample>> {
        // The sources as placeholders $3, $4, ...: only their rows are read.
        let mut sql = "SELECT day, source, member, service, value, unit FROM usage_samples
             WHERE day >= $1 AND day <= $2"
            .to_string();
        if !sources.is_empty() {
            let list: Vec<String> = (0..sources.len()).map(|i| format!("${}", i + 3)).collect();
            sql.push_str(&format!(" AND source IN ({})", list.join(", ")));
        }
        sql.push_str(" ORDER BY source, day, member");
        let mut query = sqlx::query(&sql).bind(day_key(from)).bind(day_key(to));
        for source in sources {
            query = query.bind(source);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(UsageSample {
                day: row.day(0)?,
                source: row.try_get(1)?,
                member: row.try_get(2)?,
                service: row.try_get(3)?,
                value: row.try_get(4)?,
                unit: row.try_get(5)?,
            });
        }
        Ok(out)
    }

    /// The latest collections, newest first.
    pub async fn usage_runs(&self, limit: i64) -> anyhow::Result<Vec<UsageRun>> {
        let rows = sqlx::query(
            "SELECT created_at, day, source, kind, status, samples, message FROM usage_runs
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get(4)?;
                Ok(UsageRun {
                    created_at: row.timestamp(0)?,
                    day: row.day(1)?,
                    source: row.try_get(2)?,
                    kind: row.try_get(3)?,
                    status: if status == "ok" {
                        UsageStatus::Ok
                    } else {
                        UsageStatus::Failed
                    },
                    samples: row.try_get(5)?,
                    message: row.try_get(6)?,
                })
            })
            .collect()
    }
}
