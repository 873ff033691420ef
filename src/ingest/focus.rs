//! FOCUS 1.0-1.3 billing files (CSV, gzip CSV, parquet) into daily facts.
//!
//! Every line item is summed into its fact by an [`Aggregator`] (interned keys, each distinct
//! `Tags` value decoded once), so memory follows the number of distinct facts, not the file.
//! CSV is parsed by [`super::csv_file`] on every core; parquet (FOCUS or CUR 2.0) is read by
//! polars in slices of rows, only the needed columns, each slice aggregated while polars
//! decodes the next. Costs are summed in 1e-11 units and rounded to nano-units once. Never
//! writes the store.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use chrono::NaiveDate;
use polars::prelude::*;

use super::aggregate::{sum_in_parallel, Aggregator, KEY_COUNT};
use super::csv_file::{CsvFile, DayCache};
use super::{cur, FileFormat, ImportError};
use crate::model::{Fact, Tags};
use crate::money::Nanos;

/// Billing files carry up to 11 decimals; amounts are summed at 1e-11 and rounded to
/// nano-units once, per batch, keeping each day's total exact (see [`round_to_nanos`]).
const FINE_PER_NANO: i128 = 100;

/// A fact whose amounts are still in 1e-11 units, before the one rounding to nano-units.
/// (The `effective` and `billed` of `fact` are zero until then.)
#[derive(Debug, Clone)]
pub struct RawFact {
    pub fact: Fact,
    pub effective: i128,
    pub billed: i128,
}

/// Facts and periods read from one file.
pub struct FileFacts {
    pub facts: Vec<RawFact>,
    pub periods: Vec<(String, String)>,
    pub line_items: i64,
}

/// The FOCUS columns costsplit reads. The first name is the FOCUS 1.2 name; later ones are
/// accepted aliases. Matching is case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Col {
    ChargePeriodStart,
    BillingPeriodStart,
    BillingCurrency,
    EffectiveCost,
    BilledCost,
    BillingAccountId,
    SubAccountId,
    Provider,
    ServiceName,
    ResourceId,
    ChargeCategory,
    Tags,
}

/// The key columns of a fact, in the order of [`super::aggregate`]'s keys.
pub(super) const KEY_COLUMNS: [Col; KEY_COUNT] = [
    Col::BillingAccountId,
    Col::SubAccountId,
    Col::Provider,
    Col::ServiceName,
    Col::ResourceId,
    Col::ChargeCategory,
    Col::BillingCurrency,
    Col::Tags,
];

impl Col {
    pub(super) const ALL: [Col; 12] = [
        Col::ChargePeriodStart,
        Col::BillingPeriodStart,
        Col::BillingCurrency,
        Col::EffectiveCost,
        Col::BilledCost,
        Col::BillingAccountId,
        Col::SubAccountId,
        Col::Provider,
        Col::ServiceName,
        Col::ResourceId,
        Col::ChargeCategory,
        Col::Tags,
    ];

    pub(super) fn names(self) -> &'static [&'static str] {
        match self {
            Col::ChargePeriodStart => &["ChargePeriodStart"],
            Col::BillingPeriodStart => &["BillingPeriodStart"],
            Col::BillingCurrency => &["BillingCurrency"],
            Col::EffectiveCost => &["EffectiveCost"],
            Col::BilledCost => &["BilledCost"],
            Col::BillingAccountId => &["BillingAccountId"],
            Col::SubAccountId => &["SubAccountId"],
            Col::Provider => &["ServiceProviderName", "ProviderName"],
            Col::ServiceName => &["ServiceName"],
            Col::ResourceId => &["ResourceId"],
            Col::ChargeCategory => &["ChargeCategory"],
            Col::Tags => &["Tags"],
        }
    }

    fn required(self) -> bool {
        matches!(
            self,
            Col::ChargePeriodStart | Col::BillingCurrency | Col::EffectiveCost | Col::BilledCost
        )
    }

    pub(super) fn is_cost(self) -> bool {
        matches!(self, Col::EffectiveCost | Col::BilledCost)
    }

    pub(super) fn is_date(self) -> bool {
        matches!(self, Col::ChargePeriodStart | Col::BillingPeriodStart)
    }
}

/// Where each needed column is in a file (its actual name).
#[derive(Clone)]
pub(super) struct Columns {
    names: HashMap<Col, String>,
}

