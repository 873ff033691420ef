//! What the read-only HTTP API serves, gathered from the store: the stored allocations of a
//! day range as rows, in one currency.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::NaiveDate;

use crate::model::SeriesRow;
use crate::store::{RowsOf, Store};

/// Why the API cannot answer from the store (a 400 or 404 with this sentence).
#[derive(Debug, thiserror::Error)]
pub enum ApiQueryError {
    #[error("the store holds costs in {0}; add currency=<code> to choose one")]
    Currencies(String),
    #[error("no allocations between {0} and {1}; ask for a window with allocated days (the store's last one is {2})")]
    NoData(NaiveDate, NaiveDate, String),
    #[error(
        "nothing is allocated yet; run `costsplit allocate` (or the daemon's allocate job) first"
    )]
    Empty,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The allocations of `[from, to)` per (day, service, pool), in one currency: the one asked
/// for, or the only one there is.
pub async fn cost_rows(
    store: &Store,
    (from, to): (NaiveDate, NaiveDate),
    of: RowsOf<'_>,
    currency: Option<&str>,
) -> Result<Vec<SeriesRow>, ApiQueryError> {
    let last = to.pred_opt().unwrap_or(to);
    let mut rows = store.series_rows_of(from, last, of).await?;
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

/// Cost Insights' "last complete billing date": the newest allocated day that is not still
/// estimated (a day the provider may restate is not complete).
pub async fn last_complete_day(store: &Store) -> Result<NaiveDate, ApiQueryError> {
    let Some(latest) = store.latest_allocation_day().await? else {
        return Err(ApiQueryError::Empty);
    };
    let from = latest - chrono::Duration::days(62);
    let estimated: std::collections::BTreeSet<NaiveDate> = store
        .estimated_days(from, latest)
        .await?
        .into_iter()
        .collect();
    let mut day = latest;
    while estimated.contains(&day) && day > from {
        day = day.pred_opt().unwrap_or(day);
    }
    Ok(day)
}

/// Who and what had cost in the 90 days up to the last complete day.
#[derive(Debug, Clone, Default)]
pub struct RecentNames {
    pub last_complete_day: Option<NaiveDate>,
    /// (team, service, pool, provider service), each once.
    pub names: Vec<[String; 4]>,
}

impl RecentNames {
    /// The teams, sorted.
    pub fn teams(&self) -> Vec<String> {
        let mut teams: Vec<String> = self
            .names
            .iter()
            .map(|n| n[0].clone())
            .filter(|t| !t.is_empty())
            .collect();
        teams.sort();
        teams.dedup();
        teams
    }
}

/// A computed answer and the [`Store::data_version`] it was computed at.
pub(super) type Versioned<T> = ((i64, i64), Arc<T>);

/// What the API and the page compute from a whole month or the last 90 days, kept while no
/// allocate run or import changed the data ([`Store::data_version`]); each request checks
/// that version first, so an answer is never older than the allocations.
#[derive(Default)]
pub struct ApiCache {
    names: Mutex<Option<Versioned<RecentNames>>>,
    pub(super) months: Mutex<HashMap<String, Versioned<super::page::MonthFigures>>>,
    answers: Mutex<HashMap<String, Versioned<String>>>,
}

impl ApiCache {
    pub fn new() -> Arc<ApiCache> {
        Arc::new(ApiCache::default())
    }
}

/// The answer `make` computes for `key`, or the one kept from an earlier request while the
/// data stays the same (at most 256 are kept).
pub async fn cached_answer(
    store: &Store,
    cache: &ApiCache,
    key: &str,
    make: impl AsyncFnOnce() -> Result<String, ApiQueryError>,
) -> Result<Arc<String>, ApiQueryError> {
    let version = store.data_version().await?;
    if let Some((v, answer)) = cache.answers.lock().expect("cache").get(key) {
        if *v == version {
            return Ok(answer.clone());
        }
    }
    let answer = Arc::new(make().await?);
    let mut answers = cache.answers.lock().expect("cache");
    if answers.len() >= 256 {
        answers.clear();
    }
    answers.insert(key.to_string(), (version, answer.clone()));
    Ok(answer)
}

/// The names of the last 90 days (cached while the allocations stay the same).
pub async fn recent_names(
    store: &Store,
    cache: &ApiCache,
) -> Result<Arc<RecentNames>, ApiQueryError> {
    let version = store.data_version().await?;
    if let Some((v, names)) = cache.names.lock().expect("cache").as_ref() {
        if *v == version {
            return Ok(names.clone());
        }
    }
    let latest = last_complete_day(store).await?;
    let names = Arc::new(RecentNames {
        last_complete_day: Some(latest),
        names: store
            .allocation_names(latest - chrono::Duration::days(89), latest)
            .await?,
    });
    *cache.names.lock().expect("cache") = Some((version, names.clone()));
    Ok(names)
}

/// A team's alerts (not digests), newest first, without the ones restated data resolved.
pub async fn team_alerts(
    store: &Store,
    team: &str,
) -> Result<Vec<crate::store::OutboxRow>, ApiQueryError> {
    open_alerts(store, |r| r.team == team).await
}

/// The alerts (anomalies and budgets; not digests) `keep` selects, newest first, without the
/// ones restated data resolved.
pub(super) async fn open_alerts(
    store: &Store,
    keep: impl Fn(&crate::store::OutboxRow) -> bool,
) -> Result<Vec<crate::store::OutboxRow>, ApiQueryError> {
    let mut rows: Vec<_> = store
        .list_alerts(None)
        .await?
        .into_iter()
        .filter(|r| {
            matches!(
                r.kind,
                crate::model::MessageKind::Alert(_) | crate::model::MessageKind::Budget
            ) && r.state != crate::model::MessageState::Resolved
                && keep(r)
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    Ok(rows)
}

/// A usage source's daily measurement (the sum of its samples) over `[from, to)`, as the
/// numbers Cost Insights' metrics are; a 404 naming the sources with samples when it has none.
pub async fn metric_daily(
    store: &Store,
    source: &str,
    (from, to): (NaiveDate, NaiveDate),
) -> Result<std::collections::BTreeMap<NaiveDate, f64>, ApiQueryError> {
    let last = to.pred_opt().unwrap_or(to);
    let samples = store
        .usage_samples(&[source.to_string()], from, last)
        .await?;
    if samples.is_empty() {
        let mut known: Vec<String> = store
            .usage_runs(1000)
            .await?
            .into_iter()
            .map(|r| r.source)
            .collect();
        known.sort();
        known.dedup();
        let known = if known.is_empty() {
            "no usage source has samples yet (metrics are the rules' [[source]]s, measured by `costsplit sync usage` or the daemon)".to_string()
        } else {
            format!("the metrics are the usage sources: {}", known.join(", "))
        };
        return Err(ApiQueryError::NotFound(format!(
            "no samples of metric `{source}` between {from} and {last}; {known}"
        )));
    }
    let mut daily = std::collections::BTreeMap::new();
    for s in samples {
        // The API's numbers; the stored value stays exact decimal text.
        let value: f64 = s.value.parse().unwrap_or(0.0);
        *daily.entry(s.day).or_insert(0.0) += value;
    }
    Ok(daily)
}
