//! Each stored row declared once for both drivers: its columns, its parameters (an array as
//! long as the column list, so a column added without its value does not compile) and its
//! decoder (over [`Cells`], which sqlx's and rusqlite's rows both provide). The sqlx path and
//! the SQLite bulk path bind and read through these, never by hand.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use sqlx::any::{AnyArguments, AnyRow};
use sqlx::{Any, Row};

use crate::model::{
    day_key, parse_day, Allocation, CostBasis, Fact, ImportSource, Key, Keys, Method, Tags,
    Timestamp,
};
use crate::money::Nanos;

/// One bound value, for either driver.
#[derive(Debug, Clone)]
pub(super) enum Param<'a> {
    Int(i64),
    MaybeInt(Option<i64>),
    Text(&'a str),
    Owned(String),
}

impl Param<'_> {
    fn day(day: NaiveDate) -> Param<'static> {
        Param::Owned(day_key(day))
    }

    fn flag(value: bool) -> Param<'static> {
        Param::Int(i64::from(value))
    }

    pub(super) fn time(at: Timestamp) -> Param<'static> {
        Param::Owned(at.to_string())
    }

    /// An optional instant: empty text when there is none.
    pub(super) fn maybe_time(at: Option<Timestamp>) -> Param<'static> {
        Param::Owned(at.map(|t| t.to_string()).unwrap_or_default())
    }
}

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        match self {
            Param::Int(v) => v.to_sql(),
            Param::MaybeInt(v) => v.to_sql(),
            Param::Text(v) => v.to_sql(),
            Param::Owned(v) => v.to_sql(),
        }
    }
}

pub(super) type Query<'q> = sqlx::query::Query<'q, Any, AnyArguments<'q>>;

/// Binds `params` in order to a sqlx query.
pub(super) fn bind<'q>(
    mut query: Query<'q>,
    params: impl IntoIterator<Item = Param<'q>>,
) -> Query<'q> {
    for param in params {
        query = match param {
            Param::Int(v) => query.bind(v),
            Param::MaybeInt(v) => query.bind(v),
            Param::Text(v) => query.bind(v),
            Param::Owned(v) => query.bind(v),
        };
    }
    query
}

/// A row's cells by position, as either driver returns them.
pub(super) trait Cells {
    fn int(&self, index: usize) -> anyhow::Result<i64>;
    fn text(&self, index: usize) -> anyhow::Result<String>;

    fn day(&self, index: usize) -> anyhow::Result<NaiveDate> {
        let text = self.text(index)?;
        parse_day(&text).with_context(|| format!("bad day `{text}` in the store"))
    }

    fn flag(&self, index: usize) -> anyhow::Result<bool> {
        Ok(self.int(index)? != 0)
    }

    fn timestamp(&self, index: usize) -> anyhow::Result<Timestamp> {
        let text = self.text(index)?;
        Timestamp::parse(&text).with_context(|| format!("bad time `{text}` in the store"))
    }

    /// An optional instant, stored as empty text when there is none.
    fn maybe_timestamp(&self, index: usize) -> anyhow::Result<Option<Timestamp>> {
        match self.text(index)? {
            text if text.is_empty() => Ok(None),
            _ => self.timestamp(index).map(Some),
        }
    }

    /// Optional text, stored as empty text when there is none.
    fn maybe_text(&self, index: usize) -> anyhow::Result<Option<String>> {
        Ok(Some(self.text(index)?).filter(|t| !t.is_empty()))
    }

    /// Text shared through `keys`: the facts of a load hold one copy of each text.
    fn key(&self, index: usize, keys: &mut Keys) -> anyhow::Result<Key> {
        Ok(keys.get_in(index, &self.text(index)?))
    }

    /// The amount in cells `index` (units) and `index + 1` (nano-units).
    fn amount(&self, index: usize) -> anyhow::Result<Nanos> {
        Ok(Stored::amount(self.int(index)?, self.int(index + 1)?))
    }
}

impl Cells for AnyRow {
    fn int(&self, index: usize) -> anyhow::Result<i64> {
        Ok(self.try_get(index)?)
    }
    fn text(&self, index: usize) -> anyhow::Result<String> {
        Ok(self.try_get(index)?)
    }
}

