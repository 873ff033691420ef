//! A budget's state in a month (actual and forecast against the month's amount) and the
//! alerts its thresholds raise. Pure.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{Forecast, MonthEnd};

use crate::money::{human, Nanos};
use crate::rules::{Budget, BudgetBasis, BudgetScope, BudgetThreshold};

/// A budget in one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BudgetStatus {
    pub name: String,
    /// `team payments`.
    pub scope: String,
    pub team: String,
    pub channel: Option<String>,
    pub currency: String,
    pub month: String,
    /// The month's budget; none when neither an amount nor a planned one applies.
    pub amount: Option<Nanos>,
    /// The last day whose cost is known, and the month's cost up to it, exactly as allocated.
    pub as_of: NaiveDate,
    pub to_date: Nanos,
    pub forecast: Forecast,
    /// The naive run rate (month to date x days in month / days elapsed), for comparison.
    pub run_rate: Nanos,
    pub thresholds: Vec<ThresholdState>,
}

/// One threshold of a budget in a month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ThresholdState {
    /// `actual 80%`.
    pub label: String,
    pub basis: &'static str,
    /// The level without its basis: `80%`, `9000.000000000`.
    pub level: String,
    pub amount: Nanos,
    /// When it was (actual) or is expected to be (forecast upper bound) passed; none when not.
    pub passed_on: Option<NaiveDate>,
}

impl BudgetStatus {
    /// Percent of the budget spent, x100 (basis points).
    pub fn used_bp(&self) -> Option<i64> {
        let amount = self.amount?;
        (amount.0 > 0).then(|| (self.to_date.0 * 10_000 / amount.0) as i64)
    }

    /// `over` (month to date past the budget), `forecast_over` (the forecast's upper bound
    /// past it), `under`, `no_forecast` (too little history to say), `no_budget`.
    pub fn state(&self) -> &'static str {
        let Some(amount) = self.amount else {
            return "no_budget";
        };
        if self.to_date > amount {
            return "over";
        }
        match self.forecast.ready() {
            Some(m) if m.high > amount => "forecast_over",
            Some(_) => "under",
            None => "no_forecast",
        }
    }

    /// One line: `team payments: $8,200.00 of $12,000.00 (68%); forecast $11,400.00
    /// ($10,900.00 to $12,100.00)`.
    pub fn line(&self) -> String {
        let c = self.currency.as_str();
        let budget = match self.amount {
            Some(a) => format!(" of {}", human(a, c, false)),
            None => " (no budget this month)".to_string(),
        };
        let used = self
            .used_bp()
            .map(|bp| format!(" ({}%)", bp / 100))
            .unwrap_or_default();
        let spent = format!(
            "{} `{}`: {}{budget}{used} to {}",
            self.scope,
            self.name,
            human(self.to_date, c, false),
            self.as_of
        );
        match &self.forecast {
            Forecast::NotEnoughHistory { days, needed } => {
                format!("{spent}; month-end forecast: not enough history ({days} of {needed} days)")
            }
            Forecast::Ready(m) if m.expected.is_empty() => format!("{spent} (the month is over)"),
            Forecast::Ready(m) => {
                let passes = self
                    .thresholds
                    .iter()
                    .filter(|t| t.basis == "forecast")
                    .find_map(|t| t.passed_on.filter(|d| *d > m.as_of).map(|d| (t, d)))
                    .map(|(t, d)| format!("; forecast passes {} on {d}", t.level))
                    .unwrap_or_default();
                format!(
                    "{spent}; month-end forecast {} ({} to {}){passes}",
                    human(m.point, c, false),
                    human(m.low, c, false),
                    human(m.high, c, false),
                )
            }
        }
    }
}

/// A budget threshold passed (actual) or forecast to be passed (upper bound): sent once per
/// (budget, threshold, month).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetAlert {
    pub budget: String,
    pub scope: String,
    pub team: String,
    pub currency: String,
    pub month: String,
    /// `actual 80%`.
    pub threshold: String,
    /// `80%`, or an amount.
    #[serde(default)]
    pub level: String,
    /// `actual` or `forecast`.
    pub basis: String,
    pub threshold_amount: Nanos,
    pub budget_amount: Nanos,
    pub to_date: Nanos,
    pub as_of: NaiveDate,
    /// The month-end forecast and its 80% interval; none without enough history.
    pub forecast: Option<(Nanos, Nanos, Nanos)>,
    /// The day it was passed, or is expected to be passed.
    pub passed_on: NaiveDate,
}

impl BudgetAlert {
    pub fn fingerprint(&self) -> String {
        format!("budget|{}|{}|{}", self.budget, self.threshold, self.month)
    }

    /// One plain-text paragraph.
    pub fn summary(&self) -> String {
        let c = self.currency.as_str();
        let (point, low, high) = self.forecast.unwrap_or_default();
        // A forecast threshold the spend has reached already says so.
        let what = if self.basis == "actual" || self.to_date >= self.threshold_amount {
            format!(
                "actual spend {} passed {} of the budget ({}) on {}",
                human(self.to_date, c, false),
                self.level,
                human(self.threshold_amount, c, false),
                self.passed_on
            )
        } else {
            format!(
                "the forecast's upper bound {} passes {} of the budget ({}) on {}",
                human(high, c, false),
                self.level,
                human(self.threshold_amount, c, false),
                self.passed_on
            )
        };
        let forecast = match self.forecast {
            Some(_) => format!(
                "month-end forecast {} ({} to {})",
                human(point, c, false),
                human(low, c, false),
                human(high, c, false)
            ),
            None => "month-end forecast: not enough history".to_string(),
        };
        format!(
            "Budget `{}` ({}) for {}: {what}. Month to date {} as of {}; budget {}; {forecast}.",
            self.budget,
            self.scope,
            self.month,
            human(self.to_date, c, false),
            self.as_of,
            human(self.budget_amount, c, false),
        )
    }
}

