//! Budgets and month-end forecasts as text and JSON, for `costsplit forecast`, the JSON
//! report and the statement's summary.

use serde::Serialize;

use crate::forecast::budget::BudgetStatus;
use crate::forecast::Forecast;
use crate::money::Nanos;

/// An amount as its exact decimal text and its nano-units.
#[derive(Debug, Serialize)]
pub struct Money {
    amount: String,
    nanos: i128,
}

fn money(n: Nanos) -> Money {
    Money {
        amount: n.to_string(),
        nanos: n.0,
    }
}

#[derive(Debug, Serialize)]
struct Threshold<'a> {
    threshold: &'a str,
    amount: Money,
    /// The day it was passed (actual) or is expected to be (forecast upper bound).
    passed_on: Option<String>,
}

#[derive(Debug, Serialize)]
struct ForecastJson {
    state: &'static str,
    /// With `not_enough_history`: the days there are and the days needed.
    #[serde(skip_serializing_if = "Option::is_none")]
    history_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    needed_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    point: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    low: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    high: Option<Money>,
    #[serde(skip_serializing_if = "Option::is_none")]
    one_time_to_date: Option<Money>,
    /// The backtests its 80% interval comes from (0: a default spread).
    #[serde(skip_serializing_if = "Option::is_none")]
    backtests: Option<usize>,
    /// How the remaining days were estimated (the model whose backtests erred least).
    #[serde(skip_serializing_if = "Option::is_none")]
    model: Option<&'static str>,
}

/// One budget in the JSON shapes.
#[derive(Debug, Serialize)]
pub struct BudgetJson<'a> {
    name: &'a str,
    scope: &'a str,
    team: &'a str,
    month: &'a str,
    currency: &'a str,
    budget: Option<Money>,
    as_of: String,
    to_date: Money,
    /// Percent of the budget spent, with two decimals.
    used_percent: Option<String>,
    forecast: ForecastJson,
    /// Month to date x days in month / days elapsed, as others forecast.
    run_rate: Money,
    thresholds: Vec<Threshold<'a>>,
}

/// The budgets as JSON rows (typed: an amount's nano-units may not fit a `serde_json::Value`).
pub fn json_rows(statuses: &[BudgetStatus]) -> Vec<BudgetJson<'_>> {
    statuses
        .iter()
        .map(|s| BudgetJson {
            name: &s.name,
            scope: &s.scope,
            team: &s.team,
            month: &s.month,
            currency: &s.currency,
            budget: s.amount.map(money),
            as_of: s.as_of.to_string(),
            to_date: money(s.to_date),
            used_percent: s
                .used_bp()
                .map(|bp| format!("{}.{:02}", bp / 100, (bp % 100).abs())),
            forecast: match &s.forecast {
                Forecast::NotEnoughHistory { days, needed } => ForecastJson {
                    state: "not_enough_history",
                    history_days: Some(*days),
                    needed_days: Some(*needed),
                    point: None,
                    low: None,
                    high: None,
                    one_time_to_date: None,
                    backtests: None,
                    model: None,
                },
                Forecast::Ready(m) => ForecastJson {
                    state: "ready",
                    history_days: None,
                    needed_days: None,
                    point: Some(money(m.point)),
                    low: Some(money(m.low)),
                    high: Some(money(m.high)),
                    one_time_to_date: Some(money(m.once_to_date)),
                    backtests: Some(m.samples),
                    model: m.model.map(|m| m.as_str()),
                },
            },
            run_rate: money(s.run_rate),
            thresholds: s
                .thresholds
                .iter()
                .map(|t| Threshold {
                    threshold: &t.label,
                    amount: money(t.amount),
                    passed_on: t.passed_on.map(|d| d.to_string()),
                })
                .collect(),
        })
        .collect()
}

/// `costsplit forecast --format json`.
pub fn json(month: &str, statuses: &[BudgetStatus]) -> String {
    #[derive(Serialize)]
    struct Out<'a> {
        month: &'a str,
        budgets: Vec<BudgetJson<'a>>,
    }
    serde_json::to_string_pretty(&Out {
        month,
        budgets: json_rows(statuses),
    })
    .expect("budgets always serialise")
}

/// `costsplit forecast`: a line per budget, then its thresholds.
pub fn text(month: &str, statuses: &[BudgetStatus]) -> String {
    if statuses.is_empty() {
        return format!(
            "no budgets for {month}: add a [[budget]] table to the rules (see the README's Budgets section)\n"
        );
    }
    let mut out = format!("budgets and month-end forecasts, {month}\n");
    for s in statuses {
        out.push_str(&format!("- {}\n", s.line()));
        for t in &s.thresholds {
            let state = match (t.passed_on, t.basis) {
                (Some(day), "actual") => format!("passed on {day}"),
                (Some(day), _) if day <= s.as_of => format!("passed on {day}"),
                (Some(day), _) => format!("forecast (upper bound) passes it on {day}"),
                (None, _) => "not passed".to_string(),
            };
            out.push_str(&format!(
                "    {:<16} {:>16}  {state}\n",
                t.label,
                crate::money::human(t.amount, &s.currency, false)
            ));
        }
    }
    out
}