impl Cells for rusqlite::Row<'_> {
    fn int(&self, index: usize) -> anyhow::Result<i64> {
        Ok(self.get(index)?)
    }
    fn text(&self, index: usize) -> anyhow::Result<String> {
        Ok(self.get(index)?)
    }
    // What a month's load reads per fact, from SQLite's own bytes without a `String`.
    fn key(&self, index: usize, keys: &mut Keys) -> anyhow::Result<Key> {
        Ok(keys.get_in(index, self.get_ref(index)?.as_str()?))
    }
    fn day(&self, index: usize) -> anyhow::Result<NaiveDate> {
        let text = self.get_ref(index)?.as_str()?;
        parse_day(text).with_context(|| format!("bad day `{text}` in the store"))
    }
}

/// `INSERT INTO table (columns) VALUES ($1, ...), ...` for `rows` rows.
pub(super) fn insert_sql(table: &str, columns: &[&str], rows: usize) -> String {
    let width = columns.len();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
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

    fn params(amount: Nanos) -> anyhow::Result<[Param<'static>; 2]> {
        let stored = Stored::of(amount)?;
        Ok([Param::Int(stored.units), Param::Int(stored.nanos)])
    }
}

/// `billing_facts`: a fact's columns, read and written in this order; `import_id` is written
/// after them (see [`FACT_INSERT_COLUMNS`]).
pub(super) const FACT_COLUMNS: [&str; 20] = [
    "day",
    "billing_period",
    "billing_account",
    "sub_account",
    "provider",
    "provider_service",
    "resource_id",
    "charge_category",
    "tag_set_id",
    "currency",
    "effective_units",
    "effective_nanos",
    "billed_units",
    "billed_nanos",
    "list_units",
    "list_nanos",
    "contracted_units",
    "contracted_nanos",
    "line_count",
    "estimated",
];

/// What a fact row is written with: its columns, then the import that wrote it.
pub(super) fn fact_insert_columns() -> Vec<&'static str> {
    let mut columns = FACT_COLUMNS.to_vec();
    columns.push("import_id");
    columns
}

/// A fact's values in [`FACT_COLUMNS`] order, with the id of its stored tag set.
pub(super) fn fact_params(f: &Fact, tag_set: i64) -> anyhow::Result<[Param<'_>; 20]> {
    let [eu, en] = Stored::params(f.effective)?;
    let [bu, bn] = Stored::params(f.billed)?;
    let [lu, ln] = Stored::params(f.list)?;
    let [cu, cn] = Stored::params(f.contracted)?;
    Ok([
        Param::day(f.day),
        Param::Text(&f.billing_period),
        Param::Text(&f.billing_account),
        Param::Text(&f.sub_account),
        Param::Text(&f.provider),
        Param::Text(&f.provider_service),
        Param::Text(&f.resource_id),
        Param::Text(&f.charge_category),
        Param::Int(tag_set),
        Param::Text(&f.currency),
        eu,
        en,
        bu,
        bn,
        lu,
        ln,
        cu,
        cn,
        Param::Int(f.line_count),
        Param::flag(f.estimated),
    ])
}

/// A fact from a row of [`FACT_COLUMNS`], its tags looked up among the range's tag sets.
/// Its text is shared through `keys` with the other facts of the load.
pub(super) fn fact_decode(
    row: &impl Cells,
    tag_sets: &HashMap<i64, Arc<Tags>>,
    keys: &mut Keys,
) -> anyhow::Result<Fact> {
    Ok(Fact {
        day: row.day(0)?,
        billing_period: row.key(1, keys)?,
        billing_account: row.key(2, keys)?,
        sub_account: row.key(3, keys)?,
        provider: row.key(4, keys)?,
        provider_service: row.key(5, keys)?,
        resource_id: row.key(6, keys)?,
        charge_category: row.key(7, keys)?,
        tags: tag_set(tag_sets, row.int(8)?)?,
        currency: row.key(9, keys)?,
        effective: row.amount(10)?,
        billed: row.amount(12)?,
        list: row.amount(14)?,
        contracted: row.amount(16)?,
        line_count: row.int(18)?,
        estimated: row.flag(19)?,
    })
}

/// The facts of a day range (`$1`, `$2`).
pub(super) fn select_facts_sql() -> String {
    format!(
        "SELECT {} FROM billing_facts WHERE day >= $1 AND day <= $2",
        FACT_COLUMNS.join(", ")
    )
}

/// The tag sets the facts of a range refer to.
pub(super) const SELECT_TAG_SETS_SQL: &str = "SELECT id, tags FROM tag_sets WHERE id IN
     (SELECT DISTINCT tag_set_id FROM billing_facts WHERE day >= $1 AND day <= $2)";
