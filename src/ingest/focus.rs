//! FOCUS 1.0-1.2 billing files (CSV, gzip CSV, parquet) into daily facts.
//!
//! The fast path is a polars streaming query per slice of the file: select the needed
//! columns, turn each cost into integer 1e-11 units, and group by the fact keys plus the raw
//! `Tags` string, so memory follows the slice and the number of distinct facts, not the
//! file. Each distinct `Tags` value is then decoded once. When polars rejects a file, or a
//! key looks wrong, a slower row-by-row pass finds the first bad row and column so the error
//! can name them. Never writes the store.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

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
enum Col {
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

impl Col {
    const ALL: [Col; 12] = [
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

    fn names(self) -> &'static [&'static str] {
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

    fn is_cost(self) -> bool {
        matches!(self, Col::EffectiveCost | Col::BilledCost)
    }

    fn is_date(self) -> bool {
        matches!(self, Col::ChargePeriodStart | Col::BillingPeriodStart)
    }
}

/// Where each needed column is in a file (its actual name).
#[derive(Clone)]
struct Columns {
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
                    let mut found: Vec<&str> = header.iter().map(String::as_str).take(12).collect();
                    if header.len() > 12 {
                        found.push("...");
                    }
                    return Err(ImportError::MissingColumn {
                        file: file.to_path_buf(),
                        column: col.names()[0].to_string(),
                        format,
                        found: found.join(", "),
                    });
                }
                None => {}
            }
        }
        Ok(Columns { names })
    }

    fn get(&self, col: Col) -> Option<&str> {
        self.names.get(&col).map(String::as_str)
    }
}

/// Keeps a decompressed copy of a gzip file alive while it is read.
enum Source {
    Plain(PathBuf),
    Decompressed(tempfile::TempPath),
}

impl Source {
    fn path(&self) -> &Path {
        match self {
            Source::Plain(p) => p,
            Source::Decompressed(p) => p,
        }
    }
}

pub fn read_file(path: &Path) -> Result<FileFacts, ImportError> {
    read_file_in_slices(path, Slicing::from_env())
}

