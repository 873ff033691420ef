//! What the web page shows, gathered from the store: a month's statement lines (so every
//! amount on the page is finance's to the cent), its daily allocations for the chart and the
//! comparison with the same days of the month before, the open alerts, the estimated days, and
//! for a service where its money came from.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{Datelike, Months, NaiveDate};

use super::api::{ApiCache, ApiQueryError};
use crate::model::{month_bounds, SeriesRow, UNALLOCATED};
use crate::money::{nanos_per_minor, Nanos};
use crate::report::explain::{explain_with, Explanation, PoolDays};
use crate::report::page::{Chart, OpenAlert, Ranked, Scope, View};
use crate::report::statement::{GroupBy, Statement};
use crate::store::{RowsOf, Store};

/// The name a row is ranked under on the overview: its team, or `unallocated`.
fn team_of(r: &SeriesRow) -> String {
    if r.service == UNALLOCATED {
        UNALLOCATED.to_string()
    } else {
        r.team.clone()
    }
}

fn in_scope(scope: &Scope, r: &SeriesRow) -> bool {
    match scope {
        Scope::All => true,
        Scope::Team(t) => r.team == *t && r.service != UNALLOCATED,
        Scope::Service(s) => r.service == *s,
    }
}

fn month_text(first: NaiveDate) -> String {
    first.format("%Y-%m").to_string()
}

/// A month's figures for every page of it: the statement by service and by team (finance's
/// cents), the daily cost per team, the estimated days. Computed from the whole month once,
/// then kept in the [`ApiCache`] while the data stays the same.
#[derive(Debug)]
pub struct MonthFigures {
    by_service: Statement,
    by_team: Statement,
    /// Per (day, team, currency); `service` is `unallocated` for the cost nobody owns.
    team_days: Vec<SeriesRow>,
    /// The same of the month before (the overview's comparison).
    team_days_before: Vec<SeriesRow>,
    estimated: Vec<NaiveDate>,
}

async fn month_figures(
    store: &Store,
    cache: &ApiCache,
    month: &str,
) -> Result<Arc<MonthFigures>, ApiQueryError> {
    let version = store.data_version().await?;
    if let Some((v, figures)) = cache.months.lock().expect("cache").get(month) {
        if *v == version {
            return Ok(figures.clone());
        }
    }
    let Some((from, to)) = month_bounds(month) else {
        return Err(ApiQueryError::BadRequest(format!(
            "`{month}` is not a month; write it as YYYY-MM, e.g. ?month=2025-03"
        )));
    };
    let rows = store.series_rows_of(from, to, RowsOf::All).await?;
    if rows.is_empty() {
        let latest = store.latest_allocation_day().await?;
        let stored = latest.map_or_else(|| "none".to_string(), |d| d.to_string());
        return Err(ApiQueryError::NoData(from, to, stored));
    }
    let mut statements = super::reports::statements(
        store,
        month,
        &[GroupBy::Service, GroupBy::Team],
        false,
        None,
        1,
    )
    .await
    .map_err(|e| ApiQueryError::NotFound(format!("{e:#}")))?;
    let by_team = statements.pop().expect("two statements");
    let by_service = statements.pop().expect("two statements");
    let figures = Arc::new(MonthFigures {
        by_service,
        by_team,
        team_days: team_days(&rows),
        team_days_before: team_days(
            &store
                .series_rows_of(
                    from - Months::new(1),
                    from.pred_opt().unwrap_or(from),
                    RowsOf::All,
                )
                .await?,
        ),
        estimated: store.estimated_days(from, to).await?,
    });
    let mut months = cache.months.lock().expect("cache");
    // A bounded cache: a year of months and a few more.
    if months.len() > 24 {
        months.clear();
    }
    months.insert(month.to_string(), (version, figures.clone()));
    Ok(figures)
}

/// Computes what the API keeps for the newest two months and the last 90 days, so that the
/// first requests after new data need not (a failure only means the first request computes).
async fn warm_api_cache_now(store: &Store, cache: &ApiCache) {
    let latest = match store.latest_allocation_day().await {
        Ok(Some(day)) => day,
        _ => return,
    };
    let month = latest.with_day(1).unwrap_or(latest);
    for first in [month, month - Months::new(1)] {
        if let Err(e) = month_figures(store, cache, &month_text(first)).await {
            tracing::debug!(error = %e, "the API's month figures were not computed ahead");
        }
    }
    if let Err(e) = super::api::recent_names(store, cache).await {
        tracing::debug!(error = %e, "the API's recent names were not computed ahead");
    }
}

/// [`warm_api_cache_now`] as a task of its own (at `costsplit serve`'s start, after the
/// daemon's allocate job).
pub async fn warm_api_cache(store: Store, cache: Arc<ApiCache>) {
    warm_api_cache_now(&store, &cache).await;
}

