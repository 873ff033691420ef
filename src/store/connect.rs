//! Opening the store: the pool, the backend, migrations, the writers' turns, and what is
//! printed of a store URL (never its password).

use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use super::rows::{bind, Param};
use super::sqlite_bulk::SqliteFile;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row INSERT. SQLite (through sqlx) slows down super-linearly with the number
/// of bind parameters per statement, so it gets small batches (measured: 20 rows x 15 columns
/// is ~15x faster than 1000 rows); PostgreSQL pays a round trip per statement, so it gets
/// large ones (within its 65,535 bind limit).
pub(super) fn rows_per_insert(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 20,
        Backend::Postgres => 1000,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone)]
pub struct Store {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
    /// The database file of a SQLite store: bulk fact writes and reads go through
    /// [`SqliteFile`] on their own connection (sqlx costs ~15 us per row there).
    pub(super) sqlite_file: Option<SqliteFile>,
}

/// How long a SQLite writer waits for another process's write to finish before giving up:
/// `COSTSPLIT_STORE_WAIT_SECONDS`, default 60 (an import of a month of millions of facts
/// holds the write lock for seconds).
pub fn sqlite_wait() -> Duration {
    let seconds = std::env::var("COSTSPLIT_STORE_WAIT_SECONDS")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(60);
    Duration::from_secs(seconds)
}

/// SQLite's "database is locked" after the wait, said as what it means and what to do.
pub fn explain_busy(error: anyhow::Error) -> anyhow::Error {
    let busy = error.chain().any(|cause| {
        let text = cause.to_string();
        text.contains("database is locked") || text.contains("database is busy")
    });
    if !busy {
        return error;
    }
    anyhow::anyhow!(
        "the store is busy: another costsplit process (an import, sync or allocate of a large period) has been writing it for more than {} s; nothing was written, run this again when it finishes (COSTSPLIT_STORE_WAIT_SECONDS waits longer)",
        sqlite_wait().as_secs()
    )
}

/// Hides the passwords of a store URL, for messages and logs: the `user:password@` form and
/// `password=` / `sslpassword=` query parameters.
pub fn redact_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let base = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &base[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &base[..scheme + 3], &base[at..]),
                None => base.to_string(),
            }
        }
        _ => base.to_string(),
    };
    let Some(query) = query else {
        return base;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _))
                if key.eq_ignore_ascii_case("password")
                    || key.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{key}=***")
            }
            _ => pair.to_string(),
        })
        .collect();
    format!("{base}?{}", query.join("&"))
}

/// Holds an exclusive lock on `<database>.lock` until dropped, waiting for it if another
/// process holds it.
async fn lock_file(database: &std::path::Path) -> anyhow::Result<std::fs::File> {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    let path = std::path::PathBuf::from(name);
    tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening the lock file {}", path.display()))?;
        file.lock()
            .with_context(|| format!("locking {}", path.display()))?;
        Ok(file)
    })
    .await
    .context("the store lock task stopped")?
}

/// What a write replaces; each has its own PostgreSQL advisory lock key (arbitrary constants,
/// "costsplit" in ASCII plus a number, so they do not meet another application's keys).
#[derive(Debug, Clone, Copy)]
#[repr(i64)]
pub(super) enum Writer {
    Facts = 0x636f_7374_7370_0001,
    Allocations = 0x636f_7374_7370_0002,
    Usage = 0x636f_7374_7370_0003,
}

