//! Parquet billing files, whatever their format, read with arrow-rs' `parquet` crate: only the
//! columns a format needs, a row group per worker, each worker decoding and summing its own
//! row groups. A format either names its columns (a [`Selection`]: FOCUS), which are read as
//! they are typed (text keys as dictionaries, so each distinct value is interned once per
//! dictionary page, not once per line), or maps rows (a [`RowMap`]: CUR), which sees each
//! row's cells as text, as in a CSV file. Never writes the store.
//!
//! Why not polars here (BENCHMARKS.md has the figures): polars decoded every text value of
//! every line and aborted the process on some damaged files (a panic while unwinding, which
//! no `catch_unwind` stops); this reader keeps the dictionaries and returns errors.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, Int8Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt16Type, UInt32Type, UInt64Type, UInt8Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::ProjectionMask;

use super::aggregate::{sum_in_parallel, Aggregator};
use super::csv_file::{DayCache, RowMap, Scratch};
use super::file::ImportError;
use super::line::{FINE_DECIMALS, KEY_COUNT};

/// What a format reads from a parquet file, by column name: the day, the billing period
/// (the day's own month when absent), each key ([`KEY_NAMES`](super::line::KEY_NAMES) order;
/// empty when absent) and the two costs.
pub struct Selection {
    pub day: String,
    pub period: Option<String>,
    pub keys: [Option<String>; KEY_COUNT],
    pub effective: String,
    pub billed: String,
    /// FOCUS `ListCost` and `ContractedCost`, when the file has them (else, and where a
    /// value is null, the billed cost).
    pub list: Option<String>,
    pub contracted: Option<String>,
    /// How many line items each row stands for (a facts file's `line_count`); else one.
    pub lines: Option<String>,
}

/// A parquet file's footer, read once and shared by the workers (each opens the file).
pub struct ParquetFile {
    metadata: ArrowReaderMetadata,
}

impl ParquetFile {
    pub fn open(path: &Path) -> Result<ParquetFile, ImportError> {
        let file = File::open(path).map_err(|error| ImportError::Io {
            file: path.to_path_buf(),
            error,
        })?;
        // The file's own types; an arrow schema a writer embedded is not needed.
        let options = ArrowReaderOptions::new().with_skip_arrow_metadata(true);
        let metadata = ArrowReaderMetadata::load(&file, options).map_err(|e| damaged(path, &e))?;
        Ok(ParquetFile { metadata })
    }

    /// The file's columns: name, and whether it is nested (a map, a struct, a list: JSON
    /// text to a reader of text) or a float.
    pub fn kinds(&self) -> Vec<(String, super::engine::ColumnKind)> {
        use super::engine::ColumnKind;
        let schema = self.metadata.schema();
        schema
            .fields()
            .iter()
            .map(|f| {
                let kind = match f.data_type() {
                    DataType::Map(..)
                    | DataType::Struct(_)
                    | DataType::List(_)
                    | DataType::LargeList(_) => ColumnKind::Json,
                    DataType::Float32 | DataType::Float64 => ColumnKind::Float,
                    _ => ColumnKind::Text,
                };
                (f.name().clone(), kind)
            })
            .collect()
    }

