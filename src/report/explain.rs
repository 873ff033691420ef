//! Where every dollar of one service's month came from: direct cost by provider service, and
//! each pool with its total, method, what gave the share (weights, a usage sample, a fallback's
//! reason) and the daily ratio, summarised. The parts add up to the service's total. Pure.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;

use super::digest::percent_of_ppb;
use super::statement::ratio_text;
use crate::model::Allocation;
use crate::money::{human, Nanos};

/// One pool's part of the service's cost, for one way of splitting it (its method, or the
/// fallback on the days it applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPart {
    pub pool: String,
    /// `usage`, `fallback:proportional`, …
    pub method: String,
    pub days: usize,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    /// The whole pool over those days, and the service's part of it.
    pub pool_total: Nanos,
    pub share: Nanos,
    /// The smallest and largest daily ratio, in parts per billion.
    pub min_ppb: i64,
    pub max_ppb: i64,
    /// What gave the share on the last of those days (empty for equal, fixed, proportional).
    pub basis: String,
}

#[derive(Debug, Clone)]
pub struct Explanation {
    pub service: String,
    pub month: String,
    pub currency: String,
    pub rules: Vec<String>,
    /// Direct cost by provider service, largest first.
    pub direct: Vec<(String, Nanos)>,
    pub pools: Vec<PoolPart>,
    pub total: Nanos,
}

/// Explains `service` from all of the month's allocations (the other members' rows give each
/// pool's total). One explanation per currency the service was charged in.
pub fn explain(
    service: &str,
    month: &str,
    rules: Vec<String>,
    allocations: &[Allocation],
) -> Vec<Explanation> {
    let mut pool_day = PoolDays::new();
    for a in allocations.iter().filter(|a| !a.pool.is_empty()) {
        *pool_day
            .entry((a.currency.clone(), a.pool.clone(), a.day))
            .or_default() += a.amount;
    }
    explain_with(service, month, rules, allocations, &pool_day)
}

/// Each shared pool's total per (currency, pool, day).
pub type PoolDays = BTreeMap<(String, String, NaiveDate), Nanos>;

/// Explains `service` from its own allocations (others' rows are skipped) and the totals of
/// the pools it has shares of.
pub fn explain_with(
    service: &str,
    month: &str,
    rules: Vec<String>,
    allocations: &[Allocation],
    pool_day: &PoolDays,
) -> Vec<Explanation> {
    let mut by_currency: BTreeMap<&str, Explanation> = BTreeMap::new();
    let mut direct: BTreeMap<(&str, &str), Nanos> = BTreeMap::new();
    let mut parts: BTreeMap<(&str, &str, String), PoolPart> = BTreeMap::new();
    for a in allocations.iter().filter(|a| a.service == service) {
        let e = by_currency
            .entry(&a.currency)
            .or_insert_with(|| Explanation {
                service: service.to_string(),
                month: month.to_string(),
                currency: a.currency.clone(),
                rules: rules.clone(),
                direct: Vec::new(),
                pools: Vec::new(),
                total: Nanos::ZERO,
            });
        e.total += a.amount;
        if a.pool.is_empty() {
            let name = if a.provider_service.is_empty() {
                "(no provider service)"
            } else {
                &a.provider_service
            };
            *direct.entry((&a.currency, name)).or_default() += a.amount;
            continue;
        }
        let method = if a.fallback_used {
            format!("fallback:{}", a.method.as_str())
        } else {
            a.method.as_str().to_string()
        };
        let part = parts
            .entry((&a.currency, &a.pool, method.clone()))
            .or_insert_with(|| PoolPart {
                pool: a.pool.clone(),
                method,
                days: 0,
                first_day: a.day,
                last_day: a.day,
                pool_total: Nanos::ZERO,
                share: Nanos::ZERO,
                min_ppb: i64::MAX,
                max_ppb: i64::MIN,
                basis: String::new(),
            });
        part.days += 1;
        part.first_day = part.first_day.min(a.day);
        if a.day >= part.last_day {
            part.last_day = a.day;
            part.basis = a.basis.clone();
        }
        part.pool_total += pool_day
            .get(&(a.currency.clone(), a.pool.clone(), a.day))
            .copied()
            .unwrap_or_default();
        part.share += a.amount;
        part.min_ppb = part.min_ppb.min(a.ratio_ppb);
        part.max_ppb = part.max_ppb.max(a.ratio_ppb);
    }
    for ((currency, name), amount) in direct {
        if let Some(e) = by_currency.get_mut(currency) {
            e.direct.push((name.to_string(), amount));
        }
    }
    for ((currency, _, _), part) in parts {
        if let Some(e) = by_currency.get_mut(currency) {
            e.pools.push(part);
        }
    }
    let mut out: Vec<Explanation> = by_currency.into_values().collect();
    for e in &mut out {
        e.direct.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    out
}

impl Explanation {
    pub fn direct_total(&self) -> Nanos {
        self.direct.iter().map(|(_, n)| *n).sum()
    }

    pub fn shared_total(&self) -> Nanos {
        self.pools.iter().map(|p| p.share).sum()
    }

    pub fn text(&self) -> String {
        let c = self.currency.as_str();
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} in {}: {} (rules {})",
            self.service,
            self.month,
            human(self.total, c, false),
            self.rules.join(", ")
        );
        let _ = writeln!(out, "direct: {}", human(self.direct_total(), c, false));
        for (name, amount) in &self.direct {
            let _ = writeln!(out, "  {name}: {}", human(*amount, c, false));
        }
        let _ = writeln!(out, "shared: {}", human(self.shared_total(), c, false));
        for p in &self.pools {
            let ratio = ratio_text(p.share, p.pool_total);
            let range = if p.min_ppb == p.max_ppb {
                format!("{} every day", percent_of_ppb(p.min_ppb))
            } else {
                format!(
                    "daily {} to {}",
                    percent_of_ppb(p.min_ppb),
                    percent_of_ppb(p.max_ppb)
                )
            };
            let _ = writeln!(
                out,
                "  {} ({}): {} of the pool's {} (ratio {ratio}; {range}) on {} day(s), {} to {}",
                p.pool,
                p.method,
                human(p.share, c, false),
                human(p.pool_total, c, false),
                p.days,
                p.first_day,
                p.last_day
            );
            if !p.basis.is_empty() {
                let _ = writeln!(out, "      last day's basis: {}", p.basis);
            }
        }
        let _ = writeln!(
            out,
            "check: direct {} + shared {} = total {}",
            self.direct_total(),
            self.shared_total(),
            self.total
        );
        out
    }
}