impl Columns {
    fn resolve(
        file: &Path,
        header: &[String],
        format: &'static str,
    ) -> Result<Columns, ImportError> {
        let mut names = HashMap::new();
        for col in Col::ALL {
            let found = col.names().iter().find_map(|want| {
                header
                    .iter()
                    .find(|h| h.trim().eq_ignore_ascii_case(want))
                    .cloned()
            });
            match found {
                Some(name) => {
                    names.insert(col, name);
                }
                None if col.required() => {
                    return Err(ImportError::missing_column(
                        file,
                        col.names()[0],
                        format,
                        header,
                    ));
                }
                None => {}
            }
        }
        Ok(Columns { names })
    }

    pub(super) fn get(&self, col: Col) -> Option<&str> {
        self.names.get(&col).map(String::as_str)
    }
}

pub fn read_file(path: &Path) -> Result<FileFacts, ImportError> {
    read_file_in_slices(path, Slicing::from_env())
}

/// How much of a file is read at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slicing {
    /// Parquet: line items per polars query (`COSTSPLIT_IMPORT_SLICE_ROWS`, default 50,000).
    pub rows: usize,
    /// CSV: bytes of the file per chunk a worker parses, cut at a record boundary
    /// (`COSTSPLIT_IMPORT_CSV_CHUNK_MB`, default 16).
    pub csv_bytes: usize,
}

impl Slicing {
    pub fn from_env() -> Slicing {
        let number = |name: &str| -> Option<usize> {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().replace('_', "").parse().ok())
        };
        Slicing {
            rows: number("COSTSPLIT_IMPORT_SLICE_ROWS").unwrap_or(SLICE_ROWS),
            csv_bytes: number("COSTSPLIT_IMPORT_CSV_CHUNK_MB")
                .map_or(CSV_CHUNK_BYTES, |mb| mb << 20),
        }
    }
}

/// [`read_file`] with chosen slices (tests use small ones).
pub fn read_file_in_slices(path: &Path, slicing: Slicing) -> Result<FileFacts, ImportError> {
    let format = FileFormat::detect(path).ok_or_else(|| ImportError::UnknownFormat {
        file: path.to_path_buf(),
    })?;
    std::fs::metadata(path).map_err(|source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    })?;
    let sums = match format {
        FileFormat::Csv | FileFormat::GzipCsv => {
            let file = CsvFile::open(path, format == FileFormat::GzipCsv, slicing.csv_bytes)?;
            if cur::is_cur(&file.header) || cur::is_legacy_cur(&file.header) {
                let rows = cur::CurCsv::new(path, &file.header)?;
                file.aggregate_with(path, &rows)?
            } else {
                super::refuse_foreign(path, &file.header)?;
                let columns = Columns::resolve(path, &file.header, FOCUS)?;
                file.aggregate(path, &columns)?
            }
        }
        FileFormat::Parquet => read_parquet(path, slicing.rows.max(1))?,
    };
    let started = Instant::now();
    let facts = sums.into_raw_facts();
    tracing::debug!(
        facts = facts.len(),
        ms = started.elapsed().as_millis() as u64,
        "facts built"
    );
    let line_items: i64 = facts.iter().map(|f| f.fact.line_count).sum();
    if line_items == 0 {
        return Err(ImportError::Empty {
            file: path.to_path_buf(),
        });
    }
    let mut periods: Vec<(String, String)> = facts
        .iter()
        .map(|f| {
            (
                f.fact.billing_period.clone(),
                f.fact.billing_account.clone(),
            )
        })
        .collect();
    periods.sort();
    periods.dedup();
    Ok(FileFacts {
        facts,
        periods,
        line_items,
    })
}

