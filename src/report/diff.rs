//! A candidate rule set against what is stored: per-service totals before and after, so a rule
//! change is reviewed as "payment-api +$120.40 (+8.1%)" before it changes anyone's bill. Pure.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::model::Allocation;
use crate::money::{human, Nanos};

/// One service's totals under the stored and the candidate allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub service: String,
    pub currency: String,
    pub stored: Nanos,
    pub candidate: Nanos,
    /// Per pool (empty name: direct cost): stored and candidate amounts, where they differ.
    pub pools: Vec<(String, Nanos, Nanos)>,
}

impl Change {
    pub fn delta(&self) -> Nanos {
        self.candidate - self.stored
    }
}

/// A service whose owner (team or cost center) differs between the stored and the candidate
/// allocations: its cost goes to another team's digest and statement line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnerMove {
    pub service: String,
    pub currency: String,
    /// (team, cost center) stored, and in the candidate.
    pub stored: (String, String),
    pub candidate: (String, String),
    /// The candidate's amount of the range, which moves.
    pub amount: Nanos,
}

#[derive(Debug, Clone)]
pub struct Diff {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    pub stored_rules: Vec<String>,
    pub candidate_rules: String,
    /// Services whose total changed, largest change first.
    pub changed: Vec<Change>,
    pub unchanged: usize,
    /// Services that change owner, by service.
    pub moved: Vec<OwnerMove>,
}

type Owners = BTreeMap<(String, String), ((String, String), Nanos)>;

/// Each (service, currency)'s owner (its latest day's team and cost center) and amount.
fn owners(allocations: &[Allocation]) -> Owners {
    let mut out: Owners = BTreeMap::new();
    let mut latest: BTreeMap<(String, String), chrono::NaiveDate> = BTreeMap::new();
    for a in allocations {
        let key = (a.service.clone(), a.currency.clone());
        let entry = out.entry(key.clone()).or_default();
        entry.1 += a.amount;
        let day = latest.entry(key).or_insert(a.day);
        if a.day >= *day {
            *day = a.day;
            entry.0 = (a.team.clone(), a.cost_center.clone());
        }
    }
    out
}

fn moves(stored: &[Allocation], candidate: &[Allocation]) -> Vec<OwnerMove> {
    let before = owners(stored);
    owners(candidate)
        .into_iter()
        .filter_map(|(key, (owner, amount))| {
            let (was, _) = before.get(&key)?;
            (*was != owner).then(|| OwnerMove {
                service: key.0,
                currency: key.1,
                stored: was.clone(),
                candidate: owner,
                amount,
            })
        })
        .collect()
}

type Totals = BTreeMap<(String, String), BTreeMap<String, Nanos>>;

fn totals(allocations: &[Allocation]) -> Totals {
    let mut out: Totals = BTreeMap::new();
    for a in allocations {
        *out.entry((a.service.clone(), a.currency.clone()))
            .or_default()
            .entry(a.pool.clone())
            .or_default() += a.amount;
    }
    out
}

/// Compares per-service totals (and their per-pool parts) of two allocations of one range.
pub fn diff(
    (from, to): (chrono::NaiveDate, chrono::NaiveDate),
    stored_rules: Vec<String>,
    candidate_rules: String,
    stored: &[Allocation],
    candidate: &[Allocation],
) -> Diff {
    let before = totals(stored);
    let after = totals(candidate);
    let keys: BTreeSet<&(String, String)> = before.keys().chain(after.keys()).collect();
    let empty = BTreeMap::new();
    let mut changed = Vec::new();
    let mut unchanged = 0;
    for key in keys {
        let b = before.get(key).unwrap_or(&empty);
        let a = after.get(key).unwrap_or(&empty);
        let pools: Vec<(String, Nanos, Nanos)> = b
            .keys()
            .chain(a.keys())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .map(|p| {
                (
                    p.clone(),
                    b.get(p).copied().unwrap_or_default(),
                    a.get(p).copied().unwrap_or_default(),
                )
            })
            .filter(|(_, x, y)| x != y)
            .collect();
        let change = Change {
            service: key.0.clone(),
            currency: key.1.clone(),
            stored: b.values().copied().sum(),
            candidate: a.values().copied().sum(),
            pools,
        };
        if change.pools.is_empty() {
            unchanged += 1;
        } else {
            changed.push(change);
        }
    }
    changed.sort_by(|x, y| {
        y.delta()
            .0
            .abs()
            .cmp(&x.delta().0.abs())
            .then(x.service.cmp(&y.service))
    });
    Diff {
        from,
        to,
        stored_rules,
        candidate_rules,
        changed,
        unchanged,
        moved: moves(stored, candidate),
    }
}

