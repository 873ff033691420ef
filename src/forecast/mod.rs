//! Pure month-end forecasts of a scope's allocated cost, and the budgets that read them.
//!
//! A forecast is month to date (as allocated, exact) plus an estimate of the remaining days:
//! the usage-based cost of recent weeks, by day of week, at its recent level and trend, by
//! the one of six simple models ([`Model`]) whose backtests on the scope's own history erred
//! least.
//! One-time and recurring charges (fees, purchases, tax, credits) are counted where they
//! fell, never extrapolated. The 80% interval comes from the forecaster's own errors on the
//! scope's history (each past day forecast from the days before it, over the same horizon).
//! With fewer than [`MIN_HISTORY_DAYS`] days of history there is no number, only that state.
//!
//! The estimate is statistics: it is computed in floating point and handed out rounded to
//! nano-units; it is never stored with, or added to, allocated money.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use serde::Serialize;

use crate::money::Nanos;

pub mod budget;
#[cfg(test)]
mod tests;

/// The history a forecast needs, in days up to the day it is made.
pub const MIN_HISTORY_DAYS: i64 = 14;
/// The most recent weeks the day-of-week shape (and the long line) is read from: sixteen.
const SHAPE_DAYS: usize = 112;
/// The trend is fitted over this many recent days.
const TREND_DAYS: usize = 28;
/// Each day ahead keeps this much of the trend of the day before (a damped trend).
const DAMPING: f64 = 0.9;
/// Backtests behind an interval, at least, before a shorter horizon's errors are borrowed.
const MIN_SAMPLES: usize = 8;
/// The interval when the history is too short for any backtest: this relative spread a
/// week ahead, growing with the square root of the horizon.
const DEFAULT_SPREAD: f64 = 0.2;

/// One day of a scope's allocated cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DayCost {
    /// Usage-based charges (FOCUS `ChargeCategory` Usage): what is extrapolated.
    pub usage: Nanos,
    /// Everything else (purchases and fees, tax, credits, adjustments): counted once.
    pub once: Nanos,
}

impl DayCost {
    pub fn total(&self) -> Nanos {
        self.usage + self.once
    }
}

/// A scope's days, from the first day the store has data for (`first`) to the forecast
/// day; days without an entry cost nothing.
#[derive(Debug, Clone, Default)]
pub struct History {
    pub first: Option<NaiveDate>,
    pub days: BTreeMap<NaiveDate, DayCost>,
}

impl History {
    fn cost(&self, day: NaiveDate) -> DayCost {
        self.days.get(&day).copied().unwrap_or_default()
    }
}

/// A month-end forecast, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Forecast {
    /// Fewer than [`MIN_HISTORY_DAYS`] days of history: no number.
    NotEnoughHistory {
        days: i64,
        needed: i64,
    },
    Ready(MonthEnd),
}

impl Forecast {
    pub fn ready(&self) -> Option<&MonthEnd> {
        match self {
            Forecast::Ready(m) => Some(m),
            Forecast::NotEnoughHistory { .. } => None,
        }
    }
}

/// The forecast of one month made on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MonthEnd {
    /// The last day whose cost is known (the month's last day when it is over).
    pub as_of: NaiveDate,
    /// Month to date, exactly as allocated, and the one-time part of it.
    pub to_date: Nanos,
    pub once_to_date: Nanos,
    /// The expected cost of each remaining day of the month.
    pub expected: Vec<(NaiveDate, Nanos)>,
    /// Month to date plus the remaining days: the estimate and its 80% interval.
    pub point: Nanos,
    pub low: Nanos,
    pub high: Nanos,
    /// The backtests the interval was read from (0: the default spread).
    pub samples: usize,
    /// The model chosen for the remaining days (none when there are none).
    pub model: Option<Model>,
}

