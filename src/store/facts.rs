//! `billing_facts` (with their tag sets and import records): replacing a scope's facts in one
//! transaction, reading a range back, and what the rest of the store asks of them (estimated
//! days, periods, totals, the marks that tell which days changed since their allocation).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use anyhow::Context;
use chrono::NaiveDate;
use sqlx::Row;

use super::connect::{days, rows_per_insert, Backend, Store, Writer};
use super::phase;
use super::rows::{
    bind, fact_decode, fact_insert_columns, fact_params, import_params, insert_import_sql,
    insert_sql, select_facts_sql, sort_facts, tag_digest, tag_set_decode, tags_json, Cells,
    ImportRecord, Param, INSERT_TAG_SET_SQLITE, SELECT_TAG_SETS_SQL, SELECT_TAG_SET_SQLITE,
};
use crate::model::{CostBasis, Fact, Keys, Tags};
use crate::money::Nanos;

/// A day's facts against the allocation run that last covered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayMark {
    pub day: NaiveDate,
    /// The largest import id among the day's facts.
    pub facts: i64,
    /// The facts mark of the latest allocation run whose range holds the day, if any.
    pub allocated: Option<i64>,
}

impl Store {
    /// Replaces the facts of the given billing periods with `facts`, atomically: on any error
    /// the store is left as it was. Returns the import id.
    pub async fn replace_facts(
        &self,
        record: &ImportRecord,
        facts: &[Fact],
    ) -> anyhow::Result<i64> {
        if let Some(file) = &self.sqlite_file {
            return file.write(|tx| write_facts_sqlite(tx, record, facts)).await;
        }
        let mut tx = self.pool.begin().await?;
        phase::mark("write began");
        let import_id = self.replace_facts_in(&mut tx, record, facts).await?;
        phase::mark("committing");
        tx.commit().await?;
        phase::mark("committed");
        Ok(import_id)
    }

    /// The sqlx path of [`Store::replace_facts`], inside the caller's transaction.
    pub(super) async fn replace_facts_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        record: &ImportRecord,
        facts: &[Fact],
    ) -> anyhow::Result<i64> {
        self.serialize(tx, Writer::Facts).await?;
        for (sql, params) in record.scope.deletes() {
            bind(sqlx::query(sql), params).execute(&mut **tx).await?;
        }
        let import_sql = insert_import_sql();
        let import_id: i64 = bind(sqlx::query(&import_sql), import_params(record, facts)?)
            .fetch_one(&mut **tx)
            .await?
            .try_get(0)?;

        let tag_sets = self.tag_set_ids(tx, facts).await?;
        let columns = fact_insert_columns();
        for chunk in facts.chunks(rows_per_insert(self.backend)) {
            let sql = insert_sql("billing_facts", &columns, chunk.len());
            let mut params = Vec::with_capacity(chunk.len() * columns.len());
            for f in chunk {
                params.extend(fact_params(f, tag_sets[&tags_json(&f.tags)])?);
                params.push(Param::Int(import_id));
            }
            bind(sqlx::query(&sql), params).execute(&mut **tx).await?;
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
                        insert_sql("tag_sets", &["digest", "tags"], chunk.len())
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
        let rows = bind(
            sqlx::query(
                "SELECT DISTINCT day FROM billing_facts WHERE estimated <> 0 AND day >= $1 AND day <= $2 ORDER BY day",
            ),
            days(from, to),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| row.day(0)).collect()
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

    /// Facts with `from <= day <= to`.
    pub async fn facts(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<Vec<Fact>> {
        if let Some(file) = &self.sqlite_file {
            return file.read(|conn| read_facts_sqlite(conn, from, to)).await;
        }
        let mut tag_sets = HashMap::new();
        for row in bind(sqlx::query(SELECT_TAG_SETS_SQL), days(from, to))
            .fetch_all(&self.pool)
            .await?
        {
            let (id, tags) = tag_set_decode(&row)?;
            tag_sets.insert(id, tags);
        }
        let sql = select_facts_sql();
        let rows = bind(sqlx::query(&sql), days(from, to))
            .fetch_all(&self.pool)
            .await?;
        let mut keys = Keys::new();
        let mut facts = rows
            .iter()
            .map(|row| fact_decode(row, &tag_sets, &mut keys))
            .collect::<anyhow::Result<Vec<Fact>>>()?;
        sort_facts(&mut facts);
        Ok(facts)
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
        let rows = bind(sqlx::query(&sql), days(from, to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.amount(1)?)))
            .collect()
    }

    /// The largest import id among the facts of a range (0 when there are none): read before
    /// the facts are loaded for an allocation, so a later import is seen as a change.
    pub async fn facts_mark(&self, from: NaiveDate, to: NaiveDate) -> anyhow::Result<i64> {
        let row = bind(
            sqlx::query(
                "SELECT CAST(COALESCE(MAX(import_id), 0) AS BIGINT) FROM billing_facts WHERE day >= $1 AND day <= $2",
            ),
            days(from, to),
        )
        .fetch_one(&self.pool)
        .await?;
        row.int(0)
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
            covered.push((row.day(0)?, row.day(1)?, row.int(2)?));
        }
        facts
            .iter()
            .map(|row| {
                let day = row.day(0)?;
                Ok(DayMark {
                    day,
                    facts: row.int(1)?,
                    // The newest run holding the day wrote its allocations.
                    allocated: covered
                        .iter()
                        .find(|(from, to, _)| *from <= day && day <= *to)
                        .map(|(_, _, mark)| *mark),
                })
            })
            .collect()
    }
}