/// `+8.1%` of `delta` against `base`, one decimal, or `new` when there was nothing before.
pub fn percent(delta: Nanos, base: Nanos) -> String {
    if base.0 == 0 {
        return if delta.0 == 0 {
            "0.0%".into()
        } else {
            "new".into()
        };
    }
    let tenths = (delta.0.saturating_mul(1000) * 2 / base.0.abs() + (delta.0.signum())) / 2;
    let sign = if tenths > 0 {
        "+"
    } else if tenths < 0 {
        "-"
    } else {
        ""
    };
    format!("{sign}{}.{}%", tenths.abs() / 10, tenths.abs() % 10)
}

fn or_none(text: &str) -> &str {
    if text.is_empty() {
        "(none)"
    } else {
        text
    }
}

impl Diff {
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "dry run {} to {}: candidate rules {} against stored rules {} (nothing stored)",
            self.from,
            self.to,
            self.candidate_rules,
            if self.stored_rules.is_empty() {
                "(none: nothing allocated yet)".to_string()
            } else {
                self.stored_rules.join(", ")
            }
        );
        self.owner_lines(&mut out);
        if self.changed.is_empty() {
            let _ = writeln!(
                out,
                "no service's cost changes ({} unchanged)",
                self.unchanged
            );
            return out;
        }
        for c in &self.changed {
            let _ = writeln!(
                out,
                "{} {} ({}): {} -> {}",
                c.service,
                human(c.delta(), &c.currency, true),
                percent(c.delta(), c.stored),
                human(c.stored, &c.currency, false),
                human(c.candidate, &c.currency, false),
            );
            for (pool, before, after) in &c.pools {
                let name = if pool.is_empty() { "direct" } else { pool };
                let _ = writeln!(
                    out,
                    "    {name}: {} -> {} ({})",
                    human(*before, &c.currency, false),
                    human(*after, &c.currency, false),
                    human(*after - *before, &c.currency, true),
                );
            }
        }
        let _ = writeln!(
            out,
            "{} service(s) change, {} unchanged; the total stays the bill (changes sum to {})",
            self.changed.len(),
            self.unchanged,
            self.net()
                .iter()
                .map(|(c, n)| human(*n, c, true))
                .collect::<Vec<_>>()
                .join(", ")
        );
        out
    }

    /// `checkout-api moves: team payments -> core, cost center cc-1001 -> cc-1002 ($1,204.10)`.
    fn owner_lines(&self, out: &mut String) {
        for m in &self.moved {
            let mut parts = Vec::new();
            if m.stored.0 != m.candidate.0 {
                parts.push(format!(
                    "team {} -> {}",
                    or_none(&m.stored.0),
                    or_none(&m.candidate.0)
                ));
            }
            if m.stored.1 != m.candidate.1 {
                parts.push(format!(
                    "cost center {} -> {}",
                    or_none(&m.stored.1),
                    or_none(&m.candidate.1)
                ));
            }
            let _ = writeln!(
                out,
                "{} moves: {} ({} of this range)",
                m.service,
                parts.join(", "),
                human(m.amount, &m.currency, false)
            );
        }
    }

    /// The changes' sum per currency: zero whenever both sides allocated the same facts.
    pub fn net(&self) -> BTreeMap<String, Nanos> {
        let mut net: BTreeMap<String, Nanos> = BTreeMap::new();
        for c in &self.changed {
            *net.entry(c.currency.clone()).or_default() += c.delta();
        }
        net
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_rounds_half_away_from_zero() {
        assert_eq!(percent(Nanos(81), Nanos(1000)), "+8.1%");
        assert_eq!(percent(Nanos(-81), Nanos(1000)), "-8.1%");
        assert_eq!(percent(Nanos(5), Nanos(10_000)), "+0.1%");
        assert_eq!(percent(Nanos(4), Nanos(10_000)), "0.0%");
        assert_eq!(percent(Nanos(4), Nanos(0)), "new");
    }
}
