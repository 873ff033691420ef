//! OpenCost's allocation API shape (`/allocation/compute`), over costsplit's stored daily
//! allocations, so tools that read OpenCost (Port's OpenCost integration, Grafana dashboards
//! built for it) read costsplit unchanged. Pure: windows are parsed here, rows come from the
//! job. A service's direct cost is OpenCost's `externalCost` (cost outside a cluster's
//! resources), its shares of shared pools `sharedCost`; amounts are rounded to 1e-5 as
//! OpenCost rounds them, only here, at the edge.

use std::collections::BTreeMap;

use chrono::{Datelike, Duration, NaiveDate};
use serde_json::{json, Map, Value};

use crate::model::{SeriesRow, UNALLOCATED};
use crate::money::Nanos;

/// What an allocation set is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregate {
    Service,
    Team,
    Pool,
    All,
}

/// Why a request cannot be answered: one sentence that names the fix (a 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    #[error("window `{0}` is not one OpenCost reads: use today, yesterday, week, lastweek, month, lastmonth, Nd (e.g. 7d), or two RFC 3339 times or unix seconds separated by a comma")]
    Window(String),
    #[error("window `{0}` does not start and end at midnight UTC: costsplit stores whole days, so give day boundaries (e.g. 2025-03-01T00:00:00Z,2025-03-08T00:00:00Z)")]
    NotWholeDays(String),
    #[error("step `{0}` is not a whole number of days: use 1d, 7d or 24h")]
    Step(String),
    #[error("aggregate `{0}` is not one costsplit has: use service, team, pool or all")]
    Aggregate(String),
    #[error("the window holds {0} days; ask for at most 1,000 at a time")]
    TooLong(i64),
}

impl Aggregate {
    pub fn parse(text: &str) -> Result<Aggregate, QueryError> {
        match text.trim() {
            "" | "service" => Ok(Aggregate::Service),
            "team" | "label:team" => Ok(Aggregate::Team),
            "pool" => Ok(Aggregate::Pool),
            "all" => Ok(Aggregate::All),
            other => Err(QueryError::Aggregate(other.to_string())),
        }
    }
}

/// A window as `[start, end)` in days. Relative windows end with today (its start: the data
/// of complete days), as OpenCost's end at "now" does.
pub fn parse_window(text: &str, today: NaiveDate) -> Result<(NaiveDate, NaiveDate), QueryError> {
    let bad = || QueryError::Window(text.to_string());
    let t = text.trim();
    let monday = today - Duration::days(i64::from(today.weekday().num_days_from_monday()));
    let first = today.with_day(1).expect("day 1 exists");
    let window = match t {
        "today" => (today, today + Duration::days(1)),
        "yesterday" => (today - Duration::days(1), today),
        "week" => (monday, today + Duration::days(1)),
        "lastweek" => (monday - Duration::days(7), monday),
        "month" => (first, today + Duration::days(1)),
        "lastmonth" => (
            (first - Duration::days(1))
                .with_day(1)
                .expect("day 1 exists"),
            first,
        ),
        _ => match t.split_once(',') {
            Some((a, b)) => (day_at(a, text)?, day_at(b, text)?),
            None => {
                let days: i64 = t
                    .strip_suffix('d')
                    .and_then(|n| n.parse().ok())
                    .filter(|n| *n > 0)
                    .ok_or_else(bad)?;
                (today - Duration::days(days), today)
            }
        },
    };
    if window.1 <= window.0 {
        return Err(bad());
    }
    let days = (window.1 - window.0).num_days();
    if days > 1000 {
        return Err(QueryError::TooLong(days));
    }
    Ok(window)
}

/// An RFC 3339 time or unix seconds at midnight UTC, as its day.
fn day_at(text: &str, window: &str) -> Result<NaiveDate, QueryError> {
    let t = text.trim();
    let time = match t.parse::<i64>() {
        Ok(secs) => chrono::DateTime::from_timestamp(secs, 0),
        Err(_) => chrono::DateTime::parse_from_rfc3339(t)
            .ok()
            .map(|d| d.with_timezone(&chrono::Utc)),
    }
    .ok_or_else(|| QueryError::Window(window.to_string()))?;
    if time.time() != chrono::NaiveTime::MIN {
        return Err(QueryError::NotWholeDays(window.to_string()));
    }
    Ok(time.date_naive())
}

