//! Athena sums a large export where it already lives (issue 28): costsplit asks the table's
//! columns (`information_schema`), runs one `UNLOAD` of the generated facts query per changed
//! billing period (partition-filtered, so only that period is scanned), polls it with backoff,
//! and downloads the facts parquet it wrote. Reads only: `jobs::sync_exports` imports the
//! facts and writes the store. The SQL is [`super::engine`]'s Trino text, over a relation that
//! turns the table's typed columns into the text the plan reads.

use std::path::{Path, PathBuf};
use std::time::Duration;

use aws_sdk_athena::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, ResultConfiguration};
use aws_sdk_athena::Client;

use super::engine::{self, ColumnKind, Dialect, EngineFormat, Sql};
use super::s3_exports::{self, ExportSource};
use crate::money::{Nanos, NANOS_PER_UNIT};

/// Athena's price per TB (2^40 bytes) scanned, in us-east-1 and most regions.
pub const DEFAULT_PRICE_PER_TB: &str = "5.00";
/// Athena bills at least 10 MB a query, and rounds up to the next MB.
const MIN_BILLED_BYTES: i64 = 10 << 20;
const MB: i64 = 1 << 20;
const TB: i128 = 1 << 40;

/// The Athena settings of an `[[exports]]` entry with `engine = "athena"`, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AthenaTarget {
    pub format: EngineFormat,
    pub workgroup: String,
    pub catalog: String,
    pub database: String,
    pub table: String,
    /// `s3://bucket/prefix/` where costsplit's UNLOADs write (each in a folder of its own)
    /// and Athena its query results.
    pub output_bucket: String,
    pub output_prefix: String,
    /// SQL that keeps one period's partition; `{period}` is `YYYY-MM`, `{year}` and `{month}`
    /// its parts.
    pub partition_filter: String,
    pub price_per_tb: Nanos,
    pub timeout: Duration,
}

/// A query Athena ran (or refused), as the sync run records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRun {
    pub query_id: String,
    pub bytes_scanned: i64,
    /// What Athena charges for it: nothing for a failed query, the bytes scanned (at least
    /// 10 MB) for one that succeeded or was cancelled.
    pub cost: Nanos,
    /// Athena API requests made.
    pub requests: i64,
}

/// A query that did not succeed: what Athena said, and what it cost.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryFailed {
    pub message: String,
    /// None when Athena never accepted the query.
    pub run: Option<QueryRun>,
    pub requests: i64,
}

/// What Athena charges for scanning `bytes` at `price_per_tb`: rounded up to the MB, at
/// least 10 MB, and the price rounded up to the nano-unit.
pub fn scan_cost(bytes: i64, price_per_tb: Nanos) -> Nanos {
    let billed = (bytes.max(0) as u64)
        .div_ceil(MB as u64)
        .saturating_mul(MB as u64);
    let billed = i64::try_from(billed)
        .unwrap_or(i64::MAX)
        .max(MIN_BILLED_BYTES);
    Nanos((i128::from(billed) * price_per_tb.0 + TB - 1) / TB)
}

/// `bytes` for people: `1.2 GB`.
pub fn bytes_text(bytes: i64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", units[unit]),
    }
}

/// What Athena answered to a request that failed: its error code and message, or why no
/// answer came.
fn said<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    error: &SdkError<E, R>,
) -> String {
    match error.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("no message")
        ),
        None => DisplayErrorContext(error).to_string(),
    }
}

/// An Athena client with the export's credentials, region and endpoint.
pub async fn client(source: &ExportSource) -> Client {
    Client::new(&s3_exports::sdk_config(source).await)
}

/// The Trino text of the columns question (`information_schema`, which Athena answers from
/// its catalog).
pub fn columns_sql(target: &AthenaTarget) -> String {
    format!(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
        literal(&target.database.to_ascii_lowercase()),
        literal(&target.table.to_ascii_lowercase())
    )
}

/// How a column of Athena's `data_type` becomes the plan's text.
pub fn column_kind(data_type: &str) -> ColumnKind {
    let t = data_type.trim().to_ascii_lowercase();
    if t.starts_with("double") || t.starts_with("real") || t.starts_with("float") {
        ColumnKind::Float
    } else if ["map", "row", "array", "struct", "json"]
        .iter()
        .any(|p| t.starts_with(p))
    {
        ColumnKind::Json
    } else {
        ColumnKind::Text
    }
}

