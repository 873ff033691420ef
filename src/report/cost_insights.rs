//! Backstage Cost Insights' types (`Cost`, `DateAggregation`, `ChangeStatistic`,
//! `Trendline`, `Group`) over costsplit's stored daily allocations, so the plugin's client can
//! read a team's and a service's cost, shares of shared pools included. Pure. `change`
//! compares the sums of the two periods of the `intervals` argument (not two single days),
//! and `groupedCosts` breaks the cost down by pool (`direct` for the service's own cost) and,
//! for a team, by service.

use std::collections::BTreeMap;

use chrono::{Months, NaiveDate};
use serde_json::{json, Value};

use crate::model::SeriesRow;
// Cost Insights' numbers: amounts rounded to 1e-5 of the currency.
use crate::money::{rounded_1e5 as number, Nanos};

/// An ISO 8601 repeating interval as the plugin sends it: `R2/P30D/2025-03-01` is two
/// periods of 30 days ending (exclusive) on 2025-03-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// The first day of the first period, and the day after the last period.
    pub from: NaiveDate,
    pub end: NaiveDate,
    /// The first day of the last period, and of the one before it.
    pub last_start: NaiveDate,
    pub previous_start: NaiveDate,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("intervals `{0}` is not an ISO 8601 repeating interval like R2/P30D/2025-03-01 (R<count>/P<days>D or P<months>M/<end day>)")]
pub struct IntervalsError(String);

pub fn parse_intervals(text: &str) -> Result<Intervals, IntervalsError> {
    let bad = || IntervalsError(text.to_string());
    let mut parts = text.trim().split('/');
    let (Some(r), Some(p), Some(end), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let count: u32 = r
        .strip_prefix('R')
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=24).contains(n))
        .ok_or_else(bad)?;
    let end = crate::model::parse_day(end.get(..10).unwrap_or(end)).ok_or_else(bad)?;
    let back = |periods: u32| -> Option<NaiveDate> {
        if let Some(days) = p.strip_prefix('P').and_then(|d| d.strip_suffix('D')) {
            let days: u64 = days.parse().ok().filter(|d| (1..=366).contains(d))?;
            end.checked_sub_days(chrono::Days::new(days * u64::from(periods)))
        } else {
            let months: u32 = p
                .strip_prefix('P')?
                .strip_suffix('M')?
                .parse()
                .ok()
                .filter(|m| (1..=12).contains(m))?;
            end.checked_sub_months(Months::new(months * periods))
        }
    };
    Ok(Intervals {
        from: back(count).ok_or_else(bad)?,
        end,
        last_start: back(1).ok_or_else(bad)?,
        previous_start: back(2).ok_or_else(bad)?,
    })
}

/// `Trendline`: least squares over (unix seconds, amount), as the plugin's own utilities fit
/// it, to 5 significant places of precision as `regression.linear` rounds.
fn trendline(points: &[(NaiveDate, f64)]) -> Value {
    let n = points.len() as f64;
    let xs: Vec<f64> = points
        .iter()
        .map(|(d, _)| {
            d.and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp() as f64
        })
        .collect();
    let (sx, sy) = (
        xs.iter().sum::<f64>(),
        points.iter().map(|p| p.1).sum::<f64>(),
    );
    let sxx: f64 = xs.iter().map(|x| x * x).sum();
    let sxy: f64 = xs.iter().zip(points).map(|(x, p)| x * p.1).sum();
    let denominator = n * sxx - sx * sx;
    let slope = if denominator == 0.0 {
        0.0
    } else {
        (n * sxy - sx * sy) / denominator
    };
    let intercept = if n == 0.0 { 0.0 } else { (sy - slope * sx) / n };
    let round = |v: f64| (v * 1e5).round() / 1e5;
    json!({"slope": round(slope), "intercept": round(intercept)})
}

