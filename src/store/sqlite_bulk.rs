//! The SQLite fast path for bulk work: rusqlite on its own connection to the store's file.
//! sqlx's SQLite driver costs ~15 us per row (a worker thread and a channel per row), which
//! made writing a batch of facts and reading a range of them most of an import + allocate.
//! This module knows no table: callers hand it the work (a closure over a transaction or a
//! connection), written with the same row definitions (`rows.rs`), SQL and transaction
//! boundaries as the sqlx path; WAL mode lets the two connections share the file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::phase;

/// A SQLite store's database file, opened per bulk operation.
#[derive(Debug, Clone)]
pub(super) struct SqliteFile {
    path: PathBuf,
    /// How long to wait for another writer (`busy_timeout`).
    wait: Duration,
}

impl SqliteFile {
    /// The file of a `sqlite://FILE?...` URL (`None` for an in-memory database).
    pub fn of(url: &str, wait: Duration) -> Option<SqliteFile> {
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))?;
        let path = rest.split('?').next().unwrap_or("");
        if path.is_empty() || path.starts_with(":memory:") {
            None
        } else {
            Some(SqliteFile {
                path: PathBuf::from(path),
                wait,
            })
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open(&self) -> anyhow::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .with_context(|| format!("opening the SQLite store {}", self.path.display()))?;
        conn.busy_timeout(self.wait)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Ok(conn)
    }

    /// Runs `work` in one write transaction (taking the write lock at once), committed when
    /// it returns `Ok`, rolled back otherwise.
    pub async fn write<T>(
        &self,
        work: impl FnOnce(&rusqlite::Transaction<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        blocking(|| {
            let mut conn = self.open()?;
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            phase::mark("write began");
            let value = work(&tx)?;
            phase::mark("committing");
            tx.commit()?;
            phase::mark("committed");
            Ok(value)
        })
    }

    /// Runs `work` over a connection of its own.
    pub async fn read<T>(
        &self,
        work: impl FnOnce(&Connection) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        blocking(|| work(&self.open()?))
    }
}

/// Runs blocking work without stalling a multi-threaded runtime's other tasks.
fn blocking<T>(work: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_url() {
        let path = |url| SqliteFile::of(url, Duration::ZERO).map(|f| f.path().to_path_buf());
        assert_eq!(
            path("sqlite://costsplit.db?mode=rwc"),
            Some(PathBuf::from("costsplit.db"))
        );
        assert_eq!(path("sqlite:///tmp/a.db"), Some(PathBuf::from("/tmp/a.db")));
        assert_eq!(path("sqlite::memory:"), None);
        assert_eq!(path("postgres://x@h/db"), None);
    }
}
