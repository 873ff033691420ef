//! Reports: rendering of data the jobs gathered, never a change to an amount. `mod.rs` is the
//! per-service totals (table, JSON, CSV) with the reconciliation of allocated against billed;
//! `statement.rs` finance's monthly chargeback CSV and FOCUS output; `digest.rs` the per-team
//! Slack digest's content; `explain.rs` where one service's money came from; `diff.rs` a
//! candidate rule set against the stored allocations; `page.rs` the web page; `opencost.rs`
//! and `cost_insights.rs` the API's shapes. Every CSV goes through `csv_out.rs`.

pub mod budgets;
pub mod cost_insights;
pub mod csv_out;
pub mod diff;
pub mod digest;
pub mod explain;
pub mod focus;
pub mod opencost;
pub mod page;
pub mod statement;
pub mod units;

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;

use crate::model::{Allocation, CostBasis, Provenance, ServiceTotal, UNALLOCATED};
use crate::money::{minor_decimals, Nanos};
use csv_out::{Cell, CsvOut};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// The widest the table's service column gets.
const MAX_NAME_WIDTH: usize = 60;

#[derive(Debug, Clone)]
pub struct Report {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub basis: CostBasis,
    /// What produced the stored allocations.
    pub provenance: Vec<Provenance>,
    /// Sorted by total (largest first), `unallocated` last.
    pub services: Vec<ServiceTotal>,
    pub billed: BTreeMap<String, Nanos>,
    pub allocated: BTreeMap<String, Nanos>,
    /// Days whose billing data the provider may still revise (Cost Explorer `Estimated`).
    pub estimated_days: Vec<NaiveDate>,
    /// Shared cost by service, pool and what gave the share (a usage sample, a fallback).
    pub shares: Vec<Share>,
    /// Pools that fell back: (pool, days, the first day's reason).
    pub fallbacks: Vec<(String, usize, String)>,
    /// The rules' budgets in the month the range ends in, as of its last day.
    pub budgets: Vec<crate::forecast::budget::BudgetStatus>,
}

/// A service's share of one pool over the days it was charged the same way.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Share {
    pub service: String,
    pub currency: String,
    pub pool: String,
    pub method: String,
    pub fallback_used: bool,
    /// The sample that gave it (`orders-db 2025-03-14: 12 of 40 bytes`), or the fallback's reason.
    pub basis: String,
    pub first_day: NaiveDate,
    pub last_day: NaiveDate,
    pub days: usize,
    #[serde(serialize_with = "exact")]
    pub amount: Nanos,
}

fn exact<S: serde::Serializer>(amount: &Nanos, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&amount.to_string())
}

