//! Data-driven detector tests: a daily series in, the alerts out.

use super::*;

const D: i128 = crate::money::NANOS_PER_UNIT;

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 2, 1).expect("valid") + chrono::Duration::days(i64::from(n))
}

/// A series from whole-dollar daily costs starting 2025-02-01, all direct EC2.
fn series(dollars: &[i64]) -> Series {
    let mut s = Series {
        service: "checkout-api".into(),
        team: "payments".into(),
        currency: "USD".into(),
        days: BTreeMap::new(),
    };
    for (i, v) in dollars.iter().enumerate() {
        let mut components = BTreeMap::new();
        let v = i128::from(*v);
        components.insert("Amazon Elastic Compute Cloud".to_string(), Nanos(v * D));
        s.days.insert(
            day(i as u32),
            DayCost {
                total: Nanos(v * D),
                components,
                estimated: false,
            },
        );
    }
    s
}

fn spikes(dollars: &[i64]) -> Vec<(String, i64, i64)> {
    let s = series(dollars);
    let last = day(dollars.len() as u32 - 1);
    detect_spikes(&s, &Thresholds::defaults(), day(0), last)
        .into_iter()
        .map(|a| {
            let dollars = |n: Nanos| i64::try_from(n.0 / D).expect("test amounts fit");
            (a.period, dollars(a.amount), dollars(a.baseline))
        })
        .collect()
}

/// 1,000 a day with a little noise.
fn noisy(days: usize) -> Vec<i64> {
    (0..days)
        .map(|i| 1000 + [0, 12, -9, 5, -14, 8, -3][i % 7])
        .collect()
}

#[test]
fn a_flat_series_with_noise_fires_nothing() {
    assert_eq!(spikes(&noisy(40)), vec![]);
}

#[test]
fn a_step_fires_once_and_then_becomes_the_baseline() {
    let mut v = noisy(20);
    v.extend(std::iter::repeat_n(1800, 15));
    assert_eq!(spikes(&v), vec![("2025-02-21".to_string(), 1800, 1000)]);
}

#[test]
fn a_spike_that_keeps_growing_alerts_again_at_each_step() {
    let mut v = noisy(20);
    v.extend([1800, 2000, 2900]);
    let got = spikes(&v);
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].0, "2025-02-23");
}

#[test]
fn a_slow_ramp_does_not_fire() {
    let v: Vec<i64> = (0..40).map(|i| 1000 + i * 5).collect();
    assert_eq!(spikes(&v), vec![]);
}

#[test]
fn a_spike_below_the_dollar_floor_does_not_fire() {
    // +100% but only +$20 (floor $50).
    let mut v = vec![20; 20];
    v.push(40);
    assert_eq!(spikes(&v), vec![]);
    // The same shape at a larger scale clears it.
    let mut v = vec![200; 20];
    v.push(400);
    assert_eq!(spikes(&v), vec![("2025-02-21".to_string(), 400, 200)]);
}

#[test]
fn a_restated_day_that_no_longer_spikes_yields_no_alert() {
    let mut v = noisy(20);
    v.push(3000);
    assert_eq!(spikes(&v).len(), 1);
    *v.last_mut().expect("a day") = 1010;
    assert_eq!(spikes(&v), vec![]);
}

#[test]
fn the_alert_names_what_drove_it() {
    let mut s = series(&noisy(20));
    let mut components = BTreeMap::new();
    components.insert("Amazon Elastic Compute Cloud".to_string(), Nanos(1000 * D));
    components.insert("pool shared-aurora".to_string(), Nanos(900 * D));
    s.days.insert(
        day(20),
        DayCost {
            total: Nanos(1900 * D),
            components,
            estimated: true,
        },
    );
    let alerts = detect_spikes(&s, &Thresholds::defaults(), day(20), day(20));
    assert_eq!(alerts.len(), 1);
    assert_eq!(
        alerts[0].drivers[0],
        ("pool shared-aurora".to_string(), Nanos(900 * D))
    );
    assert!(alerts[0].estimated);
    assert_eq!(alerts[0].change_bp, Some(9000));
}

#[test]
fn month_over_month_moves_both_ways_and_at_close() {
    // February: 28 days at 1,000. March: 700 a day (a 30% drop).
    let mut v = vec![1000; 28];
    v.extend(vec![700; 31]);
    let s = series(&v);
    let t = Thresholds::defaults();
    let mid = NaiveDate::from_ymd_opt(2025, 3, 15).expect("valid");
    let alerts = detect_month_over_month(&s, &t, mid);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].period, "2025-03 to 03-15");
    assert_eq!(
        (alerts[0].amount.0 / D, alerts[0].baseline.0 / D),
        (10_500, 15_000)
    );
    assert_eq!(alerts[0].change_bp, Some(-3000));
    let close = NaiveDate::from_ymd_opt(2025, 3, 31).expect("valid");
    let alerts = detect_month_over_month(&s, &t, close);
    assert_eq!(alerts[0].period, "2025-03");
    assert_eq!(
        (alerts[0].amount.0 / D, alerts[0].baseline.0 / D),
        (21_700, 28_000)
    );
    // A 5% move does not fire.
    let mut v = vec![1000; 28];
    v.extend(vec![1050; 31]);
    assert!(detect_month_over_month(&series(&v), &t, mid).is_empty());
}

#[test]
fn month_over_month_drivers_are_true_differences_beyond_the_top_five() {
    // Six components at $100 a day; in March component `f` triples.
    let mut s = series(&[]);
    let feb = NaiveDate::from_ymd_opt(2025, 2, 1).expect("valid");
    for i in 0..(28 + 31) {
        let d = feb + chrono::Duration::days(i);
        let mut components = BTreeMap::new();
        for c in ["a", "b", "c", "d", "e", "f"] {
            let dollars = if c == "f" && i >= 28 { 300 } else { 100 };
            components.insert(c.to_string(), Nanos(dollars * D));
        }
        let total = components.values().copied().sum();
        s.days.insert(
            d,
            DayCost {
                total,
                components,
                estimated: false,
            },
        );
    }
    let mid = NaiveDate::from_ymd_opt(2025, 3, 15).expect("valid");
    let alerts = detect_month_over_month(&s, &Thresholds::defaults(), mid);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].drivers, vec![("f".to_string(), Nanos(3000 * D))]);
}