    /// The names of the file's columns.
    pub fn names(&self) -> Vec<String> {
        let schema = self.metadata.schema();
        schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    /// Sums the file as `selection` reads it, `batch_rows` rows per decoded batch.
    pub fn read_columns(
        self,
        path: &Path,
        batch_rows: usize,
        selection: &Selection,
    ) -> Result<Aggregator, ImportError> {
        let index = |name: &str| self.index(name);
        let mut wanted: Vec<usize> = [&selection.day, &selection.effective, &selection.billed]
            .into_iter()
            .chain(selection.period.iter())
            .chain(selection.list.iter())
            .chain(selection.contracted.iter())
            .chain(selection.lines.iter())
            .chain(selection.keys.iter().flatten())
            .filter_map(|name| index(name))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        // Text keys are decoded as dictionaries (a file's dictionary pages, kept as they are).
        let schema = self.metadata.schema();
        let keys: Vec<usize> = selection
            .keys
            .iter()
            .flatten()
            .filter_map(|name| index(name))
            .collect();
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                let text = matches!(field.data_type(), DataType::Utf8 | DataType::LargeUtf8);
                if keys.contains(&i) && text {
                    field.as_ref().clone().with_data_type(DataType::Dictionary(
                        Box::new(DataType::Int32),
                        Box::new(DataType::Utf8),
                    ))
                } else {
                    field.as_ref().clone()
                }
            })
            .collect();
        let metadata = ArrowReaderMetadata::try_new(
            self.metadata.metadata().clone(),
            ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(fields))),
        )
        .map_err(|e| damaged(path, &e))?;
        let file = ParquetFile { metadata };
        file.sum(
            path,
            batch_rows,
            &wanted,
            |batch, first_row, state, sums| {
                add_columns(path, batch, first_row, selection, state, sums)
            },
        )
    }

    /// Sums the file's rows as `rows` maps them, each row's `columns` (indices into
    /// [`Self::names`], in the order `rows` expects them) seen as text cells.
    pub fn read_rows(
        self,
        path: &Path,
        batch_rows: usize,
        columns: &[usize],
        rows: &dyn RowMap,
    ) -> Result<Aggregator, ImportError> {
        let mut wanted = columns.to_vec();
        wanted.sort_unstable();
        wanted.dedup();
        let names = self.names();
        file_rows(self, path, batch_rows, &wanted, columns, &names, rows)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.metadata.schema().index_of(name).ok()
    }

    /// Hands every batch of the `wanted` columns to `add`, a row group per task, with the
    /// file row number (from 1) of its first row and a state each worker keeps.
    fn sum<S: Default>(
        &self,
        path: &Path,
        batch_rows: usize,
        wanted: &[usize],
        add: impl Fn(&RecordBatch, u64, &mut S, &mut Aggregator) -> Result<(), ImportError> + Sync,
    ) -> Result<Aggregator, ImportError> {
        let parquet = self.metadata.metadata();
        let groups = parquet.num_row_groups();
        let mut first_rows = Vec::with_capacity(groups);
        let mut row = 1u64;
        for group in parquet.row_groups() {
            first_rows.push(row);
            row += u64::try_from(group.num_rows().max(0)).unwrap_or(0);
        }
        let next_group = AtomicUsize::new(0);
        let failed = AtomicBool::new(false);
        let next = || {
            let group = next_group.fetch_add(1, Ordering::Relaxed);
            (group < groups).then_some((group, group))
        };
        sum_in_parallel(path, &failed, next, |group: usize, state: &mut S, sums| {
            // A file of its own per row group: a cloned handle would share one file offset
            // between the workers, and their seeks and reads would interleave.
            let file = File::open(path).map_err(|error| ImportError::Io {
                file: path.to_path_buf(),
                error,
            })?;
            let mask = ProjectionMask::roots(self.metadata.parquet_schema(), wanted.to_vec());
            let reader =
                ParquetRecordBatchReaderBuilder::new_with_metadata(file, self.metadata.clone())
                    .with_row_groups(vec![group])
                    .with_projection(mask)
                    .with_batch_size(batch_rows.max(1))
                    .build()
                    .map_err(|e| damaged(path, &e))?;
            let mut first_row = first_rows[group];
            for batch in reader {
                let batch = batch.map_err(|e| damaged(path, &e))?;
                add(&batch, first_row, state, sums)?;
                first_row += batch.num_rows() as u64;
            }
            Ok(())
        })
    }
}

/// A read that failed inside the parquet reader (bad metadata, a bad page).
fn damaged(path: &Path, error: &dyn std::fmt::Display) -> ImportError {
    let why = error.to_string();
    ImportError::Unreadable {
        file: path.to_path_buf(),
        message: format!(
            "the parquet file is damaged or not parquet ({}); export it again",
            why.lines().next().unwrap_or_default()
        ),
    }
}

