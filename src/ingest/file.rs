//! A billing file: the formats one can come in, and what can be wrong with one (each error
//! names the file, and the row and column where there is one).

use std::path::{Path, PathBuf};

/// A billing file that cannot be imported. Messages name the file, row and column.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    // Not `source`: the message already carries the cause, and a source would be printed
    // twice by `{:#}`.
    #[error("{file}: cannot read: {error}")]
    Io {
        file: PathBuf,
        error: std::io::Error,
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
    #[error("{file}{}: column `{}`: {}", row_suffix(*.row), readable(column), readable(problem))]
    BadValue {
        file: PathBuf,
        /// The line number for CSV (the header is line 1), the row number for parquet
        /// (counting from 1); 0 when the row is not known (a value checked once per distinct
        /// value, after aggregation).
        row: u64,
        column: String,
        problem: String,
    },
    #[error("{file}: {message}")]
    Unreadable { file: PathBuf, message: String },
}

impl ImportError {
    /// A required column is missing; the message lists the first columns the file has.
    pub(super) fn missing_column(
        file: &Path,
        column: &str,
        format: &'static str,
        header: &[String],
    ) -> Self {
        let mut found: Vec<&str> = header.iter().map(String::as_str).take(12).collect();
        if header.len() > 12 {
            found.push("...");
        }
        // One column holding the whole header: the file is not comma-separated.
        if let [only] = header {
            if let Some(sep) = [';', '\t', '|'].into_iter().find(|c| only.contains(*c)) {
                found = vec![if sep == '\t' {
                    "one column; the header is tab-separated, but costsplit reads comma-separated CSV: export as CSV with commas"
                } else if sep == ';' {
                    "one column; the header is semicolon-separated, but costsplit reads comma-separated CSV: export as CSV with commas"
                } else {
                    "one column; the header is |-separated, but costsplit reads comma-separated CSV: export as CSV with commas"
                }];
            }
        }
        ImportError::MissingColumn {
            file: file.to_path_buf(),
            column: column.to_string(),
            format,
            found: found.join(", "),
        }
    }
}

/// A value from a file as an error line shows it: whole when short, else its start and how
/// much was left out (a 100 MB cell must not become a 100 MB error line).
fn readable(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        None => text.to_string(),
        Some((cut, _)) => format!("{}… ({} more bytes)", &text[..cut], text.len() - cut),
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
