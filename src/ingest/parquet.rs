//! Parquet billing files, whatever their format: a format says what to select (a
//! [`Selection`]: the day, billing month, key and cost columns under fixed names), and this
//! reads the file in slices of rows, only those columns, each slice summed by a worker thread
//! while polars decodes the next. Never writes the store.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use chrono::NaiveDate;
use polars::prelude::*;

use super::aggregate::{sum_in_parallel, Aggregator};
use super::csv_file::DayCache;
use super::line::{KEY_COUNT, KEY_NAMES};
use super::ImportError;

/// Column names of a selection's output (besides [`KEY_NAMES`]).
pub const DAY: &str = "day";
pub const PERIOD: &str = "period";
pub const EFFECTIVE: &str = "effective";
pub const BILLED: &str = "billed";

/// What a format reads from a parquet file: a query over a fresh scan of it that yields
/// [`DAY`] and [`PERIOD`] (see [`day_expr`]), the [`KEY_NAMES`] as text, and [`EFFECTIVE`] and
/// [`BILLED`] as numbers or text (see [`cost_expr`]); and the file's own column behind each
/// of them, for messages.
pub struct Selection {
    pub query: Box<dyn Fn(LazyFrame) -> LazyFrame + Send + Sync>,
    pub day_column: String,
    pub period_column: String,
    pub key_columns: [String; KEY_COUNT],
    pub effective_column: String,
    pub billed_column: String,
}

/// The file's schema (its column names and types).
pub fn schema(path: &Path) -> Result<Schema, ImportError> {
    scan_parquet(path)
        .and_then(|mut frame| frame.collect_schema())
        .map(|schema| schema.as_ref().clone())
        .map_err(|e| unreadable(path, &e))
}

/// The names of a schema's columns.
pub fn names(schema: &Schema) -> Vec<String> {
    schema.iter_names().map(|n| n.to_string()).collect()
}

/// Sums a parquet file as `selection` reads it, `slice_rows` rows per polars query. One thread runs the
/// queries (polars decodes on its own pool) while worker threads sum the slices already read.
pub fn read(
    path: &Path,
    slice_rows: usize,
    selection: &Selection,
) -> Result<Aggregator, ImportError> {
    // A fresh scan per slice, so nothing a finished query cached stays alive.
    let scan = || -> PolarsResult<LazyFrame> { Ok((selection.query)(scan_parquet(path)?)) };
    let rows = parquet_rows(path).map_err(|e| unreadable(path, &e))?;
    // Slices are numbered so that, of several bad slices, the first is reported.
    type Slice = (usize, PolarsResult<DataFrame>);
    let (sender, receiver) = std::sync::mpsc::sync_channel::<(usize, Slice)>(1);
    let receiver = Mutex::new(receiver);
    let failed = AtomicBool::new(false);
    let scan = &scan;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut offset = 0usize;
            let mut number = 0usize;
            while offset < rows && !failed.load(Ordering::Relaxed) {
                let slice = scan().and_then(|frame| {
                    frame
                        .slice(offset as i64, slice_rows as IdxSize)
                        .collect_with_engine(Engine::Streaming)
                        .map(|frames| frames.unwrap_single())
                });
                let stop = slice.is_err();
                if sender.send((number, (offset, slice))).is_err() || stop {
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
        sum_in_parallel(path, &failed, next, |(offset, frame): Slice, sums| {
            let frame = frame.map_err(|e| unreadable(path, &e))?;
            add_frame(path, offset, &frame, selection, sums)
        })
    })
}