/// A FOCUS or CUR 2.0 parquet file, `slice_rows` rows per polars query. One thread runs the
/// queries (polars decodes on its own pool) while worker threads sum the slices already read.
fn read_parquet(path: &Path, slice_rows: usize) -> Result<Aggregator, ImportError> {
    let names =
        |schema: &Schema| -> Vec<String> { schema.iter_names().map(|n| n.to_string()).collect() };
    let schema = scan_parquet(path)
        .and_then(|mut frame| frame.collect_schema())
        .map_err(|e| unreadable(path, &e))?;
    let header = names(&schema);
    // `Some(schema)` when the file is a CUR export, read through its FOCUS projection; and the
    // schema the query sees.
    let (columns, cur_schema, schema) = if cur::is_cur(&header) {
        if let Some(column) = cur::missing_column(&header) {
            return Err(ImportError::missing_column(
                path,
                column,
                "an AWS CUR 2.0",
                &header,
            ));
        }
        let projected = scan_parquet(path)
            .and_then(|frame| cur::project(frame, &schema).collect_schema())
            .map_err(|e| unreadable(path, &e))?;
        (
            Columns::resolve(path, &names(&projected), "an AWS CUR 2.0")?,
            Some(schema),
            projected,
        )
    } else {
        super::refuse_foreign(path, &header)?;
        let columns = Columns::resolve(path, &header, FOCUS)?;
        (columns, None, schema)
    };
    // A fresh scan per slice, so nothing a finished query cached stays alive.
    let scan = || -> PolarsResult<LazyFrame> {
        let frame = scan_parquet(path)?;
        Ok(match &cur_schema {
            Some(cur_schema) => cur::project(frame, cur_schema),
            None => frame,
        })
    };
    let rows = parquet_rows(path).map_err(|e| unreadable(path, &e))?;
    // Slices are numbered so that, of several bad slices, the first is reported.
    let (sender, receiver) = std::sync::mpsc::sync_channel::<(usize, PolarsResult<DataFrame>)>(1);
    let receiver = Mutex::new(receiver);
    let failed = AtomicBool::new(false);
    let (columns, schema, scan) = (&columns, &schema, &scan);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut offset = 0usize;
            let mut number = 0usize;
            while offset < rows && !failed.load(Ordering::Relaxed) {
                let slice = scan().and_then(|frame| {
                    select_keys_and_costs(frame, columns, schema)
                        .slice(offset as i64, slice_rows as IdxSize)
                        .collect_with_engine(Engine::Streaming)
                        .map(|frames| frames.unwrap_single())
                });
                let stop = slice.is_err();
                if sender.send((number, slice)).is_err() || stop {
                    return;
                }
                offset += slice_rows;
                number += 1;
            }
            drop(sender);
        });
        // Owns the receiver: when the workers are done, it is dropped with this closure,
        // which ends a reader still waiting to send.
        let next = move || {
            receiver
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .recv()
                .ok()
        };
        sum_in_parallel(
            path,
            &failed,
            next,
            |frame: PolarsResult<DataFrame>, sums| {
                let frame = frame.map_err(|e| unreadable(path, &e))?;
                add_frame(path, &frame, columns, sums)
            },
        )
    })
}