/// Whether money charged to `service` (of `team` and `cost_center`, through `pool`, empty for
/// direct cost) counts against a budget of `scope`.
pub fn covers(
    scope: &BudgetScope,
    service: &str,
    team: &str,
    cost_center: &str,
    pool: &str,
) -> bool {
    match scope {
        BudgetScope::Service(name) => name == service,
        BudgetScope::Team(name) => !team.is_empty() && name == team,
        BudgetScope::CostCenter(name) => !cost_center.is_empty() && name == cost_center,
        BudgetScope::Pool(name) => name == pool,
    }
}

/// The state of `budget` in `month` (`YYYY-MM`) under `forecast`.
/// `actual_days` are the month's days up to `as_of`, with their allocated cost.
pub fn evaluate(
    budget: &Budget,
    month: &str,
    as_of: NaiveDate,
    forecast: Forecast,
    run_rate: Nanos,
    actual_days: &[(NaiveDate, Nanos)],
) -> BudgetStatus {
    let amount = budget.amount_for(month);
    let to_date = actual_days.iter().map(|(_, n)| *n).sum();
    let thresholds = match amount {
        None => Vec::new(),
        Some(amount) => budget
            .thresholds
            .iter()
            .map(|t| threshold_state(t, amount, forecast.ready(), actual_days))
            .collect(),
    };
    BudgetStatus {
        name: budget.name.clone(),
        scope: budget.scope.label(),
        team: budget.team.clone(),
        channel: budget.channel.clone(),
        currency: budget.currency.clone(),
        month: month.to_string(),
        amount,
        as_of,
        to_date,
        forecast,
        run_rate,
        thresholds,
    }
}

fn threshold_state(
    t: &BudgetThreshold,
    budget: Nanos,
    month_end: Option<&MonthEnd>,
    actual_days: &[(NaiveDate, Nanos)],
) -> ThresholdState {
    let amount = t.amount(budget);
    let mut sum = Nanos::ZERO;
    let actual = actual_days.iter().find_map(|(day, cost)| {
        sum += *cost;
        (sum >= amount).then_some(*day)
    });
    let passed_on = match t.basis {
        BudgetBasis::Actual => actual,
        // Passed already, or expected to be.
        BudgetBasis::Forecast => {
            actual.or_else(|| month_end.and_then(|m| m.crossing(amount, true)))
        }
    };
    let label = t.label();
    let level = label
        .split_once(' ')
        .map_or(label.as_str(), |(_, level)| level)
        .to_string();
    ThresholdState {
        label,
        level,
        basis: t.basis.as_str(),
        amount,
        passed_on,
    }
}

/// The alerts of a budget's state: each threshold passed, or forecast to be passed. A
/// forecast threshold the actual spend reached while an actual threshold at least as high
/// was passed too is not alerted: the actual alert says it (see [`covered`]).
pub fn alerts(status: &BudgetStatus) -> Vec<BudgetAlert> {
    candidates(status)
        .filter(|(_, covered)| !covered)
        .map(|(a, _)| a)
        .collect()
}

/// The fingerprints of the forecast alerts [`alerts`] leaves out because an actual alert
/// says more: one already in the outbox (sent early, when only the forecast saw it coming)
/// stays as it is.
pub fn covered(status: &BudgetStatus) -> Vec<String> {
    candidates(status)
        .filter(|(_, covered)| *covered)
        .map(|(a, _)| a.fingerprint())
        .collect()
}

/// Each threshold passed or forecast to be passed, as its alert, and whether a passed
/// actual threshold at least as high covers it (a forecast threshold the spend reached).
fn candidates(status: &BudgetStatus) -> impl Iterator<Item = (BudgetAlert, bool)> + '_ {
    let forecast = status.forecast.ready().map(|m| (m.point, m.low, m.high));
    let passed_actual = |amount: Nanos| {
        status.thresholds.iter().any(|a| {
            a.basis == BudgetBasis::Actual.as_str() && a.passed_on.is_some() && a.amount >= amount
        })
    };
    status.amount.into_iter().flat_map(move |amount| {
        status.thresholds.iter().filter_map(move |t| {
            let covered = t.basis == BudgetBasis::Forecast.as_str()
                && status.to_date >= t.amount
                && passed_actual(t.amount);
            let alert = BudgetAlert {
                budget: status.name.clone(),
                scope: status.scope.clone(),
                team: status.team.clone(),
                currency: status.currency.clone(),
                month: status.month.clone(),
                threshold: t.label.clone(),
                level: t.level.clone(),
                basis: t.basis.to_string(),
                threshold_amount: t.amount,
                budget_amount: amount,
                to_date: status.to_date,
                as_of: status.as_of,
                forecast,
                passed_on: t.passed_on?,
            };
            Some((alert, covered))
        })
    })
}