/// Per worker: the ids of the last dictionary of each key column.
#[derive(Default)]
struct Dictionaries {
    last: [Option<DictionaryIds>; KEY_COUNT],
}

/// Sums one batch of a [`Selection`]'s columns.
fn add_columns(
    path: &Path,
    batch: &RecordBatch,
    first_row: u64,
    selection: &Selection,
    dictionaries: &mut Dictionaries,
    sums: &mut Aggregator,
) -> Result<(), ImportError> {
    let bad = |offset: usize, column: &str, problem: String| ImportError::BadValue {
        file: path.to_path_buf(),
        row: first_row + offset as u64,
        column: column.to_string(),
        problem,
    };
    let get = |name: &str| batch.column_by_name(name);
    let rows = batch.num_rows();
    let day_array = get(&selection.day).expect("a selected column");
    let charge_days = days(day_array, rows).map_err(|(i, p)| bad(i, &selection.day, p))?;
    let periods = match selection.period.as_deref() {
        Some(name) => Some(
            days(get(name).expect("a selected column"), rows).map_err(|(i, p)| bad(i, name, p))?,
        ),
        None => None,
    };
    let effective = costs(get(&selection.effective).expect("a selected column"))
        .map_err(|(i, p)| bad(i, &selection.effective, p))?;
    let billed = costs(get(&selection.billed).expect("a selected column"))
        .map_err(|(i, p)| bad(i, &selection.billed, p))?;
    let or_billed = |name: &Option<String>| -> Result<Vec<i128>, ImportError> {
        let Some(array) = name.as_deref().and_then(get) else {
            return Ok(billed.clone());
        };
        let mut values =
            costs(array).map_err(|(i, p)| bad(i, name.as_deref().unwrap_or("-"), p))?;
        for (row, value) in values.iter_mut().enumerate() {
            if array.is_null(row) {
                *value = billed[row];
            }
        }
        Ok(values)
    };
    let list = or_billed(&selection.list)?;
    let contracted = or_billed(&selection.contracted)?;
    let lines = match selection.lines.as_deref() {
        Some(name) => {
            Some(counts(get(name).expect("a selected column")).map_err(|(i, p)| bad(i, name, p))?)
        }
        None => None,
    };
    let mut ids = Vec::with_capacity(KEY_COUNT);
    for (key, name) in selection.keys.iter().enumerate() {
        let column = match name.as_deref().and_then(get) {
            None => vec![sums.intern(key, b"").map_err(|r| bad(0, "-", r.problem))?; rows],
            Some(array) => key_ids(array, key, &mut dictionaries.last[key], sums)
                .map_err(|(i, p)| bad(i, name.as_deref().unwrap_or("-"), p))?,
        };
        ids.push(column);
    }
    // Rows come in runs of one (day, period): each pair is checked once per run.
    let mut checked = None;
    for row in 0..rows {
        let day =
            charge_days[row].ok_or_else(|| bad(row, &selection.day, "an empty date".into()))?;
        let period = periods.as_ref().and_then(|p| p[row]).unwrap_or(day);
        if checked != Some((day, period)) {
            super::aggregate::check_day_in_period(day, period)
                .map_err(|problem| bad(row, &selection.day, problem.to_string()))?;
            checked = Some((day, period));
        }
        let mut key = [0u32; KEY_COUNT];
        for (id, column) in key.iter_mut().zip(&ids) {
            *id = column[row];
        }
        sums.add_ids(
            day,
            period,
            key,
            [effective[row], billed[row], list[row], contracted[row]],
            lines.as_ref().map_or(1, |l| l[row]),
        );
    }
    Ok(())
}

