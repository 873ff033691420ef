//! Budgets and month-end forecasts: each budget's scope summed from the stored facts as the
//! rules split them (shares of shared pools included, one-time charges apart from usage),
//! forecast, evaluated, and its alerts put in the outbox once per (budget, threshold, month).

use std::collections::BTreeMap;

use anyhow::Context;
use chrono::{Datelike, Duration, NaiveDate};
use tracing::info;

use super::allocate::live_weights;
use crate::allocate::{self, Input};
use crate::clock::Clock;
use crate::forecast::budget::{self, BudgetAlert, BudgetStatus};
use crate::forecast::{self, DayCost, History};
use crate::model::{month_bounds, CostBasis, MessageKind};
use crate::money::Nanos;
use crate::rules::{Budget, Rules};
use crate::store::{EnqueueResult, NewAlert, Store};

/// Days of history read before the month: sixteen weeks of shape and trend, and the
/// backtests behind the interval.
const HISTORY_DAYS: i64 = 112;

/// The charge categories forecast from their recent days; the rest (purchases and fees,
/// tax, credits, adjustments) is counted on the day it fell.
fn usage_based(charge_category: &str) -> bool {
    charge_category.eq_ignore_ascii_case("usage")
}

/// The last allocated day, or the error that says what to run first.
pub async fn last_allocated_day(store: &Store) -> anyhow::Result<NaiveDate> {
    store
        .latest_allocation_day()
        .await?
        .context("no allocations yet; run `costsplit allocate` first")
}

/// Every budget of the rules in `month` (`YYYY-MM`), as known on `as_of` (default: the last
/// allocated day).
pub async fn budget_statuses(
    store: &Store,
    rules: &Rules,
    month: &str,
    as_of: Option<NaiveDate>,
) -> anyhow::Result<Vec<BudgetStatus>> {
    let (start, end) = month_bounds(month)
        .with_context(|| format!("`{month}` is not a month; write it as YYYY-MM, e.g. 2025-03"))?;
    if rules.budgets.is_empty() {
        return Ok(Vec::new());
    }
    let as_of = match as_of {
        Some(day) => day,
        None => last_allocated_day(store).await?,
    }
    .min(end);
    let days = scope_days(store, rules, (start - Duration::days(HISTORY_DAYS), as_of)).await?;
    Ok(rules
        .budgets
        .iter()
        .map(|b| status(b, month, start, as_of, days.get(&b.name), days.first))
        .collect())
}

fn status(
    budget: &Budget,
    month: &str,
    start: NaiveDate,
    as_of: NaiveDate,
    days: Option<&BTreeMap<NaiveDate, DayCost>>,
    first: Option<NaiveDate>,
) -> BudgetStatus {
    let history = History {
        first,
        days: days.cloned().unwrap_or_default(),
    };
    let actual: Vec<(NaiveDate, Nanos)> = history
        .days
        .range(start..=as_of)
        .map(|(d, c)| (*d, c.total()))
        .collect();
    let forecast = forecast::forecast(&history, start, as_of);
    let run_rate = forecast::run_rate(&history, start, as_of);
    budget::evaluate(budget, month, as_of, forecast, run_rate, &actual)
}

/// Each budget's days over `range`, as [`History`]s by budget name: what the forecaster
/// reads (for a backtest, which forecasts each day from the days before it).
pub async fn budget_histories(
    store: &Store,
    rules: &Rules,
    range: (NaiveDate, NaiveDate),
) -> anyhow::Result<BTreeMap<String, History>> {
    let days = scope_days(store, rules, range).await?;
    Ok(rules
        .budgets
        .iter()
        .map(|b| {
            let history = History {
                first: days.first,
                days: days.get(&b.name).cloned().unwrap_or_default(),
            };
            (b.name.clone(), history)
        })
        .collect())
}

/// Each budget's days, by name, and the first day the store has facts for in the range.
struct ScopeDays {
    by_budget: BTreeMap<String, BTreeMap<NaiveDate, DayCost>>,
    first: Option<NaiveDate>,
}

impl ScopeDays {
    fn get(&self, name: &str) -> Option<&BTreeMap<NaiveDate, DayCost>> {
        self.by_budget.get(name)
    }
}

/// Days of facts read and split at a time: a budget's months of history are read a week at a
/// time, so the alerts job holds a week's facts, not the 16 weeks and the month it sums (on a
/// bill of a million resources, half a GB instead of several). Shares are split day by day,
/// so the sums are the same whatever the chunk.
const CHUNK_DAYS: i64 = 7;

