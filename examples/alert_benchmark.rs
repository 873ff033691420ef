//! The labelled cost-anomaly benchmark (run by `bench/alert_benchmark.sh`): seeded service
//! series of 180 days with weekly seasonality, month-start fees, trends, noise and gaps, with
//! planted anomalies of known kinds, and the detectors scored on them: costsplit's spike
//! detector as the daemon runs it, and two baselines others use (a 7-day median/MAD with
//! threshold 3.5, a z-score of 3 over 30 days), each with the same dollar floor.
//!
//! A second set holds drifts a week can show: big, quiet services (0.5-2% daily noise), half
//! of them drifting 5% a week, scored on drifts found within 14 and within 7 days.
//!
//! `cargo run --example alert_benchmark -- [SERIES] [SEED]` prints the two Markdown tables
//! (the second set has a third as many series).
//!
//! Scoring: an alert is a true positive when its day falls in an anomaly's window of its
//! series (a one-day spike's day and the next; from the start of a lasting anomaly, a shift,
//! a drift, a new service, to the end); an anomaly is found when an alert falls within 14
//! days of its start (a spike: its day or the next), its days to detect the first such
//! alert's day minus its start. Recall counts the anomalies above the dollar
//! floor (their daily impact at least the floor); false alerts are counted per 100 service-
//! months without an anomaly window.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use costsplit::alert::{detect_anomalies, detect_spikes, DayCost, Series, Thresholds};
use costsplit::money::Nanos;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const DAYS: i64 = 180;
/// The spike detector's default dollar floor, given to every detector.
const FLOOR: f64 = 50.0;
/// Days after an anomaly's start in which an alert counts as finding it.
const WINDOW: i64 = 14;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Spike,
    LevelShift,
    Drift,
    NewService,
    PriceChange,
    Opposite,
}

impl Kind {
    const ALL: [Kind; 6] = [
        Kind::Spike,
        Kind::LevelShift,
        Kind::Drift,
        Kind::NewService,
        Kind::PriceChange,
        Kind::Opposite,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Spike => "one-day spike",
            Kind::LevelShift => "level shift",
            Kind::Drift => "drift 5%/week",
            Kind::NewService => "new service",
            Kind::PriceChange => "price change",
            Kind::Opposite => "opposite pair",
        }
    }
}

/// A planted anomaly: its series, kind, first day and daily impact in dollars.
#[derive(Debug, Clone)]
struct Label {
    series: usize,
    kind: Kind,
    start: i64,
    impact: f64,
}

impl Label {
    /// The days an alert about it may fall on: a spike's day and the next; the rest of the
    /// series for an anomaly that lasts (a shift, a drift, a new service).
    fn window(&self) -> (i64, i64) {
        match self.kind {
            Kind::Spike => (self.start, self.start + 1),
            _ => (self.start, DAYS - 1),
        }
    }

    /// The days an alert must fall on to find it.
    fn detection(&self) -> (i64, i64) {
        match self.kind {
            Kind::Spike => (self.start, self.start + 1),
            _ => (self.start, self.start + WINDOW),
        }
    }
}

fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let (u, v): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
}

/// Which series a set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mix {
    /// The benchmark: 3-12% daily noise, about 60% of the series with one anomaly of any kind.
    All,
    /// Drifts where a week can show them: big services ($1,000-5,000 a day, so a week's 5%
    /// passes the floor) with 0.5-2% daily noise, half of them drifting, half clean.
    QuietDrifts,
}