/// How much of a file one streaming query aggregates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slicing {
    /// Parquet: line items per query (`COSTSPLIT_IMPORT_SLICE_ROWS`, default 2,000,000).
    pub rows: usize,
    /// CSV: bytes of the file per query, cut at a record boundary
    /// (`COSTSPLIT_IMPORT_CSV_CHUNK_MB`, default 64). Each byte is parsed once.
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
    let io = |source| ImportError::Io {
        file: path.to_path_buf(),
        source,
    };
    std::fs::metadata(path).map_err(io)?;
    let source = match format {
        FileFormat::GzipCsv => Source::Decompressed(decompress(path).map_err(io)?),
        _ => Source::Plain(path.to_path_buf()),
    };
    let csv = format != FileFormat::Parquet;
    let scan_path = source.path().to_path_buf();
    let names =
        |schema: &Schema| -> Vec<String> { schema.iter_names().map(|n| n.to_string()).collect() };
    // `Some(schema)` when the file is a CUR export, read through its FOCUS projection.
    let (columns, cur_schema) = if csv {
        let header = csv_header(path, &scan_path)?;
        if cur::is_cur(&header) {
            return Err(ImportError::Unreadable {
                file: path.to_path_buf(),
                message: "this is an AWS CUR export in CSV; costsplit reads CUR 2.0 as parquet (choose Parquet as the Data Export's file format)".to_string(),
            });
        }
        (Columns::resolve(path, &header, "a FOCUS 1.0-1.2")?, None)
    } else {
        let schema = scan_parquet(&scan_path)
            .and_then(|mut frame| frame.collect_schema())
            .map_err(|e| unreadable(path, &e))?;
        let header = names(&schema);
        if cur::is_cur(&header) {
            if let Some(column) = cur::missing_column(&header) {
                return Err(ImportError::MissingColumn {
                    file: path.to_path_buf(),
                    column: column.to_string(),
                    format: "an AWS CUR 2.0",
                    found: header
                        .iter()
                        .take(12)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", "),
                });
            }
            let projected = scan_parquet(&scan_path)
                .and_then(|frame| cur::project(frame, &schema).collect_schema())
                .map_err(|e| unreadable(path, &e))?;
            (
                Columns::resolve(path, &names(&projected), "an AWS CUR 2.0")?,
                Some(schema),
            )
        } else {
            (Columns::resolve(path, &header, "a FOCUS 1.0-1.2")?, None)
        }
    };
    let schema = if csv {
        scan_csv(&scan_path, &columns).collect_schema()
    } else {
        scan_parquet(&scan_path).and_then(|frame| match &cur_schema {
            Some(cur_schema) => cur::project(frame, cur_schema).collect_schema(),
            None => {
                let mut frame = frame;
                frame.collect_schema()
            }
        })
    }
    .map_err(|e| unreadable(path, &e))?;
    let result = if csv {
        // Each chunk of the file is handed to polars once: a CSV cannot be sliced without
        // parsing everything before the slice.
        let mut chunks = CsvChunks::open(&scan_path, slicing.csv_bytes.max(1)).map_err(io)?;
        let mut next = || -> Result<Option<LazyFrame>, ImportError> {
            Ok(chunks
                .next_chunk()
                .map_err(io)?
                .map(|bytes| scan_csv_bytes(bytes, &columns)))
        };
        aggregate_parts(path, &mut next, &columns, &schema)
    } else {
        // A fresh scan per slice, so nothing a finished query cached stays alive.
        let scan = || -> PolarsResult<LazyFrame> {
            let frame = scan_parquet(&scan_path)?;
            Ok(match &cur_schema {
                Some(cur_schema) => cur::project(frame, cur_schema),
                None => frame,
            })
        };
        let rows = parquet_rows(&scan_path).map_err(|e| unreadable(path, &e))?;
        let slice_rows = slicing.rows.max(1);
        let mut offset = 0usize;
        let mut next = || -> Result<Option<LazyFrame>, ImportError> {
            if offset >= rows {
                return Ok(None);
            }
            let frame = scan().map_err(|e| unreadable(path, &e))?;
            let slice = frame.slice(offset as i64, slice_rows as IdxSize);
            offset += slice_rows;
            Ok(Some(slice))
        };
        aggregate_parts(path, &mut next, &columns, &schema)
    };
    let facts = match result {
        Ok(facts) => facts,
        Err(err) if csv => return Err(diagnose_csv(path, source.path(), &columns).unwrap_or(err)),
        Err(err) => return Err(err),
    };
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

fn decompress(path: &Path) -> std::io::Result<tempfile::TempPath> {
    let mut input =
        flate2::read::MultiGzDecoder::new(std::io::BufReader::new(std::fs::File::open(path)?));
    let mut output = tempfile::Builder::new().suffix(".csv").tempfile()?;
    std::io::copy(&mut input, &mut output)?;
    Ok(output.into_temp_path())
}

fn csv_header(file: &Path, path: &Path) -> Result<Vec<String>, ImportError> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .map_err(|e| unreadable(file, &e))?;
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record
            .iter()
            .map(|s| s.trim_start_matches('\u{feff}').to_string())
            .collect()),
        Ok(false) => Err(ImportError::Empty {
            file: file.to_path_buf(),
        }),
        Err(e) => Err(unreadable(file, &e)),
    }
}

fn scan_parquet(path: &Path) -> PolarsResult<LazyFrame> {
    LazyFrame::scan_parquet(
        PlRefPath::new(path.to_string_lossy().as_ref()),
        ScanArgsParquet::default(),
    )
}

fn scan_csv(path: &Path, columns: &Columns) -> LazyFrame {
    csv_options(
        LazyCsvReader::new(PlRefPath::new(path.to_string_lossy().as_ref())),
        columns,
    )
}

/// A chunk of a CSV file (header line first) as a lazy frame.
fn scan_csv_bytes(bytes: Vec<u8>, columns: &Columns) -> LazyFrame {
    let sources = ScanSources::Buffers(Arc::from([polars_buffer::Buffer::from(bytes)]));
    csv_options(LazyCsvReader::new_with_sources(sources), columns)
}