/// A count column (a facts file's `line_count`): whole, not negative, not null.
fn counts(array: &ArrayRef) -> Result<Vec<i64>, (usize, String)> {
    let values: Vec<Option<i64>> = match array.data_type() {
        DataType::Int64 => array.as_primitive::<Int64Type>().iter().collect(),
        DataType::Int32 => array
            .as_primitive::<Int32Type>()
            .iter()
            .map(|v| v.map(i64::from))
            .collect(),
        other => {
            return Err((
                0,
                format!("a line count is a whole number (BIGINT), not {other}"),
            ))
        }
    };
    values
        .into_iter()
        .enumerate()
        .map(|(row, v)| match v {
            None => Err((row, "an empty line count".to_string())),
            Some(n) if n < 0 => Err((row, format!("a negative line count ({n})"))),
            Some(n) => Ok(n),
        })
        .collect()
}

/// The days of a date, timestamp or text column (`None` where null), or (row, problem).
fn days(array: &ArrayRef, rows: usize) -> Result<Vec<Option<NaiveDate>>, (usize, String)> {
    let mut out = Vec::with_capacity(rows);
    let from_days = |n: i64| {
        i32::try_from(n)
            .ok()
            .and_then(|n| n.checked_add(719_163))
            .and_then(NaiveDate::from_num_days_from_ce_opt)
    };
    let mut by_number = |numbers: &mut dyn Iterator<Item = Option<i64>>| {
        let mut last: Option<(i64, NaiveDate)> = None;
        for (row, n) in numbers.enumerate() {
            out.push(match n {
                None => None,
                Some(n) => match last {
                    Some((l, day)) if l == n => Some(day),
                    _ => {
                        let day = from_days(n).ok_or((row, format!("date {n} days from 1970")))?;
                        last = Some((n, day));
                        Some(day)
                    }
                },
            });
        }
        Ok::<(), (usize, String)>(())
    };
    let per_day = |unit: &TimeUnit| match unit {
        TimeUnit::Second => 86_400i64,
        TimeUnit::Millisecond => 86_400_000,
        TimeUnit::Microsecond => 86_400_000_000,
        TimeUnit::Nanosecond => 86_400_000_000_000,
    };
    match array.data_type() {
        DataType::Date32 => by_number(
            &mut array
                .as_primitive::<Date32Type>()
                .iter()
                .map(|d| d.map(i64::from)),
        )?,
        DataType::Date64 => by_number(
            &mut array
                .as_primitive::<Date64Type>()
                .iter()
                .map(|d| d.map(|ms| ms.div_euclid(86_400_000))),
        )?,
        DataType::Timestamp(unit, _) => {
            let units = per_day(unit);
            let values: Box<dyn Iterator<Item = Option<i64>>> = match unit {
                TimeUnit::Second => Box::new(array.as_primitive::<TimestampSecondType>().iter()),
                TimeUnit::Millisecond => {
                    Box::new(array.as_primitive::<TimestampMillisecondType>().iter())
                }
                TimeUnit::Microsecond => {
                    Box::new(array.as_primitive::<TimestampMicrosecondType>().iter())
                }
                TimeUnit::Nanosecond => {
                    Box::new(array.as_primitive::<TimestampNanosecondType>().iter())
                }
            };
            by_number(&mut values.map(|t| t.map(|t| t.div_euclid(units))))?
        }
        _ => {
            let mut cache = DayCache::default();
            let mut text = Vec::new();
            for row in 0..rows {
                if array.is_null(row) {
                    out.push(None);
                    continue;
                }
                text.clear();
                render(array, row, &mut text).map_err(|p| (row, p))?;
                if text.trim_ascii().is_empty() {
                    out.push(None);
                    continue;
                }
                let day = cache.parse(&text).ok_or_else(|| {
                    let shown = String::from_utf8_lossy(&text);
                    (
                        row,
                        format!(
                            "unknown date format `{}`; use ISO 8601 such as 2025-03-01T00:00:00Z",
                            shown
                        ),
                    )
                })?;
                out.push(Some(day));
            }
        }
    }
    Ok(out)
}

