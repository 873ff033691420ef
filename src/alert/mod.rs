//! Pure cost-change detectors over per-service daily series: spikes against a robust
//! baseline (median and MAD of the trailing days) and month-over-month moves. Each alert has
//! a stable fingerprint so the outbox can refuse a second copy. No IO, no clock, no floats for
//! money; knows nothing of Slack.

use std::collections::BTreeMap;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::money::Nanos;

mod anomaly;
#[cfg(test)]
mod tests;

pub use anomaly::{detect_anomalies, Anomaly, AnomalyKind};

// The thresholds are the rules' (parsed and validated there); the detectors take them.
pub use crate::rules::{Floors, Thresholds};

/// One day of one service's cost, with what it is made of.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCost {
    pub total: Nanos,
    /// Component (a provider service for direct cost, `pool <name>` for shared cost) -> amount.
    pub components: BTreeMap<String, Nanos>,
    /// The provider may still revise this day.
    pub estimated: bool,
}

/// A service's daily cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Series {
    pub service: String,
    pub team: String,
    pub currency: String,
    pub days: BTreeMap<NaiveDate, DayCost>,
}

/// Groups rows of (day, service, team, currency, pool, provider service, amount) into one
/// series per service and currency, with components: the provider service for direct cost
/// (`other` when it has none), `pool <name>` for shared cost.
pub fn series_from_rows(
    rows: &[crate::model::SeriesRow],
    estimated: &std::collections::BTreeSet<NaiveDate>,
) -> Vec<Series> {
    let mut series: BTreeMap<(&str, &str), Series> = BTreeMap::new();
    for row in rows {
        let s = series
            .entry((&row.service, &row.currency))
            .or_insert_with(|| Series {
                service: row.service.clone(),
                team: String::new(),
                currency: row.currency.clone(),
                days: BTreeMap::new(),
            });
        s.team.clone_from(&row.team);
        let entry = s.days.entry(row.day).or_default();
        entry.total += row.amount;
        let component = if !row.pool.is_empty() {
            format!("pool {}", row.pool)
        } else if row.provider_service.is_empty() {
            "other".to_string()
        } else {
            row.provider_service.clone()
        };
        *entry.components.entry(component).or_default() += row.amount;
        entry.estimated = estimated.contains(&row.day);
    }
    series.into_values().collect()
}

impl Series {
    fn cost(&self, day: NaiveDate) -> Nanos {
        self.days.get(&day).map_or(Nanos::ZERO, |d| d.total)
    }
}

pub use crate::model::AlertKind;

/// A detected change worth telling the owning team about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub kind: AlertKind,
    pub service: String,
    pub team: String,
    pub currency: String,
    /// First day of the anomaly (spike) or of the month (month-over-month).
    pub anomaly_start: NaiveDate,
    /// What the numbers cover: a day (`2025-03-20`), month to date (`2025-03 to 03-15`) or a
    /// closed month (`2025-03`).
    pub period: String,
    /// The cost in the period, and what it is compared with.
    pub amount: Nanos,
    pub baseline: Nanos,
    /// Percent change x100 (basis points); none when the baseline is not positive.
    pub change_bp: Option<i64>,
    /// The biggest contributors to the change, largest first.
    pub drivers: Vec<(String, Nanos)>,
    /// Some day in the period may still be revised by the provider.
    pub estimated: bool,
}

impl Alert {
    pub fn change(&self) -> Nanos {
        self.amount - self.baseline
    }

    /// One plain-text paragraph saying what happened, for logs, previews and notification
    /// fallbacks.
    pub fn summary(&self) -> String {
        use crate::money::human;
        let what = match self.kind {
            AlertKind::Spike => format!("Cost spike for {} on {}", self.service, self.period),
            AlertKind::MonthOverMonth => format!(
                "Month-over-month change for {} in {}",
                self.service, self.period
            ),
            AlertKind::Fall => format!("Cost fall for {} on {}", self.service, self.period),
            AlertKind::Drift => {
                format!("Slow cost drift for {} up to {}", self.service, self.period)
            }
            AlertKind::NewService => {
                format!("New service {} with cost on {}", self.service, self.period)
            }
        };
        let team = if self.team.is_empty() {
            String::new()
        } else {
            format!(" (team {})", self.team)
        };
        let percent = self
            .change_bp
            .map(|bp| {
                format!(
                    ", {}{}.{}%",
                    if bp >= 0 { "+" } else { "-" },
                    bp.abs() / 100,
                    (bp.abs() % 100) / 10
                )
            })
            .unwrap_or_default();
        let baseline = human(self.baseline, &self.currency, false);
        let against = match self.kind {
            AlertKind::Spike | AlertKind::Fall => format!("expected {baseline}"),
            AlertKind::MonthOverMonth => format!("previous month {baseline}"),
            AlertKind::Drift => format!("{baseline} expected without the drift"),
            AlertKind::NewService => "nothing before".to_string(),
        };
        let mut text = format!(
            "{what}{team}: {} against {against} ({}{percent})",
            human(self.amount, &self.currency, false),
            human(self.change(), &self.currency, true),
        );
        if !self.drivers.is_empty() {
            let drivers: Vec<String> = self
                .drivers
                .iter()
                .map(|(k, v)| format!("{k} {}", human(*v, &self.currency, true)))
                .collect();
            text.push_str(&format!(". Drivers: {}", drivers.join(", ")));
        }
        if self.estimated {
            text.push_str(". Includes estimated days the provider may still revise");
        }
        text
    }

