//! Cost per unit: each `[[unit]]`'s scope cost per day (from the stored allocations) over its
//! daily measure (a usage source's samples, summed, or the values pushed to the API), and the
//! values pushed.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use crate::clock::Clock;
use crate::forecast::budget::covers;
use crate::money::Nanos;
use crate::report::units::{period, UnitSummary};
use crate::rules::{Rules, Unit, UnitMeasure};
use crate::store::Store;

/// Every unit of the rules over `current`, compared with `previous`.
pub async fn unit_summaries(
    store: &Store,
    rules: &Rules,
    current: (NaiveDate, NaiveDate),
    previous: (NaiveDate, NaiveDate),
) -> anyhow::Result<Vec<UnitSummary>> {
    if rules.units.is_empty() {
        return Ok(Vec::new());
    }
    let (from, to) = (previous.0.min(current.0), previous.1.max(current.1));
    let allocations = store.allocations(from, to).await?;
    let mut out = Vec::new();
    for unit in &rules.units {
        let mut costs: BTreeMap<NaiveDate, Nanos> = BTreeMap::new();
        for a in allocations.iter().filter(|a| a.currency == unit.currency) {
            // The team and cost center are the rules' of the service now.
            let (team, center) = rules
                .service(&a.service)
                .map_or((a.team.as_str(), a.cost_center.as_str()), |s| {
                    (s.team.as_str(), s.cost_center.as_str())
                });
            if covers(&unit.scope, &a.service, team, center, &a.pool) {
                *costs.entry(a.day).or_default() += a.amount;
            }
        }
        let measures = measures(store, unit, (from, to)).await?;
        out.push(UnitSummary {
            name: unit.name.clone(),
            scope: unit.scope.label(),
            team: unit.team.clone(),
            currency: unit.currency.clone(),
            noun: unit.noun.clone(),
            label: unit.label.clone(),
            current: period(current, &costs, &measures, unit.scale, &unit.noun),
            previous: period(previous, &costs, &measures, unit.scale, &unit.noun),
        });
    }
    Ok(out)
}

/// A unit's measure by day: its source's samples summed, or its pushed values. A value that
/// is not an exact decimal is left out (the day then counts as not measured).
async fn measures(
    store: &Store,
    unit: &Unit,
    (from, to): (NaiveDate, NaiveDate),
) -> anyhow::Result<BTreeMap<NaiveDate, Nanos>> {
    let mut out: BTreeMap<NaiveDate, Nanos> = BTreeMap::new();
    match &unit.measure {
        UnitMeasure::Source(source) => {
            for s in store
                .usage_samples(std::slice::from_ref(source), from, to)
                .await?
            {
                if let Some(v) = Nanos::parse(&s.value) {
                    *out.entry(s.day).or_default() += v;
                }
            }
        }
        UnitMeasure::Push => {
            for (day, value) in store.unit_values(&unit.name, from, to).await? {
                if let Some(v) = Nanos::parse(&value) {
                    out.insert(day, v);
                }
            }
        }
    }
    Ok(out)
}

/// Why pushed values were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error(
        "no [[unit]] named `{0}` takes pushed values; declare it with push = true in the rules"
    )]
    UnknownUnit(String),
    #[error("{0}")]
    BadValue(String),
}

/// Stores pushed values (day, decimal text) of the unit `name`, each replacing its day's.
pub async fn push_unit_values(
    store: &Store,
    rules: &Rules,
    name: &str,
    values: &[(NaiveDate, String)],
    clock: Clock,
) -> anyhow::Result<Result<usize, PushError>> {
    if !rules
        .units
        .iter()
        .any(|u| u.name == name && u.measure == UnitMeasure::Push)
    {
        return Ok(Err(PushError::UnknownUnit(name.to_string())));
    }
    for (i, (day, value)) in values.iter().enumerate() {
        if Nanos::parse(value).filter(|n| n.0 >= 0).is_none() {
            return Ok(Err(PushError::BadValue(format!(
                "value {} (day {day}) is `{value}`: give a non-negative decimal, e.g. \"12345\"",
                i + 1
            ))));
        }
    }
    Ok(Ok(store
        .push_unit_values(name, values, clock.stamp())
        .await?))
}
