use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};

use super::budget::{alerts, evaluate};
use super::*;
use crate::money::NANOS_PER_UNIT;
use crate::rules::{Budget, BudgetScope, DEFAULT_THRESHOLDS};

fn day(text: &str) -> NaiveDate {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").unwrap()
}

fn units(n: f64) -> Nanos {
    Nanos((n * NANOS_PER_UNIT as f64).round() as i128)
}

/// Days from `first` to `last`, each costing `f(day)` of usage.
fn series(first: &str, last: &str, f: impl Fn(NaiveDate) -> f64) -> History {
    let (first, last) = (day(first), day(last));
    let mut days = BTreeMap::new();
    let mut d = first;
    while d <= last {
        days.insert(
            d,
            DayCost {
                usage: units(f(d)),
                once: Nanos::ZERO,
            },
        );
        d += Duration::days(1);
    }
    History {
        first: Some(first),
        days,
    }
}

/// The March days of `h` and their cost, as a budget reads them.
fn march(h: &History) -> Vec<(NaiveDate, Nanos)> {
    h.days
        .iter()
        .filter(|(k, _)| k.month() == 3)
        .map(|(k, v)| (*k, v.total()))
        .collect()
}

/// Weekdays cost 100, weekends 40.
fn weekly(d: NaiveDate) -> f64 {
    if d.weekday().num_days_from_monday() >= 5 {
        40.0
    } else {
        100.0
    }
}

#[test]
fn fewer_than_fourteen_days_give_no_number() {
    let h = series("2025-03-01", "2025-03-13", |_| 10.0);
    assert_eq!(
        forecast(&h, day("2025-03-01"), day("2025-03-13")),
        Forecast::NotEnoughHistory {
            days: 13,
            needed: 14
        }
    );
    let h = series("2025-03-01", "2025-03-14", |_| 10.0);
    assert!(forecast(&h, day("2025-03-01"), day("2025-03-14"))
        .ready()
        .is_some());
}

#[test]
fn a_weekly_pattern_is_forecast_by_day_of_week() {
    let h = series("2025-01-01", "2025-03-10", weekly);
    let m = forecast(&h, day("2025-03-01"), day("2025-03-10"));
    let m = m.ready().unwrap();
    let actual: f64 = (1..=31)
        .map(|d| weekly(NaiveDate::from_ymd_opt(2025, 3, d).unwrap()))
        .sum();
    let point = m.point.0 as f64 / 1e9;
    assert!(
        (point - actual).abs() / actual < 0.005,
        "{point} vs {actual}"
    );
    // The remaining Saturday costs 40, a Monday 100.
    let sat = m
        .expected
        .iter()
        .find(|(d, _)| *d == day("2025-03-15"))
        .unwrap()
        .1;
    let mon = m
        .expected
        .iter()
        .find(|(d, _)| *d == day("2025-03-17"))
        .unwrap()
        .1;
    assert!((sat.0 as f64 / 1e9 - 40.0).abs() < 1.0, "{sat}");
    assert!((mon.0 as f64 / 1e9 - 100.0).abs() < 1.0, "{mon}");
    assert!(m.low <= m.point && m.point <= m.high);
    assert_eq!(
        m.to_date,
        (1..=10)
            .map(|d| units(weekly(NaiveDate::from_ymd_opt(2025, 3, d).unwrap())))
            .sum()
    );
}

#[test]
fn a_one_time_fee_is_counted_once_not_extrapolated() {
    let mut h = series("2025-01-01", "2025-03-05", |_| 1000.0);
    let without = forecast(&h, day("2025-03-01"), day("2025-03-05"));
    h.days.get_mut(&day("2025-03-01")).unwrap().once = units(10_000.0);
    let with = forecast(&h, day("2025-03-01"), day("2025-03-05"));
    let (a, b) = (without.ready().unwrap(), with.ready().unwrap());
    assert_eq!(b.point - a.point, units(10_000.0));
    assert_eq!(b.once_to_date, units(10_000.0));
    // The run rate multiplies it by 31/5.
    let naive = run_rate(&h, day("2025-03-01"), day("2025-03-05"));
    assert_eq!(naive, units((5.0 * 1000.0 + 10_000.0) * 31.0 / 5.0));
}

