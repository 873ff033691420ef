//! The SQLite fast path for the two bulk operations, writing a batch of facts and reading a
//! range of them: rusqlite on its own connection to the store's file, with one prepared
//! statement per batch. sqlx's SQLite driver costs ~15 us per row (a worker thread and a
//! channel per row), which made these two steps most of an import + allocate. Same SQL text
//! and the same transaction boundaries as the sqlx path; WAL mode lets the two connections
//! share the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::NaiveDate;
use rusqlite::{params, Connection, OpenFlags, TransactionBehavior};

use super::sync::INSERT_RUN_SQL;
use super::{
    decode_tags, fact_totals, insert_sql, tag_set, tags_json, FactScope, ImportRecord, RunRecord,
    Stored, SyncRun, ALLOCATION_COLUMNS, ALLOCATION_WIDTH, DELETE_ALLOCATIONS_SQL, DELETE_DAYS_SQL,
    DELETE_PERIOD_SQL, FACT_COLUMNS, FACT_WIDTH, INSERT_ALLOCATION_RUN_SQL, INSERT_IMPORT_SQL,
    INSERT_TAG_SET_SQLITE, SELECT_FACTS_SQL, SELECT_TAG_SETS_SQL, SELECT_TAG_SET_SQLITE,
};
use crate::model::{day_key, parse_day, Allocation, Fact};

/// The file of a `sqlite://FILE?...` URL (`None` for an in-memory database).
pub(super) fn file_of(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or("");
    if path.is_empty() || path.starts_with(":memory:") {
        None
    } else {
        Some(PathBuf::from(path))
    }
}

