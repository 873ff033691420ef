//! The store: the only module that runs SQL. SQLite (embedded default) and PostgreSQL behind
//! one `sqlx::Any` pool, with one SQL text for both (`$N` placeholders, BIGINT money in
//! nano-units, TEXT days). Every write that replaces data runs in one transaction.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

use crate::model::{day_key, parse_day, Allocation, CostBasis, Fact, Method, Tags};
use crate::money::Nanos;

mod daemon;
mod outbox;
mod sqlite_bulk;
mod sync;
mod usage;

pub use daemon::{JobRun, Leadership};
pub use outbox::{AttemptOutcome, EnqueueResult, NewAlert, OutboxRow, SeriesRow};
pub use sync::{SyncRun, SyncStatus};
pub use usage::{UsageRun, UsageStatus};

/// SQL shared by the sqlx path and the SQLite bulk path (`$N` are positional in both).
const DELETE_PERIOD_SQL: &str =
    "DELETE FROM billing_facts WHERE billing_period = $1 AND billing_account = $2";
const DELETE_DAYS_SQL: &str =
    "DELETE FROM billing_facts WHERE billing_account = $1 AND day >= $2 AND day <= $3";
const INSERT_IMPORT_SQL: &str = "INSERT INTO imports (created_at, source, files, periods, line_items, facts, effective_units, effective_nanos, billed_units, billed_nanos)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id";
const FACT_COLUMNS: &str = "day, billing_period, billing_account, sub_account, provider, provider_service, resource_id, charge_category, tag_set_id, currency, effective_units, effective_nanos, billed_units, billed_nanos, line_count, estimated, import_id, list_units, list_nanos, contracted_units, contracted_nanos";
const FACT_WIDTH: usize = 21;
const DELETE_ALLOCATIONS_SQL: &str = "DELETE FROM allocations WHERE day >= $1 AND day <= $2";
/// `$11`, the facts' mark read before they were loaded, or NULL: the largest import id of
/// the range's facts as the transaction sees them (`import --allocate` writes them in it).
const INSERT_ALLOCATION_RUN_SQL: &str =
    "INSERT INTO allocation_runs (created_at, from_day, to_day, rules_hash, cost_basis, facts,
                                  billed_units, billed_nanos, allocated_units, allocated_nanos,
                                  facts_import_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
             COALESCE(CAST($11 AS BIGINT), (SELECT COALESCE(MAX(import_id), 0) FROM billing_facts WHERE day >= $2 AND day <= $3)))
     RETURNING id";
const ALLOCATION_COLUMNS: &str = "day, service, team, cost_center, pool, method, fallback_used, ratio_ppb, amount_units, amount_nanos, currency, cost_basis, rules_hash, run_id, provider_service, basis";
const ALLOCATION_WIDTH: usize = 16;

const SELECT_FACTS_SQL: &str =
    "SELECT day, billing_period, billing_account, sub_account, provider, provider_service,
            resource_id, charge_category, tag_set_id, currency, effective_units, effective_nanos,
            billed_units, billed_nanos, line_count, estimated, list_units, list_nanos,
            contracted_units, contracted_nanos
     FROM billing_facts WHERE day >= $1 AND day <= $2";
/// The tag sets the facts of a range refer to.
const SELECT_TAG_SETS_SQL: &str = "SELECT id, tags FROM tag_sets WHERE id IN
     (SELECT DISTINCT tag_set_id FROM billing_facts WHERE day >= $1 AND day <= $2)";
/// Stores a tag set unless it is stored (SQLite: unique by its text).
const INSERT_TAG_SET_SQLITE: &str =
    "INSERT INTO tag_sets (tags) VALUES ($1) ON CONFLICT (tags) DO NOTHING";
