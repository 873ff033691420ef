//! What the daemon keeps in the store: its job runs, and the lease that lets one replica of
//! several run the jobs (a PostgreSQL session advisory lock held on a connection of its own:
//! if the process dies, the server ends the session and the lock is free for a standby; on
//! SQLite an exclusive lock on a file beside the database).

use sqlx::{AnyConnection, Row};

use super::connect::{Backend, Store};
use super::rows::Cells;
use crate::model::Timestamp;

/// The advisory lock key of the active replica ("costsplit" in ASCII and a number, like the
/// writers' keys).
const LEADER_KEY: i64 = 0x636f_7374_7370_0010;

/// One job run, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    pub job: String,
    /// The scheduled time it answered.
    pub tick: Timestamp,
    pub started_at: Timestamp,
    pub finished_at: Timestamp,
    pub ok: bool,
    /// What it did, or why it failed.
    pub reason: String,
}

/// Held while this process is the replica that runs jobs; dropping it gives the lease up.
pub struct Leadership {
    lease: Lease,
}

enum Lease {
    /// The connection the PostgreSQL session advisory lock lives on.
    Postgres(AnyConnection),
    /// An exclusive lock on `<database>.leader` (the operating system frees it when the
    /// process ends, however it ends).
    Sqlite {
        /// Held, not read: the lock lasts as long as the open file.
        _file: std::fs::File,
    },
    /// An in-memory store: one process by definition.
    Memory,
}

/// How long the lead's check may take before the lead counts as lost (a store that stopped
/// answering must not keep a replica leading on a connection nobody can reach).
const LEAD_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Leadership {
    /// Whether the lead is still this replica's: its lock's connection answers in time.
    pub async fn still_held(&mut self) -> bool {
        match &mut self.lease {
            Lease::Sqlite { .. } | Lease::Memory => true,
            Lease::Postgres(conn) => matches!(
                tokio::time::timeout(
                    LEAD_CHECK_TIMEOUT,
                    sqlx::query("SELECT 1").execute(&mut *conn)
                )
                .await,
                Ok(Ok(_))
            ),
        }
    }
}

impl Store {
    /// Takes the lead if no other replica holds it. Never waits. On PostgreSQL a session
    /// advisory lock; on SQLite an exclusive lock on a file beside the database, so two
    /// `costsplit run` on one file never both run the jobs.
    pub async fn try_lead(&self) -> anyhow::Result<Option<Leadership>> {
        if self.backend == Backend::Sqlite {
            let Some(database) = self.sqlite_file.as_ref().map(|f| f.path().to_path_buf()) else {
                return Ok(Some(Leadership {
                    lease: Lease::Memory,
                }));
            };
            return tokio::task::spawn_blocking(move || {
                let mut name = database.into_os_string();
                name.push(".leader");
                let path = std::path::PathBuf::from(name);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&path)
                    .map_err(|e| {
                        anyhow::anyhow!("opening the lead's lock file {}: {e}", path.display())
                    })?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(Leadership {
                        lease: Lease::Sqlite { _file: file },
                    })),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(e)) => {
                        Err(anyhow::anyhow!("locking {}: {e}", path.display()))
                    }
                }
            })
            .await
            .map_err(|e| anyhow::anyhow!("the lead's lock task stopped: {e}"))?;
        }
        let mut conn = self.pool.acquire().await?;
        let taken: bool = sqlx::query("SELECT pg_try_advisory_lock($1)")
            .bind(LEADER_KEY)
            .fetch_one(&mut *conn)
            .await?
            .try_get(0)?;
        Ok(taken.then(|| Leadership {
            // Detached from the pool: the lock ends when this connection closes (the lead is
            // given up, or the process dies), never lingers on a pooled one.
            lease: Lease::Postgres(conn.detach()),
        }))
    }

    /// Whether the store answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        Ok(())
    }

    pub async fn record_job_run(&self, run: &JobRun) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO job_runs (job, tick, started_at, finished_at, outcome, reason)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&run.job)
        .bind(run.tick.to_string())
        .bind(run.started_at.to_string())
        .bind(run.finished_at.to_string())
        .bind(if run.ok { "ok" } else { "failed" })
        .bind(&run.reason)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The latest tick a job answered successfully.
    pub async fn last_ok_tick(&self, job: &str) -> anyhow::Result<Option<Timestamp>> {
        let row = sqlx::query("SELECT MAX(tick) FROM job_runs WHERE job = $1 AND outcome = 'ok'")
            .bind(job)
            .fetch_one(&self.pool)
            .await?;
        match row.try_get::<Option<String>, _>(0)? {
            None => Ok(None),
            Some(_) => row.maybe_timestamp(0),
        }
    }

    /// The latest job runs, newest first.
    pub async fn job_runs(&self, limit: i64) -> anyhow::Result<Vec<JobRun>> {
        let rows = sqlx::query(
            "SELECT job, tick, started_at, finished_at, outcome, reason FROM job_runs
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(JobRun {
                    job: row.text(0)?,
                    tick: row.timestamp(1)?,
                    started_at: row.timestamp(2)?,
                    finished_at: row.timestamp(3)?,
                    ok: row.text(4)? == "ok",
                    reason: row.text(5)?,
                })
            })
            .collect()
    }

    /// Pending alerts in the outbox.
    pub async fn outbox_depth(&self) -> anyhow::Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM alerts WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }
}