/// Stores a tag set unless it is stored (SQLite: unique by its text).
pub(super) const INSERT_TAG_SET_SQLITE: &str =
    "INSERT INTO tag_sets (tags) VALUES ($1) ON CONFLICT (tags) DO NOTHING";
pub(super) const SELECT_TAG_SET_SQLITE: &str = "SELECT id FROM tag_sets WHERE tags = $1";

/// A tag set as stored: its JSON text, empty for no tags.
pub(super) fn tags_json(tags: &Tags) -> String {
    if tags.is_empty() {
        String::new()
    } else {
        serde_json::to_string(tags).expect("a map of strings always serialises")
    }
}

/// Decodes a stored tag set's JSON.
fn decode_tags(text: &str) -> anyhow::Result<Tags> {
    if text.is_empty() {
        return Ok(Tags::new());
    }
    serde_json::from_str(text).context("bad tags JSON in the store")
}

/// The SHA-256 of a tag set's JSON text, lower-case hex (PostgreSQL's unique key).
pub(super) fn tag_digest(text: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(text.as_bytes()))
}

/// A row of [`SELECT_TAG_SETS_SQL`]: a tag set's id and its decoded map.
pub(super) fn tag_set_decode(row: &impl Cells) -> anyhow::Result<(i64, Arc<Tags>)> {
    Ok((row.int(0)?, Arc::new(decode_tags(&row.text(1)?)?)))
}

/// A tag set of `tag_sets`, by id.
fn tag_set(tag_sets: &HashMap<i64, Arc<Tags>>, id: i64) -> anyhow::Result<Arc<Tags>> {
    tag_sets
        .get(&id)
        .cloned()
        .with_context(|| format!("a fact refers to tag set {id}, which the store does not have"))
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

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRecord {
    pub created_at: Timestamp,
    pub source: ImportSource,
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

    /// The statements (SQL and parameters) that delete the facts this scope replaces.
    pub(super) fn deletes(&self) -> Vec<(&'static str, Vec<Param<'_>>)> {
        match self {
            FactScope::Periods(periods) => periods
                .iter()
                .map(|(period, account)| {
                    (
                        "DELETE FROM billing_facts WHERE billing_period = $1 AND billing_account = $2",
                        vec![Param::Text(period), Param::Text(account)],
                    )
                })
                .collect(),
            FactScope::Days { account, from, to } => vec![(
                "DELETE FROM billing_facts WHERE billing_account = $1 AND day >= $2 AND day <= $3",
                vec![Param::Text(account), Param::day(*from), Param::day(*to)],
            )],
        }
    }
}

/// `imports`: an import's record, with the count and totals of the facts it wrote.
const IMPORT_COLUMNS: [&str; 10] = [
    "created_at",
    "source",
    "files",
    "periods",
    "line_items",
    "facts",
    "effective_units",
    "effective_nanos",
    "billed_units",
    "billed_nanos",
];

/// The import record's insert, returning its id.
pub(super) fn insert_import_sql() -> String {
    format!("{} RETURNING id", insert_sql("imports", &IMPORT_COLUMNS, 1))
}

pub(super) fn import_params<'a>(
    record: &'a ImportRecord,
    facts: &[Fact],
) -> anyhow::Result<[Param<'a>; 10]> {
    let [eu, en] = Stored::params(facts.iter().map(|f| f.effective).sum())?;
    let [bu, bn] = Stored::params(facts.iter().map(|f| f.billed).sum())?;
    Ok([
        Param::time(record.created_at),
        Param::Text(record.source.as_str()),
        Param::Owned(record.files.join("\n")),
        Param::Owned(record.scope.describe()),
        Param::Int(record.line_items),
        Param::Int(facts.len() as i64),
        eu,
        en,
        bu,
        bn,
    ])
}

/// What an allocation run wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunRecord {
    pub created_at: Timestamp,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub rules_hash: String,
    pub basis: CostBasis,
    pub facts: i64,
    /// The facts' amounts added over every currency: a checksum of the run kept in
    /// `allocation_runs`, never shown as money.
    pub billed: Nanos,
    /// The largest import id among the facts allocated, read before they were loaded (see
    /// `Store::facts_mark`); `None` when the facts are written in the same transaction.
    pub facts_mark: Option<i64>,
}