/// A step in whole days (`1d`, `24h`, `7d`); none is the whole window.
pub fn parse_step(text: Option<&str>, window_days: i64) -> Result<i64, QueryError> {
    let Some(t) = text.map(str::trim).filter(|t| !t.is_empty()) else {
        return Ok(window_days);
    };
    let bad = || QueryError::Step(t.to_string());
    let days = if let Some(d) = t.strip_suffix('d') {
        d.parse::<i64>().map_err(|_| bad())?
    } else if let Some(h) = t.strip_suffix('h') {
        let hours = h.parse::<i64>().map_err(|_| bad())?;
        if hours % 24 != 0 {
            return Err(bad());
        }
        hours / 24
    } else {
        return Err(bad());
    };
    if days <= 0 {
        return Err(bad());
    }
    Ok(days)
}

/// OpenCost rounds every float to 1e-5.
fn number(amount: Nanos) -> Value {
    json!(crate::money::rounded_1e5(amount))
}

fn stamp(day: NaiveDate) -> String {
    format!("{day}T00:00:00Z")
}

/// One allocation as OpenCost writes it: its Kubernetes resources are zero (costsplit's
/// costs are cloud line items), the direct cost is external, the pool shares shared.
fn allocation(
    name: &str,
    team: &str,
    window: (NaiveDate, NaiveDate),
    direct: Nanos,
    shared: Nanos,
) -> Value {
    let mut labels = Map::new();
    if !team.is_empty() {
        labels.insert("team".into(), team.into());
    }
    let zero = json!(0.0);
    let mut a = Map::new();
    a.insert("name".into(), name.into());
    a.insert(
        "properties".into(),
        json!({"services": [name], "labels": labels}),
    );
    a.insert(
        "window".into(),
        json!({"start": stamp(window.0), "end": stamp(window.1)}),
    );
    a.insert("start".into(), stamp(window.0).into());
    a.insert("end".into(), stamp(window.1).into());
    a.insert(
        "minutes".into(),
        json!((window.1 - window.0).num_minutes() as f64),
    );
    for key in [
        "cpuCores",
        "cpuCoreRequestAverage",
        "cpuCoreUsageAverage",
        "cpuCoreHours",
        "cpuCost",
        "cpuCostAdjustment",
        "cpuEfficiency",
        "gpuCount",
        "gpuHours",
        "gpuCost",
        "gpuCostAdjustment",
        "networkTransferBytes",
        "networkReceiveBytes",
        "networkCost",
        "networkCrossZoneCost",
        "networkCrossRegionCost",
        "networkInternetCost",
        "networkCostAdjustment",
        "loadBalancerCost",
        "loadBalancerCostAdjustment",
        "pvBytes",
        "pvByteHours",
        "pvCost",
        "pvCostAdjustment",
        "ramBytes",
        "ramByteRequestAverage",
        "ramByteUsageAverage",
        "ramByteHours",
        "ramCost",
        "ramCostAdjustment",
        "ramEfficiency",
        "totalEfficiency",
    ] {
        a.insert(key.into(), zero.clone());
    }
    a.insert("pvs".into(), Value::Null);
    a.insert("lbAllocations".into(), Value::Null);
    a.insert("externalCost".into(), number(direct));
    a.insert("sharedCost".into(), number(shared));
    a.insert("totalCost".into(), number(direct + shared));
    Value::Object(a)
}