/// The SQLite bulk path of [`Store::replace_facts`]: one prepared statement, each distinct
/// tag set stored once. Returns the import id.
pub(super) fn write_facts_sqlite(
    tx: &rusqlite::Transaction<'_>,
    record: &ImportRecord,
    facts: &[Fact],
) -> anyhow::Result<i64> {
    for (sql, params) in record.scope.deletes() {
        tx.execute(sql, rusqlite::params_from_iter(params))?;
    }
    let import_id: i64 = tx.query_row(
        &insert_import_sql(),
        rusqlite::params_from_iter(import_params(record, facts)?),
        |row| row.get(0),
    )?;
    let mut tag_sets: HashMap<String, i64> = HashMap::new();
    let mut store_tags = tx.prepare(INSERT_TAG_SET_SQLITE)?;
    let mut tag_set_id = tx.prepare(SELECT_TAG_SET_SQLITE)?;
    let mut insert = tx.prepare(&insert_sql("billing_facts", &fact_insert_columns(), 1))?;
    let mut last: Option<(&Arc<Tags>, i64)> = None;
    for f in facts {
        // Facts of one resource come together and share their tags.
        let tag_set = match last {
            Some((tags, id)) if *tags == f.tags => id,
            _ => {
                let text = tags_json(&f.tags);
                let id = match tag_sets.get(&text) {
                    Some(&id) => id,
                    None => {
                        store_tags.execute([&text])?;
                        let id: i64 = tag_set_id.query_row([&text], |row| row.get(0))?;
                        tag_sets.insert(text, id);
                        id
                    }
                };
                last = Some((&f.tags, id));
                id
            }
        };
        let params = fact_params(f, tag_set)?;
        insert.execute(rusqlite::params_from_iter(
            params.iter().chain([&Param::Int(import_id)]),
        ))?;
    }
    Ok(import_id)
}

/// The SQLite bulk path of [`Store::facts`].
fn read_facts_sqlite(
    conn: &rusqlite::Connection,
    from: NaiveDate,
    to: NaiveDate,
) -> anyhow::Result<Vec<Fact>> {
    let mut tag_sets = HashMap::new();
    let mut select = conn.prepare(SELECT_TAG_SETS_SQL)?;
    let mut rows = select.query(rusqlite::params_from_iter(days(from, to)))?;
    while let Some(row) = rows.next()? {
        let (id, tags) = tag_set_decode(row)?;
        tag_sets.insert(id, tags);
    }
    drop(rows);
    let mut select = conn.prepare(&select_facts_sql())?;
    let mut rows = select.query(rusqlite::params_from_iter(days(from, to)))?;
    let mut facts = Vec::new();
    let mut keys = Keys::new();
    while let Some(row) = rows.next()? {
        facts.push(fact_decode(row, &tag_sets, &mut keys)?);
    }
    sort_facts(&mut facts);
    Ok(facts)
}