/// The table's columns, by asking Athena's `information_schema`.
pub async fn table_columns(
    client: &Client,
    target: &AthenaTarget,
) -> Result<(Vec<(String, ColumnKind)>, QueryRun), QueryFailed> {
    let run = run_query(client, target, &columns_sql(target)).await?;
    let mut requests = run.requests;
    let mut columns = Vec::new();
    let mut token: Option<String> = None;
    let mut first_page = true;
    loop {
        requests += 1;
        let page = client
            .get_query_results()
            .query_execution_id(&run.query_id)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| QueryFailed {
                message: format!(
                    "reading the columns of {}.{} (query {}): {}",
                    target.database,
                    target.table,
                    run.query_id,
                    said(&e)
                ),
                run: Some(run.clone()),
                requests,
            })?;
        let rows = page.result_set().map(|r| r.rows()).unwrap_or_default();
        // A SELECT's first row is its header.
        for row in rows.iter().skip(usize::from(first_page)) {
            let cell = |i: usize| {
                row.data()
                    .get(i)
                    .and_then(|d| d.var_char_value())
                    .unwrap_or_default()
                    .to_string()
            };
            columns.push((cell(0), column_kind(&cell(1))));
        }
        first_page = false;
        match page.next_token() {
            Some(next) => token = Some(next.to_string()),
            None => break,
        }
    }
    let run = QueryRun { requests, ..run };
    if columns.is_empty() {
        return Err(QueryFailed {
            message: format!(
                "Athena knows no table {}.{} (its information_schema lists no column): check `database` and `table`",
                target.database, target.table
            ),
            requests: run.requests,
            run: Some(run),
        });
    }
    Ok((columns, run))
}

/// The `UNLOAD` of `period`'s facts to `to` (`s3://…/`): the generated Trino query over the
/// table's columns as text, only the period's partition read.
pub fn unload_sql(
    target: &AthenaTarget,
    columns: &[(String, ColumnKind)],
    period: &str,
    to: &str,
) -> String {
    let sql = Sql::new(Dialect::Trino);
    let table = format!(
        "{}.{}.{}",
        sql.quote(&target.catalog),
        sql.quote(&target.database),
        sql.quote(&target.table)
    );
    let filter = partition_filter(&target.partition_filter, period);
    let mut relation = format!(
        "SELECT\n    {}\n  FROM {table}",
        engine::lines_columns(target.format, Dialect::Trino, columns).join(",\n    ")
    );
    if !filter.trim().is_empty() {
        relation.push_str(&format!("\n  WHERE {filter}"));
    }
    let query = engine::facts_query_from(
        target.format,
        Dialect::Trino,
        Some(period),
        &format!("(\n  {relation}\n) AS {}", engine::LINES),
    );
    format!(
        "UNLOAD (\n{query}\n) TO {} WITH (format = 'PARQUET', compression = 'SNAPPY')",
        literal(to)
    )
}

/// `filter` for the billing period `period` (`YYYY-MM`): `{period}`, `{year}` and `{month}`
/// (1-12, as AWS names the legacy CUR's partitions) replaced.
fn partition_filter(filter: &str, period: &str) -> String {
    let (year, month) = period.split_once('-').unwrap_or((period, ""));
    filter
        .replace("{period}", period)
        .replace("{year}", year)
        .replace("{month}", month.trim_start_matches('0'))
}

