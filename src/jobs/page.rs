//! What the web page shows, gathered from the store: a month's statement lines (so every
//! amount on the page is finance's to the cent), its daily allocations for the chart and the
//! comparison with the same days of the month before, the open alerts, the estimated days, and
//! for a service where its money came from.

use std::collections::BTreeMap;

use chrono::{Datelike, Months, NaiveDate};

use super::api::ApiQueryError;
use crate::model::{month_bounds, MessageKind, MessageState, SeriesRow, UNALLOCATED};
use crate::money::{nanos_per_minor, Nanos};
use crate::report::page::{Chart, OpenAlert, Ranked, Scope, View};
use crate::report::statement::{GroupBy, Statement};
use crate::store::Store;

/// The name a row is ranked under on the overview: its team, or `unallocated`.
fn team_of(r: &SeriesRow) -> String {
    if r.service == UNALLOCATED {
        UNALLOCATED.to_string()
    } else {
        r.team.clone()
    }
}

fn series_of(r: &SeriesRow) -> String {
    if r.pool.is_empty() {
        "direct".to_string()
    } else {
        r.pool.clone()
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

/// The page for `scope` in `month` (the newest allocated month when none is given).
pub async fn page_view(
    store: &Store,
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
    let Some((from, to)) = month_bounds(&month) else {
        return Err(ApiQueryError::BadRequest(format!(
            "`{month}` is not a month; write it as YYYY-MM, e.g. ?month=2025-03"
        )));
    };
    let (rows, estimated) = store.series_rows(from, to).await?;
    if rows.is_empty() {
        return Err(ApiQueryError::NoData(from, to, latest.to_string()));
    }
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
    let before = from - Months::new(1);
    let (earlier, _) = store
        .series_rows(before, from.pred_opt().unwrap_or(from))
        .await?;
    let previous_month = (!earlier.is_empty()).then(|| month_text(before));
    let next = from + Months::new(1);
    let next_month = (latest >= next).then(|| month_text(next));
    let earlier: Vec<SeriesRow> = earlier
        .into_iter()
        .filter(|r| in_scope(&scope, r) && r.day.day() <= through.day())
        .collect();

    let statement = |by| super::reports::statement(store, &month, by, false, None, 1);
    let (by_service, by_team) = (
        statement(GroupBy::Service)
            .await
            .map_err(|e| ApiQueryError::NotFound(format!("{e:#}")))?,
        statement(GroupBy::Team)
            .await
            .map_err(|e| ApiQueryError::NotFound(format!("{e:#}")))?,
    );
    let hashes: Vec<String> = store
        .allocation_provenance(from, to)
        .await?
        .into_iter()
        .map(|p| p.rules_hash)
        .collect();
    let mut rules_hash = hashes;
    rules_hash.dedup();

    let (ranking, totals) = ranking_and_totals(&scope, &by_service, &by_team, &earlier);
    let explanation = match &scope {
        Scope::Service(s) => super::reports::explain(store, None, s, &month)
            .await
            .map_err(|e| ApiQueryError::NotFound(format!("{e:#}")))?,
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
        rules_hash: rules_hash.join("+"),
        estimated: estimated.into_iter().collect(),
        totals,
        ranking,
        explanation,
    })
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
            _ => series_of(r),
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
    let mut rows: Vec<_> = store
        .list_alerts(None)
        .await?
        .into_iter()
        .filter(|r| {
            matches!(r.kind, MessageKind::Alert(_))
                && r.state != MessageState::Resolved
                && r.period.starts_with(month)
                && match scope {
                    Scope::All => true,
                    Scope::Team(t) => r.team == *t,
                    Scope::Service(s) => r.service == *s,
                }
        })
        .collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.id));
    Ok(rows
        .into_iter()
        .map(|r| OpenAlert {
            kind: r.kind.as_str().to_string(),
            service: r.service,
            period: r.period,
            summary: r.summary,
            state: r.state.as_str().to_string(),
        })
        .collect())
}