const SELECT_TAG_SET_SQLITE: &str = "SELECT id FROM tag_sets WHERE tags = $1";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Rows per multi-row INSERT. SQLite (through sqlx) slows down super-linearly with the number
/// of bind parameters per statement, so it gets small batches (measured: 20 rows x 15 columns
/// is ~15x faster than 1000 rows); PostgreSQL pays a round trip per statement, so it gets
/// large ones (within its 65,535 bind limit).
fn rows_per_insert(backend: Backend) -> usize {
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
    pool: AnyPool,
    backend: Backend,
    /// The database file of a SQLite store: bulk fact writes and reads go through
    /// [`sqlite_bulk`] on their own connection (sqlx costs ~15 us per row there).
    sqlite_file: Option<std::path::PathBuf>,
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    pub created_at: String,
    pub source: String,
    pub files: Vec<String>,
    /// The stored facts this import replaces.
    pub scope: FactScope,
    pub line_items: i64,
}

/// Which stored facts a batch of new facts replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FactScope {
    /// (billing period `YYYY-MM`, billing account) pairs: a billing file holds whole periods.
    Periods(Vec<(String, String)>),
    /// One account's days `from..=to`: an API sync window.
    Days {
        account: String,
        from: NaiveDate,
        to: NaiveDate,
    },
}

impl FactScope {
    fn describe(&self) -> String {
        match self {
            FactScope::Periods(periods) => periods
                .iter()
                .map(|(p, a)| format!("{p}/{a}"))
                .collect::<Vec<_>>()
                .join(","),
            FactScope::Days { account, from, to } => format!("{account}:{from}..{to}"),
        }
    }
}

/// What an allocation run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub created_at: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rules_hash: String,
    pub basis: CostBasis,
    pub facts: i64,
    /// The facts' amounts added over every currency: a checksum of the run kept in
    /// `allocation_runs`, never shown as money.
    pub billed: Nanos,
    /// The largest import id among the facts allocated, read before they were loaded (see
    /// [`Store::facts_mark`]); `None` when the facts are written in the same transaction.
    pub facts_mark: Option<i64>,
}

/// A day's facts against the allocation run that last covered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayMark {
    pub day: NaiveDate,
    /// The largest import id among the day's facts.
    pub facts: i64,
    /// The facts mark of the latest allocation run whose range holds the day, if any.
    pub allocated: Option<i64>,
}

/// One service's cost over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTotal {
    pub service: String,
    pub team: String,
    pub currency: String,
    pub direct: Nanos,
    pub shared: Nanos,
}

