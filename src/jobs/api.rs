//! What the read-only HTTP API serves, gathered from the store: the stored allocations of a
//! day range as rows, in one currency.

use chrono::NaiveDate;

use crate::model::SeriesRow;
use crate::store::Store;

/// Why the API cannot answer from the store (a 400 or 404 with this sentence).
#[derive(Debug, thiserror::Error)]
pub enum ApiQueryError {
    #[error("the store holds costs in {0}; add currency=<code> to choose one")]
    Currencies(String),
    #[error("no allocations between {0} and {1}; ask for a window with allocated days (the store's last one is {2})")]
    NoData(NaiveDate, NaiveDate, String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The allocations of `[from, to)` per (day, service, pool), in one currency: the one asked
/// for, or the only one there is.
pub async fn cost_rows(
    store: &Store,
    (from, to): (NaiveDate, NaiveDate),
    currency: Option<&str>,
) -> Result<Vec<SeriesRow>, ApiQueryError> {
    let last = to.pred_opt().unwrap_or(to);
    let (mut rows, _) = store.series_rows(from, last).await?;
    if rows.is_empty() {
        let latest = store.latest_allocation_day().await?;
        let stored = latest.map_or_else(
            || "none: run costsplit allocate".to_string(),
            |d| d.to_string(),
        );
        if latest.is_none_or(|d| d < from) {
            return Err(ApiQueryError::NoData(from, last, stored));
        }
    }
    match currency {
        Some(c) => rows.retain(|r| r.currency.eq_ignore_ascii_case(c)),
        None => {
            let mut currencies: Vec<&str> = rows.iter().map(|r| r.currency.as_str()).collect();
            currencies.sort_unstable();
            currencies.dedup();
            if currencies.len() > 1 {
                return Err(ApiQueryError::Currencies(currencies.join(" and ")));
            }
        }
    }
    Ok(rows)
}