impl Report {
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        basis: CostBasis,
        provenance: Vec<Provenance>,
        mut services: Vec<ServiceTotal>,
        billed: BTreeMap<String, Nanos>,
    ) -> Report {
        let mut allocated: BTreeMap<String, Nanos> = BTreeMap::new();
        for s in &services {
            *allocated.entry(s.currency.clone()).or_default() += s.total();
        }
        if !services.iter().any(|s| s.service == UNALLOCATED) {
            // Always visible, even when it is zero.
            for currency in billed.keys() {
                services.push(ServiceTotal {
                    service: UNALLOCATED.to_string(),
                    team: String::new(),
                    currency: currency.clone(),
                    direct: Nanos::ZERO,
                    shared: Nanos::ZERO,
                });
            }
        }
        services.sort_by(|a, b| {
            (a.service == UNALLOCATED)
                .cmp(&(b.service == UNALLOCATED))
                .then(b.total().cmp(&a.total()))
                .then(a.service.cmp(&b.service))
        });
        Report {
            from,
            to,
            basis,
            provenance,
            services,
            billed,
            allocated,
            estimated_days: Vec::new(),
            shares: Vec::new(),
            fallbacks: Vec::new(),
            budgets: Vec::new(),
        }
    }

    /// Adds the shared-cost lines of `allocations`: per service and pool, the days charged
    /// with the same method and basis (a live source's basis names its sample day, so each
    /// day of a measured pool is its own line), and the pools that fell back.
    pub fn with_shares(mut self, allocations: &[Allocation]) -> Report {
        let mut shares: BTreeMap<(String, String, String, String, bool, String), Share> =
            BTreeMap::new();
        let mut fallbacks: BTreeMap<&str, (std::collections::BTreeSet<NaiveDate>, &str)> =
            BTreeMap::new();
        for a in allocations.iter().filter(|a| !a.pool.is_empty()) {
            if a.fallback_used {
                let entry = fallbacks
                    .entry(&a.pool)
                    .or_insert_with(|| (Default::default(), &a.basis));
                entry.0.insert(a.day);
            }
            let key = (
                a.service.clone(),
                a.currency.clone(),
                a.pool.clone(),
                a.method.as_str().to_string(),
                a.fallback_used,
                a.basis.clone(),
            );
            let share = shares.entry(key).or_insert_with(|| Share {
                service: a.service.clone(),
                currency: a.currency.clone(),
                pool: a.pool.clone(),
                method: a.method.as_str().to_string(),
                fallback_used: a.fallback_used,
                basis: a.basis.clone(),
                first_day: a.day,
                last_day: a.day,
                days: 0,
                amount: Nanos::ZERO,
            });
            share.first_day = share.first_day.min(a.day);
            share.last_day = share.last_day.max(a.day);
            share.days += 1;
            share.amount += a.amount;
        }
        self.fallbacks = fallbacks
            .into_iter()
            .map(|(pool, (days, reason))| (pool.to_string(), days.len(), reason.to_string()))
            .collect();
        self.shares = shares.into_values().collect();
        self
    }

    /// One line per pool that fell back, with the first day's reason, for the table's footer.
    fn fallback_lines(&self) -> Vec<String> {
        self.fallbacks
            .iter()
            .map(|(pool, days, reason)| {
                let reason = reason.strip_prefix("fallback: ").unwrap_or(reason);
                format!("fallback: pool {pool} used its fallback on {days} day(s) ({reason})")
            })
            .collect()
    }

    /// Marks the days the provider may still revise.
    pub fn with_estimated_days(mut self, days: Vec<NaiveDate>) -> Report {
        self.estimated_days = days;
        self
    }

    fn estimated_line(&self) -> Option<String> {
        let first = self.estimated_days.first()?;
        let last = self.estimated_days.last()?;
        Some(format!(
            "estimated: {} day(s) between {first} and {last} may still be restated by the provider; their figures can change",
            self.estimated_days.len()
        ))
    }

    /// Allocated equals billed for every currency.
    pub fn reconciled(&self) -> bool {
        let currencies: std::collections::BTreeSet<&String> =
            self.billed.keys().chain(self.allocated.keys()).collect();
        currencies.into_iter().all(|c| {
            self.billed.get(c).copied().unwrap_or_default()
                == self.allocated.get(c).copied().unwrap_or_default()
        })
    }

    /// Keeps only one service's rows (a developer's view).
    pub fn only_service(mut self, service: &str) -> Report {
        self.services.retain(|s| s.service == service);
        self.shares.retain(|s| s.service == service);
        let scope = format!("service {service}");
        self.budgets.retain(|b| b.scope == scope);
        self
    }

    pub fn render(&self, format: Format, filtered: bool) -> String {
        match format {
            Format::Table => self.table(filtered),
            Format::Json => self.json(filtered),
            Format::Csv => self.csv(),
        }
    }

    fn rules_label(&self) -> String {
        let hashes: Vec<&str> = self
            .provenance
            .iter()
            .map(|p| p.rules_hash.as_str())
            .collect();
        hashes.join(", ")
    }

    fn table(&self, filtered: bool) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "cost by service, {} to {} (cost basis: {}, rules {})",
            self.from,
            self.to,
            self.basis,
            self.rules_label()
        );
        // Wide enough for ordinary names; a longer one overflows its column instead of
        // widening every row (and a name past 65,535 characters cannot be a format width).
        let width = self
            .services
            .iter()
            .map(|s| s.service.chars().count())
            .max()
            .unwrap_or(7)
            .clamp(7, MAX_NAME_WIDTH);
        let _ = writeln!(
            out,
            "{:<width$}  {:<12}  {:>16}  {:>16}  {:>16}  currency",
            "service", "team", "direct", "shared", "total"
        );
        for s in &self.services {
            let _ = writeln!(
                out,
                "{:<width$}  {:<12}  {:>16}  {:>16}  {:>16}  {}",
                s.service,
                s.team,
                s.direct.format(minor_decimals(&s.currency)),
                s.shared.format(minor_decimals(&s.currency)),
                s.total().format(minor_decimals(&s.currency)),
                s.currency
            );
        }
        if !filtered {
            for line in self.reconciliation_lines() {
                let _ = writeln!(out, "{line}");
            }
        }
        if let Some(line) = self.estimated_line() {
            let _ = writeln!(out, "{line}");
        }
        for line in self.fallback_lines() {
            let _ = writeln!(out, "{line}");
        }
        for b in &self.budgets {
            let _ = writeln!(out, "budget {}", b.line());
        }
        out
    }

    /// One line per currency: `allocated X == billed Y` and whether they match.
    pub fn reconciliation_lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        let currencies: std::collections::BTreeSet<&String> =
            self.billed.keys().chain(self.allocated.keys()).collect();
        for c in currencies {
            let billed = self.billed.get(c).copied().unwrap_or_default();
            let allocated = self.allocated.get(c).copied().unwrap_or_default();
            if billed == allocated {
                lines.push(format!(
                    "reconciliation {c}: allocated {allocated} == billed {billed} (exact to 1e-9; difference 0)"
                ));
            } else {
                lines.push(format!(
                    "reconciliation {c}: allocated {allocated} != billed {billed} (difference {}): the facts changed after the last allocate; run `costsplit allocate` for this range again",
                    allocated - billed
                ));
            }
        }
        if self.provenance.len() > 1 {
            lines.push(format!(
                "note: this range was allocated by {} different rule sets or cost bases; re-run `costsplit allocate` over the whole range for one consistent view",
                self.provenance.len()
            ));
        }
        lines
    }

    fn json(&self, filtered: bool) -> String {
        // Typed rows, not `serde_json::Value`: a Value holds no integer past i64, and an
        // amount's nano-units can be (serde_json writes an i128 as its digits).
        #[derive(serde::Serialize)]
        struct Money {
            amount: String,
            nanos: i128,
        }
        let money = |n: Nanos| Money {
            amount: n.to_string(),
            nanos: n.0,
        };
        #[derive(serde::Serialize)]
        struct Row<'a> {
            service: &'a str,
            team: &'a str,
            currency: &'a str,
            direct: Money,
            shared: Money,
            total: Money,
        }
        #[derive(serde::Serialize)]
        struct Totals {
            billed: BTreeMap<String, Money>,
            allocated: BTreeMap<String, Money>,
            reconciled: bool,
        }
        #[derive(serde::Serialize)]
        struct Out<'a> {
            from: String,
            to: String,
            cost_basis: &'a str,
            rules: Vec<&'a str>,
            services: Vec<Row<'a>>,
            estimated_days: Vec<String>,
            shares: &'a [Share],
            #[serde(skip_serializing_if = "Vec::is_empty")]
            budgets: Vec<budgets::BudgetJson<'a>>,
            #[serde(flatten, skip_serializing_if = "Option::is_none")]
            totals: Option<Totals>,
        }
        let totals = |map: &BTreeMap<String, Nanos>| {
            map.iter().map(|(c, n)| (c.clone(), money(*n))).collect()
        };
        let out = Out {
            from: self.from.to_string(),
            to: self.to.to_string(),
            cost_basis: self.basis.as_str(),
            rules: self
                .provenance
                .iter()
                .map(|p| p.rules_hash.as_str())
                .collect(),
            services: self
                .services
                .iter()
                .map(|s| Row {
                    service: &s.service,
                    team: &s.team,
                    currency: &s.currency,
                    direct: money(s.direct),
                    shared: money(s.shared),
                    total: money(s.total()),
                })
                .collect(),
            estimated_days: self.estimated_days.iter().map(|d| d.to_string()).collect(),
            shares: &self.shares,
            budgets: budgets::json_rows(&self.budgets),
            totals: (!filtered).then(|| Totals {
                billed: totals(&self.billed),
                allocated: totals(&self.allocated),
                reconciled: self.reconciled(),
            }),
        };
        serde_json::to_string_pretty(&out).expect("these rows always serialise") + "\n"
    }

    fn csv(&self) -> String {
        let mut out = CsvOut::new(&["service", "team", "currency", "direct", "shared", "total"]);
        for s in &self.services {
            let (direct, shared, total) = (
                s.direct.to_string(),
                s.shared.to_string(),
                s.total().to_string(),
            );
            out.row(&[
                Cell::Text(&s.service),
                Cell::Text(&s.team),
                Cell::Text(&s.currency),
                Cell::Number(&direct),
                Cell::Number(&shared),
                Cell::Number(&total),
            ]);
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A service name of 70,000 characters (anyone who can tag a resource can write one)
    /// made the table panic for everyone's month.
    #[test]
    fn a_huge_service_name_does_not_break_the_table() {
        let day = NaiveDate::from_ymd_opt(2025, 3, 1).expect("day");
        let services = vec![ServiceTotal {
            service: "x".repeat(70_000),
            team: String::new(),
            currency: "USD".into(),
            direct: Nanos(1_000_000_000),
            shared: Nanos::ZERO,
        }];
        let billed = [("USD".to_string(), Nanos(1_000_000_000))].into();
        let report = Report::new(day, day, CostBasis::Effective, Vec::new(), services, billed);
        let table = report.render(Format::Table, false);
        assert!(table.contains(&"x".repeat(70_000)));
        assert!(table.contains("unallocated"));
    }
}