impl MonthEnd {
    /// The first day on which the month's cumulative cost reaches `amount`, when the rest
    /// of the month costs its upper bound (`upper`) or its estimate; none when it does not.
    pub fn crossing(&self, amount: Nanos, upper: bool) -> Option<NaiveDate> {
        if self.to_date >= amount {
            return Some(self.as_of);
        }
        let remaining: i128 = self.expected.iter().map(|(_, n)| n.0).sum();
        let target_rest = if upper { self.high } else { self.point } - self.to_date;
        let mut sum = self.to_date;
        for (day, expected) in &self.expected {
            let scaled = if remaining == 0 {
                Nanos::ZERO
            } else {
                Nanos(expected.0 * target_rest.0 / remaining)
            };
            sum += scaled;
            if sum >= amount {
                return Some(*day);
            }
        }
        None
    }
}

/// The month's first and last day.
fn month_days(month: NaiveDate) -> (NaiveDate, NaiveDate) {
    let first = month.with_day(1).expect("day 1 exists");
    let next = first
        .checked_add_months(chrono::Months::new(1))
        .expect("a month after exists");
    (first, next - Duration::days(1))
}

fn to_f64(n: Nanos) -> f64 {
    n.0 as f64 / 1e9
}

fn to_nanos(x: f64) -> Nanos {
    if x.is_finite() {
        Nanos((x * 1e9).round() as i128)
    } else {
        Nanos::ZERO
    }
}

/// How the remaining days' usage is estimated; each scope gets the one whose own backtests
/// on its history erred least over the same number of days ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// The last week's level, without its weekday shape, with a damped trend.
    Week,
    /// The last two weeks' level, flat.
    TwoWeeks,
    /// The last four weeks' level, flat.
    FourWeeks,
    /// A straight line fitted to the last four weeks, continued with a damped trend.
    Line,
    /// A straight line fitted to the last sixteen weeks, continued.
    LongLine,
    /// The mean of the others.
    Blend,
}

impl Model {
    const ALL: [Model; 6] = [
        Model::Week,
        Model::TwoWeeks,
        Model::FourWeeks,
        Model::Line,
        Model::LongLine,
        Model::Blend,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Model::Week => "last week, damped trend",
            Model::TwoWeeks => "last two weeks",
            Model::FourWeeks => "last four weeks",
            Model::Line => "four-week line, damped trend",
            Model::LongLine => "sixteen-week line",
            Model::Blend => "the mean of the others",
        }
    }
}

/// Day-of-week factors from whole weeks of the recent past (1.0 each with fewer than two).
fn weekday_factors(usage: &[f64], weekday: &dyn Fn(usize) -> usize) -> [f64; 7] {
    let n = usage.len();
    let weeks = (n.min(SHAPE_DAYS)) / 7;
    let mut factor = [1.0f64; 7];
    if weeks < 2 {
        return factor;
    }
    let window = &usage[n - weeks * 7..];
    let mean = window.iter().sum::<f64>() / window.len() as f64;
    if mean <= 0.0 {
        return factor;
    }
    let mut sums = [0.0f64; 7];
    for (j, v) in window.iter().enumerate() {
        sums[weekday(n - weeks * 7 + j)] += v;
    }
    for w in 0..7 {
        factor[w] = (sums[w] / weeks as f64 / mean).max(0.05);
    }
    factor
}

/// Least squares over `ys` (x = 0, 1, …): the slope and the fitted value at the last x.
fn line(ys: &[f64]) -> (f64, f64) {
    let n = ys.len() as f64;
    let mx = (n - 1.0) / 2.0;
    let my = ys.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (i, y) in ys.iter().enumerate() {
        let dx = i as f64 - mx;
        sxy += dx * (y - my);
        sxx += dx * dx;
    }
    let slope = if sxx > 0.0 { sxy / sxx } else { 0.0 };
    (slope, my + slope * (n - 1.0 - mx))
}

