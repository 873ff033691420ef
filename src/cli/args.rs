//! Argument types and value parsers several commands share.

use chrono::NaiveDate;
use clap::Args;

use crate::model::{month_bounds, parse_day, CostBasis};

/// The days a command covers: a month, or a range of days.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// A calendar month, YYYY-MM
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["from", "to"], value_parser = month_arg)]
    pub month: Option<(NaiveDate, NaiveDate)>,
    /// First day, YYYY-MM-DD
    #[arg(long, value_name = "DAY", requires = "to", value_parser = day_arg)]
    pub from: Option<NaiveDate>,
    /// Last day (inclusive), YYYY-MM-DD
    #[arg(long, value_name = "DAY", requires = "from", value_parser = day_arg)]
    pub to: Option<NaiveDate>,
}

impl RangeArgs {
    pub fn resolve(&self) -> anyhow::Result<(NaiveDate, NaiveDate)> {
        match (self.month, self.from, self.to) {
            (Some(month), _, _) => Ok(month),
            (None, Some(from), Some(to)) => Ok((from, to)),
            _ => anyhow::bail!("say which days: --month YYYY-MM, or --from DAY --to DAY"),
        }
    }
}

/// A `YYYY-MM-DD` argument.
pub(super) fn day_arg(text: &str) -> Result<NaiveDate, String> {
    parse_day(text).ok_or_else(|| format!("`{text}` is not a day; write it as YYYY-MM-DD"))
}

/// A `YYYY-MM` argument, as its first and last day.
pub(super) fn month_arg(text: &str) -> Result<(NaiveDate, NaiveDate), String> {
    month_bounds(text)
        .ok_or_else(|| format!("`{text}` is not a month; write it as YYYY-MM, e.g. 2025-03"))
}

pub(super) fn basis_arg(text: &str) -> Result<CostBasis, String> {
    text.parse()
        .map_err(|e: crate::model::UnknownCostBasis| e.to_string())
}