impl ServiceTotal {
    pub fn total(&self) -> Nanos {
        self.direct + self.shared
    }
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
enum Writer {
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
            Backend::Sqlite => sqlite_bulk::file_of(&url),
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
            Some(file) => Some(lock_file(file).await?),
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
    async fn serialize(
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

    /// Replaces the facts of the given billing periods with `facts`, atomically: on any error
    /// the store is left as it was. Returns the import id.
    pub async fn replace_facts(
        &self,
        record: &ImportRecord,
        facts: &[Fact],
    ) -> anyhow::Result<i64> {
        if let Some(file) = &self.sqlite_file {
            return sqlite_bulk::replace_facts(file, record, facts, None).await;
        }
        let mut tx = self.pool.begin().await?;
        phase("write began");
        let import_id = self.replace_facts_in(&mut tx, record, facts).await?;
        phase("committing");
        tx.commit().await?;
        phase("committed");
        Ok(import_id)
    }

    async fn replace_facts_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        record: &ImportRecord,
        facts: &[Fact],
    ) -> anyhow::Result<i64> {
        self.serialize(tx, Writer::Facts).await?;
        match &record.scope {
            FactScope::Periods(periods) => {
                for (period, account) in periods {
                    sqlx::query(DELETE_PERIOD_SQL)
                        .bind(period)
                        .bind(account)
                        .execute(&mut **tx)
                        .await?;
                }
            }
            FactScope::Days { account, from, to } => {
                sqlx::query(DELETE_DAYS_SQL)
                    .bind(account)
                    .bind(day_key(*from))
                    .bind(day_key(*to))
                    .execute(&mut **tx)
                    .await?;
            }
        }
        let (effective, billed) = fact_totals(facts)?;
        let import_id: i64 = sqlx::query(INSERT_IMPORT_SQL)
            .bind(&record.created_at)
            .bind(&record.source)
            .bind(record.files.join("\n"))
            .bind(record.scope.describe())
            .bind(record.line_items)
            .bind(facts.len() as i64)
            .bind(effective.units)
            .bind(effective.nanos)
            .bind(billed.units)
            .bind(billed.nanos)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;

        let tag_sets = self.tag_set_ids(tx, facts).await?;
        for chunk in facts.chunks(rows_per_insert(self.backend)) {
            let sql = insert_sql("billing_facts", FACT_COLUMNS, FACT_WIDTH, chunk.len());
            let mut query = sqlx::query(&sql);
            for f in chunk {
                let (effective, billed) = (Stored::of(f.effective)?, Stored::of(f.billed)?);
                let (list, contracted) = (Stored::of(f.list)?, Stored::of(f.contracted)?);
                let tag_set = tag_sets[&tags_json(&f.tags)];
                query = query
                    .bind(day_key(f.day))
                    .bind(&f.billing_period)
                    .bind(&f.billing_account)
                    .bind(&f.sub_account)
                    .bind(&f.provider)
                    .bind(&f.provider_service)
                    .bind(&f.resource_id)
                    .bind(&f.charge_category)
                    .bind(tag_set)
                    .bind(&f.currency)
                    .bind(effective.units)
                    .bind(effective.nanos)
                    .bind(billed.units)
                    .bind(billed.nanos)
                    .bind(f.line_count)
                    .bind(i64::from(f.estimated))
                    .bind(import_id)
                    .bind(list.units)
                    .bind(list.nanos)
                    .bind(contracted.units)
                    .bind(contracted.nanos);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(import_id)
    }

    /// The id of each distinct tag set of `facts` (by its JSON text), stored if new.
    async fn tag_set_ids(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        facts: &[Fact],
    ) -> anyhow::Result<HashMap<String, i64>> {
        let texts: BTreeSet<String> = facts.iter().map(|f| tags_json(&f.tags)).collect();
        let mut ids = HashMap::with_capacity(texts.len());
        match self.backend {
            Backend::Sqlite => {
                for text in texts {
                    sqlx::query(INSERT_TAG_SET_SQLITE)
                        .bind(&text)
                        .execute(&mut **tx)
                        .await?;
                    let id: i64 = sqlx::query(SELECT_TAG_SET_SQLITE)
                        .bind(&text)
                        .fetch_one(&mut **tx)
                        .await?
                        .try_get(0)?;
                    ids.insert(text, id);
                }
            }
            Backend::Postgres => {
                // Unique by digest (see the migration): many per statement, one round trip.
                let texts: Vec<(String, String)> =
                    texts.into_iter().map(|t| (tag_digest(&t), t)).collect();
                for chunk in texts.chunks(500) {
                    let sql = format!(
                        "{} ON CONFLICT (digest) DO NOTHING",
                        insert_sql("tag_sets", "digest, tags", 2, chunk.len())
                    );
                    let mut insert = sqlx::query(&sql);
                    for (digest, text) in chunk {
                        insert = insert.bind(digest).bind(text);
                    }
                    insert.execute(&mut **tx).await?;
                    let places: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                    let sql = format!(
                        "SELECT id, digest FROM tag_sets WHERE digest IN ({})",
                        places.join(", ")
                    );
                    let mut select = sqlx::query(&sql);
                    for (digest, _) in chunk {
                        select = select.bind(digest);
                    }
                    let by_digest: HashMap<String, i64> = select
                        .fetch_all(&mut **tx)
                        .await?
                        .iter()
                        .map(|row| Ok((row.try_get(1)?, row.try_get(0)?)))
                        .collect::<anyhow::Result<_>>()?;
                    for (digest, text) in chunk {
                        let id = *by_digest.get(digest).context("a tag set was not stored")?;
                        ids.insert(text.clone(), id);
                    }
                }
            }
        }
        Ok(ids)
    }

    /// Days in `from..=to` that hold facts the provider may still revise.
    pub async fn estimated_days(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<NaiveDate>> {
        let rows = sqlx::query(
            "SELECT DISTINCT day FROM billing_facts WHERE estimated <> 0 AND day >= $1 AND day <= $2 ORDER BY day",
        )
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| day_from(row, 0)).collect()
    }

    /// The (billing period, billing account) pairs that have facts in `from..=to`.
    pub async fn fact_periods(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<(String, String)>> {
        self.text_pairs(
            "SELECT DISTINCT billing_period, billing_account FROM billing_facts WHERE day >= $1 AND day <= $2",
            (from, to),
        )
        .await
    }

    /// The rows of a query of two text columns over the days `from..=to` (`$1`, `$2`).
    async fn text_pairs(
        &self,
        sql: &str,
        (from, to): (NaiveDate, NaiveDate),
    ) -> anyhow::Result<Vec<(String, String)>> {
        let rows = sqlx::query(sql)
            .bind(day_key(from))
            .bind(day_key(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// Facts with `from <= day <= to`.
    pub async fn facts(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<Fact>> {
        if let Some(file) = &self.sqlite_file {
            return sqlite_bulk::facts(file, from, to).await;
        }
        let mut tag_sets = HashMap::new();
        for row in sqlx::query(SELECT_TAG_SETS_SQL)
            .bind(day_key(from))
            .bind(day_key(to))
            .fetch_all(&self.pool)
            .await?
        {
            tag_sets.insert(
                row.try_get::<i64, _>(0)?,
                decode_tags(&row.try_get::<String, _>(1)?)?,
            );
        }
        let rows = sqlx::query(SELECT_FACTS_SQL)
            .bind(day_key(from))
            .bind(day_key(to))
            .fetch_all(&self.pool)
            .await?;
        let mut facts = rows
            .iter()
            .map(|row| fact_from_row(row, &tag_sets))
            .collect::<anyhow::Result<Vec<Fact>>>()?;
        sort_facts(&mut facts);
        Ok(facts)
    }

    /// Replaces the allocations of `from..=to` with `allocations`, in one transaction, and
    /// records the run. Returns the run id.
    pub async fn replace_allocations(
        &self,
        run: &RunRecord,
        allocations: &[Allocation],
    ) -> anyhow::Result<i64> {
        if let Some(file) = &self.sqlite_file {
            let (_, run_id) = sqlite_bulk::replace(file, None, Some((run, allocations))).await?;
            return Ok(run_id.expect("allocations were written"));
        }
        let mut tx = self.pool.begin().await?;
        phase("write began");
        let run_id = self
            .replace_allocations_in(&mut tx, run, allocations)
            .await?;
        phase("committing");
        tx.commit().await?;
        phase("committed");
        Ok(run_id)
    }

    /// Replaces the facts of `record`'s scope and the allocations of `run`'s range in one
    /// transaction (`import --allocate`: the facts just read, allocated in memory). Returns
    /// the import id and the run id.
    pub async fn replace_facts_and_allocations(
        &self,
        record: &ImportRecord,
        facts: &[Fact],
        run: &RunRecord,
        allocations: &[Allocation],
    ) -> anyhow::Result<(i64, i64)> {
        if let Some(file) = &self.sqlite_file {
            let (import_id, run_id) =
                sqlite_bulk::replace(file, Some((record, facts, None)), Some((run, allocations)))
                    .await?;
            return Ok((
                import_id.expect("facts were written"),
                run_id.expect("allocations were written"),
            ));
        }
        let mut tx = self.pool.begin().await?;
        phase("write began");
        let import_id = self.replace_facts_in(&mut tx, record, facts).await?;
        let run_id = self
            .replace_allocations_in(&mut tx, run, allocations)
            .await?;
        phase("committing");
        tx.commit().await?;
        phase("committed");
        Ok((import_id, run_id))
    }

    async fn replace_allocations_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &RunRecord,
        allocations: &[Allocation],
    ) -> anyhow::Result<i64> {
        let allocated = Stored::of(allocations.iter().map(|a| a.amount).sum())?;
        let billed = Stored::of(run.billed)?;
        self.serialize(tx, Writer::Allocations).await?;
        sqlx::query(DELETE_ALLOCATIONS_SQL)
            .bind(day_key(run.from))
            .bind(day_key(run.to))
            .execute(&mut **tx)
            .await?;
        let run_id: i64 = sqlx::query(INSERT_ALLOCATION_RUN_SQL)
            .bind(&run.created_at)
            .bind(day_key(run.from))
            .bind(day_key(run.to))
            .bind(&run.rules_hash)
            .bind(run.basis.as_str())
            .bind(run.facts)
            .bind(billed.units)
            .bind(billed.nanos)
            .bind(allocated.units)
            .bind(allocated.nanos)
            .bind(run.facts_mark)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;
        for chunk in allocations.chunks(rows_per_insert(self.backend)) {
            let sql = insert_sql(
                "allocations",
                ALLOCATION_COLUMNS,
                ALLOCATION_WIDTH,
                chunk.len(),
            );
            let mut query = sqlx::query(&sql);
            for a in chunk {
                let amount = Stored::of(a.amount)?;
                query = query
                    .bind(day_key(a.day))
                    .bind(&a.service)
                    .bind(&a.team)
                    .bind(&a.cost_center)
                    .bind(&a.pool)
                    .bind(a.method.as_str())
                    .bind(i64::from(a.fallback_used))
                    .bind(a.ratio_ppb)
                    .bind(amount.units)
                    .bind(amount.nanos)
                    .bind(&a.currency)
                    .bind(run.basis.as_str())
                    .bind(&run.rules_hash)
                    .bind(run_id)
                    .bind(&a.provider_service)
                    .bind(&a.basis);
            }
            query.execute(&mut **tx).await?;
        }
        Ok(run_id)
    }

    /// Allocation rows with `from <= day <= to`, in (day, service, pool) order.
    pub async fn allocations(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<Allocation>> {
        let rows = sqlx::query(
            "SELECT day, service, team, cost_center, pool, method, fallback_used, ratio_ppb, amount_units, amount_nanos, currency, provider_service, basis
             FROM allocations WHERE day >= $1 AND day <= $2 ORDER BY day, service, pool, provider_service, method",
        )
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let method: String = row.try_get(5)?;
                Ok(Allocation {
                    day: day_from(row, 0)?,
                    service: row.try_get(1)?,
                    team: row.try_get(2)?,
                    cost_center: row.try_get(3)?,
                    pool: row.try_get(4)?,
                    provider_service: row.try_get(11)?,
                    method: Method::parse(&method)
                        .with_context(|| format!("unknown method `{method}` in the store"))?,
                    fallback_used: row.try_get::<i64, _>(6)? != 0,
                    ratio_ppb: row.try_get(7)?,
                    amount: Stored::read(row, 8)?,
                    currency: row.try_get(10)?,
                    basis: row.try_get(12)?,
                })
            })
            .collect()
    }

    /// Per-service direct and shared totals over a range, by currency, sorted by service.
    pub async fn service_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<ServiceTotal>> {
        let rows = sqlx::query(
            "SELECT service, MAX(team), currency,
                    CAST(COALESCE(SUM(CASE WHEN pool = '' THEN amount_units ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN pool = '' THEN amount_nanos ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN pool <> '' THEN amount_units ELSE 0 END), 0) AS BIGINT),
                    CAST(COALESCE(SUM(CASE WHEN pool <> '' THEN amount_nanos ELSE 0 END), 0) AS BIGINT)
             FROM allocations WHERE day >= $1 AND day <= $2
             GROUP BY service, currency ORDER BY service, currency",
        )
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(ServiceTotal {
                    service: row.try_get(0)?,
                    team: row.try_get(1)?,
                    currency: row.try_get(2)?,
                    direct: Stored::read(row, 3)?,
                    shared: Stored::read(row, 5)?,
                })
            })
            .collect()
    }

    /// Billed total of the facts over a range for a cost basis, by currency.
    pub async fn billed_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        basis: CostBasis,
    ) -> anyhow::Result<BTreeMap<String, Nanos>> {
        let column = match basis {
            CostBasis::Effective => "effective",
            CostBasis::Billed => "billed",
        };
        let sql = format!(
            "SELECT currency, CAST(COALESCE(SUM({column}_units), 0) AS BIGINT),
                    CAST(COALESCE(SUM({column}_nanos), 0) AS BIGINT) FROM billing_facts
             WHERE day >= $1 AND day <= $2 GROUP BY currency"
        );
        let rows = sqlx::query(&sql)
            .bind(day_key(from))
            .bind(day_key(to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, Stored::read(row, 1)?)))
            .collect()
    }

    /// The largest import id among the facts of a range (0 when there are none): read before
    /// the facts are loaded for an allocation, so a later import is seen as a change.
    pub async fn facts_mark(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<i64> {
        let row = sqlx::query(
            "SELECT CAST(COALESCE(MAX(import_id), 0) AS BIGINT) FROM billing_facts WHERE day >= $1 AND day <= $2",
        )
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get(0)?)
    }

    /// Every day that has facts, with its facts' mark and the mark of the allocation run that
    /// last covered it: a day whose facts are newer than its allocation (or that no run
    /// covered) has changed since it was allocated.
    pub async fn day_marks(&self) -> anyhow::Result<Vec<DayMark>> {
        let facts = sqlx::query(
            "SELECT day, CAST(MAX(import_id) AS BIGINT) FROM billing_facts GROUP BY day ORDER BY day",
        )
        .fetch_all(&self.pool)
        .await?;
        let runs = sqlx::query(
            "SELECT from_day, to_day, facts_import_id FROM allocation_runs ORDER BY id DESC",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut covered: Vec<(NaiveDate, NaiveDate, i64)> = Vec::with_capacity(runs.len());
        for row in &runs {
            covered.push((day_from(row, 0)?, day_from(row, 1)?, row.try_get(2)?));
        }
        facts
            .iter()
            .map(|row| {
                let day = day_from(row, 0)?;
                Ok(DayMark {
                    day,
                    facts: row.try_get(1)?,
                    // The newest run holding the day wrote its allocations.
                    allocated: covered
                        .iter()
                        .find(|(from, to, _)| *from <= day && day <= *to)
                        .map(|(_, _, mark)| *mark),
                })
            })
            .collect()
    }

    /// The cost bases and rule hashes of the allocations stored for a range.
    pub async fn allocation_provenance(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<(String, String)>> {
        self.text_pairs(
            "SELECT DISTINCT cost_basis, rules_hash FROM allocations WHERE day >= $1 AND day <= $2 ORDER BY cost_basis, rules_hash",
            (from, to),
        )
        .await
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

fn insert_sql(table: &str, columns: &str, width: usize, rows: usize) -> String {
    let mut sql = format!("INSERT INTO {table} ({columns}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push(',');
        }
        sql.push('(');
        for c in 0..width {
            if c > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(r * width + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// An amount at rest: whole currency units and the nano-units past them, with the same sign
/// (as `google.type.Money`), each in a BIGINT column (`*_units`, `*_nanos`). SQL sums of
/// both stay exact on SQLite and PostgreSQL, and an amount holds up to 9.2e18 units, where
/// one column of nano-units ended at 9.2e9 (a month in IDR passes that).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stored {
    pub units: i64,
    pub nanos: i64,
}

impl Stored {
    /// The columns of `amount`, or an error when it is past what the store holds.
    pub fn of(amount: Nanos) -> anyhow::Result<Stored> {
        let units = amount.0 / crate::money::NANOS_PER_UNIT;
        let nanos = amount.0 % crate::money::NANOS_PER_UNIT;
        Ok(Stored {
            units: i64::try_from(units).map_err(|_| {
                anyhow::anyhow!(
                    "the amount {amount} is larger than the store holds (9.2e18 units); nothing was written"
                )
            })?,
            nanos: i64::try_from(nanos).expect("below one unit"),
        })
    }

    pub fn amount(units: i64, nanos: i64) -> Nanos {
        Nanos(i128::from(units) * crate::money::NANOS_PER_UNIT + i128::from(nanos))
    }

    /// The amount in columns `index` (units) and `index + 1` (nano-units) of a row.
    fn read(row: &AnyRow, index: usize) -> anyhow::Result<Nanos> {
        Ok(Stored::amount(row.try_get(index)?, row.try_get(index + 1)?))
    }
}

/// The effective and billed totals of a batch of facts, as stored on its import record.
fn fact_totals(facts: &[Fact]) -> anyhow::Result<(Stored, Stored)> {
    let effective = facts.iter().map(|f| f.effective).sum();
    let billed = facts.iter().map(|f| f.billed).sum();
    Ok((Stored::of(effective)?, Stored::of(billed)?))
}

fn tags_json(tags: &Tags) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        serde_json::to_string(tags).expect("a map of strings always serialises")
    }
}

fn day_from(row: &AnyRow, index: usize) -> anyhow::Result<NaiveDate> {
    let text: String = row.try_get(index)?;
    parse_day(&text).with_context(|| format!("bad day `{text}` in the store"))
}

/// The order facts are read back in: (day, billing account, sub-account, provider service,
/// resource). Sorted here rather than by SQL, which sorted the whole range in a temporary
/// B-tree after reading it through the day index.
pub fn sort_facts(facts: &mut [Fact]) {
    facts.sort_by(|a, b| {
        (
            a.day,
            &a.billing_account,
            &a.sub_account,
            &a.provider_service,
            &a.resource_id,
        )
            .cmp(&(
                b.day,
                &b.billing_account,
                &b.sub_account,
                &b.provider_service,
                &b.resource_id,
            ))
    });
}

/// Decodes a stored tag set's JSON.
fn decode_tags(text: &str) -> anyhow::Result<Tags> {
    if text.is_empty() {
        return Ok(Tags::new());
    }
    serde_json::from_str(text).context("bad tags JSON in the store")
}

/// The SHA-256 of a tag set's JSON text, lower-case hex (PostgreSQL's unique key).
fn tag_digest(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A tag set of `tag_sets`, by id.
fn tag_set(tag_sets: &HashMap<i64, Tags>, id: i64) -> anyhow::Result<Tags> {
    tag_sets
        .get(&id)
        .cloned()
        .with_context(|| format!("a fact refers to tag set {id}, which the store does not have"))
}

fn fact_from_row(row: &AnyRow, tag_sets: &HashMap<i64, Tags>) -> anyhow::Result<Fact> {
    let tags = tag_set(tag_sets, row.try_get(8)?)?;
    let day = day_from(row, 0)?;
    Ok(Fact {
        day,
        billing_period: row.try_get(1)?,
        billing_account: row.try_get(2)?,
        sub_account: row.try_get(3)?,
        provider: row.try_get(4)?,
        provider_service: row.try_get(5)?,
        resource_id: row.try_get(6)?,
        charge_category: row.try_get(7)?,
        tags,
        currency: row.try_get(9)?,
        effective: Stored::read(row, 10)?,
        billed: Stored::read(row, 12)?,
        list: Stored::read(row, 16)?,
        contracted: Stored::read(row, 18)?,
        line_count: row.try_get(14)?,
        estimated: row.try_get::<i64, _>(15)? != 0,
    })
}

/// Marks where a write transaction is (`write began`, `committing`, `committed`) in the debug
/// log (`COSTSPLIT_LOG=costsplit::store::phase=debug`), so a crash test can tell where its kill
/// landed.
fn phase(what: &'static str) {
    tracing::debug!(target: "costsplit::store::phase", "{what}");
}

/// Removes a URL (and so any password in it) from a driver error message.
fn scrub(message: &str, url: &str) -> String {
    message.replace(url, &redact_url(url))
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

    #[test]
    fn insert_sql_numbers_placeholders() {
        assert_eq!(
            insert_sql("t", "a, b", 2, 2),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)"
        );
    }
}
