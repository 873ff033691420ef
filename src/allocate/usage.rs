//! Stored usage samples -> the weights of pools measured by live sources, day by day, with
//! where each share came from. Pure: a day uses its own sample, or the latest one at most
//! `max_age_days` older; without one, or when a member the source maps has no sample (unless
//! the rules say `missing = "zero"`), the pool has no weights that day and falls back.

use std::collections::BTreeMap;

use chrono::NaiveDate;

use super::engine::{UsageBasis, UsageWeights};
use crate::model::UsageSample;
use crate::rules::{parse_weight, Rules, WeightKey, WeightRow, WeightTable, WEIGHT_DECIMALS};

/// The weights of every live pool for each day of `from..=to`, from `samples` (which must
/// reach back `max_age_days` before `from` for the pools' staleness limits to apply).
pub fn live_weights(
    rules: &Rules,
    samples: &[UsageSample],
    from: NaiveDate,
    to: NaiveDate,
) -> UsageWeights {
    // source -> day -> samples of that day
    let mut by_source: BTreeMap<&str, BTreeMap<NaiveDate, Vec<&UsageSample>>> = BTreeMap::new();
    for s in samples {
        by_source
            .entry(s.source.as_str())
            .or_default()
            .entry(s.day)
            .or_default()
            .push(s);
    }
    let mut out = UsageWeights::default();
    for pool in &rules.pools {
        let Some(live) = &pool.live else { continue };
        let mut rows = Vec::new();
        for day in from.iter_days().take_while(|d| *d <= to) {
            let mut day_rows = Vec::new();
            let mut notes: BTreeMap<String, Vec<String>> = BTreeMap::new();
            let mut missing: Option<String> = None;
            for name in &live.sources {
                let source = rules
                    .source(name)
                    .expect("validated: pools name declared sources");
                let oldest = day - chrono::Duration::days(i64::from(live.max_age_days));
                let latest = by_source
                    .get(name.as_str())
                    .and_then(|days| days.range(oldest..=day).next_back());
                let Some((&sample_day, day_samples)) = latest else {
                    missing = Some(format!(
                        "no sample of source `{name}` within {} day(s) of {day}; run `costsplit sync usage`",
                        live.max_age_days
                    ));
                    break;
                };
                let mut per_service: BTreeMap<&str, u128> = BTreeMap::new();
                for s in day_samples.iter().filter(|s| !s.service.is_empty()) {
                    *per_service.entry(&s.service).or_default() +=
                        parse_weight(&s.value).unwrap_or(0);
                }
                let expected = source.map.services();
                let absent: Vec<&str> = expected
                    .iter()
                    .copied()
                    .filter(|s| pool.members.iter().any(|m| m == s))
                    .filter(|s| !per_service.contains_key(s))
                    .collect();
                if !absent.is_empty() && !live.missing_is_zero {
                    missing = Some(format!(
                        "the {sample_day} sample of source `{name}` has no value for {}; a missing measurement is not a zero (say missing = \"zero\" if it is)",
                        absent.join(", ")
                    ));
                    break;
                }
                let total: u128 = per_service.values().sum();
                let unit = day_samples.first().map(|s| s.unit.as_str()).unwrap_or("");
                for member in &pool.members {
                    if !expected.contains(member.as_str()) {
                        continue;
                    }
                    let weight = per_service.get(member.as_str()).copied().unwrap_or(0);
                    notes.entry(member.clone()).or_default().push(format!(
                        "{name} {sample_day}: {} of {} {unit}",
                        show_weight(weight),
                        show_weight(total)
                    ));
                    day_rows.push(WeightRow {
                        key: WeightKey {
                            day: Some(day),
                            resource_id: source.resource_id.clone(),
                        },
                        service: member.clone(),
                        weight,
                    });
                }
            }
            let basis = match missing {
                Some(reason) => UsageBasis::Missing(reason),
                None => {
                    rows.extend(day_rows);
                    UsageBasis::Measured(
                        notes
                            .into_iter()
                            .map(|(member, n)| (member, n.join("; ")))
                            .collect(),
                    )
                }
            };
            out.basis.insert((pool.name.clone(), day), basis);
        }
        out.by_pool
            .insert(pool.name.clone(), WeightTable::from_rows(rows));
    }
    out
}

/// A weight (scaled by 1e6) as the decimal it was measured as.
fn show_weight(weight: u128) -> String {
    let scale = 10u128.pow(WEIGHT_DECIMALS);
    let (whole, frac) = (weight / scale, weight % scale);
    if frac == 0 {
        whole.to_string()
    } else {
        let frac = format!("{frac:06}");
        format!("{whole}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rules {
        let loaded = crate::rules::load_texts(&[(
            "r.toml",
            r#"
[[service]]
name = "a"
[[service]]
name = "b"
[[source]]
name = "db"
kind = "postgres"
dsn_env = "X_DSN"
map = { "sa" = "a", "sb*" = "b" }
[[pool]]
name = "shared"
method = "usage"
usage = { source = "db", max_age_days = 2 }
match = { resource_id = "db-1" }
"#,
        )]);
        loaded
            .rules
            .unwrap_or_else(|| panic!("{:?}", loaded.diagnostics))
    }

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2025, 3, d).expect("valid")
    }

    fn sample(d: u32, member: &str, service: &str, value: &str) -> UsageSample {
        UsageSample {
            day: day(d),
            source: "db".into(),
            member: member.into(),
            service: service.into(),
            value: value.into(),
            unit: "bytes".into(),
        }
    }

    #[test]
    fn a_day_uses_its_sample_or_the_latest_within_the_age_limit() {
        let rules = rules();
        let samples = vec![
            sample(1, "sa", "a", "300"),
            sample(1, "sb1", "b", "50"),
            sample(1, "sb2", "b", "50"),
            sample(1, "other", "", "999"),
        ];
        let w = live_weights(&rules, &samples, day(1), day(4));
        let table = &w.by_pool["shared"];
        let set = table
            .lookup(day(3), None)
            .expect("day 3 uses the day-1 sample");
        assert_eq!(set["a"], 300_000_000);
        assert_eq!(set["b"], 100_000_000);
        assert_eq!(
            w.basis[&("shared".to_string(), day(1))],
            UsageBasis::Measured(
                [
                    (
                        "a".to_string(),
                        "db 2025-03-01: 300 of 400 bytes".to_string()
                    ),
                    (
                        "b".to_string(),
                        "db 2025-03-01: 100 of 400 bytes".to_string()
                    )
                ]
                .into()
            )
        );
        assert!(
            table.lookup(day(4), None).is_none(),
            "3 days old is too old"
        );
        assert!(matches!(
            &w.basis[&("shared".to_string(), day(4))],
            UsageBasis::Missing(reason) if reason.contains("no sample of source `db` within 2 day(s) of 2025-03-04")
        ));
    }

    #[test]
    fn a_member_without_a_sample_makes_the_pool_fall_back_not_bill_zero() {
        let rules = rules();
        let samples = vec![sample(1, "sa", "a", "300")];
        let w = live_weights(&rules, &samples, day(1), day(1));
        assert!(w.by_pool["shared"].lookup(day(1), None).is_none());
        assert!(matches!(
            &w.basis[&("shared".to_string(), day(1))],
            UsageBasis::Missing(reason) if reason.contains("has no value for b")
        ));
    }
}