/// Sums the stored facts of `from..=to`, split as the rules split them, into each budget's
/// scope, day and kind of charge.
async fn scope_days(
    store: &Store,
    rules: &Rules,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<ScopeDays> {
    let basis = store
        .allocation_provenance(from.max(to.with_day(1).unwrap_or(to)), to)
        .await?
        .first()
        .map_or(CostBasis::Effective, |p| p.basis);
    let rules = std::sync::Arc::new(rules.clone());
    let mut by_budget: BTreeMap<String, BTreeMap<NaiveDate, DayCost>> = BTreeMap::new();
    let mut first: Option<NaiveDate> = None;
    let mut start = from;
    while start <= to {
        let end = (start + Duration::days(CHUNK_DAYS - 1)).min(to);
        let facts = store.facts(start, end).await?;
        if let Some(day) = facts.iter().map(|f| f.day).min() {
            first = Some(first.map_or(day, |f| f.min(day)));
        }
        let usage = live_weights(store, &rules, (start, end)).await?;
        let owned = std::sync::Arc::clone(&rules);
        by_budget = tokio::task::spawn_blocking(move || -> anyhow::Result<_> {
            add_scope_days(&mut by_budget, &facts, &owned, &usage, basis)?;
            Ok(by_budget)
        })
        .await
        .context("the budget task stopped")??;
        start = end + Duration::days(1);
    }
    Ok(ScopeDays { by_budget, first })
}

/// Adds `facts`, split as the rules split them, to each budget's days.
fn add_scope_days(
    out: &mut BTreeMap<String, BTreeMap<NaiveDate, DayCost>>,
    facts: &[crate::model::Fact],
    rules: &Rules,
    usage: &allocate::UsageWeights,
    basis: CostBasis,
) -> anyhow::Result<()> {
    let splits = allocate::split_charges(&Input {
        facts,
        rules,
        usage,
        basis,
    })?;
    for s in &splits {
        let once = !usage_based(&s.fact.charge_category);
        for p in &s.parts {
            for b in &rules.budgets {
                if b.currency != s.fact.currency || !in_scope(rules, b, &p.service, &s.pool) {
                    continue;
                }
                let day = out
                    .entry(b.name.clone())
                    .or_default()
                    .entry(s.fact.day)
                    .or_default();
                if once {
                    day.once += p.amount;
                } else {
                    day.usage += p.amount;
                }
            }
        }
    }
    Ok(())
}

/// Whether a part charged to `service` (through `pool`, if any) is in the budget's scope:
/// the team and cost center are the rules' of the service now.
fn in_scope(rules: &Rules, budget: &Budget, service: &str, pool: &Option<String>) -> bool {
    let (team, center) = rules
        .service(service)
        .map_or(("", ""), |s| (s.team.as_str(), s.cost_center.as_str()));
    budget::covers(
        &budget.scope,
        service,
        team,
        center,
        pool.as_deref().unwrap_or(""),
    )
}

/// The budgets' alerts for the month of `day` (and the month before, while `day` is within
/// `lookback_days` of its start: restated days can still pass its thresholds), put in the
/// outbox; pending budget alerts of those months that the data no longer supports are
/// resolved (a forecast alert an actual one covers now is still supported). One transaction.
pub async fn check_budgets(
    store: &Store,
    rules: &Rules,
    day: NaiveDate,
    lookback_days: u32,
    clock: Clock,
) -> anyhow::Result<(Vec<BudgetAlert>, EnqueueResult)> {
    let mut months = vec![day.format("%Y-%m").to_string()];
    let back = day - Duration::days(i64::from(lookback_days));
    if back.month() != day.month() {
        months.insert(0, back.format("%Y-%m").to_string());
    }
    let (mut alerts, mut covered) = (Vec::new(), Vec::new());
    for month in &months {
        for status in budget_statuses(store, rules, month, Some(day)).await? {
            alerts.extend(budget::alerts(&status));
            covered.extend(budget::covered(&status));
        }
    }
    let rows: Vec<NewAlert> = alerts
        .iter()
        .map(|a| {
            let channel = rules
                .budgets
                .iter()
                .find(|b| b.name == a.budget)
                .and_then(|b| b.channel.clone());
            NewAlert {
                fingerprint: a.fingerprint(),
                kind: MessageKind::Budget,
                service: String::new(),
                team: a.team.clone(),
                period: a.month.clone(),
                channel,
                summary: a.summary(),
                payload: serde_json::to_string(a).expect("budget alerts always serialise"),
            }
        })
        .collect();
    let result = store
        .enqueue_budget_alerts(&rows, &covered, &months, clock.stamp())
        .await?;
    info!(
        new = result.inserted,
        known = result.already_known,
        resolved = result.resolved.len(),
        "budgets checked"
    );
    Ok((alerts, result))
}
