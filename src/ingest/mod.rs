//! Billing sources: FOCUS export files (CSV, gzip CSV, parquet), AWS CUR 2.0 (parquet, CSV,
//! gzip CSV) and legacy CUR (CSV, gzip CSV) files, and the Cost Explorer API. Every source yields the same daily [`Fact`]s. Sources read;
//! they never write the store and never look at rules.

mod aggregate;
pub mod batch;
pub mod cost_explorer;
mod csv_file;
pub mod cur;
pub mod focus;
pub mod generate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::model::Fact;

/// What reading a batch of billing files produced.
#[derive(Debug, Default)]
pub struct Imported {
    pub facts: Vec<Fact>,
    /// (billing period `YYYY-MM`, billing account) pairs present in the files; importing them
    /// replaces what the store holds for exactly these pairs.
    pub periods: BTreeSet<(String, String)>,
    pub line_items: i64,
    pub files: Vec<String>,
}

/// A billing file that cannot be imported. Messages name the file, row and column.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{file}: cannot read: {source}")]
    Io {
        file: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{file}: unknown file type; give a FOCUS or AWS CUR export as .csv, .csv.gz or .parquet"
    )]
    UnknownFormat { file: PathBuf },
    #[error("{file}: the file has no line items (is it the right export?)")]
    Empty { file: PathBuf },
    #[error("{file}:1: missing required column `{column}`; {format} export has it (columns found: {found})")]
    MissingColumn {
        file: PathBuf,
        column: String,
        format: &'static str,
        found: String,
    },
    #[error("{file}{}: column `{column}`: {problem}", row_suffix(*.row))]
    BadValue {
        file: PathBuf,
        /// The line number for CSV (the header is line 1); 0 when the row is not known (a
        /// value found after aggregation of a parquet file).
        row: u64,
        column: String,
        problem: String,
    },
    #[error("{file}: {message}")]
    Unreadable { file: PathBuf, message: String },
}

impl ImportError {
    /// A required column is missing; the message lists the first columns the file has.
    fn missing_column(file: &Path, column: &str, format: &'static str, header: &[String]) -> Self {
        let mut found: Vec<&str> = header.iter().map(String::as_str).take(12).collect();
        if header.len() > 12 {
            found.push("...");
        }
        ImportError::MissingColumn {
            file: file.to_path_buf(),
            column: column.to_string(),
            format,
            found: found.join(", "),
        }
    }
}

fn row_suffix(row: u64) -> String {
    if row == 0 {
        String::new()
    } else {
        format!(":{row}")
    }
}

/// The formats a billing file can come in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Csv,
    GzipCsv,
    Parquet,
}

impl FileFormat {
    pub fn detect(path: &Path) -> Option<FileFormat> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".parquet") {
            Some(FileFormat::Parquet)
        } else if name.ends_with(".csv.gz") || name.ends_with(".gz") {
            Some(FileFormat::GzipCsv)
        } else if name.ends_with(".csv") {
            Some(FileFormat::Csv)
        } else {
            None
        }
    }
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

/// Reads billing files into daily facts. All files are one batch: together they replace the
/// billing periods they contain (give every part of a multi-part export in one call).
/// `paths` may name folders and export manifests too (see [`batch::expand`]).
pub fn read_files(paths: &[PathBuf]) -> Result<Imported, ImportError> {
    let paths = batch::expand(paths)?;
    let mut imported = Imported::default();
    let mut raw = Vec::new();
    for path in &paths {
        let started = std::time::Instant::now();
        let file = focus::read_file(path)?;
        tracing::info!(
            stage = "read lines",
            file = %path.display(),
            ms = started.elapsed().as_millis() as u64,
            "import timing"
        );
        imported.line_items += file.line_items;
        imported.periods.extend(file.periods);
        raw.extend(file.facts);
        imported.files.push(path.display().to_string());
    }
    let started = std::time::Instant::now();
    imported.facts = focus::round_to_nanos(focus::merge_facts(raw));
    tracing::info!(
        stage = "read: merge and round facts",
        ms = started.elapsed().as_millis() as u64,
        "import timing"
    );
    Ok(imported)
}