/// Per (day, team, currency) sums; `service` is `unallocated` for the cost nobody owns.
fn team_days(rows: &[SeriesRow]) -> Vec<SeriesRow> {
    let mut sums: BTreeMap<(NaiveDate, String, String), Nanos> = BTreeMap::new();
    for r in rows {
        *sums
            .entry((r.day, team_of(r), r.currency.clone()))
            .or_default() += r.amount;
    }
    sums.into_iter()
        .map(|((day, team, currency), amount)| SeriesRow {
            day,
            service: if team == UNALLOCATED {
                UNALLOCATED.to_string()
            } else {
                String::new()
            },
            team: if team == UNALLOCATED {
                String::new()
            } else {
                team
            },
            currency,
            pool: String::new(),
            provider_service: String::new(),
            amount,
        })
        .collect()
}

/// The rows a scoped page reads: one team's or one service's, through their indexes.
fn rows_of(scope: &Scope) -> RowsOf<'_> {
    match scope {
        Scope::All => RowsOf::All,
        Scope::Team(t) => RowsOf::Team(t),
        Scope::Service(s) => RowsOf::Service(s),
    }
}

/// The page for `scope` in `month` (the newest allocated month when none is given).
pub async fn page_view(
    store: &Store,
    cache: &ApiCache,
    scope: Scope,
    month: Option<&str>,
) -> Result<View, ApiQueryError> {
    let Some(latest) = store.latest_allocation_day().await? else {
        return Err(ApiQueryError::Empty);
    };
    let month = match month.filter(|m| !m.is_empty()) {
        Some(m) => m.to_string(),
        None => month_text(latest.with_day(1).unwrap_or(latest)),
    };
    let figures = month_figures(store, cache, &month).await?;
    let (from, to) = month_bounds(&month).expect("a month the figures were made for");
    let before = from - Months::new(1);
    let before_month = month_text(before);
    let (rows, earlier, previous_month) = if scope == Scope::All {
        let earlier = figures.team_days_before.clone();
        let previous = (!earlier.is_empty()).then_some(before_month);
        (figures.team_days.clone(), earlier, previous)
    } else {
        let rows = store.series_rows_of(from, to, rows_of(&scope)).await?;
        let earlier = store
            .series_rows_of(before, from.pred_opt().unwrap_or(from), rows_of(&scope))
            .await?;
        let previous = (!earlier.is_empty()).then_some(before_month);
        (rows, earlier, previous)
    };
    let rows: Vec<SeriesRow> = rows.into_iter().filter(|r| in_scope(&scope, r)).collect();
    if rows.is_empty() {
        let what = match &scope {
            Scope::Team(t) => format!("team `{t}`"),
            Scope::Service(s) => format!("service `{s}`"),
            Scope::All => "anyone".to_string(),
        };
        return Err(ApiQueryError::NotFound(format!(
            "{what} has no cost in {month}; the overview at /?month={month} lists who does"
        )));
    }
    let through = rows.iter().map(|r| r.day).max().unwrap_or(to);
    let next = from + Months::new(1);
    let next_month = (latest >= next).then(|| month_text(next));
    let earlier: Vec<SeriesRow> = earlier
        .into_iter()
        .filter(|r| in_scope(&scope, r) && r.day.day() <= through.day())
        .collect();
    let rules_hash = figures.by_service.rules_hash.clone();
    let (ranking, totals) =
        ranking_and_totals(&scope, &figures.by_service, &figures.by_team, &earlier);
    let explanation = match &scope {
        Scope::Service(s) => explanation(store, s, &month, &rules_hash).await?,
        _ => Vec::new(),
    };
    Ok(View {
        alerts: open_alerts(store, &scope, &month).await?,
        chart: chart(&scope, &rows, from, through),
        scope,
        month,
        previous_month,
        next_month,
        through,
        rules_hash,
        estimated: figures.estimated.clone(),
        totals,
        ranking,
        explanation,
    })
}

/// `explain` of one service, from its own rows and its pools' daily totals.
async fn explanation(
    store: &Store,
    service: &str,
    month: &str,
    rules_hash: &str,
) -> Result<Vec<Explanation>, ApiQueryError> {
    let (from, to) = month_bounds(month).expect("a month");
    let allocations = store.service_allocations(from, to, service).await?;
    let mut pools: Vec<&str> = allocations
        .iter()
        .map(|a| a.pool.as_str())
        .filter(|p| !p.is_empty())
        .collect();
    pools.sort_unstable();
    pools.dedup();
    let mut pool_days = PoolDays::new();
    for pool in pools {
        for (currency, day, total) in store.pool_day_totals(from, to, pool).await? {
            pool_days.insert((currency, pool.to_string(), day), total);
        }
    }
    let rules = rules_hash.split('+').map(str::to_string).collect();
    Ok(explain_with(
        service,
        month,
        rules,
        &allocations,
        &pool_days,
    ))
}

/// The name a statement line is ranked under, when it belongs on the page.
fn ranked_name(scope: &Scope, team: &str, service: &str) -> Option<String> {
    match scope {
        Scope::All if service == UNALLOCATED => Some(UNALLOCATED.to_string()),
        Scope::All => Some(team.to_string()),
        Scope::Team(t) => (team == t && service != UNALLOCATED).then(|| service.to_string()),
        Scope::Service(s) => (service == s).then(|| service.to_string()),
    }
}

