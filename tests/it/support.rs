//! Test harness: a fresh store per test on SQLite (temp file) or real PostgreSQL (a database
//! per test on 127.0.0.1:5432, dropped afterwards), paths to test data, and rule loading.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use costsplit::rules::Rules;
use costsplit::store::Store;
use sqlx::{Connection, Executor};

/// Where the PostgreSQL server for tests is; a database is created per test.
pub fn pg_admin_url() -> String {
    std::env::var("COSTSPLIT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn repo_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub const BOTH: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

/// A store that cleans up after itself.
pub struct TestStore {
    pub store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

impl TestStore {
    pub async fn new(kind: Kind) -> TestStore {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("costsplit.db").display());
                let store = Store::connect(&url).await.expect("sqlite store opens");
                TestStore {
                    store,
                    url,
                    _dir: Some(dir),
                    pg_database: None,
                }
            }
            Kind::Postgres => {
                static COUNTER: AtomicUsize = AtomicUsize::new(0);
                let name = format!(
                    "costsplit_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    chrono::Utc::now().timestamp_micros() % 1_000_000
                );
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect(
                    "PostgreSQL on 127.0.0.1:5432 is reachable (set COSTSPLIT_TEST_PG_URL)",
                );
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let (base, _) = admin.rsplit_once('/').expect("admin URL has a database");
                let url = format!("{base}/{name}");
                let store = Store::connect(&url).await.expect("postgres store opens");
                TestStore {
                    store,
                    url,
                    _dir: None,
                    pg_database: Some(name),
                }
            }
        }
    }
}

impl TestStore {
    /// The URL, for opening a second connection as a restarted process would.
    pub fn store_url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        let admin = pg_admin_url();
        // Drop the database from a fresh runtime on another thread (Drop cannot await).
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                Some(())
            })
        })
        .join();
    }
}

/// Loads rules from text; panics with every diagnostic if they do not validate.
pub fn rules(files: &[(&str, &str)]) -> Rules {
    let loaded = costsplit::rules::load_texts(files);
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "rules do not validate: {errors:#?}");
    loaded.rules.expect("no errors")
}

pub fn day(text: &str) -> chrono::NaiveDate {
    costsplit::model::parse_day(text).expect("valid test day")
}

pub const NOW: &str = "2026-01-01T00:00:00Z";
