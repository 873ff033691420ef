//! Billing sources: FOCUS export files (CSV, gzip CSV, parquet), AWS CUR 2.0 (parquet, CSV,
//! gzip CSV) and legacy CUR (CSV, gzip CSV) files, and the Cost Explorer API. Every source yields the same daily [`Fact`]s. Sources read;
//! they never write the store and never look at rules.

pub mod aggregate;
pub mod athena;
mod aws;
pub mod batch;
pub mod cost_explorer;
mod csv_file;
mod cur;
pub mod engine;
pub mod facts;
mod file;
mod focus;
pub mod line;
mod parquet;
pub mod s3_exports;
pub mod split;
pub mod usage;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::model::{BillingSchema, Fact};
use csv_file::CsvFile;
pub use file::{FileFormat, ImportError};
use line::RawFact;

/// What reading a batch of billing files produced.
#[derive(Debug, Default)]
pub struct Imported {
    pub facts: Vec<Fact>,
    /// (billing period `YYYY-MM`, billing account) pairs present in the files; importing them
    /// replaces what the store holds for exactly these pairs.
    pub periods: BTreeSet<(String, String)>,
    pub line_items: i64,
    pub files: Vec<String>,
    /// The schemas of the files read.
    pub schemas: BTreeSet<BillingSchema>,
    /// What split cost allocation data (EKS pods, ECS tasks) moved, when the files had any.
    pub split: split::Summary,
}

/// Exports that are not billing line items costsplit reads, recognised by their columns, with
/// what to export instead: (a column that marks it, what it is and what to do).
const FOREIGN: [(&str, &str); 4] = [
    (
        "CostInBillingCurrency",
        "an Azure cost details export (actual or amortized cost), not FOCUS: export the FOCUS dataset (Cost Management > Exports > \"Cost and usage (FOCUS)\") instead",
    ),
    (
        "costInBillingCurrency",
        "an Azure cost details export (actual or amortized cost), not FOCUS: export the FOCUS dataset (Cost Management > Exports > \"Cost and usage (FOCUS)\") instead",
    ),
    (
        "usage_start_time",
        "a Google Cloud billing export, not FOCUS: export Google Cloud's FOCUS view of the billing data instead",
    ),
    (
        "ResultsByTime",
        "a Cost Explorer answer, not a billing export: let costsplit pull Cost Explorer itself (costsplit sync billing)",
    ),
];

/// Refuses a file that is a known kind of export costsplit does not read, saying what to do.
fn refuse_foreign(file: &Path, header: &[String]) -> Result<(), ImportError> {
    if header.iter().any(|h| h.trim() == "ChargePeriodStart") {
        return Ok(());
    }
    match FOREIGN
        .iter()
        .find(|(column, _)| header.iter().any(|h| h.trim() == *column))
    {
        Some((_, what)) => Err(ImportError::Unreadable {
            file: file.to_path_buf(),
            message: format!("this is {what}"),
        }),
        None => Ok(()),
    }
}

/// Facts and periods read from one file.
pub struct FileFacts {
    pub schema: BillingSchema,
    pub facts: Vec<RawFact>,
    /// Its split cost allocation rows, at their workload grain (see [`split::SplitRows`]).
    pub split: split::SplitRows,
    pub periods: Vec<(String, String)>,
    pub line_items: i64,
}

/// Readers running that may panic on a damaged file (the parquet decoder is third-party code,
/// fed whatever bytes the file has).
static GUARDED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Whether such a reader is running: the binary's panic hook stays quiet then, because the
/// panic becomes the import's one `error:` line.
pub fn in_guarded_read() -> bool {
    GUARDED.load(std::sync::atomic::Ordering::SeqCst) > 0
}

/// Runs `read` and turns a panic inside it into "the file is damaged".
fn guarded<T>(
    path: &Path,
    read: impl FnOnce() -> Result<T, ImportError>,
) -> Result<T, ImportError> {
    use std::sync::atomic::Ordering;
    GUARDED.fetch_add(1, Ordering::SeqCst);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(read));
    GUARDED.fetch_sub(1, Ordering::SeqCst);
    outcome.unwrap_or_else(|payload| {
        let why = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "the reader failed".to_string());
        Err(ImportError::Unreadable {
            file: path.to_path_buf(),
            message: format!(
                "the parquet file is damaged (the parquet reader stopped: {why}); export it again"
            ),
        })
    })
}

/// Reads one billing file into facts (not yet rounded).
pub fn read_file(path: &Path) -> Result<FileFacts, ImportError> {
    read_file_in_slices(path, Slicing::from_env())
}