/// The allocations of a day range (`$1`, `$2`).
pub(super) const DELETE_ALLOCATIONS_SQL: &str =
    "DELETE FROM allocations WHERE day >= $1 AND day <= $2";

/// `$11`, the facts' mark read before they were loaded, or NULL: the largest import id of
/// the range's facts as the transaction sees them (`import --allocate` writes them in it).
pub(super) const INSERT_ALLOCATION_RUN_SQL: &str =
    "INSERT INTO allocation_runs (created_at, from_day, to_day, rules_hash, cost_basis, facts,
                                  billed_units, billed_nanos, allocated_units, allocated_nanos,
                                  facts_import_id)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
             COALESCE(CAST($11 AS BIGINT), (SELECT COALESCE(MAX(import_id), 0) FROM billing_facts WHERE day >= $2 AND day <= $3)))
     RETURNING id";

/// [`INSERT_ALLOCATION_RUN_SQL`]'s parameters: the run and the sum of its allocations.
pub(super) fn allocation_run_params<'a>(
    run: &'a RunRecord,
    allocations: &[Allocation],
) -> anyhow::Result<[Param<'a>; 11]> {
    let [bu, bn] = Stored::params(run.billed)?;
    let [au, an] = Stored::params(allocations.iter().map(|a| a.amount).sum())?;
    Ok([
        Param::time(run.created_at),
        Param::day(run.from),
        Param::day(run.to),
        Param::Text(&run.rules_hash),
        Param::Text(run.basis.as_str()),
        Param::Int(run.facts),
        bu,
        bn,
        au,
        an,
        Param::MaybeInt(run.facts_mark),
    ])
}

/// `allocations`: an allocation's columns, read and written in this order; the run's
/// columns ([`ALLOCATION_RUN_COLUMNS`]) are written after them.
pub(super) const ALLOCATION_COLUMNS: [&str; 13] = [
    "day",
    "service",
    "team",
    "cost_center",
    "pool",
    "method",
    "fallback_used",
    "ratio_ppb",
    "amount_units",
    "amount_nanos",
    "currency",
    "provider_service",
    "basis",
];
const ALLOCATION_RUN_COLUMNS: [&str; 3] = ["cost_basis", "rules_hash", "run_id"];

/// What an allocation row is written with: its columns, then its run's.
pub(super) fn allocation_insert_columns() -> Vec<&'static str> {
    let mut columns = ALLOCATION_COLUMNS.to_vec();
    columns.extend(ALLOCATION_RUN_COLUMNS);
    columns
}

/// An allocation's values in [`ALLOCATION_COLUMNS`] order.
pub(super) fn allocation_params(a: &Allocation) -> anyhow::Result<[Param<'_>; 13]> {
    let [units, nanos] = Stored::params(a.amount)?;
    Ok([
        Param::day(a.day),
        Param::Text(&a.service),
        Param::Text(&a.team),
        Param::Text(&a.cost_center),
        Param::Text(&a.pool),
        Param::Text(a.method.as_str()),
        Param::flag(a.fallback_used),
        Param::Int(a.ratio_ppb),
        units,
        nanos,
        Param::Text(&a.currency),
        Param::Text(&a.provider_service),
        Param::Text(&a.basis),
    ])
}

/// The run's values in [`ALLOCATION_RUN_COLUMNS`] order.
pub(super) fn allocation_run_columns(run: &RunRecord, run_id: i64) -> [Param<'_>; 3] {
    [
        Param::Text(run.basis.as_str()),
        Param::Text(&run.rules_hash),
        Param::Int(run_id),
    ]
}

/// An allocation from a row of [`ALLOCATION_COLUMNS`].
pub(super) fn allocation_decode(row: &impl Cells) -> anyhow::Result<Allocation> {
    let method = row.text(5)?;
    Ok(Allocation {
        day: row.day(0)?,
        service: row.text(1)?,
        team: row.text(2)?,
        cost_center: row.text(3)?,
        pool: row.text(4)?,
        method: Method::parse(&method)
            .with_context(|| format!("unknown method `{method}` in the store"))?,
        fallback_used: row.flag(6)?,
        ratio_ppb: row.int(7)?,
        amount: row.amount(8)?,
        currency: row.text(10)?,
        provider_service: row.text(11)?,
        basis: row.text(12)?,
    })
}

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
    pub created_at: Timestamp,
    pub source: ImportSource,
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
    /// What the sync saw of its source (see migration 0005); none for Cost Explorer.
    pub fingerprint: Option<String>,
    /// The query an engine ran for it (an Athena query execution id; migration 0016).
    pub query_id: Option<String>,
    /// The bytes that query scanned (what Athena charges for).
    pub bytes_scanned: i64,
}

