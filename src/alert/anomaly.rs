//! The second-generation detector (issue 27): what `alert::detect` (the daemon, `alerts
//! check`) sends, measured by `bench/alert_benchmark.sh` beside the first (`detect_spikes`)
//! and two baselines. Per service and day, the expected cost is the recent level by day of
//! week (the median of the last `baseline_days`, 28, without their weekday shape, times the
//! day's factor from the last eight weeks), and on the 1st the month-start charges of the
//! months before; a day alerts when it differs from that, up or down, by the dollar and
//! percent floors and by `sigmas` (4) robust deviations (read from up to eight weeks); while
//! a rise lasts, again only when it grew `growth_step_percent` more. A service seen for the
//! first time alerts once its cost passes the dollar floor; a slow drift alerts when a line
//! fitted to up to eight weeks turned upwards 5 to 14 days ago: growing at least 4% a
//! week now, the turn 4 standard errors from none (4.5 for 5 days), and what it added past
//! the dollar floor (the series' own steady growth is its line, not a drift). Each number
//! was chosen on the benchmark (BENCHMARKS.md, "Alert quality").

use chrono::{Datelike, Duration, NaiveDate};

use super::{Series, Thresholds};
use crate::money::Nanos;

/// What a detected anomaly looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AnomalyKind {
    /// Above what the day of week and the month's start lead one to expect.
    Rise,
    /// Below it (a fall is money too: a service that stopped, a move elsewhere).
    Fall,
    /// Growth over weeks, each day unremarkable.
    Drift,
    /// Cost where there was none.
    NewService,
}

/// A day that alerts, with what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anomaly {
    pub kind: AnomalyKind,
    pub service: String,
    pub day: NaiveDate,
    pub expected: Nanos,
    pub actual: Nanos,
}

/// Days of shape (day-of-week factors) and of level.
const SHAPE_DAYS: usize = 56;
/// Days of history before a rise or fall can alert (a level and its noise need them).
const MIN_HISTORY_DAYS: usize = 14;
/// Days between drift alerts (and after a new level before one), and the least weekly growth
/// a drift reports, in percent.
const DRIFT_DAYS: usize = 14;
/// How many days ago a drift's turn is looked for, and how many standard errors from none the
/// turn must be: a turn 5 days ago has less behind it, so it needs more (on the benchmark's
/// quiet series it finds a drift a day sooner without a false alert more on any set).
const DRIFT_RAMPS: [(usize, f64); 4] = [(5, 4.5), (7, 4.0), (10, 4.0), (14, 4.0)];
const DRIFT_WEEKLY_PERCENT: f64 = 4.0;