    /// Stable identity: kind, service, anomaly start, period. The outbox keeps one row per
    /// fingerprint, so re-running detection never creates a second copy.
    pub fn fingerprint(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.kind.as_str(),
            self.service,
            self.anomaly_start,
            self.period
        )
    }
}

fn percent_bp(change: Nanos, baseline: Nanos) -> Option<i64> {
    (baseline.0 > 0)
        .then(|| i64::try_from(change.0.saturating_mul(10_000) / baseline.0).unwrap_or(i64::MAX))
}

fn clears(change: Nanos, baseline: Nanos, floors: &Floors) -> bool {
    change.0 >= floors.min_amount.0
        && change.0 > 0
        && (baseline.0 <= 0
            || change.0.saturating_mul(100)
                >= i128::from(floors.min_percent).saturating_mul(baseline.0))
}

fn median(values: &mut [i128]) -> i128 {
    values.sort_unstable();
    let n = values.len();
    if n == 0 {
        0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        // Mean of the middle two, without overflow.
        values[n / 2 - 1] / 2 + values[n / 2] / 2 + (values[n / 2 - 1] % 2 + values[n / 2] % 2) / 2
    }
}

/// Cost per component over some days.
fn component_sums(series: &Series, days: &[NaiveDate]) -> BTreeMap<String, i128> {
    let mut sums: BTreeMap<String, i128> = BTreeMap::new();
    for d in days {
        if let Some(day) = series.days.get(d) {
            for (k, v) in &day.components {
                *sums.entry(k.clone()).or_default() += v.0;
            }
        }
    }
    sums
}

/// Differences per component between `current` and `baseline` (its mean per day scaled to
/// the length of `current` when `averaged`, else its plain sum), largest magnitude first, at
/// most five, zeros dropped.
fn drivers(
    series: &Series,
    current: &[NaiveDate],
    baseline: &[NaiveDate],
    averaged: bool,
) -> Vec<(String, Nanos)> {
    let mut delta = component_sums(series, current);
    let (scale, n) = if averaged {
        (current.len().max(1) as i128, baseline.len().max(1) as i128)
    } else {
        (1, 1)
    };
    for (k, v) in component_sums(series, baseline) {
        *delta.entry(k).or_default() -= v * scale / n;
    }
    let mut out: Vec<(String, Nanos)> = delta
        .into_iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| (k, Nanos(v)))
        .collect();
    out.sort_by(|a, b| b.1 .0.abs().cmp(&a.1 .0.abs()).then(a.0.cmp(&b.0)));
    out.truncate(5);
    out
}

/// Spikes on the days `from..=to`, evaluated over the whole series up to `to`.
pub fn detect_spikes(
    series: &Series,
    t: &Thresholds,
    from: NaiveDate,
    to: NaiveDate,
) -> Vec<Alert> {
    let Some(&first) = series.days.keys().next() else {
        return Vec::new();
    };
    let mut alerts = Vec::new();
    // Values (and their days) the baseline may use; a running spike's days are kept out
    // until it persists, then they become the baseline.
    let mut history: Vec<(NaiveDate, i128)> = Vec::new();
    struct Run {
        start: NaiveDate,
        days: Vec<(NaiveDate, i128)>,
        alerted_level: i128,
    }
    let mut run: Option<Run> = None;
    let mut day = first;
    while day <= to {
        let x = series.cost(day).0;
        let window: Vec<(NaiveDate, i128)> = history
            .iter()
            .rev()
            .take(t.baseline_days)
            .copied()
            .collect();
        let mut fires = false;
        let mut base = 0;
        if history.len() >= t.min_history_days.max(1) {
            let mut values: Vec<i128> = window.iter().map(|(_, v)| *v).collect();
            base = median(&mut values);
            let mut deviations: Vec<i128> = values.iter().map(|v| (v - base).abs()).collect();
            let mad = median(&mut deviations);
            let change = Nanos(x - base);
            fires = clears(change, Nanos(base), &t.spike)
                && change.0.saturating_mul(10_000)
                    > i128::from(t.sigmas)
                        .saturating_mul(14_826)
                        .saturating_mul(mad);
        }
        if fires {
            let (start, alert_now) = match &mut run {
                None => {
                    run = Some(Run {
                        start: day,
                        days: vec![(day, x)],
                        alerted_level: x,
                    });
                    (day, true)
                }
                Some(r) => {
                    r.days.push((day, x));
                    let grew = x.saturating_mul(100)
                        >= r.alerted_level
                            .saturating_mul(i128::from(100 + t.growth_step_percent));
                    if grew {
                        r.alerted_level = x;
                    }
                    (r.start, grew)
                }
            };
            if alert_now && day >= from {
                let baseline_days: Vec<NaiveDate> = window.iter().map(|(d, _)| *d).collect();
                alerts.push(Alert {
                    kind: AlertKind::Spike,
                    service: series.service.clone(),
                    team: series.team.clone(),
                    currency: series.currency.clone(),
                    anomaly_start: start,
                    period: day.to_string(),
                    amount: Nanos(x),
                    baseline: Nanos(base),
                    change_bp: percent_bp(Nanos(x - base), Nanos(base)),
                    drivers: drivers(series, &[day], &baseline_days, true),
                    estimated: series.days.get(&day).is_some_and(|d| d.estimated),
                });
            }
            if run
                .as_ref()
                .is_some_and(|r| r.days.len() >= t.persistence_days.max(1))
            {
                // The new level is the new normal.
                history = run.take().map(|r| r.days).unwrap_or_default();
            }
        } else {
            run = None;
            history.push((day, x));
        }
        day = match day.succ_opt() {
            Some(next) => next,
            None => break,
        };
    }
    alerts
}