/// A Trino string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Runs `query` in the workgroup and waits for it: polls with backoff (0.2 s doubling to
/// 5 s) until it ends or the timeout passes (then stops it). A query that did not succeed
/// is an error that says why, with what it scanned and cost.
pub async fn run_query(
    client: &Client,
    target: &AthenaTarget,
    query: &str,
) -> Result<QueryRun, QueryFailed> {
    let mut requests = 1;
    let started = client
        .start_query_execution()
        .query_string(query)
        .work_group(&target.workgroup)
        .query_execution_context(
            QueryExecutionContext::builder()
                .catalog(&target.catalog)
                .database(&target.database)
                .build(),
        )
        .result_configuration(
            ResultConfiguration::builder()
                .output_location(format!(
                    "s3://{}/{}",
                    target.output_bucket, target.output_prefix
                ))
                .build(),
        )
        .send()
        .await
        .map_err(|e| QueryFailed {
            message: format!(
                "Athena did not start the query in workgroup {}: {}",
                target.workgroup,
                said(&e)
            ),
            run: None,
            requests,
        })?;
    let query_id = started.query_execution_id().unwrap_or_default().to_string();
    let deadline = tokio::time::Instant::now() + target.timeout;
    let mut wait = Duration::from_millis(200);
    loop {
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(5));
        requests += 1;
        let answer = client
            .get_query_execution()
            .query_execution_id(&query_id)
            .send()
            .await
            .map_err(|e| QueryFailed {
                message: format!("asking Athena about query {query_id}: {}", said(&e)),
                run: None,
                requests,
            })?;
        let execution = answer.query_execution();
        let status = execution.and_then(|q| q.status());
        let bytes = execution
            .and_then(|q| q.statistics())
            .and_then(|s| s.data_scanned_in_bytes())
            .unwrap_or(0);
        let run = |cost: Nanos, requests: i64| QueryRun {
            query_id: query_id.clone(),
            bytes_scanned: bytes,
            cost,
            requests,
        };
        let why = || {
            let reason = status.and_then(|s| s.state_change_reason());
            let error = status
                .and_then(|s| s.athena_error())
                .and_then(|e| e.error_message());
            match (reason, error) {
                (Some(r), Some(e)) if r != e => format!("{r} ({e})"),
                (Some(r), _) => r.to_string(),
                (None, Some(e)) => e.to_string(),
                (None, None) => "Athena gave no reason".to_string(),
            }
        };
        match status.and_then(|s| s.state()) {
            Some(QueryExecutionState::Succeeded) => {
                return Ok(run(scan_cost(bytes, target.price_per_tb), requests))
            }
            // Athena charges nothing for a failed query.
            Some(QueryExecutionState::Failed) => {
                return Err(QueryFailed {
                    message: format!("Athena query {query_id} failed: {}", why()),
                    run: Some(run(Nanos::ZERO, requests)),
                    requests,
                })
            }
            // A workgroup's per-query scan limit cancels the query; what it scanned is billed.
            Some(QueryExecutionState::Cancelled) => {
                return Err(QueryFailed {
                    message: format!(
                        "Athena query {query_id} was cancelled after scanning {}: {} (a workgroup's per-query data limit cancels a query that scans more)",
                        bytes_text(bytes),
                        why()
                    ),
                    run: Some(run(scan_cost(bytes, target.price_per_tb), requests)),
                    requests,
                })
            }
            _ if tokio::time::Instant::now() >= deadline => {
                requests += 1;
                let _ = client
                    .stop_query_execution()
                    .query_execution_id(&query_id)
                    .send()
                    .await;
                return Err(QueryFailed {
                    message: format!(
                        "Athena query {query_id} did not finish within {} s and was stopped (raise the export's query_timeout_secs)",
                        target.timeout.as_secs()
                    ),
                    run: Some(run(scan_cost(bytes, target.price_per_tb), requests)),
                    requests,
                });
            }
            _ => {}
        }
    }
}

/// A fresh folder for one UNLOAD (UNLOAD writes only into an empty location): under the
/// output location, by export, period and a random name.
pub fn unload_folder(target: &AthenaTarget, export: &str, period: &str) -> (String, String) {
    let slug: String = export
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                true => c,
                false => '-',
            },
        )
        .collect();
    // Unique per attempt: the time to the nanosecond and the process.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let run = format!("{now:x}-{:x}", std::process::id());
    let prefix = format!(
        "{}costsplit-facts/{slug}/{period}/{run}/",
        target.output_prefix
    );
    let uri = format!("s3://{}/{prefix}", target.output_bucket);
    (prefix, uri)
}

/// Downloads the files an UNLOAD wrote under `prefix` into `dir` as parquet files (UNLOAD
/// names them without an extension). Returns (local file, `s3://` URI) pairs; none when the
/// query wrote no rows.
pub async fn download_unloaded(
    s3: &aws_sdk_s3::Client,
    target: &AthenaTarget,
    prefix: &str,
    dir: &Path,
) -> Result<Vec<(PathBuf, String)>, String> {
    let uri = format!("s3://{}/{prefix}", target.output_bucket);
    match s3_exports::download_folder(s3, &uri, dir).await {
        Err(e) if e.ends_with("holds no facts files") => Ok(Vec::new()),
        other => other,
    }
}

/// Splits `s3://bucket/prefix` into the bucket and the prefix (ending in `/`, or empty).
pub fn split_s3_uri(uri: &str) -> Option<(String, String)> {
    let rest = uri.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    let prefix = prefix.trim_matches('/');
    let prefix = match prefix.is_empty() {
        true => String::new(),
        false => format!("{prefix}/"),
    };
    Some((bucket.to_string(), prefix))
}