fn unreadable(path: &Path, error: &dyn std::fmt::Display) -> ImportError {
    ImportError::Unreadable {
        file: path.to_path_buf(),
        message: error
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

fn scan_parquet(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
}

const FOCUS: &str = "a FOCUS 1.0-1.3";

/// Output column names of the selecting query.
const DAY: &str = "day";
const PERIOD: &str = "period";
const KEY_ALIASES: [&str; KEY_COUNT] = [
    "billing_account",
    "sub_account",
    "provider",
    "service",
    "resource",
    "category",
    "currency",
    "tags",
];

/// The day of a timestamp column: the `YYYY-MM-DD` prefix of text, or days since the epoch
/// of a date/datetime.
fn day_expr(name: &str, dtype: &DataType) -> Expr {
    match dtype {
        DataType::Datetime(_, _) | DataType::Date => {
            col(name).cast(DataType::Date).cast(DataType::Int32)
        }
        _ => col(name)
            .cast(DataType::String)
            .str()
            .slice(lit(0), lit(10)),
    }
}

fn cost_expr(name: &str) -> Expr {
    (col(name).cast(DataType::Float64) * lit(1e11))
        .round(0, RoundMode::HalfAwayFromZero)
        .cast(DataType::Int64)
        .fill_null(lit(0i64))
}

/// Line items per polars query of a parquet file. At most one slice per worker, one waiting
/// and one being decoded are alive, so the peak follows this size and the number of distinct
/// facts, not the size of the file. `COSTSPLIT_IMPORT_SLICE_ROWS` overrides it (less memory, more queries).
const SLICE_ROWS: usize = 50_000;

/// Bytes of a CSV file per chunk a worker parses (`COSTSPLIT_IMPORT_CSV_CHUNK_MB`).
const CSV_CHUNK_BYTES: usize = 16 << 20;

/// Rows of a parquet file, from its metadata.
fn parquet_rows(path: &Path) -> PolarsResult<usize> {
    let counted = scan_parquet(path)?
        .select([len().alias("rows")])
        .collect()?;
    let rows = counted.column("rows")?.cast(&DataType::Int64)?;
    Ok(rows.i64()?.get(0).unwrap_or(0).max(0) as usize)
}

/// The key and cost columns of every line item: days, text keys (empty for null) and costs
/// in 1e-11 units.
fn select_keys_and_costs(frame: LazyFrame, columns: &Columns, schema: &Schema) -> LazyFrame {
    let dtype = |name: &str| schema.get(name).cloned().unwrap_or(DataType::String);
    let charge = columns
        .get(Col::ChargePeriodStart)
        .expect("required column");
    let mut select = vec![day_expr(charge, &dtype(charge)).alias(DAY)];
    select.push(match columns.get(Col::BillingPeriodStart) {
        Some(name) => day_expr(name, &dtype(name)).alias(PERIOD),
        None => day_expr(charge, &dtype(charge)).alias(PERIOD),
    });
    for (alias, col_kind) in KEY_ALIASES.into_iter().zip(KEY_COLUMNS) {
        select.push(match columns.get(col_kind) {
            Some(name) => col(name)
                .cast(DataType::String)
                .fill_null(lit(""))
                .alias(alias),
            None => lit("").alias(alias),
        });
    }
    select.push(
        cost_expr(columns.get(Col::EffectiveCost).expect("required column")).alias("effective"),
    );
    select.push(cost_expr(columns.get(Col::BilledCost).expect("required column")).alias("billed"));
    frame.select(select)
}

/// A date key column: Int32 days since the epoch, or `YYYY-MM-DD` text.
enum Days<'a> {
    Numbers(
        Box<dyn Iterator<Item = Option<i32>> + 'a>,
        Option<(i32, NaiveDate)>,
    ),
    Text(Box<dyn Iterator<Item = Option<&'a str>> + 'a>, DayCache),
}

impl<'a> Days<'a> {
    fn new(column: &'a Column) -> PolarsResult<Days<'a>> {
        Ok(match column.dtype() {
            DataType::Int32 => Days::Numbers(Box::new(column.i32()?.iter()), None),
            _ => Days::Text(Box::new(column.str()?.iter()), DayCache::default()),
        })
    }

    /// The next day, or what it was instead.
    fn next(&mut self) -> Result<NaiveDate, String> {
        match self {
            Days::Numbers(values, last) => {
                let days = values.next().flatten().ok_or("an empty date")?;
                match last {
                    Some((n, day)) if *n == days => Ok(*day),
                    _ => {
                        let day = days
                            .checked_add(719_163)
                            .and_then(NaiveDate::from_num_days_from_ce_opt)
                            .ok_or_else(|| format!("date {days} days from 1970"))?;
                        *last = Some((days, day));
                        Ok(day)
                    }
                }
            }
            Days::Text(values, cache) => {
                let text = values.next().flatten().ok_or("an empty date")?;
                cache.parse(text.as_bytes()).ok_or_else(|| {
                    format!(
                        "unknown date format `{text}` (first 10 characters); use ISO 8601 such as 2025-03-01T00:00:00Z"
                    )
                })
            }
        }
    }
}

/// Sums one selected slice of a parquet file.
fn add_frame(
    path: &Path,
    frame: &DataFrame,
    columns: &Columns,
    sums: &mut Aggregator,
) -> Result<(), ImportError> {
    let bad = |col: Col, problem: String| ImportError::BadValue {
        file: path.to_path_buf(),
        row: 0,
        column: columns.get(col).unwrap_or(col.names()[0]).to_string(),
        problem,
    };
    let polars = |e: PolarsError| unreadable(path, &e);
    let get = |name: &str| frame.column(name).map_err(|e| unreadable(path, &e));
    let (day, period) = (get(DAY)?, get(PERIOD)?);
    let mut days = Days::new(day).map_err(polars)?;
    let mut periods = Days::new(period).map_err(polars)?;
    // A column at a time: each column's values and distinct values stay in cache.
    let mut ids = Vec::with_capacity(KEY_COUNT);
    for (key, alias) in KEY_ALIASES.into_iter().enumerate() {
        let values = get(alias)?.str().map_err(polars)?;
        let mut column = Vec::with_capacity(values.len());
        for value in values.iter() {
            let id = sums
                .intern(key, value.unwrap_or_default().as_bytes())
                .map_err(|r| bad(KEY_COLUMNS[r.key], r.problem))?;
            column.push(id);
        }
        ids.push(column);
    }
    let mut effective = get("effective")?.i64().map_err(polars)?.iter();
    let mut billed = get("billed")?.i64().map_err(polars)?.iter();
    let period_col = if columns.get(Col::BillingPeriodStart).is_some() {
        Col::BillingPeriodStart
    } else {
        Col::ChargePeriodStart
    };
    for row in 0..frame.height() {
        let day = days
            .next()
            .map_err(|problem| bad(Col::ChargePeriodStart, problem))?;
        let period = periods.next().map_err(|problem| bad(period_col, problem))?;
        let mut key = [0u32; KEY_COUNT];
        for (id, column) in key.iter_mut().zip(&ids) {
            *id = column[row];
        }
        sums.add_ids(
            day,
            period,
            key,
            i128::from(effective.next().flatten().unwrap_or(0)),
            i128::from(billed.next().flatten().unwrap_or(0)),
        );
    }
    Ok(())
}

/// Decodes a FOCUS `Tags` value: a JSON object, or empty. Non-string values are kept as
/// their JSON text; null values are dropped.
pub fn parse_tags(raw: &str) -> Result<Tags, serde_json::Error> {
    if raw.starts_with(cur::KV_TAGS) {
        return Ok(cur::decode_tags(raw));
    }
    if raw.starts_with(cur::CUR_JSON_TAGS) {
        return cur::decode_json_tags(raw);
    }
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("null") {
        return Ok(Tags::new());
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)?;
    Ok(map
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::Null => None,
            serde_json::Value::String(s) => Some((k, s)),
            other => Some((k, other.to_string())),
        })
        .collect())
}

