//! Per-service cost reports (table, JSON, CSV) with the reconciliation of allocated against
//! billed. Pure formatting over numbers the store computed; amounts stay exact until shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde_json::json;

use crate::model::{CostBasis, UNALLOCATED};
use crate::money::Nanos;
use crate::store::ServiceTotal;

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
    /// (cost basis, rules hash) pairs of the stored allocations.
    pub provenance: Vec<(String, String)>,
    /// Sorted by total (largest first), `unallocated` last.
    pub services: Vec<ServiceTotal>,
    pub billed: BTreeMap<String, Nanos>,
    pub allocated: BTreeMap<String, Nanos>,
    /// Days whose billing data the provider may still revise (Cost Explorer `Estimated`).
    pub estimated_days: Vec<NaiveDate>,
}

impl Report {
    pub fn new(
        from: NaiveDate,
        to: NaiveDate,
        basis: CostBasis,
        provenance: Vec<(String, String)>,
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
        }
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
        let hashes: Vec<&str> = self.provenance.iter().map(|(_, h)| h.as_str()).collect();
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
                s.direct.format(2),
                s.shared.format(2),
                s.total().format(2),
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
        let money = |n: Nanos| json!({"amount": n.to_string(), "nanos": n.0});
        let services: Vec<_> = self
            .services
            .iter()
            .map(|s| {
                json!({
                    "service": s.service,
                    "team": s.team,
                    "currency": s.currency,
                    "direct": money(s.direct),
                    "shared": money(s.shared),
                    "total": money(s.total()),
                })
            })
            .collect();
        let mut value = json!({
            "from": self.from.to_string(),
            "to": self.to.to_string(),
            "cost_basis": self.basis.as_str(),
            "rules": self.provenance.iter().map(|(_, h)| h).collect::<Vec<_>>(),
            "services": services,
            "estimated_days": self.estimated_days.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
        });
        if !filtered {
            value["billed"] = self
                .billed
                .iter()
                .map(|(c, n)| (c.clone(), money(*n)))
                .collect();
            value["allocated"] = self
                .allocated
                .iter()
                .map(|(c, n)| (c.clone(), money(*n)))
                .collect();
            value["reconciled"] = json!(self.reconciled());
        }
        serde_json::to_string_pretty(&value).expect("JSON values always serialise") + "\n"
    }

    fn csv(&self) -> String {
        let mut writer = csv::Writer::from_writer(Vec::new());
        let _ = writer.write_record(["service", "team", "currency", "direct", "shared", "total"]);
        for s in &self.services {
            let _ = writer.write_record([
                s.service.clone(),
                s.team.clone(),
                s.currency.clone(),
                s.direct.to_string(),
                s.shared.to_string(),
                s.total().to_string(),
            ]);
        }
        String::from_utf8(writer.into_inner().expect("writing to memory cannot fail"))
            .expect("CSV of UTF-8 strings is UTF-8")
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