pub fn unreadable(path: &Path, error: &dyn std::fmt::Display) -> ImportError {
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

pub fn scan_parquet(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
}

/// The day of a timestamp column: the `YYYY-MM-DD` prefix of text, or days since the epoch
/// of a date/datetime.
pub fn day_expr(name: &str, dtype: &DataType) -> Expr {
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

/// A cost column as the file has it: text stays text and a decimal (the money type of
/// warehouse exports) becomes its exact text, both parsed exactly; any other number becomes
/// a float, strictly (a value that is not a number fails the read instead of becoming null).
/// [`Costs`] turns either into 1e-11 units, refusing NaN and infinities.
pub fn cost_expr(name: &str, dtype: &DataType) -> Expr {
    match dtype {
        DataType::String => col(name),
        DataType::Decimal(..) => col(name).strict_cast(DataType::String),
        _ => col(name).strict_cast(DataType::Float64),
    }
}

/// A cost column of a slice, read value by value into 1e-11 units. Null is zero (an empty
/// cell), as in CSV.
enum Costs<'a> {
    Numbers(Box<dyn Iterator<Item = Option<f64>> + 'a>),
    Text(Box<dyn Iterator<Item = Option<&'a str>> + 'a>),
}

impl<'a> Costs<'a> {
    fn new(column: &'a Column) -> PolarsResult<Costs<'a>> {
        Ok(match column.dtype() {
            DataType::String => Costs::Text(Box::new(column.str()?.iter())),
            _ => Costs::Numbers(Box::new(column.f64()?.iter())),
        })
    }

    fn next(&mut self) -> Result<i128, String> {
        match self {
            Costs::Numbers(values) => match values.next().flatten() {
                None => Ok(0),
                Some(value) => fine_units(value),
            },
            Costs::Text(values) => match values.next().flatten().map(str::trim) {
                None | Some("") | Some("NULL") => Ok(0),
                Some(text) => crate::money::parse_line_amount(text.as_bytes(), FINE_DECIMALS),
            },
        }
    }
}

/// Costs are summed in 1e-11 units.
const FINE_DECIMALS: u32 = 11;

/// A float cost in 1e-11 units. Below 90,000 (where the value times 1e11 is still an exact
/// integer in a float) by multiplying; above, from the float's shortest decimal form, so a
/// large amount (100,000,000 KRW) keeps the digits the file's writer meant instead of
/// overflowing.
fn fine_units(value: f64) -> Result<i128, String> {
    if !value.is_finite() {
        return Err(format!("`{value}` is not a number"));
    }
    if value.abs() < 9.0e4 {
        return Ok((value * 1e11).round() as i128);
    }
    crate::money::parse_line_amount(format!("{value}").as_bytes(), FINE_DECIMALS)
}

/// Rows of a parquet file, from its metadata.
fn parquet_rows(path: &Path) -> PolarsResult<usize> {
    let counted = scan_parquet(path)?
        .select([len().alias("rows")])
        .collect()?;
    let rows = counted.column("rows")?.cast(&DataType::Int64)?;
    Ok(rows.i64()?.get(0).unwrap_or(0).max(0) as usize)
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

/// Sums one selected slice of a parquet file; its first row is row `offset + 1` of the file.
fn add_frame(
    path: &Path,
    offset: usize,
    frame: &DataFrame,
    selection: &Selection,
    sums: &mut Aggregator,
) -> Result<(), ImportError> {
    let bad_at = |row: u64, column: &str, problem: String| ImportError::BadValue {
        file: path.to_path_buf(),
        row,
        column: column.to_string(),
        problem,
    };
    let bad = |column: &str, problem: String| bad_at(0, column, problem);
    let polars = |e: PolarsError| unreadable(path, &e);
    let get = |name: &str| frame.column(name).map_err(|e| unreadable(path, &e));
    let (day, period) = (get(DAY)?, get(PERIOD)?);
    let mut days = Days::new(day).map_err(polars)?;
    let mut periods = Days::new(period).map_err(polars)?;
    // A column at a time: each column's values and distinct values stay in cache.
    let mut ids = Vec::with_capacity(KEY_COUNT);
    for (key, alias) in KEY_NAMES.into_iter().enumerate() {
        let values = get(alias)?.str().map_err(polars)?;
        let mut column = Vec::with_capacity(values.len());
        for value in values.iter() {
            let id = sums
                .intern(key, value.unwrap_or_default().as_bytes())
                .map_err(|r| bad(&selection.key_columns[r.key], r.problem))?;
            column.push(id);
        }
        ids.push(column);
    }
    let mut effective = Costs::new(get(EFFECTIVE)?).map_err(polars)?;
    let mut billed = Costs::new(get(BILLED)?).map_err(polars)?;
    for row in 0..frame.height() {
        let file_row = (offset + row + 1) as u64;
        let effective = effective
            .next()
            .map_err(|problem| bad_at(file_row, &selection.effective_column, problem))?;
        let billed = billed
            .next()
            .map_err(|problem| bad_at(file_row, &selection.billed_column, problem))?;
        let day = days
            .next()
            .map_err(|problem| bad(&selection.day_column, problem))?;
        let period = periods
            .next()
            .map_err(|problem| bad(&selection.period_column, problem))?;
        super::aggregate::check_day_in_period(day, period)
            .map_err(|problem| bad_at(file_row, &selection.day_column, problem))?;
        let mut key = [0u32; KEY_COUNT];
        for (id, column) in key.iter_mut().zip(&ids) {
            *id = column[row];
        }
        sums.add_ids(day, period, key, effective, billed);
    }
    Ok(())
}