impl SyncRun {
    /// A run of `source`/`account` over `from..=to` that has not done anything yet: status
    /// ok, no calls, no facts, no message.
    pub fn begun(
        created_at: Timestamp,
        source: ImportSource,
        account: &str,
        from: NaiveDate,
        to: NaiveDate,
    ) -> SyncRun {
        SyncRun {
            created_at,
            source,
            account: account.to_string(),
            from,
            to,
            status: SyncStatus::Ok,
            calls: 0,
            cost: Nanos::ZERO,
            facts: 0,
            estimated_days: 0,
            message: String::new(),
            fingerprint: None,
            query_id: None,
            bytes_scanned: 0,
        }
    }
}

/// `sync_runs`: a run's columns, read and written in this order; `import_id` (the import the
/// run wrote, if any) is written after them.
pub(super) const SYNC_RUN_COLUMNS: [&str; 14] = [
    "created_at",
    "source",
    "account",
    "from_day",
    "to_day",
    "status",
    "calls",
    "cost_nanos",
    "facts",
    "estimated_days",
    "message",
    "fingerprint",
    "query_id",
    "bytes_scanned",
];

/// A sync run's insert: its columns, then the import it wrote.
pub(super) fn insert_sync_run_sql() -> String {
    let mut columns = SYNC_RUN_COLUMNS.to_vec();
    columns.push("import_id");
    insert_sql("sync_runs", &columns, 1)
}

/// A sync run's values in [`SYNC_RUN_COLUMNS`] order, then its import.
pub(super) fn sync_run_params(run: &SyncRun, import_id: Option<i64>) -> [Param<'_>; 15] {
    [
        Param::time(run.created_at),
        Param::Text(run.source.as_str()),
        Param::Text(&run.account),
        Param::day(run.from),
        Param::day(run.to),
        Param::Text(run.status.as_str()),
        Param::Int(run.calls),
        // The API cost, in nano-units (cents a call: far inside an i64).
        Param::Int(i64::try_from(run.cost.0).unwrap_or(i64::MAX)),
        Param::Int(run.facts),
        Param::Int(run.estimated_days),
        Param::Text(&run.message),
        Param::Text(run.fingerprint.as_deref().unwrap_or_default()),
        Param::Text(run.query_id.as_deref().unwrap_or_default()),
        Param::Int(run.bytes_scanned),
        Param::MaybeInt(import_id),
    ]
}

/// A sync run from a row of [`SYNC_RUN_COLUMNS`].
pub(super) fn sync_run_decode(row: &impl Cells) -> anyhow::Result<SyncRun> {
    let source = row.text(1)?;
    Ok(SyncRun {
        created_at: row.timestamp(0)?,
        source: ImportSource::parse(&source)
            .with_context(|| format!("unknown sync source `{source}` in the store"))?,
        account: row.text(2)?,
        from: row.day(3)?,
        to: row.day(4)?,
        status: SyncStatus::parse(&row.text(5)?),
        calls: row.int(6)?,
        cost: Nanos(row.int(7)?.into()),
        facts: row.int(8)?,
        estimated_days: row.int(9)?,
        message: row.text(10)?,
        fingerprint: row.maybe_text(11)?,
        query_id: row.maybe_text(12)?,
        bytes_scanned: row.int(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_sql_numbers_placeholders() {
        assert_eq!(
            insert_sql("t", &["a", "b"], 2),
            "INSERT INTO t (a, b) VALUES ($1,$2),($3,$4)"
        );
    }

    #[test]
    fn the_allocation_run_insert_takes_its_parameters() {
        let highest = (1..=20)
            .rev()
            .find(|n| INSERT_ALLOCATION_RUN_SQL.contains(&format!("${n}")))
            .expect("placeholders");
        let run = RunRecord {
            created_at: Timestamp::at(chrono::DateTime::UNIX_EPOCH),
            from: NaiveDate::MIN,
            to: NaiveDate::MIN,
            rules_hash: String::new(),
            basis: CostBasis::Effective,
            facts: 0,
            billed: Nanos(0),
            facts_mark: None,
        };
        assert_eq!(allocation_run_params(&run, &[]).unwrap().len(), highest);
    }
}