fn csv_options(reader: LazyCsvReader, columns: &Columns) -> LazyFrame {
    // Every column is read as text except the costs, so no type inference can go wrong on a
    // column that looks numeric in its first rows (account ids) and is not later.
    let mut overrides = Schema::default();
    for col in [Col::EffectiveCost, Col::BilledCost] {
        if let Some(name) = columns.get(col) {
            overrides.with_column(name.into(), DataType::Float64);
        }
    }
    reader
        .with_has_header(true)
        .with_infer_schema_length(Some(0))
        .with_dtype_overwrite(Some(Arc::new(overrides)))
        .with_null_values(Some(NullValues::AllColumns(vec!["NULL".into()])))
        .with_missing_is_null(true)
        .finish()
        .expect("a CSV scan plan over a known source builds")
}

/// Output column names of the grouped query.
const DAY: &str = "day";
const PERIOD: &str = "period";
const KEYS: [(&str, Col); 8] = [
    ("billing_account", Col::BillingAccountId),
    ("sub_account", Col::SubAccountId),
    ("provider", Col::Provider),
    ("service", Col::ServiceName),
    ("resource", Col::ResourceId),
    ("category", Col::ChargeCategory),
    ("currency", Col::BillingCurrency),
    ("tags", Col::Tags),
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

/// Line items aggregated per query. Each slice of the file is one streaming query whose
/// memory is released before the next starts, so the peak follows this size and the number
/// of distinct facts, not the size of the file. `COSTSPLIT_IMPORT_SLICE_ROWS` overrides it
/// (less memory, more passes).
const SLICE_ROWS: usize = 2_000_000;

/// Bytes of a CSV file per query (about 180,000 line items of a typical export).
const CSV_CHUNK_BYTES: usize = 64 << 20;

/// Aggregates the file part by part (each part one streaming query) and merges the partial
/// facts.
fn aggregate_parts(
    path: &Path,
    next_part: &mut dyn FnMut() -> Result<Option<LazyFrame>, ImportError>,
    columns: &Columns,
    schema: &Schema,
) -> Result<Vec<RawFact>, ImportError> {
    let mut facts: Vec<RawFact> = Vec::new();
    let mut merged_len = 0;
    let mut tag_cache: HashMap<String, Tags> = HashMap::new();
    while let Some(part) = next_part()? {
        let grouped = group_keys(select_keys_and_costs(part, columns, schema))
            .collect_with_engine(Engine::Streaming)
            .map_err(|e| unreadable(path, &e))?
            // One plan with one sink always yields a single frame.
            .unwrap_single();
        facts.extend(to_raw_facts(path, &grouped, columns, &mut tag_cache)?);
        if facts.len() > 2 * merged_len.max(1000) {
            facts = merge_facts(facts);
            merged_len = facts.len();
        }
    }
    Ok(merge_facts(facts))
}

/// Rows of a parquet file, from its metadata.
fn parquet_rows(path: &Path) -> PolarsResult<usize> {
    let counted = scan_parquet(path)?
        .select([len().alias("rows")])
        .collect()?;
    let rows = counted.column("rows")?.cast(&DataType::Int64)?;
    Ok(rows.i64()?.get(0).unwrap_or(0).max(0) as usize)
}

/// A CSV file in chunks of about `chunk_bytes`, each cut after a complete record (a newline
/// outside quotes) and starting with the header line, so each parses on its own.
struct CsvChunks {
    file: std::fs::File,
    header: Vec<u8>,
    carry: Vec<u8>,
    chunk_bytes: usize,
    eof: bool,
}

impl CsvChunks {
    fn open(path: &Path, chunk_bytes: usize) -> std::io::Result<CsvChunks> {
        let mut chunks = CsvChunks {
            file: std::fs::File::open(path)?,
            header: Vec::new(),
            carry: Vec::new(),
            chunk_bytes,
            eof: false,
        };
        let mut start = Vec::new();
        let mut block = vec![0u8; 64 << 10];
        loop {
            let n = chunks.file.read(&mut block)?;
            start.extend_from_slice(&block[..n]);
            if let Some(end) = start.iter().position(|&b| b == b'\n') {
                chunks.carry = start.split_off(end + 1);
                chunks.header = start;
                return Ok(chunks);
            }
            if n == 0 {
                // A header without a newline and no records.
                chunks.header = start;
                chunks.header.push(b'\n');
                chunks.eof = true;
                return Ok(chunks);
            }
        }
    }

    fn next_chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        let mut body = std::mem::take(&mut self.carry);
        let mut block = vec![0u8; 8 << 20];
        loop {
            while !self.eof && body.len() < self.chunk_bytes {
                let n = self.file.read(&mut block)?;
                if n == 0 {
                    self.eof = true;
                }
                body.extend_from_slice(&block[..n]);
            }
            if self.eof {
                if body.iter().all(|b| b.is_ascii_whitespace()) {
                    return Ok(None);
                }
                return Ok(Some(self.with_header(body)));
            }
            let limit = self.chunk_bytes.min(body.len());
            if let Some(cut) = last_record_end(&body[..limit]).or_else(|| first_record_end(&body)) {
                self.carry = body.split_off(cut);
                return Ok(Some(self.with_header(body)));
            }
            // One record longer than a chunk (or an open quote): read on.
            let n = self.file.read(&mut block)?;
            if n == 0 {
                self.eof = true;
            }
            body.extend_from_slice(&block[..n]);
        }
    }

    fn with_header(&self, body: Vec<u8>) -> Vec<u8> {
        let mut chunk = Vec::with_capacity(self.header.len() + body.len());
        chunk.extend_from_slice(&self.header);
        chunk.extend_from_slice(&body);
        chunk
    }
}