impl Store {
    /// Connects (creating a SQLite file on first use) and applies pending migrations.
    pub async fn connect(url: &str) -> anyhow::Result<Store> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            anyhow::bail!(
                "unsupported store URL `{}`: use sqlite://FILE or postgres://USER@HOST/DB",
                redact_url(url)
            );
        };
        let (url, max_connections) = match backend {
            Backend::Sqlite if !url.contains("mode=") => {
                let sep = if url.contains('?') { '&' } else { '?' };
                (format!("{url}{sep}mode=rwc"), 1)
            }
            Backend::Sqlite => (url.to_string(), 1),
            Backend::Postgres => {
                crate::pgtls::check_url(url).map_err(|e| {
                    anyhow::anyhow!("cannot open the store at {}: {e}", redact_url(url))
                })?;
                (url.to_string(), 4)
            }
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    if backend == Backend::Sqlite {
                        sqlx::query("PRAGMA journal_mode = WAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query("PRAGMA synchronous = NORMAL")
                            .execute(&mut *conn)
                            .await?;
                        sqlx::query(&format!(
                            "PRAGMA busy_timeout = {}",
                            sqlite_wait().as_millis()
                        ))
                        .execute(&mut *conn)
                        .await?;
                        sqlx::query("PRAGMA foreign_keys = ON")
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|e| anyhow::anyhow!("{}", crate::pgtls::explain(&scrub(&e.to_string(), &url))))
            .with_context(|| format!("cannot open the store at {}", redact_url(&url)))?;
        let sqlite_file = match backend {
            Backend::Sqlite => SqliteFile::of(&url, sqlite_wait()),
            Backend::Postgres => None,
        };
        let store = Store {
            pool,
            backend,
            sqlite_file,
        };
        // Two processes starting on a fresh SQLite file would both create the tables; a lock
        // file beside the database makes them migrate one after the other (PostgreSQL's
        // migrator takes its own lock).
        let _migrating = match &store.sqlite_file {
            Some(file) => Some(lock_file(file.path()).await?),
            None => None,
        };
        store.migrate().await?;
        Ok(store)
    }

    /// Makes writers of the same table take turns, on PostgreSQL as SQLite's write lock does:
    /// a transaction-scoped advisory lock taken before the first DELETE, so a second
    /// replacement waits for the first to commit and then deletes what it wrote (under READ
    /// COMMITTED each statement sees what committed before it began). Without it, two imports
    /// of one month both delete the old rows and both insert: the month doubles.
    pub(super) async fn serialize(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        writer: Writer,
    ) -> anyhow::Result<()> {
        if self.backend == Backend::Postgres {
            sqlx::query("SELECT pg_advisory_xact_lock($1)")
                .bind(writer as i64)
                .execute(&mut **tx)
                .await
                .context("waiting for another costsplit writing the same data")?;
        }
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies pending migrations (idempotent).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .context("applying database migrations")
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The rows of a query of two text columns over the days `from..=to` (`$1`, `$2`).
    pub(super) async fn text_pairs(
        &self,
        sql: &str,
        (from, to): (NaiveDate, NaiveDate),
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rows = bind(sqlx::query(sql), days(from, to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Runs one SQL statement as given. For tests that need to break the store on purpose
    /// (a trigger that fails half-way through an import); not for application code.
    #[doc(hidden)]
    pub async fn execute_for_tests(&self, sql: &str) -> anyhow::Result<()> {
        sqlx::query(sql).execute(&self.pool).await?;
        Ok(())
    }

    /// Number of rows in a table (for tests and `status`-like output).
    pub async fn count(&self, table: Table) -> anyhow::Result<i64> {
        let sql = format!("SELECT COUNT(*) FROM {}", table.name());
        Ok(sqlx::query(&sql).fetch_one(&self.pool).await?.try_get(0)?)
    }
}

/// Tables that [`Store::count`] can count.
#[derive(Debug, Clone, Copy)]
pub enum Table {
    Facts,
    Imports,
    Allocations,
    AllocationRuns,
    SyncRuns,
    UsageSamples,
    UsageRuns,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Facts => "billing_facts",
            Table::Imports => "imports",
            Table::Allocations => "allocations",
            Table::AllocationRuns => "allocation_runs",
            Table::SyncRuns => "sync_runs",
            Table::UsageSamples => "usage_samples",
            Table::UsageRuns => "usage_runs",
        }
    }
}

/// Removes a URL (and so any password in it) from a driver error message.
fn scrub(message: &str, url: &str) -> String {
    message.replace(url, &redact_url(url))
}

/// The parameters `$1`, `$2` of a day range.
pub(super) fn days(from: NaiveDate, to: NaiveDate) -> [Param<'static>; 2] {
    [
        Param::Owned(crate::model::day_key(from)),
        Param::Owned(crate::model::day_key(to)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact_url("postgres://app:s3cret@db:5432/costs"),
            "postgres://app:***@db:5432/costs"
        );
        assert_eq!(redact_url("sqlite://costsplit.db"), "sqlite://costsplit.db");
        assert_eq!(
            redact_url("postgres://app@db/costs?sslmode=require&password=s3cret"),
            "postgres://app@db/costs?sslmode=require&password=***"
        );
        assert_eq!(
            redact_url("postgres://app:a@b@db/costs?PASSWORD=x&sslpassword=y"),
            "postgres://app:***@db/costs?PASSWORD=***&sslpassword=***"
        );
    }
}