/// How much of a file is read at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slicing {
    /// Parquet: line items per decoded batch (`COSTSPLIT_IMPORT_SLICE_ROWS`, default 50,000).
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
        error: source,
    })?;
    // The one place a file's format is recognised, by its columns.
    let (schema, sums) = match format {
        FileFormat::Csv | FileFormat::GzipCsv => {
            let file = CsvFile::open(path, format == FileFormat::GzipCsv, slicing.csv_bytes)?;
            if cur::is_cur(&file.header) || cur::is_legacy_cur(&file.header) {
                let schema = match cur::is_cur(&file.header) {
                    true => BillingSchema::Cur2,
                    false => BillingSchema::LegacyCur,
                };
                let rows = cur::CurCsv::new(path, &file.header)?;
                (schema, file.aggregate(path, &rows)?)
            } else {
                refuse_foreign(path, &file.header)?;
                let rows = focus::csv_rows(path, &file.header)?;
                (BillingSchema::Focus, file.aggregate(path, &rows)?)
            }
        }
        FileFormat::Parquet => guarded(path, || {
            let file = parquet::ParquetFile::open(path)?;
            let header = file.names();
            if facts::is_facts(&header) {
                let selection = facts::selection(path, &header)?;
                let sums = file.read_columns(path, slicing.rows.max(1), &selection)?;
                Ok((BillingSchema::Facts, sums))
            } else if cur::is_cur(&header) {
                let (columns, rows) = cur::parquet_rows(path, &header)?;
                // A CUR row is decoded to text in every column it reads, where FOCUS keeps
                // its columns' dictionaries: smaller batches hold the same memory.
                let rows_per_batch = (slicing.rows / CUR_ROWS_DIVISOR).max(1);
                let sums = file.read_rows(path, rows_per_batch, &columns, &rows)?;
                Ok((BillingSchema::Cur2, sums))
            } else {
                refuse_foreign(path, &header)?;
                let selection = focus::parquet_selection(path, &header)?;
                let sums = file.read_columns(path, slicing.rows.max(1), &selection)?;
                Ok((BillingSchema::Focus, sums))
            }
        })?,
    };
    let started = Instant::now();
    let (facts, split) = sums.into_raw_facts();
    tracing::debug!(
        facts = facts.len(),
        ms = started.elapsed().as_millis() as u64,
        "facts built"
    );
    let line_items: i64 = facts
        .iter()
        .chain(split.facts())
        .map(|f| f.fact.line_count)
        .sum();
    if line_items == 0 {
        return Err(ImportError::Empty {
            file: path.to_path_buf(),
        });
    }
    let mut periods: Vec<(String, String)> = facts
        .iter()
        .chain(split.facts())
        .map(|f| {
            (
                f.fact.billing_period.to_string(),
                f.fact.billing_account.to_string(),
            )
        })
        .collect();
    periods.sort();
    periods.dedup();
    Ok(FileFacts {
        schema,
        facts,
        split,
        periods,
        line_items,
    })
}

/// Line items per decoded batch of a parquet file. Each worker holds one batch (and the
/// pages of its row group being decoded), so the peak follows this size and the number of
/// distinct facts, not the size of the file. `COSTSPLIT_IMPORT_SLICE_ROWS` overrides it.
const SLICE_ROWS: usize = 50_000;
/// CUR parquet batches are this many times smaller (BENCHMARKS.md, "Kubernetes").
const CUR_ROWS_DIVISOR: usize = 5;

/// Bytes of a CSV file per chunk a worker parses (`COSTSPLIT_IMPORT_CSV_CHUNK_MB`).
const CSV_CHUNK_BYTES: usize = 16 << 20;

/// Whether `path` is a facts file (`docs/facts.md`): a parquet file with the contract's
/// columns. Anything else (a CSV, another parquet file) is not, and says what it is.
pub fn check_facts_file(path: &Path) -> Result<(), ImportError> {
    if FileFormat::detect(path) != Some(FileFormat::Parquet) {
        return Err(ImportError::Unreadable {
            file: path.to_path_buf(),
            message: "not a facts file: facts files are parquet (docs/facts.md); import billing exports without --facts".into(),
        });
    }
    let header = guarded(path, || Ok(parquet::ParquetFile::open(path)?.names()))?;
    facts::selection(path, &header).map(|_| ())
}

/// Reads billing files into daily facts. All files are one batch: together they replace the
/// billing periods they contain (give every part of a multi-part export in one call).
/// `paths` may name folders and export manifests too (see [`batch::expand`]).
pub fn read_files(paths: &[PathBuf]) -> Result<Imported, ImportError> {
    let paths = batch::expand(paths)?;
    let mut imported = Imported::default();
    let mut raw = Vec::new();
    let mut split_rows = split::SplitRows::default();
    for path in &paths {
        let started = std::time::Instant::now();
        let file = read_file(path)?;
        tracing::info!(
            stage = "read lines",
            file = %path.display(),
            ms = started.elapsed().as_millis() as u64,
            "import timing"
        );
        imported.line_items += file.line_items;
        imported.schemas.insert(file.schema);
        imported.periods.extend(file.periods);
        if raw.is_empty() {
            raw = file.facts;
        } else {
            raw.extend(file.facts);
        }
        split_rows.merge(file.split);
        imported.files.push(path.display().to_string());
    }
    let started = std::time::Instant::now();
    let (raw, split) = split::attribute(raw, split_rows);
    if split.orphan_rows > 0 {
        tracing::warn!(
            rows = split.orphan_rows,
            "split cost allocation rows whose parent instance has no line item that day in these files: their shares moved nothing (import every part of the export together)"
        );
    }
    imported.split = split;
    imported.facts = aggregate::round_to_nanos(aggregate::merge_facts(raw));
    tracing::info!(
        stage = "read: merge and round facts",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    Ok(imported)
}