/// The ranking (teams on the overview, a team's services on its page) from the statement's
/// lines, with the same days of the month before; and the page's totals per currency.
fn ranking_and_totals(
    scope: &Scope,
    by_service: &Statement,
    by_team: &Statement,
    earlier: &[SeriesRow],
) -> (Vec<Ranked>, Vec<(String, Nanos)>) {
    let key = |r: &SeriesRow| match scope {
        Scope::All => team_of(r),
        _ => r.service.clone(),
    };
    let mut previous: BTreeMap<(String, String), Nanos> = BTreeMap::new();
    for r in earlier {
        *previous.entry((key(r), r.currency.clone())).or_default() += r.amount;
    }
    // (name, currency) -> (team, statement amount, exact)
    let mut lines: BTreeMap<(String, String), (String, Nanos, Nanos)> = BTreeMap::new();
    let statement = if *scope == Scope::All {
        by_team
    } else {
        by_service
    };
    for line in &statement.lines {
        if let Some(name) = ranked_name(scope, &line.team, &line.service) {
            let entry = lines
                .entry((name, line.currency.clone()))
                .or_insert_with(|| (line.team.clone(), Nanos::ZERO, Nanos::ZERO));
            entry.1 += Nanos(line.minor * nanos_per_minor(&line.currency));
            entry.2 += line.exact;
        }
    }
    let mut totals: BTreeMap<String, Nanos> = BTreeMap::new();
    let mut ranking: Vec<Ranked> = Vec::new();
    for ((name, currency), (team, amount, exact)) in lines {
        *totals.entry(currency.clone()).or_default() += amount;
        ranking.push(Ranked {
            previous: previous
                .get(&(name.clone(), currency.clone()))
                .copied()
                .unwrap_or_default(),
            name,
            team,
            amount,
            exact,
            currency,
        });
    }
    if *scope == Scope::All {
        // The month's total is the statement's reconciled total.
        totals = by_team
            .totals
            .iter()
            .map(|t| {
                (
                    t.currency.clone(),
                    Nanos(t.allocated_minor * nanos_per_minor(&t.currency)),
                )
            })
            .collect();
    }
    // Most expensive first; unallocated last.
    ranking.sort_by(|a, b| {
        (
            a.name == UNALLOCATED,
            &a.currency,
            std::cmp::Reverse(a.amount),
            &a.name,
        )
            .cmp(&(
                b.name == UNALLOCATED,
                &b.currency,
                std::cmp::Reverse(b.amount),
                &b.name,
            ))
    });
    if matches!(scope, Scope::Service(_)) {
        ranking.clear();
    }
    (ranking, totals.into_iter().collect())
}

/// The daily bars of the currency with the most cost: stacked by team on the overview, by
/// direct cost and each pool otherwise.
fn chart(scope: &Scope, rows: &[SeriesRow], from: NaiveDate, through: NaiveDate) -> Chart {
    let mut by_currency: BTreeMap<&str, i128> = BTreeMap::new();
    for r in rows {
        *by_currency.entry(&r.currency).or_default() += r.amount.0.abs();
    }
    let Some(currency) = by_currency
        .iter()
        .max_by_key(|(c, n)| (**n, std::cmp::Reverse(**c)))
        .map(|(c, _)| c.to_string())
    else {
        return Chart::default();
    };
    let days: Vec<NaiveDate> = from.iter_days().take_while(|d| *d <= through).collect();
    let mut series: BTreeMap<String, Vec<Nanos>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.currency == currency) {
        let name = match scope {
            Scope::All if r.service == UNALLOCATED => UNALLOCATED.to_string(),
            Scope::All if r.team.is_empty() => "no team".to_string(),
            Scope::All => r.team.clone(),
            _ => r.pool_or_direct().to_string(),
        };
        let index = (r.day - from).num_days() as usize;
        let values = series
            .entry(name)
            .or_insert_with(|| vec![Nanos::ZERO; days.len()]);
        if let Some(v) = values.get_mut(index) {
            *v += r.amount;
        }
    }
    let mut series: Vec<(String, Vec<Nanos>)> = series.into_iter().collect();
    // `direct` first, then the biggest.
    series.sort_by_key(|(name, values)| {
        (
            name != "direct",
            std::cmp::Reverse(values.iter().copied().sum::<Nanos>()),
        )
    });
    Chart {
        currency,
        days,
        series,
    }
}

/// The alerts of the month that restated data has not resolved, newest first.
async fn open_alerts(
    store: &Store,
    scope: &Scope,
    month: &str,
) -> Result<Vec<OpenAlert>, ApiQueryError> {
    let rows = super::api::open_alerts(store, |r| {
        r.period.starts_with(month)
            && match scope {
                Scope::All => true,
                Scope::Team(t) => r.team == *t,
                Scope::Service(s) => r.service == *s,
            }
    })
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| OpenAlert {
            kind: r.kind.as_str().to_string(),
            service: r.service,
            team: r.team,
            period: r.period,
            summary: r.summary,
            state: r.state.as_str().to_string(),
        })
        .collect())
}