/// One `Cost`: the daily amounts over the whole intervals (every day, zero when none), the
/// change of the last period's sum against the one before, the trendline, and the grouped
/// costs given.
fn cost(
    id: &str,
    daily: &BTreeMap<NaiveDate, Nanos>,
    iv: Intervals,
    grouped: Option<Value>,
) -> Value {
    let mut aggregation = Vec::new();
    let mut points = Vec::new();
    let mut day = iv.from;
    while day < iv.end {
        let amount = daily.get(&day).copied().unwrap_or_default();
        aggregation.push(json!({"date": day.to_string(), "amount": number(amount)}));
        points.push((day, number(amount)));
        day = day.succ_opt().expect("a next day");
    }
    let (previous, last) = periods(daily, iv);
    let mut out = json!({
        "id": id,
        "aggregation": aggregation,
        "change": change(previous, last),
        "trendline": trendline(&points),
    });
    if let Some(grouped) = grouped {
        out["groupedCosts"] = grouped;
    }
    out
}

/// The sums of the period before the last one and of the last one.
fn periods(daily: &BTreeMap<NaiveDate, Nanos>, iv: Intervals) -> (Nanos, Nanos) {
    let sum =
        |from: NaiveDate, to: NaiveDate| -> Nanos { daily.range(from..to).map(|(_, a)| *a).sum() };
    (
        sum(iv.previous_start, iv.last_start),
        sum(iv.last_start, iv.end),
    )
}

/// `ChangeStatistic`: the ratio only when both sums are non-zero (the plugin shows ∞ then).
fn change(previous: Nanos, last: Nanos) -> Value {
    let mut change = json!({"amount": number(last - previous)});
    if previous.0 != 0 && last.0 != 0 {
        change["ratio"] =
            json!(((last.0 - previous.0) as f64 / previous.0 as f64 * 1e5).round() / 1e5);
    }
    change
}

/// The daily sums of the rows `key` puts under each name.
fn by(
    rows: &[&SeriesRow],
    key: impl Fn(&SeriesRow) -> String,
) -> BTreeMap<String, BTreeMap<NaiveDate, Nanos>> {
    let mut out: BTreeMap<String, BTreeMap<NaiveDate, Nanos>> = BTreeMap::new();
    for r in rows {
        *out.entry(key(r)).or_default().entry(r.day).or_default() += r.amount;
    }
    out
}

/// The `Cost` of the rows `keep` selects, named `id`, grouped by pool (and by service for a
/// team).
pub fn daily_cost(
    id: &str,
    rows: &[SeriesRow],
    iv: Intervals,
    keep: impl Fn(&SeriesRow) -> bool,
    by_service: bool,
) -> Value {
    let kept: Vec<&SeriesRow> = rows.iter().filter(|r| keep(r)).collect();
    let total = by(&kept, |_| String::new()).remove("").unwrap_or_default();
    let group = |groups: BTreeMap<String, BTreeMap<NaiveDate, Nanos>>| -> Value {
        Value::Array(
            groups
                .iter()
                .map(|(name, daily)| cost(name, daily, iv, None))
                .collect(),
        )
    };
    let mut grouped = serde_json::Map::new();
    grouped.insert(
        "pool".into(),
        group(by(&kept, |r| r.pool_or_direct().to_string())),
    );
    if by_service {
        grouped.insert("service".into(), group(by(&kept, |r| r.service.clone())));
    }
    cost(id, &total, iv, Some(Value::Object(grouped)))
}

/// What Cost Insights calls a product: a shared pool for the shares of it, else the provider
/// service of a service's own line items.
pub fn product_of(r: &SeriesRow) -> &str {
    product(&r.pool, &r.provider_service)
}

/// The product of an amount in `pool` (empty for direct cost) from `provider_service`.
pub fn product<'a>(pool: &'a str, provider_service: &'a str) -> &'a str {
    if pool.is_empty() {
        provider_service
    } else {
        pool
    }
}

/// A product's key as `costInsights.products` names it in the plugin's app-config: the
/// product in lowercase letters and digits (`Amazon RDS` -> `amazonrds`, `shared-aurora` ->
/// `sharedaurora`).
pub fn product_key(product: &str) -> String {
    product
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// `Product[]`: the provider services and the shared pools (`kind` is the key app-config
/// names them by).
pub fn products<'a>(products: impl Iterator<Item = &'a str>) -> Value {
    let names: std::collections::BTreeSet<&str> =
        products.filter(|p| !product_key(p).is_empty()).collect();
    names
        .into_iter()
        .map(|name| json!({"kind": product_key(name), "name": name}))
        .collect()
}