/// The benchmark's series (dollars by day index; `None`: a gap, no data) and labels.
fn generate(count: usize, seed: u64, mix: Mix) -> (Vec<Vec<Option<f64>>>, Vec<Label>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a day");
    let mut series = Vec::with_capacity(count);
    let mut labels = Vec::new();
    let mut s = 0;
    while s < count {
        let base = match mix {
            Mix::All => (4.0 + 1.2 * normal(&mut rng)).exp().clamp(5.0, 5000.0),
            Mix::QuietDrifts => rng.random_range(1000f64.ln()..5000f64.ln()).exp(),
        };
        let weekend: f64 = rng.random_range(0.6..1.0);
        let trend: f64 = rng.random_range(-0.002..0.003);
        let noise: f64 = match mix {
            Mix::All => rng.random_range(0.03..0.12),
            Mix::QuietDrifts => rng.random_range(0.005..0.02),
        };
        let fee = (rng.random::<f64>() < 0.3).then(|| base * rng.random_range(0.5..3.0));
        let gap = (rng.random::<f64>() < 0.1).then(|| {
            let at = rng.random_range(20..DAYS - 5);
            (at, at + rng.random_range(1..4))
        });
        // About 60% of the series carry one anomaly, from day 45 on (after a baseline).
        let kind = match mix {
            Mix::All => (rng.random::<f64>() < 0.6).then(|| Kind::ALL[rng.random_range(0..6)]),
            Mix::QuietDrifts => (rng.random::<f64>() < 0.5).then_some(Kind::Drift),
        };
        // A drift worth a week's attention is a big service's: at least $600 a day.
        let base = if kind == Some(Kind::Drift) {
            base.max(600.0)
        } else {
            base
        };
        let start = rng.random_range(45..DAYS - 20);
        let factor: f64 = rng.random_range(1.5..3.0);
        let make = |rng: &mut ChaCha8Rng, kind: Option<Kind>, sign: f64, shift: f64| {
            let mut days = Vec::with_capacity(DAYS as usize);
            for d in 0..DAYS {
                let day = first + Duration::days(d);
                let mut x = base * (1.0 + trend).powf(d as f64);
                if day.weekday().num_days_from_monday() >= 5 {
                    x *= weekend;
                }
                match kind {
                    Some(Kind::Spike) if d == start => x *= factor + 1.0,
                    Some(Kind::LevelShift) if d >= start => x *= factor,
                    Some(Kind::Drift) if d >= start => x *= 1.05f64.powf((d - start) as f64 / 7.0),
                    Some(Kind::PriceChange) if d >= start => x *= 1.3,
                    Some(Kind::Opposite) if d >= start => x += sign * shift,
                    _ => {}
                }
                x *= (1.0 + noise * normal(rng)).max(0.05);
                if day.day() == 1 {
                    x += fee.unwrap_or(0.0);
                }
                let missing = gap.is_some_and(|(a, b)| d >= a && d < b)
                    || (kind == Some(Kind::NewService) && d < start);
                days.push((!missing).then_some(x.max(0.0)));
            }
            days
        };
        let impact = |kind: Kind| match kind {
            Kind::Spike => base * factor,
            Kind::LevelShift => base * (factor - 1.0),
            // The drift's impact after two weeks.
            Kind::Drift => base * (1.05f64.powi(2) - 1.0),
            Kind::NewService => base,
            Kind::PriceChange => base * 0.3,
            Kind::Opposite => base * 0.5,
        };
        match kind {
            Some(Kind::Opposite) if s + 1 < count => {
                // Two services, the same amount up and down: no netting.
                let shift = base * 0.5;
                series.push(make(&mut rng, kind, 1.0, shift));
                series.push(make(&mut rng, kind, -1.0, shift));
                for i in [s, s + 1] {
                    labels.push(Label {
                        series: i,
                        kind: Kind::Opposite,
                        start,
                        impact: impact(Kind::Opposite),
                    });
                }
                s += 2;
            }
            Some(Kind::Opposite) | None => {
                series.push(make(&mut rng, None, 0.0, 0.0));
                s += 1;
            }
            Some(k) => {
                series.push(make(&mut rng, kind, 0.0, 0.0));
                labels.push(Label {
                    series: s,
                    kind: k,
                    start,
                    impact: impact(k),
                });
                s += 1;
            }
        }
    }
    (series, labels)
}

/// An alert: the series and the day index it was raised on.
type Alerts = Vec<(usize, i64)>;

fn to_series(i: usize, days: &[Option<f64>]) -> Series {
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a day");
    let mut map = BTreeMap::new();
    for (d, x) in days.iter().enumerate() {
        if let Some(x) = x {
            map.insert(
                first + Duration::days(d as i64),
                DayCost {
                    total: Nanos((x * 1e9) as i128),
                    ..DayCost::default()
                },
            );
        }
    }
    Series {
        service: format!("svc-{i:04}"),
        team: String::new(),
        currency: "USD".into(),
        days: map,
    }
}

