//! Cost per unit of work: a scope's allocated cost per day over its daily measure (requests,
//! orders, GB served), summed over a period and compared with the one before. A day without
//! a measurement, or measured 0, has no unit cost: it is listed as missing with its reason
//! and left out of the period's cost and measure alike, never counted as 0 or infinity.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::Serialize;

use super::diff::percent;
use crate::money::{human, Nanos};

/// One day of a unit: its scope's allocated cost and the measure, or why there is none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitDay {
    pub day: NaiveDate,
    pub cost: Nanos,
    /// The measure in nano-units (a count of requests x 1e9); none when missing.
    pub measure: Option<Nanos>,
    /// Cost per `scale` units; none when the measure is missing or 0.
    pub unit_cost: Option<Nanos>,
    /// Why the day has no unit cost.
    pub missing: Option<String>,
}

/// A unit over a period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitPeriod {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// Cost and measure of the days that have both.
    pub cost: Nanos,
    pub measure: Nanos,
    pub unit_cost: Option<Nanos>,
    pub days: Vec<UnitDay>,
}

impl UnitPeriod {
    pub fn missing(&self) -> impl Iterator<Item = &UnitDay> {
        self.days.iter().filter(|d| d.missing.is_some())
    }
}

/// `cost` x `scale` / `measure`, rounded half away from zero; none when the measure is not
/// positive.
pub fn per_unit(cost: Nanos, measure: Nanos, scale: u64) -> Option<Nanos> {
    if measure.0 <= 0 {
        return None;
    }
    let num = cost
        .0
        .checked_mul(i128::from(scale))?
        .checked_mul(1_000_000_000)?;
    let q = num / measure.0;
    let r = num % measure.0;
    let round = if r.abs() * 2 >= measure.0 {
        num.signum()
    } else {
        0
    };
    Some(Nanos(q + round))
}

/// The period `from..=to` of a unit whose scope cost `costs` by day and whose measure is
/// `measures` by day (absent: not measured).
pub fn period(
    (from, to): (NaiveDate, NaiveDate),
    costs: &BTreeMap<NaiveDate, Nanos>,
    measures: &BTreeMap<NaiveDate, Nanos>,
    scale: u64,
    noun: &str,
) -> UnitPeriod {
    let mut out = UnitPeriod {
        from,
        to,
        cost: Nanos::ZERO,
        measure: Nanos::ZERO,
        unit_cost: None,
        days: Vec::new(),
    };
    let mut day = from;
    while day <= to {
        let cost = costs.get(&day).copied().unwrap_or_default();
        let measure = measures.get(&day).copied();
        let (unit_cost, missing) = match measure {
            None => (None, Some(format!("no {noun} measured"))),
            Some(m) if m.0 <= 0 => (None, Some(format!("{noun} measured as 0"))),
            Some(m) => (per_unit(cost, m, scale), None),
        };
        if missing.is_none() {
            out.cost += cost;
            out.measure += measure.unwrap_or_default();
        }
        out.days.push(UnitDay {
            day,
            cost,
            measure,
            unit_cost,
            missing,
        });
        day += chrono::Duration::days(1);
    }
    out.unit_cost = per_unit(out.cost, out.measure, scale);
    out
}

/// A unit this period and the one before.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitSummary {
    pub name: String,
    /// `service checkout-api`.
    pub scope: String,
    pub team: String,
    pub currency: String,
    /// `requests`, and `per 1,000 requests`.
    pub noun: String,
    pub label: String,
    pub current: UnitPeriod,
    pub previous: UnitPeriod,
}

/// A measure in nano-units as a plain count, `12,345` or `12,345.5`.
fn count(n: Nanos) -> String {
    let text = n.format(3);
    let text = text.trim_end_matches('0').trim_end_matches('.').to_string();
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    let (sign, digits) = int.strip_prefix('-').map_or(("", int), |d| ("-", d));
    let grouped = crate::money::group_thousands(digits);
    if frac.is_empty() {
        format!("{sign}{grouped}")
    } else {
        format!("{sign}{grouped}.{frac}")
    }
}