/// The usage-based cost `model` expects on each of the `horizon` days after the last of
/// `usage` (oldest first; the last is on `last_day`). Needs at least one day.
pub fn predict(model: Model, usage: &[f64], last_day: NaiveDate, horizon: usize) -> Vec<f64> {
    if model == Model::Blend {
        let parts = &Model::ALL[..Model::ALL.len() - 1];
        let mut out = vec![0.0; horizon];
        for m in parts {
            for (o, v) in out.iter_mut().zip(predict(*m, usage, last_day, horizon)) {
                *o += v / parts.len() as f64;
            }
        }
        return out;
    }
    let n = usage.len();
    let weekday = |i: usize| -> usize {
        let day = last_day - Duration::days((n - 1 - i) as i64);
        day.weekday().num_days_from_monday() as usize
    };
    let factor = weekday_factors(usage, &weekday);
    let flat: Vec<f64> = (0..n).map(|i| usage[i] / factor[weekday(i)]).collect();
    let mean_of = |days: usize| {
        let days = n.min(days);
        flat[n - days..].iter().sum::<f64>() / days as f64
    };
    // (level at the last day, or at the middle of the averaged days; slope per day; the
    // days from that middle to the last day)
    let (level, slope, lag) = match model {
        Model::Week => {
            let span = n.min(TREND_DAYS);
            let slope = if span >= 14 {
                line(&flat[n - span..]).0
            } else {
                0.0
            };
            (mean_of(7), slope, (n.min(7) as f64 - 1.0) / 2.0)
        }
        Model::TwoWeeks => (mean_of(14), 0.0, 0.0),
        Model::FourWeeks => (mean_of(28), 0.0, 0.0),
        Model::Line => {
            let span = n.min(TREND_DAYS);
            if span >= 14 {
                let (slope, end) = line(&flat[n - span..]);
                (end, slope, 0.0)
            } else {
                (mean_of(7), 0.0, 0.0)
            }
        }
        Model::LongLine => {
            let span = n.min(SHAPE_DAYS);
            if span >= 14 {
                let (slope, end) = line(&flat[n - span..]);
                (end, slope, 0.0)
            } else {
                (mean_of(7), 0.0, 0.0)
            }
        }
        Model::Blend => unreachable!("a blend is the mean of the other models"),
    };
    let damping = if model == Model::LongLine {
        1.0
    } else {
        DAMPING
    };
    let mut out = Vec::with_capacity(horizon);
    let (mut trend_sum, mut damp) = (0.0, 1.0);
    for k in 1..=horizon as i64 {
        damp *= damping;
        trend_sum += damp;
        let value = (level + slope * (lag + trend_sum)).max(0.0);
        let day = last_day + Duration::days(k);
        out.push(value * factor[day.weekday().num_days_from_monday() as usize]);
    }
    out
}

/// Relative errors (actual / forecast - 1) of `model`'s sums over `horizon` days, made on
/// each past day of `usage` with at least a week before it, oldest first.
fn backtest_errors(model: Model, usage: &[f64], last_day: NaiveDate, horizon: usize) -> Vec<f64> {
    let n = usage.len();
    let mut errors = Vec::new();
    let first_origin = 7;
    if n < first_origin + horizon {
        return errors;
    }
    for origin in first_origin..=(n - horizon) {
        let origin_day = last_day - Duration::days((n - origin) as i64);
        let predicted: f64 = predict(model, &usage[..origin], origin_day, horizon)
            .iter()
            .sum();
        let actual: f64 = usage[origin..origin + horizon].iter().sum();
        if predicted > 0.0 {
            errors.push(actual / predicted - 1.0);
        }
    }
    errors
}