/// An anomaly of the second-generation detector as an alert: what was expected against
/// what it cost, and what drove the difference (against the two weeks before).
fn anomaly_alert(series: &Series, a: &Anomaly) -> Alert {
    let kind = match a.kind {
        AnomalyKind::Rise => AlertKind::Spike,
        AnomalyKind::Fall => AlertKind::Fall,
        AnomalyKind::Drift => AlertKind::Drift,
        AnomalyKind::NewService => AlertKind::NewService,
    };
    let baseline_days: Vec<NaiveDate> = (1..=14)
        .map(|k| a.day - chrono::Duration::days(k))
        .collect();
    Alert {
        kind,
        service: series.service.clone(),
        team: series.team.clone(),
        currency: series.currency.clone(),
        anomaly_start: a.day,
        period: a.day.to_string(),
        amount: a.actual,
        baseline: a.expected,
        change_bp: percent_bp(a.actual - a.expected, a.expected),
        drivers: drivers(series, &[a.day], &baseline_days, true),
        estimated: series.days.get(&a.day).is_some_and(|d| d.estimated),
    }
}

/// Month-over-month on `day`: month to date against the same days of the previous month,
/// and, when `day` is the month's last day, the closed month against the previous one.
pub fn detect_month_over_month(series: &Series, t: &Thresholds, day: NaiveDate) -> Vec<Alert> {
    let Some(month_start) = day.with_day(1) else {
        return Vec::new();
    };
    let Some(prev_start) = month_start.checked_sub_months(chrono::Months::new(1)) else {
        return Vec::new();
    };
    let prev_len = (month_start - prev_start).num_days() as u32;
    // Without data in the previous month there is nothing to compare with.
    if !series
        .days
        .keys()
        .any(|d| *d >= prev_start && *d < month_start)
    {
        return Vec::new();
    }
    let current: Vec<NaiveDate> = month_start.iter_days().take_while(|d| *d <= day).collect();
    let previous: Vec<NaiveDate> = prev_start
        .iter_days()
        .take(day.day().min(prev_len) as usize)
        .collect();
    let is_last_day = day.succ_opt().is_some_and(|n| n.month() != day.month());
    let month = month_start.format("%Y-%m").to_string();
    let (period, previous) = if is_last_day {
        let whole: Vec<NaiveDate> = prev_start.iter_days().take(prev_len as usize).collect();
        (month.clone(), whole)
    } else {
        (format!("{month} to {}", day.format("%m-%d")), previous)
    };
    let sum = |days: &[NaiveDate]| days.iter().map(|d| series.cost(*d)).sum::<Nanos>();
    let (amount, baseline) = (sum(&current), sum(&previous));
    let change = amount - baseline;
    let fires = clears(change, baseline, &t.mom_increase)
        || clears(Nanos(-change.0), baseline, &t.mom_decrease);
    if !fires {
        return Vec::new();
    }
    let drivers = drivers(series, &current, &previous, false);
    vec![Alert {
        kind: AlertKind::MonthOverMonth,
        service: series.service.clone(),
        team: series.team.clone(),
        currency: series.currency.clone(),
        anomaly_start: month_start,
        period,
        amount,
        baseline,
        change_bp: percent_bp(change, baseline),
        drivers,
        estimated: current
            .iter()
            .any(|d| series.days.get(d).is_some_and(|c| c.estimated)),
    }]
}

/// Everything the detectors find for `day`, looking back `lookback_days` for spikes (so a
/// restated recent day is re-examined). Sorted by fingerprint.
pub fn detect(
    series: &[Series],
    thresholds: &dyn Fn(&Series) -> Thresholds,
    day: NaiveDate,
    lookback_days: u32,
) -> Vec<Alert> {
    let from = day - chrono::Duration::days(i64::from(lookback_days));
    let mut alerts: Vec<Alert> = series
        .iter()
        .flat_map(|s| {
            let t = thresholds(s);
            let mut found: Vec<Alert> = detect_anomalies(s, &t, from, day)
                .iter()
                .map(|a| anomaly_alert(s, a))
                .collect();
            found.extend(detect_month_over_month(s, &t, day));
            found
        })
        .collect();
    alerts.sort_by_key(Alert::fingerprint);
    alerts
}