/// A cost column in 1e-11 units (null is zero, an empty cell), or (row, problem). A decimal
/// (the money type of warehouse exports) is exact; a float is taken at its shortest decimal
/// form, which is the number the writer meant.
fn costs(array: &ArrayRef) -> Result<Vec<i128>, (usize, String)> {
    let rows = array.len();
    let mut out = Vec::with_capacity(rows);
    let integers = |values: &mut dyn Iterator<Item = Option<i128>>, out: &mut Vec<i128>| {
        for (row, v) in values.enumerate() {
            let v = v.unwrap_or(0);
            out.push(
                v.checked_mul(10i128.pow(FINE_DECIMALS))
                    .filter(|f| f.abs() <= crate::money::MAX_LINE_UNITS * 10i128.pow(FINE_DECIMALS))
                    .ok_or((row, format!("`{v}` is larger than one line item may be")))?,
            );
        }
        Ok::<(), (usize, String)>(())
    };
    // An integer column of any width, as whole units.
    macro_rules! integers {
        ($t:ty) => {
            integers(
                &mut array.as_primitive::<$t>().iter().map(|v| v.map(i128::from)),
                &mut out,
            )?
        };
    }
    match array.data_type() {
        DataType::Float64 => {
            for (row, v) in array.as_primitive::<Float64Type>().iter().enumerate() {
                out.push(v.map_or(Ok(0), fine_units).map_err(|p| (row, p))?);
            }
        }
        DataType::Decimal128(_, scale) if (0..=FINE_DECIMALS as i8).contains(scale) => {
            let factor = 10i128.pow(FINE_DECIMALS - *scale as u32);
            let limit = crate::money::MAX_LINE_UNITS * 10i128.pow(FINE_DECIMALS);
            let decimals = array.as_primitive::<Decimal128Type>();
            for (row, v) in decimals.iter().enumerate() {
                let fine = v
                    .unwrap_or(0)
                    .checked_mul(factor)
                    .filter(|f| f.abs() <= limit);
                out.push(fine.ok_or_else(|| {
                    (
                        row,
                        format!(
                            "`{}` is larger than one line item may be",
                            decimals.value_as_string(row)
                        ),
                    )
                })?);
            }
        }
        DataType::Int8 => integers!(Int8Type),
        DataType::Int16 => integers!(Int16Type),
        DataType::Int32 => integers!(Int32Type),
        DataType::Int64 => integers!(Int64Type),
        DataType::UInt8 => integers!(UInt8Type),
        DataType::UInt16 => integers!(UInt16Type),
        DataType::UInt32 => integers!(UInt32Type),
        DataType::UInt64 => integers!(UInt64Type),
        DataType::Boolean | DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            return Err((
                0,
                format!(
                    "a cost column of type {}; costs are numbers or decimal text",
                    array.data_type()
                ),
            ));
        }
        // Text (and decimals of more than 11 places, floats of 32 bits): the cell's text,
        // parsed exactly.
        _ => {
            let mut text = Vec::new();
            for row in 0..rows {
                text.clear();
                if !array.is_null(row) {
                    render(array, row, &mut text).map_err(|p| (row, p))?;
                }
                out.push(super::csv_file::parse_cost(&text).map_err(|p| (row, p))?);
            }
        }
    }
    Ok(out)
}

/// A float cost in 1e-11 units. Below 90,000 (where the value times 1e11 is still an exact
/// integer in a float) by multiplying; above, from the float's shortest decimal form, so a
/// large amount (100,000,000 KRW) keeps the digits the file's writer meant instead of
/// overflowing.
fn fine_units(value: f64) -> Result<i128, String> {
    if !value.is_finite() {
        return Err(format!("`{value}` is not a number"));
    }
    if value.abs() < 9.0e4 {
        // Below 9e15 units: an i64 holds it (a float-to-i128 conversion is a library call).
        return Ok(i128::from((value * 1e11).round() as i64));
    }
    crate::money::parse_line_amount(format!("{value}").as_bytes(), FINE_DECIMALS)
        .map_err(|e| e.to_string())
}

