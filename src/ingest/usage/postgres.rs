//! Bytes per schema or per `schema.table` of a shared PostgreSQL database:
//! `pg_total_relation_size` (heap, indexes and TOAST) of every table and materialized view
//! outside the system schemas. One query, in a read-only session with a statement timeout;
//! its load is a scan of `pg_class`.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, Row};

use super::measured::Measured;
use crate::rules::PgGrain;

const SIZES_SQL: &str = "SELECT n.nspname::text, c.relname::text, pg_total_relation_size(c.oid)
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'm')
       AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'";

pub(super) async fn measure(dsn: &str, by: PgGrain, timeout: Duration) -> Result<Measured, String> {
    crate::pgtls::check_url(dsn).map_err(|e| e.to_string())?;
    let options: PgConnectOptions = dsn.parse().map_err(|_| {
        "the DSN is not a PostgreSQL URL (postgres://USER:PASSWORD@HOST:PORT/DB)".to_string()
    })?;
    let statement_ms = timeout.as_millis().max(1000).to_string();
    let options = options
        .application_name("costsplit usage")
        .options([
            ("default_transaction_read_only", "on"),
            ("statement_timeout", statement_ms.as_str()),
        ])
        .disable_statement_logging();
    let mut conn = options
        .connect()
        .await
        .map_err(|e| crate::pgtls::explain(&format!("cannot connect: {e}")))?;
    let rows = sqlx::query(SIZES_SQL)
        .fetch_all(&mut conn)
        .await
        .map_err(|e| format!("reading table sizes: {e}"))?;
    let _ = conn.close().await;
    let mut sizes: BTreeMap<String, i128> = BTreeMap::new();
    for row in &rows {
        let schema: String = row.try_get(0).map_err(|e| e.to_string())?;
        let table: String = row.try_get(1).map_err(|e| e.to_string())?;
        let bytes: i64 = row.try_get(2).map_err(|e| e.to_string())?;
        let member = match by {
            PgGrain::Schema => schema,
            PgGrain::Table => format!("{schema}.{table}"),
        };
        *sizes.entry(member).or_default() += i128::from(bytes);
    }
    Ok(Measured {
        members: sizes
            .into_iter()
            .map(|(member, bytes)| (member, bytes.to_string()))
            .collect(),
        notes: Vec::new(),
    })
}