/// The `q` quantile of sorted values, interpolated.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The model whose backtests over `horizon` days on this history erred least (by mean
/// absolute error), the 10th and 90th percentile of its relative error,
/// and how many backtests they come from. A horizon without enough backtests borrows a
/// shorter one's errors, grown with the square root of the days.
fn choose(usage: &[f64], last_day: NaiveDate, horizon: usize) -> (Model, f64, f64, usize) {
    let mut h = horizon;
    while h >= 1 {
        let runs: Vec<(Model, Vec<f64>)> = Model::ALL
            .iter()
            .map(|m| (*m, backtest_errors(*m, usage, last_day, h)))
            .collect();
        if runs[0].1.len() >= MIN_SAMPLES {
            let score = |errors: &[f64]| {
                errors.iter().map(|e| e.abs()).sum::<f64>() / errors.len().max(1) as f64
            };
            let (model, mut errors) = runs
                .into_iter()
                .min_by(|a, b| score(&a.1).total_cmp(&score(&b.1)))
                .expect("models to choose from");
            errors.sort_by(f64::total_cmp);
            let scale = (horizon as f64 / h as f64).sqrt();
            return (
                model,
                quantile(&errors, 0.1) * scale,
                quantile(&errors, 0.9) * scale,
                errors.len(),
            );
        }
        h = if h > 7 { 7 } else { h - 1 };
    }
    let spread = DEFAULT_SPREAD * (horizon as f64 / 7.0).sqrt();
    (Model::Week, -spread, spread, 0)
}

/// The forecast of `month` (any day of it) made with what is known up to `as_of`.
pub fn forecast(history: &History, month: NaiveDate, as_of: NaiveDate) -> Forecast {
    let (start, end) = month_days(month);
    let as_of = as_of.min(end);
    let days = history
        .first
        .map_or(0, |first| (as_of - first).num_days() + 1)
        .max(0);
    if days < MIN_HISTORY_DAYS {
        return Forecast::NotEnoughHistory {
            days,
            needed: MIN_HISTORY_DAYS,
        };
    }
    let first = history.first.expect("history has a first day");
    let mut to_date = Nanos::ZERO;
    let mut once_to_date = Nanos::ZERO;
    let mut day = start;
    while day <= as_of {
        let cost = history.cost(day);
        to_date += cost.total();
        once_to_date += cost.once;
        day += Duration::days(1);
    }
    let horizon = (end - as_of).num_days().max(0) as usize;
    if horizon == 0 {
        return Forecast::Ready(MonthEnd {
            as_of,
            to_date,
            once_to_date,
            expected: Vec::new(),
            point: to_date,
            low: to_date,
            high: to_date,
            samples: 0,
            model: None,
        });
    }
    let usage: Vec<f64> = (0..days)
        .map(|i| to_f64(history.cost(first + Duration::days(i)).usage))
        .collect();
    // Made before the month began, the forecast covers the month's days only.
    let in_month = (end - as_of.max(start - Duration::days(1))).num_days() as usize;
    let (model, q10, q90, samples) = choose(&usage, as_of, in_month.max(1));
    let expected: Vec<(NaiveDate, Nanos)> = predict(model, &usage, as_of, horizon)
        .iter()
        .enumerate()
        .map(|(k, v)| (as_of + Duration::days(k as i64 + 1), *v))
        .filter(|(day, _)| *day >= start)
        .map(|(day, v)| (day, to_nanos(v)))
        .collect();
    let rest: f64 = expected.iter().map(|(_, n)| to_f64(*n)).sum();
    let rest_exact: Nanos = expected.iter().map(|(_, n)| *n).sum();
    let point = to_date + rest_exact;
    let low = to_date + to_nanos((rest * (1.0 + q10)).max(0.0));
    let high = to_date + to_nanos((rest * (1.0 + q90)).max(0.0));
    Forecast::Ready(MonthEnd {
        as_of,
        to_date,
        once_to_date,
        expected,
        point,
        low: low.min(point),
        high: high.max(point),
        samples,
        model: Some(model),
    })
}

/// The naive run rate others use: month to date x days in month / days elapsed.
pub fn run_rate(history: &History, month: NaiveDate, as_of: NaiveDate) -> Nanos {
    let (start, end) = month_days(month);
    let as_of = as_of.min(end);
    let elapsed = (as_of - start).num_days() + 1;
    if elapsed <= 0 {
        return Nanos::ZERO;
    }
    let mut to_date = Nanos::ZERO;
    let mut day = start;
    while day <= as_of {
        to_date += history.cost(day).total();
        day += Duration::days(1);
    }
    let total = (end - start).num_days() + 1;
    Nanos(to_date.0 * i128::from(total) / i128::from(elapsed))
}