/// `Entity` for `getProductInsights`: the product's cost in the period before the last one and
/// in the last one, broken down by service.
pub fn product_insights(product: &str, rows: &[&SeriesRow], iv: Intervals) -> Value {
    let entity = |id: Value, daily: &BTreeMap<NaiveDate, Nanos>, entities: Value| -> Value {
        let (previous, last) = periods(daily, iv);
        json!({
            "id": id,
            "aggregation": [number(previous), number(last)],
            "change": change(previous, last),
            "entities": entities,
        })
    };
    let services: Vec<Value> = by(rows, |r| r.service.clone())
        .iter()
        .map(|(name, daily)| entity(json!(name), daily, json!({})))
        .collect();
    let total = by(rows, |_| String::new()).remove("").unwrap_or_default();
    entity(json!(product), &total, json!({ "service": services }))
}

/// `MetricData` (`format: number`): a usage source's daily measurement, the sum of its
/// samples, over the intervals; days without samples are left out, never shown as 0.
pub fn metric_data(metric: &str, daily: &BTreeMap<NaiveDate, f64>, iv: Intervals) -> Value {
    let aggregation: Vec<Value> = daily
        .range(iv.from..iv.end)
        .map(|(day, value)| json!({"date": day.to_string(), "amount": value}))
        .collect();
    let sum =
        |from: NaiveDate, to: NaiveDate| -> f64 { daily.range(from..to).map(|(_, v)| v).sum() };
    let (previous, last) = (
        sum(iv.previous_start, iv.last_start),
        sum(iv.last_start, iv.end),
    );
    let mut change = json!({"amount": last - previous});
    if previous != 0.0 && last != 0.0 {
        change["ratio"] = json!(((last - previous) / previous * 1e5).round() / 1e5);
    }
    json!({"id": metric, "format": "number", "aggregation": aggregation, "change": change})
}

/// One of a team's alerts as Cost Insights' `Alert` (its action items): the alert's summary
/// as the title, what and where as the subtitle.
pub fn alert(summary: &str, kind: &str, subject: &str, period: &str, state: &str) -> Value {
    json!({
        "title": summary,
        "subtitle": format!("{kind} alert on {subject} ({period}); {state} in Slack"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_read_as_the_plugin_sends_them() {
        let day = |t: &str| crate::model::parse_day(t).expect("day");
        assert_eq!(
            parse_intervals("R2/P30D/2025-03-01"),
            Ok(Intervals {
                from: day("2024-12-31"),
                end: day("2025-03-01"),
                last_start: day("2025-01-30"),
                previous_start: day("2024-12-31"),
            })
        );
        assert_eq!(
            parse_intervals("R2/P3M/2025-04-01"),
            Ok(Intervals {
                from: day("2024-10-01"),
                end: day("2025-04-01"),
                last_start: day("2025-01-01"),
                previous_start: day("2024-10-01"),
            })
        );
        assert!(parse_intervals("P30D/2025-03-01").is_err());
        assert!(parse_intervals("R2/P30X/2025-03-01").is_err());
    }

    #[test]
    fn change_compares_the_periods_sums() {
        let day = |t: &str| crate::model::parse_day(t).expect("day");
        let iv = parse_intervals("R2/P2D/2025-03-05").expect("intervals");
        let daily: BTreeMap<NaiveDate, Nanos> = [
            (day("2025-03-01"), Nanos(1_000_000_000)),
            (day("2025-03-02"), Nanos(1_000_000_000)),
            (day("2025-03-03"), Nanos(3_000_000_000)),
            (day("2025-03-04"), Nanos(1_000_000_000)),
        ]
        .into();
        let c = cost("x", &daily, iv, None);
        assert_eq!(c["aggregation"].as_array().expect("days").len(), 4);
        assert_eq!(c["change"], json!({"amount": 2.0, "ratio": 1.0}));
    }
}