/// The allocation sets of `rows` (one currency), one per step of the window, keyed by the
/// aggregate's names (`__unallocated__` for the cost nobody owns, as OpenCost names it).
pub fn allocation_sets(
    rows: &[SeriesRow],
    (start, end): (NaiveDate, NaiveDate),
    step_days: i64,
    aggregate: Aggregate,
) -> Value {
    let mut steps = Vec::new();
    let mut from = start;
    while from < end {
        let to = (from + Duration::days(step_days)).min(end);
        steps.push((from, to));
        from = to;
    }
    // step index -> name -> (team, direct, shared)
    let mut sets: Vec<BTreeMap<String, (String, Nanos, Nanos)>> =
        vec![BTreeMap::new(); steps.len()];
    for r in rows {
        let Some(i) = steps.iter().position(|(a, b)| r.day >= *a && r.day < *b) else {
            continue;
        };
        let name = match aggregate {
            _ if r.service == UNALLOCATED && aggregate != Aggregate::Pool => {
                "__unallocated__".to_string()
            }
            Aggregate::Service => r.service.clone(),
            Aggregate::Team if r.team.is_empty() => "__unallocated__".to_string(),
            Aggregate::Team => r.team.clone(),
            Aggregate::Pool if r.pool.is_empty() => "direct".to_string(),
            Aggregate::Pool => r.pool.clone(),
            Aggregate::All => "__all__".to_string(),
        };
        let entry = sets[i].entry(name).or_default();
        if aggregate == Aggregate::Service {
            entry.0 = r.team.clone();
        }
        if r.pool.is_empty() {
            entry.1 += r.amount;
        } else {
            entry.2 += r.amount;
        }
    }
    let data: Vec<Value> = steps
        .iter()
        .zip(sets)
        .map(|(window, set)| {
            Value::Object(
                set.into_iter()
                    .map(|(name, (team, direct, shared))| {
                        let a = allocation(&name, &team, *window, direct, shared);
                        (name, a)
                    })
                    .collect(),
            )
        })
        .collect();
    json!({"code": 200, "status": "success", "data": data})
}

/// One day of one service for `/api/v1/costs`: its direct cost and each pool's share.
#[derive(Debug, Default)]
struct DailyLine {
    team: String,
    currency: String,
    direct: Nanos,
    pools: BTreeMap<String, Nanos>,
}

/// costsplit's own view of the rows: per day and service (one service, when `only`), the
/// direct cost, each pool's share and the total, as exact decimal text.
pub fn daily_costs(rows: &[SeriesRow], only: Option<&str>) -> Vec<Value> {
    let mut lines: BTreeMap<(NaiveDate, String), DailyLine> = BTreeMap::new();
    for r in rows.iter().filter(|r| only.is_none_or(|s| s == r.service)) {
        let line = lines.entry((r.day, r.service.clone())).or_default();
        line.team.clone_from(&r.team);
        line.currency.clone_from(&r.currency);
        if r.pool.is_empty() {
            line.direct += r.amount;
        } else {
            *line.pools.entry(r.pool.clone()).or_default() += r.amount;
        }
    }
    lines
        .into_iter()
        .map(|((day, service), line)| {
            let shared: Nanos = line.pools.values().copied().sum();
            json!({
                "day": day.to_string(),
                "service": service,
                "team": line.team,
                "currency": line.currency,
                "direct": line.direct.to_string(),
                "pools": line.pools.iter().map(|(p, a)| (p.clone(), json!(a.to_string()))).collect::<Map<_, _>>(),
                "total": (line.direct + shared).to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(t: &str) -> NaiveDate {
        NaiveDate::parse_from_str(t, "%Y-%m-%d").expect("day")
    }

    #[test]
    fn windows_read_as_opencost_reads_them() {
        let today = day("2026-12-03"); // a Thursday
        assert_eq!(
            parse_window("2025-03-01T00:00:00Z,2025-03-08T00:00:00Z", today),
            Ok((day("2025-03-01"), day("2025-03-08")))
        );
        assert_eq!(
            parse_window("1740787200,1741392000", today),
            Ok((day("2025-03-01"), day("2025-03-08")))
        );
        assert_eq!(parse_window("7d", today), Ok((day("2026-11-26"), today)));
        assert_eq!(
            parse_window("lastweek", today),
            Ok((day("2026-11-23"), day("2026-11-30")))
        );
        assert_eq!(
            parse_window("lastmonth", today),
            Ok((day("2026-11-01"), day("2026-12-01")))
        );
        assert!(matches!(
            parse_window("2025-03-01T06:00:00Z,2025-03-08T00:00:00Z", today),
            Err(QueryError::NotWholeDays(_))
        ));
        assert!(matches!(
            parse_window("fortnight", today),
            Err(QueryError::Window(_))
        ));
        assert_eq!(parse_step(Some("24h"), 7), Ok(1));
        assert_eq!(parse_step(None, 7), Ok(7));
        assert!(parse_step(Some("90m"), 7).is_err());
    }

    #[test]
    fn amounts_round_to_1e5_as_opencost_does() {
        assert_eq!(number(Nanos(1_234_565_000)), json!(1.23457));
        assert_eq!(number(Nanos(-1_234_565_000)), json!(-1.23457));
        assert_eq!(number(Nanos(1_234_564_999)), json!(1.23456));
    }
}
