//! The daily facts contract (issue 28): a parquet file of daily facts that an engine where
//! the export already lives (Spark, Athena) summed from line items, with the SQL
//! `costsplit engine sql` generates. Importing it is importing the line items: the same
//! keys, the same one rounding to nano-units per day and currency (the amounts arrive at
//! 1e-11 and are rounded here, never by the engine), the same replace-by-(billing period,
//! account). `docs/facts.md` is the contract as a reader sees it.

use std::path::Path;

use super::file::ImportError;
use super::line::KEY_NAMES;
use super::parquet::Selection;

/// The day of the charge (DATE, or text `YYYY-MM-DD`).
pub const DAY: &str = "day";
/// The first day of the billing period (DATE).
pub const PERIOD: &str = "billing_period_start";
/// The sums, as exact decimals (`DECIMAL(38, 11)`; any scale up to 11).
pub const EFFECTIVE: &str = "effective_cost";
pub const BILLED: &str = "billed_cost";
pub const LIST: &str = "list_cost";
pub const CONTRACTED: &str = "contracted_cost";
/// How many line items each fact sums (BIGINT).
pub const LINES: &str = "line_count";

/// The columns of a facts file, in the order the generated SQL writes them: the day, the
/// billing period, the fact keys in their declared order (`tags`: a JSON object of the tags
/// as reports show them, user tags without their `user_` prefix), the four sums and the
/// line count.
pub fn columns() -> Vec<&'static str> {
    [DAY, PERIOD]
        .into_iter()
        .chain(KEY_NAMES)
        .chain([EFFECTIVE, BILLED, LIST, CONTRACTED, LINES])
        .collect()
}

/// A facts file is recognised by its columns: all of them, by name.
pub fn is_facts(header: &[String]) -> bool {
    columns().iter().all(|c| header.iter().any(|h| h == c))
}

/// How a facts file is read: every column by its contract name. Refuses a file that lacks
/// one, naming it.
pub fn selection(file: &Path, header: &[String]) -> Result<Selection, ImportError> {
    if let Some(missing) = columns()
        .into_iter()
        .find(|c| !header.iter().any(|h| h == c))
    {
        return Err(ImportError::missing_column(
            file,
            missing,
            "a costsplit facts file (docs/facts.md)",
            header,
        ));
    }
    Ok(Selection {
        day: DAY.to_string(),
        period: Some(PERIOD.to_string()),
        keys: KEY_NAMES.map(|k| Some(k.to_string())),
        effective: EFFECTIVE.to_string(),
        billed: BILLED.to_string(),
        list: Some(LIST.to_string()),
        contracted: Some(CONTRACTED.to_string()),
        lines: Some(LINES.to_string()),
    })
}