/// Sums facts that share every key (raw tag strings that decode to the same tags merge here),
/// in key order, so the result does not depend on how the lines were read.
pub fn merge_facts(mut facts: Vec<RawFact>) -> Vec<RawFact> {
    // Equal keys are summed, so a stable sort buys nothing.
    facts.sort_unstable_by(|a, b| fact_key(&a.fact).cmp(&fact_key(&b.fact)));
    let mut merged: Vec<RawFact> = Vec::with_capacity(facts.len());
    for raw in facts {
        match merged.last_mut() {
            Some(last) if fact_key(&last.fact) == fact_key(&raw.fact) => {
                last.effective += raw.effective;
                last.billed += raw.billed;
                last.fact.line_count += raw.fact.line_count;
                last.fact.estimated |= raw.fact.estimated;
            }
            _ => merged.push(raw),
        }
    }
    merged
}

/// Rounds 1e-11 amounts to nano-units so that, for every day and currency, the facts sum to
/// the exact total of the line items rounded once (no drift from rounding each line item).
pub fn round_to_nanos(raw: Vec<RawFact>) -> Vec<Fact> {
    let mut groups: HashMap<(NaiveDate, String), Vec<usize>> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        groups
            .entry((r.fact.day, r.fact.currency.clone()))
            .or_default()
            .push(i);
    }
    let mut effective = vec![0i64; raw.len()];
    let mut billed = vec![0i64; raw.len()];
    for indexes in groups.values() {
        let values: Vec<i128> = indexes.iter().map(|&i| raw[i].effective).collect();
        for (&i, v) in indexes
            .iter()
            .zip(crate::money::round_preserving_sum(&values, FINE_PER_NANO))
        {
            effective[i] = v;
        }
        let values: Vec<i128> = indexes.iter().map(|&i| raw[i].billed).collect();
        for (&i, v) in indexes
            .iter()
            .zip(crate::money::round_preserving_sum(&values, FINE_PER_NANO))
        {
            billed[i] = v;
        }
    }
    raw.into_iter()
        .enumerate()
        .map(|(i, r)| Fact {
            effective: Nanos(effective[i]),
            billed: Nanos(billed[i]),
            ..r.fact
        })
        .collect()
}

/// Day and resource first: they tell nearly all facts apart, so comparisons end early.
type FactKey<'a> = (
    NaiveDate,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a Tags,
);

fn fact_key(f: &Fact) -> FactKey<'_> {
    (
        f.day,
        &f.resource_id,
        &f.billing_period,
        &f.billing_account,
        &f.sub_account,
        &f.provider,
        &f.provider_service,
        &f.charge_category,
        &f.currency,
        &f.tags,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_decode_with_non_string_values() {
        let tags = parse_tags(r#"{"service": "a", "n": 3, "x": null}"#).expect("valid");
        assert_eq!(tags.get("service").map(String::as_str), Some("a"));
        assert_eq!(tags.get("n").map(String::as_str), Some("3"));
        assert!(!tags.contains_key("x"));
        assert!(parse_tags("NULL").expect("null").is_empty());
        assert!(parse_tags("[1]").is_err());
    }
}