/// The interned ids of a key column's values (null is empty), or (row, problem). A
/// dictionary's values are interned once, while the next batch keeps the same dictionary; a
/// value the aggregator refuses is an error only where a row uses it.
fn key_ids(
    array: &ArrayRef,
    key: usize,
    last: &mut Option<DictionaryIds>,
    sums: &mut Aggregator,
) -> Result<Vec<u32>, (usize, String)> {
    let rows = array.len();
    let mut empty: Option<u32> = None;
    let mut empty_id = |sums: &mut Aggregator, row: usize| match empty {
        Some(id) => Ok(id),
        None => {
            let id = sums.intern(key, b"").map_err(|r| (row, r.problem))?;
            empty = Some(id);
            Ok(id)
        }
    };
    let mut out = Vec::with_capacity(rows);
    if let DataType::Dictionary(index, _) = array.data_type() {
        if index.as_ref() == &DataType::Int32 {
            let dictionary = array.as_dictionary::<Int32Type>();
            let values = dictionary.values();
            if !matches!(last, Some((seen, _)) if Arc::ptr_eq(seen, values)) {
                let mut ids = Vec::with_capacity(values.len());
                let mut text = Vec::new();
                for i in 0..values.len() {
                    text.clear();
                    let id = match values.is_null(i) {
                        true => Ok(empty_id(sums, 0).map_err(|(_, p)| p)),
                        false => render(values, i, &mut text)
                            .map(|()| sums.intern(key, &text).map_err(|r| r.problem)),
                    };
                    ids.push(id.and_then(|id| id));
                }
                *last = Some((values.clone(), ids));
            }
            let ids = &last.as_ref().expect("just set").1;
            let keys = dictionary.keys();
            for row in 0..rows {
                if keys.is_null(row) {
                    out.push(empty_id(sums, row)?);
                    continue;
                }
                match ids.get(keys.value(row) as usize) {
                    Some(Ok(id)) => out.push(*id),
                    Some(Err(problem)) => return Err((row, problem.clone())),
                    None => return Err((row, "a value past the column's dictionary".to_string())),
                }
            }
            return Ok(out);
        }
    }
    let mut text = Vec::new();
    for row in 0..rows {
        if array.is_null(row) {
            out.push(empty_id(sums, row)?);
            continue;
        }
        text.clear();
        render(array, row, &mut text).map_err(|p| (row, p))?;
        out.push(sums.intern(key, &text).map_err(|r| (row, r.problem))?);
    }
    Ok(out)
}

/// A dictionary's values and their interned ids (or why the aggregator refused one).
type DictionaryIds = (ArrayRef, Vec<Result<u32, String>>);

/// Reads the rows of a [`RowMap`] format: each row's cells rendered as text into a CSV
/// record, in the order of `columns`.
fn file_rows(
    file: ParquetFile,
    path: &Path,
    batch_rows: usize,
    wanted: &[usize],
    columns: &[usize],
    names: &[String],
    rows: &dyn RowMap,
) -> Result<Aggregator, ImportError> {
    #[derive(Default)]
    struct RowState {
        record: csv::ByteRecord,
        cell: Vec<u8>,
        scratch: Scratch,
        days: [DayCache; 2],
    }
    file.sum(
        path,
        batch_rows,
        wanted,
        |batch, first_row, state: &mut RowState, sums| {
            let arrays: Vec<&ArrayRef> = columns
                .iter()
                .map(|&i| batch.column_by_name(&names[i]).expect("a selected column"))
                .collect();
            for row in 0..batch.num_rows() {
                let file_row = first_row + row as u64;
                let bad = |(column, problem): (String, String)| ImportError::BadValue {
                    file: path.to_path_buf(),
                    row: file_row,
                    column,
                    problem,
                };
                state.record.clear();
                for (array, &i) in arrays.iter().zip(columns) {
                    state.cell.clear();
                    if !array.is_null(row) {
                        render(array, row, &mut state.cell)
                            .map_err(|p| bad((names[i].clone(), p)))?;
                    }
                    state.record.push_field(&state.cell);
                }
                let line = rows
                    .line(&state.record, &mut state.scratch, &mut state.days)
                    .map_err(bad)?;
                if let Err(r) = sums.add(&line) {
                    let (column, better) = rows.key_column(&state.record, r.key);
                    return Err(bad((column, better.unwrap_or(r.problem))));
                }
            }
            Ok(())
        },
    )
}