/// The price text of an `[[exports]]` entry, as nano-units.
pub fn parse_price(text: &str) -> Option<Nanos> {
    Nanos::parse(text.trim()).filter(|n| n.0 >= 0 && n.0 < 1_000_000 * NANOS_PER_UNIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target() -> AthenaTarget {
        AthenaTarget {
            format: EngineFormat::Cur2,
            workgroup: "primary".into(),
            catalog: "AwsDataCatalog".into(),
            database: "billing".into(),
            table: "cur2".into(),
            output_bucket: "results".into(),
            output_prefix: "athena/".into(),
            partition_filter: "billing_period = '{period}'".into(),
            price_per_tb: parse_price("5.00").expect("price"),
            timeout: Duration::from_secs(60),
        }
    }

    #[test]
    fn athena_bills_whole_megabytes_at_least_ten_and_rounds_the_price_up() {
        let price = parse_price("5.00").expect("price");
        // 10 MB of a $5 TB: $5 * 10 / 1,048,576 = $0.0000476837158203125.
        assert_eq!(scan_cost(0, price), Nanos(47_684));
        assert_eq!(scan_cost(1, price), Nanos(47_684));
        assert_eq!(scan_cost(10 << 20, price), Nanos(47_684));
        assert_eq!(scan_cost((10 << 20) + 1, price), scan_cost(11 << 20, price));
        assert_eq!(scan_cost(1 << 40, price), Nanos(5 * NANOS_PER_UNIT));
        assert_eq!(bytes_text(10 << 30), "10.0 GB");
    }

    #[test]
    fn the_unload_reads_one_partition_and_turns_typed_columns_into_the_plan_s_text() {
        let columns = vec![
            (
                "line_item_usage_start_date".to_string(),
                column_kind("timestamp(3)"),
            ),
            (
                "resource_tags".to_string(),
                column_kind("map(varchar, varchar)"),
            ),
            (
                "line_item_unblended_cost".to_string(),
                column_kind("double"),
            ),
            ("billing_period".to_string(), column_kind("varchar")),
        ];
        let sql = unload_sql(&target(), &columns, "2026-04", "s3://results/x/");
        assert!(sql.starts_with("UNLOAD (\nSELECT"), "{sql}");
        assert!(
            sql.ends_with("TO 's3://results/x/' WITH (format = 'PARQUET', compression = 'SNAPPY')"),
            "{sql}"
        );
        assert!(
            sql.contains(
                "FROM \"AwsDataCatalog\".\"billing\".\"cur2\"\n  WHERE billing_period = '2026-04'"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("JSON_FORMAT(CAST(\"resource_tags\" AS JSON)) AS \"resource_tags\""),
            "{sql}"
        );
        assert!(
            sql.contains("ROUND(\"line_item_unblended_cost\" * 1.0E11)"),
            "{sql}"
        );
        assert!(sql.contains("DATE '2026-04-01'"), "{sql}");
        assert!(!sql.contains(" STRING"), "Trino has no STRING type: {sql}");
        assert!(!sql.contains("AS DOUBLE"), "{sql}");
    }

    #[test]
    fn a_legacy_cur_table_builds_its_tags_from_a_column_per_tag_and_reads_year_and_month() {
        let target = AthenaTarget {
            format: EngineFormat::LegacyCur,
            partition_filter: "year = '{year}' AND month = '{month}'".into(),
            ..target()
        };
        let columns: Vec<(String, ColumnKind)> = [
            "line_item_usage_start_date",
            "line_item_unblended_cost",
            "resource_tags_user_team",
            "resource_tags_aws_created_by",
            "year",
            "month",
        ]
        .iter()
        .map(|c| (c.to_string(), column_kind("varchar")))
        .collect();
        let sql = unload_sql(&target, &columns, "2026-04", "s3://results/x/");
        assert!(sql.contains("WHERE year = '2026' AND month = '4'"), "{sql}");
        assert!(
            sql.contains("JSON_FORMAT(CAST(MAP(ARRAY['user_team', 'aws_created_by'], ARRAY[NULLIF(NULLIF(TRIM(CAST(\"resource_tags_user_team\" AS VARCHAR)), ''), 'NULL'), "),
            "{sql}"
        );
        assert!(sql.contains(") AS \"resource_tags\""), "{sql}");
        assert_eq!(
            partition_filter("{period} {year} {month}", "2026-11"),
            "2026-11 2026 11"
        );
    }

    #[test]
    fn s3_uris_split_into_bucket_and_folder() {
        assert_eq!(
            split_s3_uri("s3://results/athena"),
            Some(("results".into(), "athena/".into()))
        );
        assert_eq!(
            split_s3_uri("s3://results"),
            Some(("results".into(), String::new()))
        );
        assert_eq!(split_s3_uri("https://x"), None);
        assert_eq!(column_kind("decimal(38,9)"), ColumnKind::Text);
        assert_eq!(column_kind("array(varchar)"), ColumnKind::Json);
    }
}