/// costsplit's spike detector with its defaults, over the whole series (what daily runs with
/// a lookback add up to: one alert per anomaly, again only when it grows 50%).
fn costsplit_spikes(series: &[Vec<Option<f64>>]) -> Alerts {
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a day");
    // Its own defaults, before the second generation: 14 days, 3 deviations.
    let t = Thresholds {
        baseline_days: 14,
        sigmas: 3,
        ..Thresholds::defaults()
    };
    let mut out = Vec::new();
    for (i, days) in series.iter().enumerate() {
        let s = to_series(i, days);
        for a in detect_spikes(&s, &t, first, first + Duration::days(DAYS - 1)) {
            let day = NaiveDate::parse_from_str(&a.period, "%Y-%m-%d").expect("a spike's day");
            out.push((i, (day - first).num_days()));
        }
    }
    out
}

/// The second-generation detector (`alert::detect_anomalies`), checking from day 14 on (the
/// first two weeks are history: a series that starts later is a new service).
fn costsplit_anomalies(series: &[Vec<Option<f64>>]) -> Alerts {
    let first = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a day");
    let t = Thresholds::defaults();
    let mut out = Vec::new();
    for (i, days) in series.iter().enumerate() {
        let s = to_series(i, days);
        let from = first + Duration::days(14);
        for a in detect_anomalies(&s, &t, from, first + Duration::days(DAYS - 1)) {
            out.push((i, (a.day - first).num_days()));
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// A day's score against its past days, and its change in dollars; none when undefined.
type Score = fn(&[f64], f64) -> Option<(f64, f64)>;

/// A baseline: each day against the `window` days before it (both directions), alerting when
/// `score` passes `threshold` and the change passes the dollar floor; one alert per run of
/// alerting days.
fn baseline(series: &[Vec<Option<f64>>], window: usize, threshold: f64, score: Score) -> Alerts {
    let mut out = Vec::new();
    for (i, days) in series.iter().enumerate() {
        let mut previous_fired = false;
        for d in 0..days.len() {
            let Some(x) = days[d] else {
                previous_fired = false;
                continue;
            };
            let past: Vec<f64> = days[..d]
                .iter()
                .rev()
                .flatten()
                .take(window)
                .copied()
                .collect();
            let fired = past.len() >= window.min(7)
                && score(&past, x)
                    .is_some_and(|(s, change)| s > threshold && change.abs() >= FLOOR);
            if fired && !previous_fired {
                out.push((i, d as i64));
            }
            previous_fired = fired;
        }
    }
    out
}

fn mad_score(past: &[f64], x: f64) -> Option<(f64, f64)> {
    let m = median(past.to_vec());
    let mad = median(past.iter().map(|v| (v - m).abs()).collect()) * 1.4826;
    (mad > 0.0).then(|| ((x - m).abs() / mad, x - m))
}

fn z_score(past: &[f64], x: f64) -> Option<(f64, f64)> {
    let n = past.len() as f64;
    let mean = past.iter().sum::<f64>() / n;
    let sd = (past.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n).sqrt();
    (sd > 0.0).then(|| ((x - mean).abs() / sd, x - mean))
}

/// One detector's figures on a set of series.
struct Measure {
    precision: f64,
    recall: f64,
    /// False alerts per 100 service-months outside every anomaly window.
    false_per_100: f64,
    /// By kind: the anomalies above the floor, and the days to detect of those found.
    kinds: BTreeMap<Kind, (usize, Vec<f64>)>,
}

impl Measure {
    fn of(name: &str, alerts: &Alerts, labels: &[Label], series: usize) -> Measure {
        let in_window = |s: usize, d: i64| {
            labels
                .iter()
                .any(|l| l.series == s && d >= l.window().0 && d <= l.window().1)
        };
        let true_alerts = alerts.iter().filter(|(s, d)| in_window(*s, *d)).count();
        // `ALERT_BENCH_FALSE=1`: each false alert on stderr, with its series' anomaly if any.
        if std::env::var_os("ALERT_BENCH_FALSE").is_some() {
            for (s, d) in alerts.iter().filter(|(s, d)| !in_window(*s, *d)) {
                let label = labels
                    .iter()
                    .find(|l| l.series == *s)
                    .map(|l| (l.kind, l.start));
                eprintln!("{name}: false alert on series {s} day {d} (its anomaly: {label:?})");
            }
        }
        let mut kinds: BTreeMap<Kind, (usize, Vec<f64>)> = BTreeMap::new();
        let (mut counted, mut found) = (0, 0);
        for l in labels.iter().filter(|l| l.impact >= FLOOR) {
            let (a, b) = l.detection();
            let first = alerts
                .iter()
                .filter(|(s, d)| *s == l.series && *d >= a && *d <= b)
                .map(|(_, d)| *d)
                .min();
            let entry = kinds.entry(l.kind).or_default();
            entry.0 += 1;
            counted += 1;
            if let Some(d) = first {
                found += 1;
                entry.1.push((d - l.start) as f64);
            }
        }
        let window_days: i64 = labels.iter().map(|l| l.window().1 - l.window().0 + 1).sum();
        let clean_months = (series as i64 * DAYS - window_days) as f64 / 30.0;
        Measure {
            precision: true_alerts as f64 / alerts.len().max(1) as f64,
            recall: found as f64 / counted.max(1) as f64,
            false_per_100: (alerts.len() - true_alerts) as f64 / clean_months * 100.0,
            kinds,
        }
    }

    /// Found of planted, and the median days to detect, of one kind.
    fn kind(&self, kind: Kind) -> String {
        match self.kinds.get(&kind) {
            Some((n, delays)) if !delays.is_empty() => {
                format!("{}/{n}, {:.0} d", delays.len(), median(delays.clone()))
            }
            Some((n, _)) => format!("0/{n}, -"),
            None => "0/0, -".into(),
        }
    }

    /// The main table's row.
    fn row(&self, name: &str) -> String {
        let kinds: Vec<String> = Kind::ALL.iter().map(|k| self.kind(*k)).collect();
        format!(
            "| {name} | {:.2} | {:.2} | {:.1} | {} |",
            self.precision,
            self.recall,
            self.false_per_100,
            kinds.join(" | ")
        )
    }

    /// The quiet-drift table's row: drifts found within 14 days and within 7.
    fn drift_row(&self, name: &str) -> String {
        let (n, delays) = self.kinds.get(&Kind::Drift).cloned().unwrap_or_default();
        let week = delays.iter().filter(|d| **d <= 7.0).count();
        format!(
            "| {name} | {:.2} | {} | {week}/{n} | {:.1} |",
            self.precision,
            self.kind(Kind::Drift),
            self.false_per_100
        )
    }
}

/// The detectors: a name and their alerts on a set of series.
fn detectors(series: &[Vec<Option<f64>>]) -> Vec<(&'static str, Alerts)> {
    vec![
        (
            "costsplit spike (median + MAD of 14 days, 3 sigmas, $50 and 30% floors)",
            costsplit_spikes(series),
        ),
        (
            "costsplit anomaly, v2 (weekday level, month starts, falls, drift, new services)",
            costsplit_anomalies(series),
        ),
        (
            "baseline: 7-day median/MAD, threshold 3.5",
            baseline(series, 7, 3.5, mad_score),
        ),
        (
            "baseline: z-score 3 over 30 days",
            baseline(series, 30, 3.0, z_score),
        ),
    ]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let count: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(600);
    let seed: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(42);
    let (series, labels) = generate(count, seed, Mix::All);
    let above = labels.iter().filter(|l| l.impact >= FLOOR).count();
    println!(
        "Alert benchmark: `bench/alert_benchmark.sh` ({count} series of {DAYS} days, seed {seed}; {} planted anomalies, {above} with a daily impact above the ${FLOOR:.0} floor). Precision over all alerts; recall, found/planted and the median days to detect over the anomalies above the floor; false alerts per 100 anomaly-free service-months.\n",
        labels.len()
    );
    let header: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
    println!(
        "| detector | precision | recall | false alerts / 100 service-months | {} |",
        header.join(" | ")
    );
    println!("|---|---|---|---|{}", "---|".repeat(header.len()));
    for (name, alerts) in detectors(&series) {
        println!(
            "{}",
            Measure::of(name, &alerts, &labels, series.len()).row(name)
        );
    }
    // The same detectors on drifts a week can show: quiet, big services.
    let quiet = count / 3;
    let (series, labels) = generate(quiet, seed, Mix::QuietDrifts);
    println!(
        "\nDrifts where a week can show them ({quiet} series of {DAYS} days, seed {seed}: services of $1,000-5,000 a day with 0.5-2% daily noise, {} of them drifting 5% a week, the rest clean).\n",
        labels.len()
    );
    println!("| detector | precision | drifts found in 14 days, median days | found within 7 days | false alerts / 100 service-months |");
    println!("|---|---|---|---|---|");
    for (name, alerts) in detectors(&series) {
        println!(
            "{}",
            Measure::of(name, &alerts, &labels, series.len()).drift_row(name)
        );
    }
}