/// Writes a cell as text, as a CSV export has it: text as it is, numbers in their shortest
/// decimal form, timestamps in ISO 8601 UTC, maps and structs as JSON objects, lists as JSON
/// arrays. A null writes nothing.
fn render(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if array.is_null(row) {
        return Ok(());
    }
    macro_rules! number {
        ($t:ty) => {
            write!(out, "{}", array.as_primitive::<$t>().value(row)).map_err(|e| e.to_string())
        };
    }
    match array.data_type() {
        DataType::Utf8 => out.extend_from_slice(array.as_string::<i32>().value(row).as_bytes()),
        DataType::LargeUtf8 => {
            out.extend_from_slice(array.as_string::<i64>().value(row).as_bytes())
        }
        DataType::Utf8View => out.extend_from_slice(array.as_string_view().value(row).as_bytes()),
        DataType::Binary => out.extend_from_slice(array.as_binary::<i32>().value(row)),
        DataType::LargeBinary => out.extend_from_slice(array.as_binary::<i64>().value(row)),
        DataType::BinaryView => out.extend_from_slice(array.as_binary_view().value(row)),
        DataType::Boolean => {
            let value = array.as_boolean().value(row);
            out.extend_from_slice(if value { b"true" } else { b"false" })
        }
        DataType::Int8 => number!(Int8Type)?,
        DataType::Int16 => number!(Int16Type)?,
        DataType::Int32 => number!(Int32Type)?,
        DataType::Int64 => number!(Int64Type)?,
        DataType::UInt8 => number!(UInt8Type)?,
        DataType::UInt16 => number!(UInt16Type)?,
        DataType::UInt32 => number!(UInt32Type)?,
        DataType::UInt64 => number!(UInt64Type)?,
        DataType::Float32 => number!(Float32Type)?,
        DataType::Float64 => number!(Float64Type)?,
        DataType::Decimal128(..) => out.extend_from_slice(
            array
                .as_primitive::<Decimal128Type>()
                .value_as_string(row)
                .as_bytes(),
        ),
        DataType::Date32 | DataType::Date64 | DataType::Timestamp(..) => {
            render_time(array, row, out)?
        }
        DataType::Dictionary(index, _) if index.as_ref() == &DataType::Int32 => {
            let dictionary = array.as_dictionary::<Int32Type>();
            let key = dictionary.keys().value(row) as usize;
            if key >= dictionary.values().len() {
                return Err("a value past the column's dictionary".to_string());
            }
            render(dictionary.values(), key, out)?
        }
        DataType::Map(..) => {
            let entries = array.as_map().value(row);
            json_object(&entries, out)?
        }
        DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) => {
            render_nested(array, row, out)?
        }
        DataType::Null => {}
        other => {
            return Err(format!(
                "a column of type {other}, which costsplit does not read"
            ))
        }
    }
    Ok(())
}

/// A date or timestamp cell in ISO 8601 (UTC).
fn render_time(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match array.data_type() {
        DataType::Date32 => {
            let days = array.as_primitive::<Date32Type>().value(row);
            let day = days
                .checked_add(719_163)
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .ok_or_else(|| format!("date {days} days from 1970"))?;
            write!(out, "{day}").map_err(|e| e.to_string())?
        }
        DataType::Date64 => {
            let ms = array.as_primitive::<Date64Type>().value(row);
            out.extend_from_slice(iso_stamp(ms, &TimeUnit::Millisecond)?.as_bytes())
        }
        DataType::Timestamp(unit, _) => {
            let t = match unit {
                TimeUnit::Second => array.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => {
                    array.as_primitive::<TimestampMillisecondType>().value(row)
                }
                TimeUnit::Microsecond => {
                    array.as_primitive::<TimestampMicrosecondType>().value(row)
                }
                TimeUnit::Nanosecond => array.as_primitive::<TimestampNanosecondType>().value(row),
            };
            out.extend_from_slice(iso_stamp(t, unit)?.as_bytes())
        }
        _ => {}
    }
    Ok(())
}