fn open(file: &Path) -> anyhow::Result<Connection> {
    let conn = Connection::open_with_flags(
        file,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening the SQLite store {}", file.display()))?;
    conn.busy_timeout(super::sqlite_wait())?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(conn)
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

/// [`super::Store::replace_facts`] (and, with `run`, `commit_sync`) in one transaction.
pub(super) async fn replace_facts(
    file: &Path,
    record: &ImportRecord,
    facts: &[Fact],
    run: Option<&SyncRun>,
) -> anyhow::Result<i64> {
    let (import_id, _) = replace(file, Some((record, facts, run)), None).await?;
    Ok(import_id.expect("facts were written"))
}

/// Facts to replace: the import, its facts and the sync run that fetched them.
type FactWrite<'a> = (&'a ImportRecord, &'a [Fact], Option<&'a SyncRun>);
/// Allocations to replace: the run and its rows.
type AllocationWrite<'a> = (&'a RunRecord, &'a [Allocation]);

/// Replaces facts, allocations or both in one transaction, with one prepared statement per
/// table. Returns the import id and the run id (of what was written).
pub(super) async fn replace(
    file: &Path,
    facts: Option<FactWrite<'_>>,
    allocations: Option<AllocationWrite<'_>>,
) -> anyhow::Result<(Option<i64>, Option<i64>)> {
    blocking(|| {
        let mut conn = open(file)?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        super::phase("write began");
        let mut import_id = None;
        if let Some((record, facts, run)) = facts {
            match &record.scope {
                FactScope::Periods(periods) => {
                    for (period, account) in periods {
                        tx.execute(DELETE_PERIOD_SQL, params![period, account])?;
                    }
                }
                FactScope::Days { account, from, to } => {
                    tx.execute(
                        DELETE_DAYS_SQL,
                        params![account, day_key(*from), day_key(*to)],
                    )?;
                }
            }
            let (effective, billed) = fact_totals(facts)?;
            let import_id_written: i64 = tx.query_row(
                INSERT_IMPORT_SQL,
                params![
                    record.created_at,
                    record.source,
                    record.files.join("\n"),
                    record.scope.describe(),
                    record.line_items,
                    facts.len() as i64,
                    effective.units,
                    effective.nanos,
                    billed.units,
                    billed.nanos
                ],
                |row| row.get(0),
            )?;
            {
                // Each distinct tag set once: stored unless it is, then referred to by id.
                let mut tag_sets: HashMap<String, i64> = HashMap::new();
                let mut store_tags = tx.prepare(INSERT_TAG_SET_SQLITE)?;
                let mut tag_set_id = tx.prepare(SELECT_TAG_SET_SQLITE)?;
                let mut insert =
                    tx.prepare(&insert_sql("billing_facts", FACT_COLUMNS, FACT_WIDTH, 1))?;
                let mut last: Option<(&crate::model::Tags, i64)> = None;
                for f in facts {
                    // Facts of one resource come together and share their tags.
                    let tag_set = match last {
                        Some((tags, id)) if *tags == f.tags => id,
                        _ => {
                            let text = tags_json(&f.tags);
                            let id = match tag_sets.get(&text) {
                                Some(&id) => id,
                                None => {
                                    store_tags.execute(params![text])?;
                                    let id: i64 =
                                        tag_set_id.query_row(params![text], |row| row.get(0))?;
                                    tag_sets.insert(text, id);
                                    id
                                }
                            };
                            last = Some((&f.tags, id));
                            id
                        }
                    };
                    let (effective, billed) = (Stored::of(f.effective)?, Stored::of(f.billed)?);
                    let (list, contracted) = (Stored::of(f.list)?, Stored::of(f.contracted)?);
                    insert.execute(params![
                        day_key(f.day),
                        f.billing_period,
                        f.billing_account,
                        f.sub_account,
                        f.provider,
                        f.provider_service,
                        f.resource_id,
                        f.charge_category,
                        tag_set,
                        f.currency,
                        effective.units,
                        effective.nanos,
                        billed.units,
                        billed.nanos,
                        f.line_count,
                        i64::from(f.estimated),
                        import_id_written,
                        list.units,
                        list.nanos,
                        contracted.units,
                        contracted.nanos
                    ])?;
                }
            }
            if let Some(run) = run {
                tx.execute(
                    INSERT_RUN_SQL,
                    params![
                        run.created_at,
                        run.source,
                        run.account,
                        day_key(run.from),
                        day_key(run.to),
                        run.status.as_str(),
                        run.calls,
                        super::sync::api_cost_nanos(run.cost),
                        run.facts,
                        run.estimated_days,
                        run.message,
                        Some(import_id_written),
                        run.fingerprint
                    ],
                )?;
            }
            import_id = Some(import_id_written);
        }
        let mut run_id = None;
        if let Some((run, allocations)) = allocations {
            run_id = Some(write_allocations(&tx, run, allocations)?);
        }
        super::phase("committing");
        tx.commit()?;
        super::phase("committed");
        Ok((import_id, run_id))
    })
}

fn write_allocations(
    tx: &rusqlite::Transaction<'_>,
    run: &RunRecord,
    allocations: &[Allocation],
) -> anyhow::Result<i64> {
    let allocated = Stored::of(allocations.iter().map(|a| a.amount).sum())?;
    let billed = Stored::of(run.billed)?;
    tx.execute(
        DELETE_ALLOCATIONS_SQL,
        params![day_key(run.from), day_key(run.to)],
    )?;
    let run_id: i64 = tx.query_row(
        INSERT_ALLOCATION_RUN_SQL,
        params![
            run.created_at,
            day_key(run.from),
            day_key(run.to),
            run.rules_hash,
            run.basis.as_str(),
            run.facts,
            billed.units,
            billed.nanos,
            allocated.units,
            allocated.nanos,
            run.facts_mark
        ],
        |row| row.get(0),
    )?;
    let mut insert = tx.prepare(&insert_sql(
        "allocations",
        ALLOCATION_COLUMNS,
        ALLOCATION_WIDTH,
        1,
    ))?;
    for a in allocations {
        let amount = Stored::of(a.amount)?;
        insert.execute(params![
            day_key(a.day),
            a.service,
            a.team,
            a.cost_center,
            a.pool,
            a.method.as_str(),
            i64::from(a.fallback_used),
            a.ratio_ppb,
            amount.units,
            amount.nanos,
            a.currency,
            run.basis.as_str(),
            run.rules_hash,
            run_id,
            a.provider_service,
            a.basis
        ])?;
    }
    Ok(run_id)
}

/// [`super::Store::facts`]: facts with `from <= day <= to`.
pub(super) async fn facts(
    file: &Path,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<Fact>> {
    blocking(|| {
        let conn = open(file)?;
        let mut tag_sets = HashMap::new();
        let mut select = conn.prepare(SELECT_TAG_SETS_SQL)?;
        let mut rows = select.query(params![day_key(from), day_key(to)])?;
        while let Some(row) = rows.next()? {
            let text: String = row.get(1)?;
            tag_sets.insert(row.get::<_, i64>(0)?, decode_tags(&text)?);
        }
        drop(rows);
        let mut select = conn.prepare(SELECT_FACTS_SQL)?;
        let mut rows = select.query(params![day_key(from), day_key(to)])?;
        let mut facts = Vec::new();
        while let Some(row) = rows.next()? {
            let day: String = row.get(0)?;
            facts.push(Fact {
                day: parse_day(&day).with_context(|| format!("bad day `{day}` in the store"))?,
                billing_period: row.get(1)?,
                billing_account: row.get(2)?,
                sub_account: row.get(3)?,
                provider: row.get(4)?,
                provider_service: row.get(5)?,
                resource_id: row.get(6)?,
                charge_category: row.get(7)?,
                tags: tag_set(&tag_sets, row.get(8)?)?,
                currency: row.get(9)?,
                effective: Stored::amount(row.get(10)?, row.get(11)?),
                billed: Stored::amount(row.get(12)?, row.get(13)?),
                list: Stored::amount(row.get(16)?, row.get(17)?),
                contracted: Stored::amount(row.get(18)?, row.get(19)?),
                line_count: row.get(14)?,
                estimated: row.get::<_, i64>(15)? != 0,
            });
        }
        super::sort_facts(&mut facts);
        Ok(facts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_of_a_url() {
        assert_eq!(
            file_of("sqlite://costsplit.db?mode=rwc"),
            Some(PathBuf::from("costsplit.db"))
        );
        assert_eq!(
            file_of("sqlite:///tmp/a.db"),
            Some(PathBuf::from("/tmp/a.db"))
        );
        assert_eq!(file_of("sqlite::memory:"), None);
        assert_eq!(file_of("postgres://x@h/db"), None);
    }
}