fn units(n: Nanos) -> f64 {
    n.0 as f64 / 1e9
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Each `(day, value)`'s weekday factor from `history` (1.0 each with under two weeks).
fn weekday_factors(history: &[(NaiveDate, f64)]) -> [f64; 7] {
    let recent = &history[history.len().saturating_sub(SHAPE_DAYS)..];
    let mut factor = [1.0f64; 7];
    if recent.len() < 14 {
        return factor;
    }
    let mean = recent.iter().map(|(_, v)| v).sum::<f64>() / recent.len() as f64;
    if mean <= 0.0 {
        return factor;
    }
    let mut sums = [(0.0f64, 0usize); 7];
    for (d, v) in recent {
        let w = d.weekday().num_days_from_monday() as usize;
        sums[w].0 += v;
        sums[w].1 += 1;
    }
    for w in 0..7 {
        if sums[w].1 > 0 {
            factor[w] = (sums[w].0 / sums[w].1 as f64 / mean).max(0.05);
        }
    }
    factor
}

/// The detector over `from..=to` (the days before `from` are history only).
pub fn detect_anomalies(
    series: &Series,
    t: &Thresholds,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<Anomaly> {
    let Some(&first) = series.days.keys().next() else {
        return Vec::new();
    };
    let floor = units(t.spike.min_amount);
    let percent = t.spike.min_percent as f64 / 100.0;
    let mut out = Vec::new();
    // Ordinary days (1st of the month apart), and the 1sts' excess over their expectation.
    let mut history: Vec<(NaiveDate, f64)> = Vec::new();
    let mut month_starts: Vec<f64> = Vec::new();
    let mut run: Option<(AnomalyKind, Vec<(NaiveDate, f64)>)> = None;
    let mut alerted_level = 0.0f64;
    let mut new_service_alerted = false;
    let mut last_drift: Option<NaiveDate> = None;
    // The last day a new level was taken in: a step is not a drift.
    let mut last_shift: Option<NaiveDate> = None;
    let mut day = first;
    while day <= to {
        let Some(cost) = series.days.get(&day) else {
            day += Duration::days(1);
            continue;
        };
        let x = units(cost.total);
        let report = |kind, expected: f64, out: &mut Vec<Anomaly>| {
            if day >= from {
                out.push(Anomaly {
                    kind,
                    service: series.service.clone(),
                    day,
                    expected: Nanos((expected * 1e9) as i128),
                    actual: cost.total,
                });
            }
        };
        // A new service: no history yet, and already past the floor.
        if history.len() < MIN_HISTORY_DAYS.max(t.min_history_days) {
            // Only a service whose first day is in the checked days is new (one whose history
            // starts before them is merely old).
            if !new_service_alerted && first >= from && (day - first).num_days() < 7 && x >= floor {
                new_service_alerted = true;
                report(AnomalyKind::NewService, 0.0, &mut out);
            }
            if day.day() != 1 {
                history.push((day, x));
            }
            day += Duration::days(1);
            continue;
        }
        let factor = weekday_factors(&history);
        let f = |d: NaiveDate| factor[d.weekday().num_days_from_monday() as usize];
        let mut flat: Vec<f64> = history
            .iter()
            .rev()
            .take(t.baseline_days.max(7))
            .map(|(d, v)| v / f(*d))
            .collect();
        let level = median(&mut flat);
        // The noise, relative to the level, from up to eight weeks (a robust deviation needs
        // more days than the level does).
        let mut deviations: Vec<f64> = history
            .iter()
            .rev()
            .take(SHAPE_DAYS)
            .map(|(d, v)| (v / f(*d) - level).abs())
            .collect();
        let mad = median(&mut deviations) * 1.4826;
        let mut expected = level * f(day);
        let month_start = day.day() == 1;
        if month_start && !month_starts.is_empty() {
            let mut excess = month_starts.clone();
            expected += median(&mut excess);
        }
        let change = x - expected;
        let noise = (mad * f(day)).max(expected.abs() * 0.01);
        // The first 1st with history teaches what a month start costs: not a rise.
        let learning = month_start && month_starts.is_empty() && change > 0.0;
        let fires = !learning
            && change.abs() >= floor
            && change.abs() >= percent * expected.abs()
            && change.abs() > t.sigmas as f64 * noise;
        if month_start {
            month_starts.push(x - level * f(day));
        }
        if fires {
            let kind = if change > 0.0 {
                AnomalyKind::Rise
            } else {
                AnomalyKind::Fall
            };
            match &mut run {
                Some((k, days)) if *k == kind => {
                    days.push((day, x));
                    // While it lasts, again only when it grew the growth step since the last.
                    let grew = kind == AnomalyKind::Rise
                        && x >= alerted_level * (1.0 + t.growth_step_percent as f64 / 100.0);
                    if grew {
                        alerted_level = x;
                        report(kind, expected, &mut out);
                    }
                }
                _ => {
                    run = Some((kind, vec![(day, x)]));
                    alerted_level = x;
                    report(kind, expected, &mut out);
                }
            }
            if run
                .as_ref()
                .is_some_and(|(_, days)| days.len() >= t.persistence_days.max(1))
            {
                // The new level is the new normal.
                if let Some((_, days)) = run.take() {
                    history.extend(days.into_iter().filter(|(d, _)| d.day() != 1));
                }
                last_shift = Some(day);
            }
        } else {
            run = None;
            if !month_start {
                history.push((day, x));
            }
            // A drift: a turn upwards, past the floors and its own noise; not on a 1st, whose
            // month-start charges are not in the line.
            let stepped = last_shift.is_some_and(|d| (day - d).num_days() < DRIFT_DAYS as i64);
            let drifted = (!stepped && !month_start)
                .then(|| drift(&history, &factor, floor))
                .flatten();
            if let Some(expected) = drifted {
                if last_drift.is_none_or(|d| (day - d).num_days() >= DRIFT_DAYS as i64) {
                    last_drift = Some(day);
                    report(AnomalyKind::Drift, expected, &mut out);
                }
            }
        }
        day += Duration::days(1);
    }
    out
}

/// What the cost would be today without a drift, when the series turned upwards within the
/// last 5 to 14 days: a line with a turn (level, slope, and a slope added from `k` days
/// ago, for `k` in [`DRIFT_RAMPS`]) fitted to up to eight weeks without their weekday shape;
/// a drift when the slope now is at least [`DRIFT_WEEKLY_PERCENT`] a week, the turn is the
/// ramp's standard errors from none (4, or 4.5 for 5 days), and what it added by today passes
/// the floor.
/// The series' own steady growth is the line, not a drift.
fn drift(history: &[(NaiveDate, f64)], factor: &[f64; 7], floor: f64) -> Option<f64> {
    let n = history.len().min(SHAPE_DAYS);
    if n < DRIFT_DAYS + 14 {
        return None;
    }
    let recent = &history[history.len() - n..];
    let last = recent.last()?.0;
    let points: Vec<(f64, f64)> = recent
        .iter()
        .map(|(d, v)| {
            let t = (*d - last).num_days() as f64;
            (t, v / factor[d.weekday().num_days_from_monday() as usize])
        })
        .collect();
    DRIFT_RAMPS.iter().find_map(|&(k, sigmas)| {
        let k = k as f64;
        let rows: Vec<[f64; 3]> = points
            .iter()
            .map(|&(t, _)| [1.0, t, (t + k).max(0.0)])
            .collect();
        let (coef, inverse, rss) = least_squares(&rows, &points)?;
        let [level, slope, turn] = coef;
        let dof = points.len() as f64 - 3.0;
        let turn_error = (rss / dof * inverse[2][2]).max(0.0).sqrt();
        let at_turn = level - slope * k;
        let weekly = if at_turn > 0.0 {
            (slope + turn) * 7.0 / at_turn * 100.0
        } else {
            0.0
        };
        let added = turn * k;
        // The line without the turn is without the weekday shape: today's is put back.
        (weekly >= DRIFT_WEEKLY_PERCENT
            && turn > 0.0
            && added >= floor
            && turn > sigmas * turn_error)
            .then_some(level * factor[last.weekday().num_days_from_monday() as usize])
    })
}

/// Least squares of `y` on three regressors: the coefficients, the inverse of X'X and the
/// residual sum of squares; `None` when X'X is singular.
fn least_squares(
    rows: &[[f64; 3]],
    points: &[(f64, f64)],
) -> Option<([f64; 3], [[f64; 3]; 3], f64)> {
    let mut xtx = [[0.0f64; 3]; 3];
    let mut xty = [0.0f64; 3];
    for (x, &(_, y)) in rows.iter().zip(points) {
        for i in 0..3 {
            xty[i] += x[i] * y;
            for j in 0..3 {
                xtx[i][j] += x[i] * x[j];
            }
        }
    }
    let inverse = invert3(&xtx)?;
    let coef: [f64; 3] = std::array::from_fn(|i| (0..3).map(|j| inverse[i][j] * xty[j]).sum());
    let rss = rows
        .iter()
        .zip(points)
        .map(|(x, &(_, y))| {
            let fit: f64 = (0..3).map(|i| coef[i] * x[i]).sum();
            (y - fit).powi(2)
        })
        .sum();
    Some((coef, inverse, rss))
}

/// The inverse of a 3x3 matrix (by its adjugate), `None` when singular.
fn invert3(m: &[[f64; 3]; 3]) -> Option<[[f64; 3]; 3]> {
    let cofactor = |r: usize, c: usize| {
        let (r1, r2) = ((r + 1) % 3, (r + 2) % 3);
        let (c1, c2) = ((c + 1) % 3, (c + 2) % 3);
        m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]
    };
    let det: f64 = (0..3).map(|c| m[0][c] * cofactor(0, c)).sum();
    if det.abs() < 1e-12 {
        return None;
    }
    Some(std::array::from_fn(|i| {
        std::array::from_fn(|j| cofactor(j, i) / det)
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::alert::DayCost;

    fn series(name: &str, from: NaiveDate, days: i64, cost: impl Fn(NaiveDate) -> f64) -> Series {
        let mut map = BTreeMap::new();
        for i in 0..days {
            let d = from + Duration::days(i);
            map.insert(
                d,
                DayCost {
                    total: Nanos((cost(d) * 1e9) as i128),
                    ..DayCost::default()
                },
            );
        }
        Series {
            service: name.into(),
            team: String::new(),
            currency: "USD".into(),
            days: map,
        }
    }

    fn jan(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 1, d).unwrap()
    }

    /// 1,000 a day with a small wobble, weekends at 600.
    fn ordinary(d: NaiveDate) -> f64 {
        let wobble = [0.0, 12.0, -9.0, 5.0, -14.0, 8.0, -3.0][d.ordinal() as usize % 7];
        if d.weekday().num_days_from_monday() >= 5 {
            600.0 + wobble
        } else {
            1000.0 + wobble
        }
    }

    #[test]
    fn weekends_and_a_recurring_month_start_fee_do_not_alert_and_both_directions_do() {
        let t = Thresholds::defaults();
        // A $5,000 fee every 1st: learnt on the first 1st with history, then expected.
        let fee = |d: NaiveDate| ordinary(d) + if d.day() == 1 { 5000.0 } else { 0.0 };
        let s = series("a", jan(1), 150, fee);
        let found = detect_anomalies(&s, &t, jan(15), jan(1) + Duration::days(149));
        assert!(found.is_empty(), "{found:?}");
        // The same series, up 2,000 on one day and down 700 on another: both alert.
        let up = NaiveDate::from_ymd_opt(2025, 4, 15).unwrap();
        let down = NaiveDate::from_ymd_opt(2025, 4, 23).unwrap();
        let s = series("b", jan(1), 150, |d| {
            fee(d)
                + if d == up {
                    2000.0
                } else if d == down {
                    -700.0
                } else {
                    0.0
                }
        });
        let found = detect_anomalies(&s, &t, jan(15), jan(1) + Duration::days(149));
        let kinds: Vec<(AnomalyKind, NaiveDate)> = found.iter().map(|a| (a.kind, a.day)).collect();
        assert_eq!(
            kinds,
            vec![(AnomalyKind::Rise, up), (AnomalyKind::Fall, down)]
        );
        assert!(units(found[0].expected) > 900.0 && units(found[0].expected) < 1100.0);
    }

    #[test]
    fn two_services_moving_the_same_amount_opposite_ways_both_alert() {
        let day0 = NaiveDate::from_ymd_opt(2025, 4, 10).unwrap();
        let moved = |sign: f64| {
            move |d: NaiveDate| ordinary(d) + if d >= day0 { sign * 400.0 } else { 0.0 }
        };
        let both = [
            series("up", jan(1), 100, moved(1.0)),
            series("down", jan(1), 100, moved(-1.0)),
        ];
        // What the daemon runs: no netting across services.
        let alerts = crate::alert::detect(&both, &|_| Thresholds::defaults(), day0, 3);
        let found: Vec<(&str, crate::alert::AlertKind, String)> = alerts
            .iter()
            .map(|a| (a.service.as_str(), a.kind, a.period.clone()))
            .collect();
        assert_eq!(
            found,
            vec![
                ("down", crate::alert::AlertKind::Fall, day0.to_string()),
                ("up", crate::alert::AlertKind::Spike, day0.to_string()),
            ]
        );
        // Each states its own change against what was expected: about -400 and +400.
        for (a, want) in alerts.iter().zip([-400.0, 400.0]) {
            let change = a.change().0 as f64 / 1e9;
            assert!((change - want).abs() < 30.0, "{a:?}");
        }
    }

    #[test]
    fn a_new_service_alerts_once_when_it_passes_the_floor() {
        let t = Thresholds::defaults();
        let start = NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
        let s = series("new", start, 30, |_| 300.0);
        let found = detect_anomalies(&s, &t, jan(1), start + Duration::days(29));
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(
            (found[0].kind, found[0].day),
            (AnomalyKind::NewService, start)
        );
        // A service whose history starts before the checked days is not new.
        assert!(detect_anomalies(
            &s,
            &t,
            start + Duration::days(1),
            start + Duration::days(29)
        )
        .is_empty());
    }

    #[test]
    fn a_drift_of_5_percent_a_week_alerts_within_two_weeks_and_steady_growth_does_not() {
        let t = Thresholds::defaults();
        let start = NaiveDate::from_ymd_opt(2025, 3, 10).unwrap();
        let weeks = |d: NaiveDate| (d - start).num_days() as f64 / 7.0;
        // Twice the ordinary service, drifting 5% a week from `start`.
        let drifting = series("d", jan(1), 110, |d| {
            2.0 * ordinary(d)
                * if d >= start {
                    1.05f64.powf(weeks(d))
                } else {
                    1.0
                }
        });
        let found = detect_anomalies(&drifting, &t, jan(20), jan(1) + Duration::days(109));
        let first = found
            .iter()
            .find(|a| a.kind == AnomalyKind::Drift)
            .unwrap_or_else(|| panic!("no drift alert: {found:?}"));
        let after = (first.day - start).num_days();
        assert!(
            (1..=14).contains(&after),
            "found {after} days in: {found:?}"
        );
        assert!(found.iter().all(|a| a.day >= start), "{found:?}");
        // Each drift alert expects the day's cost without the drift, weekday included (a
        // Saturday's drift is not a fall against a weekday's level): the first within 5%; a
        // later one's line holds what the drift added before its turn, but stays below the
        // day's cost.
        let drifts: Vec<&Anomaly> = found
            .iter()
            .filter(|a| a.kind == AnomalyKind::Drift)
            .collect();
        assert!(
            drifts
                .iter()
                .any(|a| a.day.weekday().num_days_from_monday() >= 5),
            "a weekend drift alert: {drifts:?}"
        );
        for (i, a) in drifts.iter().enumerate() {
            let ratio = units(a.expected) / (2.0 * ordinary(a.day));
            assert!(
                (i > 0 || (0.95..1.05).contains(&ratio)) && a.actual > a.expected,
                "{a:?}: expected {ratio} times the cost without the drift"
            );
        }
        // The same service growing 1.5% a week all along: its own line, never a drift.
        let steady = series("s", jan(1), 110, |d| {
            2.0 * ordinary(d) * 1.015f64.powf((d - jan(1)).num_days() as f64 / 7.0)
        });
        let found = detect_anomalies(&steady, &t, jan(20), jan(1) + Duration::days(109));
        assert!(found.is_empty(), "{found:?}");
    }
}