impl UnitSummary {
    /// `checkout-requests (service checkout-api): cost +50.0%, requests +100.0%, cost per
    /// 1,000 requests -25.0% ($0.75 -> $0.56)`, with the days left out.
    pub fn line(&self) -> String {
        let c = self.currency.as_str();
        let (now, before) = (&self.current, &self.previous);
        let unit = match (now.unit_cost, before.unit_cost) {
            (Some(n), Some(b)) => format!(
                "cost {} {} ({} -> {})",
                self.label,
                percent(n - b, b),
                human(b, c, false),
                human(n, c, false)
            ),
            (Some(n), None) => format!("cost {} {}", self.label, human(n, c, false)),
            (None, _) => format!("cost {}: no day with {} measured", self.label, self.noun),
        };
        let mut line = format!(
            "{} ({}): cost {}, {} {}, {unit}",
            self.name,
            self.scope,
            percent(now.cost - before.cost, before.cost),
            self.noun,
            percent(now.measure - before.measure, before.measure),
        );
        let missing: Vec<String> = now
            .missing()
            .map(|d| format!("{} ({})", d.day, d.missing.as_deref().unwrap_or_default()))
            .collect();
        if !missing.is_empty() {
            let shown: Vec<&str> = missing.iter().take(3).map(String::as_str).collect();
            line.push_str(&format!(
                "; {} day(s) without a unit cost, left out: {}{}",
                missing.len(),
                shown.join(", "),
                if missing.len() > 3 { ", …" } else { "" }
            ));
        }
        line
    }

    /// `costsplit units`: the line, then each day of the current period.
    pub fn text(&self) -> String {
        let c = self.currency.as_str();
        let mut out = format!(
            "{}\n    {} to {}: cost {}, {} {}\n",
            self.line(),
            self.current.from,
            self.current.to,
            human(self.current.cost, c, false),
            count(self.current.measure),
            self.noun
        );
        for d in &self.current.days {
            let measure = d.measure.map(count).unwrap_or_else(|| "-".to_string());
            let unit = match (&d.unit_cost, &d.missing) {
                (Some(u), _) => format!("{} {}", human(*u, c, false), self.label),
                (None, Some(reason)) => format!("missing: {reason}"),
                (None, None) => "-".to_string(),
            };
            out.push_str(&format!(
                "    {}  {:>14}  {:>16} {}  {unit}\n",
                d.day,
                human(d.cost, c, false),
                measure,
                self.noun
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).unwrap()
    }

    fn n(units: i128) -> Nanos {
        Nanos(units * 1_000_000_000)
    }

    #[test]
    fn requests_doubling_while_cost_grows_half_is_a_quarter_cheaper_per_request() {
        let costs_before: BTreeMap<_, _> = (1..=3).map(|d| (day(d), n(100))).collect();
        let costs_now: BTreeMap<_, _> = (4..=6).map(|d| (day(d), n(150))).collect();
        let measures_before: BTreeMap<_, _> = (1..=3).map(|d| (day(d), n(200_000))).collect();
        let mut measures_now: BTreeMap<_, _> = (4..=6).map(|d| (day(d), n(400_000))).collect();
        measures_now.remove(&day(6));
        let s = UnitSummary {
            name: "checkout-requests".into(),
            scope: "service checkout-api".into(),
            team: "payments".into(),
            currency: "USD".into(),
            noun: "requests".into(),
            label: "per 1,000 requests".into(),
            current: period(
                (day(4), day(6)),
                &costs_now,
                &measures_now,
                1000,
                "requests",
            ),
            previous: period(
                (day(1), day(3)),
                &costs_before,
                &measures_before,
                1000,
                "requests",
            ),
        };
        assert_eq!(s.previous.unit_cost, Some(Nanos(500_000_000)));
        assert_eq!(s.current.unit_cost, Some(Nanos(375_000_000)));
        assert_eq!(s.current.days[2].unit_cost, None);
        assert_eq!(
            s.line(),
            "checkout-requests (service checkout-api): cost 0.0%, requests +33.3%, cost per 1,000 requests -25.0% ($0.50 -> $0.38); 1 day(s) without a unit cost, left out: 2025-03-06 (no requests measured)"
        );
        assert_eq!(per_unit(n(1), Nanos(0), 1000), None);
        assert_eq!(count(n(12345)), "12,345");
    }
}