#[test]
fn a_ramp_crossing_the_budget_on_the_24th_alerts_on_the_forecast_by_the_17th() {
    // 1,000 a day until March, then 3% more each day.
    let cost = |d: NaiveDate| {
        if d < day("2025-03-01") {
            1000.0
        } else {
            1000.0 * 1.03f64.powi(d.day() as i32 - 1)
        }
    };
    // The budget the ramp passes on the 24th.
    let mut sum = 0.0;
    let mut budget_amount = 0.0;
    for d in 1..=31 {
        sum += cost(NaiveDate::from_ymd_opt(2025, 3, d).unwrap());
        if d == 23 {
            budget_amount = sum + 1.0;
        }
    }
    assert!(sum > budget_amount);
    let budget = Budget {
        name: "payments".into(),
        scope: BudgetScope::Team("payments".into()),
        currency: "USD".into(),
        amount: Some(units(budget_amount)),
        months: BTreeMap::new(),
        thresholds: DEFAULT_THRESHOLDS.to_vec(),
        team: "payments".into(),
        channel: None,
    };
    let mut first_forecast_alert = None;
    for d in 1..=31 {
        let as_of = NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
        let h = series("2025-01-01", &as_of.to_string(), cost);
        let f = forecast(&h, as_of, as_of);
        let days = march(&h);
        let status = evaluate(&budget, "2025-03", as_of, f, Nanos::ZERO, &days);
        let fired = alerts(&status)
            .into_iter()
            .any(|a| a.threshold == "forecast 100%");
        if fired && first_forecast_alert.is_none() {
            first_forecast_alert = Some(d);
        }
        if d == 24 {
            assert!(alerts(&status)
                .iter()
                .any(|a| a.threshold == "actual 100%" && a.passed_on == as_of));
        }
    }
    let first = first_forecast_alert.expect("the forecast alert fires");
    assert!(first <= 17, "first forecast alert on day {first}");
}

/// A flat service whose budget a jump on the 31st passes: the forecast never saw it coming,
/// and the spend passing 100% is said once, by the actual alert; the forecast threshold it
/// covers is not alerted anew (a pending one from earlier stays, see `budget::covered`).
/// With no actual threshold as high, the forecast threshold's alert says the spend passed.
#[test]
fn a_forecast_threshold_the_spend_passed_is_said_by_the_actual_alert_once() {
    let cost = |d: NaiveDate| {
        if d == day("2025-03-31") {
            2000.0
        } else {
            100.0
        }
    };
    let h = series("2025-01-01", "2025-03-31", cost);
    let days = march(&h);
    let as_of = day("2025-03-31");
    let budget = |thresholds: Vec<crate::rules::BudgetThreshold>| Budget {
        name: "core".into(),
        scope: BudgetScope::Team("core".into()),
        currency: "USD".into(),
        amount: Some(units(4000.0)),
        months: BTreeMap::new(),
        thresholds,
        team: "core".into(),
        channel: None,
    };
    let f = forecast(&h, day("2025-03-01"), as_of);
    let status = evaluate(
        &budget(DEFAULT_THRESHOLDS.to_vec()),
        "2025-03",
        as_of,
        f.clone(),
        Nanos::ZERO,
        &days,
    );
    let sent: Vec<String> = alerts(&status).into_iter().map(|a| a.threshold).collect();
    assert_eq!(sent, ["actual 80%", "actual 100%"]);
    assert_eq!(
        super::budget::covered(&status),
        ["budget|core|forecast 100%|2025-03"]
    );

    // Only a forecast threshold: its alert stays, and says what happened.
    let only = vec![DEFAULT_THRESHOLDS[2]];
    let status = evaluate(&budget(only), "2025-03", as_of, f, Nanos::ZERO, &days);
    let sent = alerts(&status);
    assert_eq!(sent.len(), 1);
    assert!(super::budget::covered(&status).is_empty());
    let summary = sent[0].summary();
    assert!(
        summary
            .contains("actual spend $5,000.00 passed 100% of the budget ($4,000.00) on 2025-03-31"),
        "{summary}"
    );
}
