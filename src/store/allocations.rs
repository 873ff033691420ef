//! `allocations` and their runs: replacing a day range's allocations in one transaction (with
//! the facts they were computed from, for `import --allocate`), and the queries over them:
//! rows, per-service totals, the series the detectors read, their provenance.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use sqlx::Row;

use super::connect::{days, rows_per_insert, Store, Writer};
use super::facts::write_facts_sqlite;
use super::phase;
use super::rows::{
    allocation_decode, allocation_insert_columns, allocation_params, allocation_run_columns,
    allocation_run_params, bind, insert_sql, Cells, ImportRecord, Param, RunRecord,
    ALLOCATION_COLUMNS, DELETE_ALLOCATIONS_SQL, INSERT_ALLOCATION_RUN_SQL,
};
use crate::model::{Allocation, Fact, Provenance, SeriesRow, ServiceTotal};

/// Whose rows [`Store::series_rows_of`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsOf<'a> {
    All,
    Team(&'a str),
    Service(&'a str),
    Pool(&'a str),
}

impl Store {
    /// Replaces the allocations of `from..=to` with `allocations`, in one transaction, and
    /// records the run. Returns the run id.
    pub async fn replace_allocations(
        &self,
        run: &RunRecord,
        allocations: &[Allocation],
    ) -> anyhow::Result<i64> {
        if let Some(file) = &self.sqlite_file {
            return file
                .write(|tx| write_allocations_sqlite(tx, run, allocations))
                .await;
        }
        let mut tx = self.pool.begin().await?;
        phase::mark("write began");
        let run_id = self
            .replace_allocations_in(&mut tx, run, allocations)
            .await?;
        phase::mark("committing");
        tx.commit().await?;
        phase::mark("committed");
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
            return file
                .write(|tx| {
                    let import_id = write_facts_sqlite(tx, record, facts)?;
                    Ok((import_id, write_allocations_sqlite(tx, run, allocations)?))
                })
                .await;
        }
        let mut tx = self.pool.begin().await?;
        phase::mark("write began");
        let import_id = self.replace_facts_in(&mut tx, record, facts).await?;
        let run_id = self
            .replace_allocations_in(&mut tx, run, allocations)
            .await?;
        phase::mark("committing");
        tx.commit().await?;
        phase::mark("committed");
        Ok((import_id, run_id))
    }

    async fn replace_allocations_in(
        &self,
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        run: &RunRecord,
        allocations: &[Allocation],
    ) -> anyhow::Result<i64> {
        self.serialize(tx, Writer::Allocations).await?;
        bind(sqlx::query(DELETE_ALLOCATIONS_SQL), days(run.from, run.to))
            .execute(&mut **tx)
            .await?;
        let run_id: i64 = bind(
            sqlx::query(INSERT_ALLOCATION_RUN_SQL),
            allocation_run_params(run, allocations)?,
        )
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?;
        let columns = allocation_insert_columns();
        for chunk in allocations.chunks(rows_per_insert(self.backend)) {
            let sql = insert_sql("allocations", &columns, chunk.len());
            let mut params = Vec::with_capacity(chunk.len() * columns.len());
            for a in chunk {
                params.extend(allocation_params(a)?);
                params.extend(allocation_run_columns(run, run_id));
            }
            bind(sqlx::query(&sql), params).execute(&mut **tx).await?;
        }
        Ok(run_id)
    }

    /// Allocation rows with `from <= day <= to`, in (day, service, pool) order.
    pub async fn allocations(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<Allocation>> {
        let sql = format!(
            "SELECT {} FROM allocations WHERE day >= $1 AND day <= $2 ORDER BY day, service, pool, provider_service, method",
            ALLOCATION_COLUMNS.join(", ")
        );
        let rows = bind(sqlx::query(&sql), days(from, to))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(allocation_decode).collect()
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
        );
        let rows = bind(rows, days(from, to)).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                Ok(ServiceTotal {
                    service: row.text(0)?,
                    team: row.text(1)?,
                    currency: row.text(2)?,
                    direct: row.amount(3)?,
                    shared: row.amount(5)?,
                })
            })
            .collect()
    }

    /// The cost bases and rule hashes of the allocations stored for a range.
    pub async fn allocation_provenance(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<Provenance>> {
        let pairs = self
            .text_pairs(
                "SELECT DISTINCT cost_basis, rules_hash FROM allocations WHERE day >= $1 AND day <= $2 ORDER BY cost_basis, rules_hash",
                (from, to),
            )
            .await?;
        pairs
            .into_iter()
            .map(|(basis, rules_hash)| {
                Ok(Provenance {
                    basis: basis.parse().map_err(|_| {
                        anyhow::anyhow!("unknown cost basis `{basis}` in the store")
                    })?,
                    rules_hash,
                })
            })
            .collect()
    }

    /// Per (day, service, currency, pool, provider service) sums over a range, in (service,
    /// currency, day) order, and the days that are still estimated. `alert` groups them.
    pub async fn series_rows(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<(Vec<SeriesRow>, BTreeSet<NaiveDate>)> {
        let rows = self.series_rows_of(from, to, RowsOf::All).await?;
        let estimated: BTreeSet<NaiveDate> =
            self.estimated_days(from, to).await?.into_iter().collect();
        Ok((rows, estimated))
    }

    /// [`Store::series_rows`] of one team, one service, or every service that has a share of
    /// the named pools (read through their indexes), without the estimated days.
    pub async fn series_rows_of(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        of: RowsOf<'_>,
    ) -> anyhow::Result<Vec<SeriesRow>> {
        let filter = match of {
            RowsOf::All => "",
            RowsOf::Team(_) => " AND team = $3",
            RowsOf::Service(_) => " AND service = $3",
            RowsOf::Pool(_) => " AND pool = $3",
        };
        let sql = format!(
            "SELECT day, service, MAX(team), currency, pool, provider_service, CAST(SUM(amount_units) AS BIGINT), CAST(SUM(amount_nanos) AS BIGINT)
             FROM allocations WHERE day >= $1 AND day <= $2{filter}
             GROUP BY day, service, currency, pool, provider_service
             ORDER BY service, currency, day"
        );
        let name = match of {
            RowsOf::All => None,
            RowsOf::Team(name) | RowsOf::Service(name) | RowsOf::Pool(name) => Some(name),
        };
        let mut params = days(from, to).to_vec();
        params.extend(name.map(Param::Text));
        // SQLite through its bulk path: `alerts check` reads every service's series, and
        // sqlx copied every cell of the rows it returned (half the command's CPU).
        if let Some(file) = &self.sqlite_file {
            return file
                .read(|conn| {
                    let mut select = conn.prepare(&sql)?;
                    let mut rows = select.query(rusqlite::params_from_iter(&params))?;
                    let mut series = Vec::new();
                    while let Some(row) = rows.next()? {
                        series.push(series_decode(row)?);
                    }
                    Ok(series)
                })
                .await;
        }
        let rows = bind(sqlx::query(&sql), params)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(series_decode).collect()
    }

    /// The distinct (team, service, pool, provider service) of a range: who and what has cost.
    pub async fn allocation_names(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<Vec<[String; 4]>> {
        let rows = bind(
            sqlx::query(
                "SELECT team, service, pool, provider_service FROM allocations
                 WHERE day >= $1 AND day <= $2
                 GROUP BY team, service, pool, provider_service",
            ),
            days(from, to),
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok([row.text(0)?, row.text(1)?, row.text(2)?, row.text(3)?]))
            .collect()
    }

    /// The allocation rows of one service with `from <= day <= to`, in (day, pool) order.
    pub async fn service_allocations(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        service: &str,
    ) -> anyhow::Result<Vec<Allocation>> {
        let sql = format!(
            "SELECT {} FROM allocations WHERE day >= $1 AND day <= $2 AND service = $3 ORDER BY day, service, pool, provider_service, method",
            ALLOCATION_COLUMNS.join(", ")
        );
        let rows = bind(sqlx::query(&sql), days(from, to))
            .bind(service)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(allocation_decode).collect()
    }

    /// Each day's total of one shared pool, per currency: (currency, day, total).
    pub async fn pool_day_totals(
        &self,
        from: NaiveDate,
        to: NaiveDate,
        pool: &str,
    ) -> anyhow::Result<Vec<(String, NaiveDate, crate::money::Nanos)>> {
        let rows = bind(
            sqlx::query(
                "SELECT currency, day, CAST(SUM(amount_units) AS BIGINT), CAST(SUM(amount_nanos) AS BIGINT)
                 FROM allocations WHERE day >= $1 AND day <= $2 AND pool = $3
                 GROUP BY currency, day ORDER BY currency, day",
            ),
            days(from, to),
        )
        .bind(pool)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.text(0)?, row.day(1)?, row.amount(2)?)))
            .collect()
    }

    /// Grows with every allocate run and every import: answers computed from the allocations
    /// and the facts' estimated days stay right while it stays the same.
    pub async fn data_version(&self) -> anyhow::Result<(i64, i64)> {
        let row = sqlx::query(
            "SELECT CAST((SELECT COALESCE(MAX(id), 0) FROM allocation_runs) AS BIGINT),
                    CAST((SELECT COALESCE(MAX(id), 0) FROM imports) AS BIGINT)",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The last day that has allocations.
    pub async fn latest_allocation_day(&self) -> anyhow::Result<Option<NaiveDate>> {
        let row = sqlx::query("SELECT MAX(day) FROM allocations")
            .fetch_one(&self.pool)
            .await?;
        let day: Option<String> = row.try_get(0)?;
        Ok(day.and_then(|d| crate::model::parse_day(&d)))
    }
}

/// The SQLite bulk path of [`Store::replace_allocations`]. Returns the run id.
fn write_allocations_sqlite(
    tx: &rusqlite::Transaction<'_>,
    run: &RunRecord,
    allocations: &[Allocation],
) -> anyhow::Result<i64> {
    tx.execute(
        DELETE_ALLOCATIONS_SQL,
        rusqlite::params_from_iter(days(run.from, run.to)),
    )?;
    let run_id: i64 = tx.query_row(
        INSERT_ALLOCATION_RUN_SQL,
        rusqlite::params_from_iter(allocation_run_params(run, allocations)?),
        |row| row.get(0),
    )?;
    let mut insert = tx.prepare(&insert_sql("allocations", &allocation_insert_columns(), 1))?;
    let run_columns: [Param<'_>; 3] = allocation_run_columns(run, run_id);
    for a in allocations {
        let params = allocation_params(a)?;
        insert.execute(rusqlite::params_from_iter(
            params.iter().chain(run_columns.iter()),
        ))?;
    }
    Ok(run_id)
}

/// A row of [`Store::series_rows_of`]'s query.
fn series_decode(row: &impl Cells) -> anyhow::Result<SeriesRow> {
    Ok(SeriesRow {
        day: row.day(0)?,
        service: row.text(1)?,
        team: row.text(2)?,
        currency: row.text(3)?,
        pool: row.text(4)?,
        provider_service: row.text(5)?,
        amount: row.amount(6)?,
    })
}