/// The position just after the first newline that ends a record (outside quotes).
fn first_record_end(body: &[u8]) -> Option<usize> {
    let mut quoted = false;
    for (i, &b) in body.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The position just after the last newline that ends a record: outside quotes, counting
/// quotes from the start of `body` (which starts at a record boundary).
fn last_record_end(body: &[u8]) -> Option<usize> {
    let mut end = body.len();
    while let Some(newline) = body[..end].iter().rposition(|&b| b == b'\n') {
        let quotes = body[..newline].iter().filter(|&&b| b == b'"').count();
        if quotes % 2 == 0 {
            return Some(newline + 1);
        }
        end = newline;
    }
    None
}

/// The key and cost columns of every line item, derived in the streaming engine.
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
    for (alias, col_kind) in KEYS {
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

/// Groups line items by the fact keys, with plain sums (aggregating over expressions would
/// make the streaming group-by keep its input rows).
fn group_keys(frame: LazyFrame) -> LazyFrame {
    let names: Vec<Expr> = [DAY, PERIOD]
        .into_iter()
        .chain(KEYS.iter().map(|(alias, _)| *alias))
        .map(col)
        .collect();
    frame.group_by(names).agg([
        col("effective").sum(),
        col("billed").sum(),
        len().alias("lines"),
    ])
}

/// Reads a date key column (text `YYYY-MM-DD` or Int32 days since the epoch) at `row`.
fn day_at(column: &Column, row: usize) -> Option<NaiveDate> {
    match column.dtype() {
        DataType::Int32 => {
            let days = column.i32().ok()?.get(row)?;
            NaiveDate::from_num_days_from_ce_opt(days.checked_add(719_163)?)
        }
        _ => {
            let text = column.str().ok()?.get(row)?;
            NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
        }
    }
}

fn to_raw_facts(
    path: &Path,
    frame: &DataFrame,
    columns: &Columns,
    tag_cache: &mut HashMap<String, Tags>,
) -> Result<Vec<RawFact>, ImportError> {
    let get = |name: &str| frame.column(name).map_err(|e| unreadable(path, &e));
    let day = get(DAY)?;
    let period = get(PERIOD)?;
    let mut text = Vec::new();
    for (alias, _) in KEYS {
        text.push(get(alias)?.str().map_err(|e| unreadable(path, &e))?.clone());
    }
    let effective = get("effective")?
        .i64()
        .map_err(|e| unreadable(path, &e))?
        .clone();
    let billed = get("billed")?
        .i64()
        .map_err(|e| unreadable(path, &e))?
        .clone();
    let lines = get("lines")?
        .cast(&DataType::Int64)
        .map_err(|e| unreadable(path, &e))?;
    let lines = lines.i64().map_err(|e| unreadable(path, &e))?.clone();

    let mut facts = Vec::with_capacity(frame.height());
    for row in 0..frame.height() {
        let bad = |col: Col, problem: String| ImportError::BadValue {
            file: path.to_path_buf(),
            row: 0,
            column: columns.get(col).unwrap_or(col.names()[0]).to_string(),
            problem,
        };
        let shown = |c: &Column| {
            c.str()
                .ok()
                .and_then(|s| s.get(row))
                .map_or_else(|| format!("of type {}", c.dtype()), |v| format!("`{v}`"))
        };
        let day = day_at(day, row).ok_or_else(|| {
            bad(
                Col::ChargePeriodStart,
                format!(
                    "unknown date format {} (first 10 characters); use ISO 8601 such as 2025-03-01T00:00:00Z",
                    shown(day)
                ),
            )
        })?;
        let period_day = day_at(period, row).ok_or_else(|| {
            bad(
                Col::BillingPeriodStart,
                "unknown date format; use ISO 8601 such as 2025-03-01T00:00:00Z".to_string(),
            )
        })?;
        let value = |i: usize| text[i].get(row).unwrap_or_default().to_string();
        let currency = value(6);
        if currency.trim().is_empty() {
            return Err(bad(Col::BillingCurrency, "empty currency".to_string()));
        }
        let raw_tags = value(7);
        let tags = match tag_cache.get(&raw_tags) {
            Some(tags) => tags.clone(),
            None => {
                let tags = parse_tags(&raw_tags).map_err(|e| {
                    bad(
                        Col::Tags,
                        format!("not a JSON object of tags ({e}): {raw_tags}"),
                    )
                })?;
                tag_cache.insert(raw_tags, tags.clone());
                tags
            }
        };
        facts.push(RawFact {
            fact: Fact {
                day,
                billing_period: format!("{:04}-{:02}", period_day.year(), period_day.month()),
                billing_account: value(0),
                sub_account: value(1),
                provider: value(2),
                provider_service: value(3),
                resource_id: value(4),
                charge_category: value(5),
                tags,
                currency: currency.trim().to_ascii_uppercase(),
                effective: Nanos::ZERO,
                billed: Nanos::ZERO,
                line_count: lines.get(row).unwrap_or(0),
                estimated: false,
            },
            effective: i128::from(effective.get(row).unwrap_or(0)),
            billed: i128::from(billed.get(row).unwrap_or(0)),
        });
    }
    Ok(facts)
}

/// Decodes a FOCUS `Tags` value: a JSON object, or empty. Non-string values are kept as
/// their JSON text; null values are dropped.
pub fn parse_tags(raw: &str) -> Result<Tags, serde_json::Error> {
    if raw.starts_with(cur::KV_TAGS) {
        return Ok(cur::decode_tags(raw));
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

/// Sums facts that share every key (raw tag strings that decode to the same tags merge here).
pub fn merge_facts(mut facts: Vec<RawFact>) -> Vec<RawFact> {
    facts.sort_by(|a, b| fact_key(&a.fact).cmp(&fact_key(&b.fact)));
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
        &f.billing_period,
        &f.billing_account,
        &f.sub_account,
        &f.provider,
        &f.provider_service,
        &f.resource_id,
        &f.charge_category,
        &f.currency,
        &f.tags,
    )
}

/// Row-by-row check of a CSV file, used only when the fast path failed: finds the first row
/// whose cost, date, currency or tags cannot be read.
fn diagnose_csv(file: &Path, path: &Path, columns: &Columns) -> Option<ImportError> {
    let reader = std::fs::File::open(path).ok()?;
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(std::io::BufReader::new(reader).take(u64::MAX));
    let header: Vec<String> = reader
        .headers()
        .ok()?
        .iter()
        .map(|s| s.trim_start_matches('\u{feff}').to_string())
        .collect();
    let index = |col: Col| {
        columns
            .get(col)
            .and_then(|name| header.iter().position(|h| h == name))
    };
    // Checked left to right, as a person reads the row.
    let mut checks: Vec<(Col, usize)> = Col::ALL
        .iter()
        .filter_map(|&c| index(c).map(|i| (c, i)))
        .collect();
    checks.sort_by_key(|&(_, i)| i);
    let mut record = csv::StringRecord::new();
    loop {
        let line = reader.position().line();
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => {
                return Some(ImportError::BadValue {
                    file: file.to_path_buf(),
                    row: e.position().map_or(line, |p| p.line()),
                    column: "-".to_string(),
                    problem: format!("malformed CSV row: {e}"),
                })
            }
        }
        let line = record.position().map_or(line, |p| p.line());
        for &(col, i) in &checks {
            let value = record.get(i).unwrap_or("").trim();
            let null = value.is_empty() || value == "NULL";
            let problem = if col.is_cost()
                && !null
                && value.parse::<f64>().map_or(true, |v| !v.is_finite())
            {
                Some(format!("`{value}` is not a number"))
            } else if col.is_date() && !null && !looks_like_timestamp(value) {
                Some(format!(
                    "unknown date format `{value}`; use ISO 8601 such as 2025-03-01T00:00:00Z"
                ))
            } else if col.is_date() && null && col == Col::ChargePeriodStart {
                Some("empty ChargePeriodStart".to_string())
            } else if col == Col::BillingCurrency && null {
                Some("empty currency".to_string())
            } else if col == Col::Tags && !null {
                parse_tags(value)
                    .err()
                    .map(|e| format!("not a JSON object of tags ({e})"))
            } else {
                None
            };
            if let Some(problem) = problem {
                return Some(ImportError::BadValue {
                    file: file.to_path_buf(),
                    row: line,
                    column: header[i].clone(),
                    problem,
                });
            }
        }
    }
}

/// `YYYY-MM-DD`, optionally followed by `T` or a space and a time.
fn looks_like_timestamp(value: &str) -> bool {
    let date_ok = value.len() >= 10
        && value.is_char_boundary(10)
        && NaiveDate::parse_from_str(&value[..10], "%Y-%m-%d").is_ok();
    date_ok && (value.len() == 10 || matches!(value.as_bytes()[10], b'T' | b' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_focus_forms_are_accepted() {
        assert!(looks_like_timestamp("2024-09-18 22:00:00"));
        assert!(looks_like_timestamp("2025-03-01T00:00:00Z"));
        assert!(looks_like_timestamp("2025-03-01"));
        assert!(!looks_like_timestamp("09/18/2024 22:00"));
        assert!(!looks_like_timestamp("2025-13-01T00:00:00Z"));
    }

    #[test]
    fn csv_chunks_end_after_a_record_not_inside_quotes() {
        assert_eq!(last_record_end(b"a,b\nc,d\n"), Some(8));
        assert_eq!(last_record_end(b"a,b\nc,\"x\ny"), Some(4));
        assert_eq!(last_record_end(b"a,\"x\ny\"\nc,"), Some(8));
        assert_eq!(last_record_end(b"a,\"x\ny"), None);

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.csv");
        std::fs::write(&path, "h1,h2\n1,\"two\nlines\"\n3,4\n5,6\n").expect("write");
        let mut chunks = CsvChunks::open(&path, 4).expect("open");
        let mut seen = Vec::new();
        while let Some(chunk) = chunks.next_chunk().expect("read") {
            let text = String::from_utf8(chunk).expect("utf-8");
            assert!(text.starts_with("h1,h2\n"), "{text:?}");
            seen.push(text["h1,h2\n".len()..].to_string());
        }
        assert_eq!(seen, ["1,\"two\nlines\"\n", "3,4\n", "5,6\n"]);
    }

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