/// A list cell as a JSON array (a list of key/value structs as an object), a struct cell as
/// a JSON object.
fn render_nested(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
    match array.data_type() {
        DataType::List(_) | DataType::LargeList(_) => {
            let items = match array.data_type() {
                DataType::List(_) => array.as_list::<i32>().value(row),
                _ => array.as_list::<i64>().value(row),
            };
            // A list of key/value structs is a map (how some writers store one).
            match items.data_type() {
                DataType::Struct(fields)
                    if fields.len() == 2
                        && fields[0].name() == "key"
                        && fields[1].name() == "value" =>
                {
                    json_object(items.as_struct(), out)?
                }
                _ => {
                    out.push(b'[');
                    for i in 0..items.len() {
                        if i > 0 {
                            out.push(b',');
                        }
                        json_value(&items, i, out)?;
                    }
                    out.push(b']');
                }
            }
        }
        DataType::Struct(fields) => {
            let structure = array.as_struct();
            out.push(b'{');
            for (i, field) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json_string(field.name().as_bytes(), out);
                out.push(b':');
                json_value(structure.column(i), row, out)?;
            }
            out.push(b'}');
        }
        _ => {}
    }
    Ok(())
}

/// A timestamp in `unit`s since 1970 as `2025-03-01T00:00:00Z` (fractions when there are).
fn iso_stamp(t: i64, unit: &TimeUnit) -> Result<String, String> {
    let (secs, nanos) = match unit {
        TimeUnit::Second => (t, 0),
        TimeUnit::Millisecond => (t.div_euclid(1_000), t.rem_euclid(1_000) * 1_000_000),
        TimeUnit::Microsecond => (t.div_euclid(1_000_000), t.rem_euclid(1_000_000) * 1_000),
        TimeUnit::Nanosecond => (t.div_euclid(1_000_000_000), t.rem_euclid(1_000_000_000)),
    };
    chrono::DateTime::from_timestamp(secs, nanos as u32)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%S%.fZ").to_string())
        .ok_or_else(|| format!("timestamp {t} is out of range"))
}

/// Key/value entries (a struct array of two columns) as one JSON object.
fn json_object(entries: &arrow_array::StructArray, out: &mut Vec<u8>) -> Result<(), String> {
    out.push(b'{');
    let (keys, values) = (entries.column(0), entries.column(1));
    let mut key = Vec::new();
    for i in 0..entries.len() {
        if i > 0 {
            out.push(b',');
        }
        key.clear();
        render(keys, i, &mut key)?;
        json_string(&key, out);
        out.push(b':');
        json_value(values, i, out)?;
    }
    out.push(b'}');
    Ok(())
}

/// One value as JSON: null, a number or boolean as it is, anything else as a JSON string of
/// its text (nested maps and lists as their own JSON).
fn json_value(array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if array.is_null(row) {
        out.extend_from_slice(b"null");
        return Ok(());
    }
    match array.data_type() {
        t if t.is_numeric() || t == &DataType::Boolean => render(array, row, out),
        DataType::Map(..) | DataType::List(_) | DataType::LargeList(_) | DataType::Struct(_) => {
            render(array, row, out)
        }
        _ => {
            let mut text = Vec::new();
            render(array, row, &mut text)?;
            json_string(&text, out);
            Ok(())
        }
    }
}

fn json_string(text: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(text);
    out.extend_from_slice(
        serde_json::to_string(text.as_ref())
            .expect("a string serialises")
            .as_bytes(),
    );
}
