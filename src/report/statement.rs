//! Finance's monthly chargeback statement: the month's allocations as CSV lines (one per
//! service, team or cost center, or with `detail` one per origin: direct cost by provider
//! service, each pool and method, unallocated), in each currency's own minor unit (cents,
//! whole yen, fils: ISO 4217) that sum to the month's billed total exactly (largest remainder
//! over the exact nano-unit lines, never per-row rounding), with a reconciliation summary per
//! currency. Pure: the job gathers the allocations.

use std::collections::{BTreeMap, BTreeSet};

use super::csv_out::{Cell, CsvOut};
use crate::forecast::budget::BudgetStatus;
use crate::model::{Allocation, CostBasis, UNALLOCATED};
use crate::money::{minor_text, nanos_per_minor, round_preserving_sum, Nanos};

/// What one statement line stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Service,
    Team,
    CostCenter,
}

/// Everything a statement is made of, gathered by the job.
#[derive(Debug, Clone)]
pub struct StatementInput<'a> {
    /// `YYYY-MM`.
    pub month: &'a str,
    pub basis: CostBasis,
    /// The rules hash(es) of the stored allocations, joined with `+` when more than one.
    pub rules_hash: String,
    pub allocations: &'a [Allocation],
    /// The month's facts by currency, for the chosen cost basis.
    pub billed: &'a BTreeMap<String, Nanos>,
    /// A day of the month may still be restated by the provider.
    pub estimated: bool,
    /// Until this day a rules edit still re-allocates the month (the daemon re-allocates the
    /// previous month through the next month's `month_final_day`); after it, only changed
    /// facts do.
    pub open_until: Option<chrono::NaiveDate>,
}

/// One line of the statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub cost_center: String,
    pub team: String,
    pub service: String,
    pub pool: String,
    /// `direct`, `equal`, `fixed`, `proportional`, `usage`, `fallback:<method>`,
    /// `unallocated`, or `total` for a summary line that adds several of them.
    pub method: String,
    /// Direct and unallocated lines of a detailed statement: the provider service.
    pub provider_service: String,
    /// Exact amount of the line (before rounding to cents).
    pub exact: Nanos,
    /// Whole of what the ratio is taken of: the pool's month total for a pool line, else
    /// the month's billed total.
    pub whole: Nanos,
    /// The amount in the currency's minor unit (cents; whole yen; thousandths of a dinar).
    pub minor: i128,
    pub currency: String,
}

/// Per-currency reconciliation of a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub currency: String,
    pub billed_exact: Nanos,
    /// The billed total rounded to the minor unit (half away from zero).
    pub billed_minor: i128,
    /// The sum of the lines' minor units.
    pub allocated_minor: i128,
}

#[derive(Debug, Clone)]
pub struct Statement {
    pub month: String,
    pub basis: CostBasis,
    pub rules_hash: String,
    pub estimated: bool,
    pub open_until: Option<chrono::NaiveDate>,
    pub lines: Vec<Line>,
    pub totals: Vec<Reconciliation>,
}

/// Why a statement cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatementError {
    #[error("no allocations for {0}; run `costsplit allocate --month {0}` first")]
    NoAllocations(String),
    #[error("the stored allocations of {month} do not add up to its billing facts in {currency} (allocated {allocated}, billed {billed}): the facts changed after the last allocate; run `costsplit allocate --month {month}` again")]
    Stale {
        month: String,
        currency: String,
        allocated: Nanos,
        billed: Nanos,
    },
}

fn method_label(a: &Allocation) -> String {
    if a.fallback_used {
        format!("fallback:{}", a.method.as_str())
    } else {
        a.method.as_str().to_string()
    }
}

type Key = (String, bool, String, String, String, String, String, String);

/// Builds the statement. Refuses allocations that do not add up to the billed facts.
pub fn statement(
    input: &StatementInput<'_>,
    by: GroupBy,
    detail: bool,
) -> Result<Statement, StatementError> {
    if input.allocations.is_empty() {
        return Err(StatementError::NoAllocations(input.month.to_string()));
    }
    let currencies = reconciled_currencies(input)?;
    let mut lines = grouped_lines(input, by, detail);
    let totals = currencies
        .into_iter()
        .map(|currency| round_currency(input, currency, &mut lines))
        .collect();
    Ok(Statement {
        month: input.month.to_string(),
        basis: input.basis,
        rules_hash: input.rules_hash.clone(),
        estimated: input.estimated,
        open_until: input.open_until,
        lines,
        totals,
    })
}

/// The currencies of the month, once the allocations are known to add up to the billed facts
/// in each.
fn reconciled_currencies<'a>(
    input: &StatementInput<'a>,
) -> Result<BTreeSet<&'a str>, StatementError> {
    let mut allocated: BTreeMap<&str, Nanos> = BTreeMap::new();
    for a in input.allocations {
        *allocated.entry(&a.currency).or_default() += a.amount;
    }
    let currencies: BTreeSet<&str> = allocated
        .keys()
        .copied()
        .chain(input.billed.keys().map(String::as_str))
        .collect();
    for currency in &currencies {
        let a = allocated.get(currency).copied().unwrap_or_default();
        let b = input.billed.get(*currency).copied().unwrap_or_default();
        if a != b {
            return Err(StatementError::Stale {
                month: input.month.to_string(),
                currency: currency.to_string(),
                allocated: a,
                billed: b,
            });
        }
    }
    Ok(currencies)
}

/// The exact lines, grouped by `by` (and with `detail` by pool, method and provider
/// service), sorted by currency with unallocated last; not yet rounded.
fn grouped_lines(input: &StatementInput<'_>, by: GroupBy, detail: bool) -> Vec<Line> {
    let mut pools: BTreeMap<(&str, &str), Nanos> = BTreeMap::new();
    for a in input.allocations.iter().filter(|a| !a.pool.is_empty()) {
        *pools.entry((&a.currency, &a.pool)).or_default() += a.amount;
    }
    // Sort key: currency, unallocated last, then the columns left to right.
    let mut grouped: BTreeMap<Key, (Nanos, BTreeSet<String>)> = BTreeMap::new();
    for a in input.allocations {
        let unallocated = a.service == UNALLOCATED;
        let (cost_center, team, service) = match (unallocated, by) {
            (true, _) => (String::new(), String::new(), UNALLOCATED.to_string()),
            (_, GroupBy::Service) => (a.cost_center.clone(), a.team.clone(), a.service.clone()),
            (_, GroupBy::Team) => (a.cost_center.clone(), a.team.clone(), String::new()),
            (_, GroupBy::CostCenter) => (a.cost_center.clone(), String::new(), String::new()),
        };
        let (pool, method, provider) = if detail {
            (a.pool.clone(), method_label(a), a.provider_service.clone())
        } else {
            (String::new(), String::new(), String::new())
        };
        let key = (
            a.currency.clone(),
            unallocated,
            cost_center,
            team,
            service,
            pool,
            method,
            provider,
        );
        let entry = grouped.entry(key).or_default();
        entry.0 += a.amount;
        entry.1.insert(method_label(a));
    }
    grouped
        .into_iter()
        .map(|(key, (exact, methods))| {
            let (currency, _, cost_center, team, service, pool, method, provider) = key;
            let method = if detail {
                method
            } else if methods.len() == 1 {
                methods.into_iter().next().expect("one method")
            } else {
                "total".to_string()
            };
            let whole = if pool.is_empty() {
                input.billed.get(&currency).copied().unwrap_or_default()
            } else {
                pools
                    .get(&(currency.as_str(), pool.as_str()))
                    .copied()
                    .unwrap_or_default()
            };
            Line {
                cost_center,
                team,
                service,
                pool,
                method,
                provider_service: provider,
                exact,
                whole,
                minor: 0,
                currency,
            }
        })
        .collect()
}

/// Rounds one currency's lines to its minor unit, preserving their sum, and reconciles it.
fn round_currency(
    input: &StatementInput<'_>,
    currency: &str,
    lines: &mut [Line],
) -> Reconciliation {
    let indices: Vec<usize> = (0..lines.len())
        .filter(|&i| lines[i].currency == currency)
        .collect();
    let unit = nanos_per_minor(currency);
    let exact: Vec<i128> = indices.iter().map(|&i| lines[i].exact.0).collect();
    let minor = round_preserving_sum(&exact, unit);
    for (&i, m) in indices.iter().zip(minor) {
        lines[i].minor = m;
    }
    let billed_exact = input.billed.get(currency).copied().unwrap_or_default();
    Reconciliation {
        currency: currency.to_string(),
        billed_exact,
        billed_minor: round_preserving_sum(&[billed_exact.0], unit)[0],
        allocated_minor: indices.iter().map(|&i| lines[i].minor).sum(),
    }
}

/// `part / whole` with six decimals, rounded half away from zero (0 when the whole is 0).
pub fn ratio_text(part: Nanos, whole: Nanos) -> String {
    if whole.0 == 0 {
        return "0.000000".to_string();
    }
    const SCALE: i128 = 1_000_000;
    let num = part.0.saturating_mul(SCALE);
    let (q, r) = (num / whole.0, num % whole.0);
    let q = if 2 * r.abs() >= whole.0.abs() {
        q + if (num < 0) != (whole.0 < 0) { -1 } else { 1 }
    } else {
        q
    };
    let sign = if q < 0 { "-" } else { "" };
    format!("{sign}{}.{:06}", q.abs() / SCALE, q.abs() % SCALE)
}

/// The statement's column contract (README, "Chargeback statements"). Append-only: new
/// columns go at the end.
pub const COLUMNS: [&str; 13] = [
    "billing_period",
    "cost_center",
    "team",
    "service",
    "pool",
    "method",
    "allocated_ratio",
    "amount",
    "currency",
    "cost_basis",
    "estimated",
    "provider_service",
    "rules_hash",
];

/// The columns the summary appends when the rules have budgets. Append-only.
pub const BUDGET_COLUMNS: [&str; 8] = [
    "budget",
    "budget_scope",
    "budget_amount",
    "budget_to_date",
    "budget_forecast",
    "budget_forecast_low",
    "budget_forecast_high",
    "budget_state",
];

/// The summary mode's columns. Append-only, as [`COLUMNS`].
pub const SUMMARY_COLUMNS: [&str; 9] = [
    "billing_period",
    "currency",
    "cost_basis",
    "billed",
    "allocated",
    "difference",
    "estimated",
    "rules_hash",
    "rules_edits_until",
];

impl Statement {
    pub fn csv(&self) -> String {
        let mut out = CsvOut::new(&COLUMNS);
        let estimated = if self.estimated { "true" } else { "false" };
        for line in &self.lines {
            let ratio = ratio_text(line.exact, line.whole);
            let amount = minor_text(line.minor, &line.currency);
            out.row(&[
                Cell::Text(&self.month),
                Cell::Text(&line.cost_center),
                Cell::Text(&line.team),
                Cell::Text(&line.service),
                Cell::Text(&line.pool),
                Cell::Text(&line.method),
                Cell::Number(&ratio),
                Cell::Number(&amount),
                Cell::Text(&line.currency),
                Cell::Text(self.basis.as_str()),
                Cell::Text(estimated),
                Cell::Text(&line.provider_service),
                Cell::Text(&self.rules_hash),
            ]);
        }
        out.finish()
    }

    pub fn summary_csv(&self) -> String {
        self.summary_csv_with_budgets(&[])
    }

    /// The summary, and when the rules have budgets a row per budget after the
    /// reconciliation rows, with [`BUDGET_COLUMNS`] appended (empty on the reconciliation
    /// rows; their `billed`, `allocated` and `difference` empty on a budget's row). Amounts are
    /// rounded to the currency's minor unit; the forecast is an estimate, not allocated money.
    pub fn summary_csv_with_budgets(&self, budgets: &[BudgetStatus]) -> String {
        let columns: Vec<&str> = if budgets.is_empty() {
            SUMMARY_COLUMNS.to_vec()
        } else {
            SUMMARY_COLUMNS
                .iter()
                .chain(&BUDGET_COLUMNS)
                .copied()
                .collect()
        };
        let mut out = CsvOut::new(&columns);
        let blanks = [Cell::Text(""); BUDGET_COLUMNS.len()];
        let estimated = if self.estimated { "true" } else { "false" };
        let open_until = self
            .open_until
            .map(|d| d.format("%Y-%m-%d").to_string())
            .unwrap_or_default();
        for t in &self.totals {
            let billed = minor_text(t.billed_minor, &t.currency);
            let allocated = minor_text(t.allocated_minor, &t.currency);
            let difference = minor_text(t.allocated_minor - t.billed_minor, &t.currency);
            let cells = [
                Cell::Text(&self.month),
                Cell::Text(&t.currency),
                Cell::Text(self.basis.as_str()),
                Cell::Number(&billed),
                Cell::Number(&allocated),
                Cell::Number(&difference),
                Cell::Text(estimated),
                Cell::Text(&self.rules_hash),
                Cell::Text(&open_until),
            ];
            if budgets.is_empty() {
                out.row(&cells);
            } else {
                let all: Vec<Cell> = cells.into_iter().chain(blanks).collect();
                out.row(&all);
            }
        }
        for b in budgets {
            let c = b.currency.as_str();
            let minor = |n: Nanos| {
                let per = nanos_per_minor(c);
                let half = per / 2;
                let rounded = if n.0 >= 0 {
                    (n.0 + half) / per
                } else {
                    (n.0 - half) / per
                };
                minor_text(rounded, c)
            };
            let amount = b.amount.map(minor).unwrap_or_default();
            let to_date = minor(b.to_date);
            let (point, low, high) = match b.forecast.ready() {
                Some(m) => (minor(m.point), minor(m.low), minor(m.high)),
                None => Default::default(),
            };
            let state = b.state();
            out.row(&[
                Cell::Text(&self.month),
                Cell::Text(c),
                Cell::Text(self.basis.as_str()),
                Cell::Text(""),
                Cell::Text(""),
                Cell::Text(""),
                Cell::Text(estimated),
                Cell::Text(&self.rules_hash),
                Cell::Text(&open_until),
                Cell::Text(&b.name),
                Cell::Text(&b.scope),
                Cell::Number(&amount),
                Cell::Number(&to_date),
                Cell::Number(&point),
                Cell::Number(&low),
                Cell::Number(&high),
                Cell::Text(state),
            ]);
        }
        out.finish()
    }

    /// Every currency's lines add up to its billed total, to the minor unit.
    pub fn reconciled(&self) -> bool {
        self.totals
            .iter()
            .all(|t| t.allocated_minor == t.billed_minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Method;
    use chrono::NaiveDate;

    fn alloc(service: &str, pool: &str, method: Method, amount: i128) -> Allocation {
        Allocation {
            day: NaiveDate::from_ymd_opt(2025, 3, 1).expect("day"),
            service: service.into(),
            team: "t".into(),
            cost_center: "cc".into(),
            pool: pool.into(),
            provider_service: String::new(),
            method,
            fallback_used: false,
            ratio_ppb: 0,
            amount: Nanos(amount),
            currency: "USD".into(),
            basis: String::new(),
        }
    }

    fn input<'a>(
        allocations: &'a [Allocation],
        billed: &'a BTreeMap<String, Nanos>,
    ) -> StatementInput<'a> {
        StatementInput {
            month: "2025-03",
            basis: CostBasis::Effective,
            rules_hash: "h".into(),
            allocations,
            billed,
            estimated: false,
            open_until: None,
        }
    }

    #[test]
    fn thirds_round_to_cents_that_sum_to_the_bill() {
        // $1.00 split three ways, three times: per-row rounding would give 0.33 * 9 = 2.97.
        let mut allocations = Vec::new();
        for service in ["a", "b", "c"] {
            for pool in ["p1", "p2", "p3"] {
                allocations.push(alloc(service, pool, Method::Equal, 333_333_333));
            }
        }
        allocations.push(alloc("a", "p1", Method::Equal, 1));
        allocations.push(alloc("b", "p2", Method::Equal, 1));
        allocations.push(alloc("c", "p3", Method::Equal, 1));
        let billed = [("USD".to_string(), Nanos(3_000_000_000))].into();
        let input = input(&allocations, &billed);
        for detail in [false, true] {
            let s = statement(&input, GroupBy::Service, detail).expect("statement");
            assert!(s.reconciled());
            assert_eq!(s.lines.iter().map(|l| l.minor).sum::<i128>(), 300);
        }
        let s = statement(&input, GroupBy::Service, true).expect("statement");
        assert_eq!(s.lines.len(), 9);
        assert_eq!(ratio_text(Nanos(1), Nanos(3)), "0.333333");
        assert_eq!(ratio_text(Nanos(-2), Nanos(3)), "-0.666667");
    }

    #[test]
    fn each_currency_is_rounded_to_its_own_minor_unit() {
        // Three services share 7,611.83 JPY and 10.0005 KWD: whole yen summing to the
        // invoice's 7,612, and fils (three decimals).
        let mut allocations = Vec::new();
        for (service, yen) in [
            ("a", 2_537_276_666_667),
            ("b", 2_537_276_666_667),
            ("c", 2_537_276_666_666),
        ] {
            let mut a = alloc(service, "", Method::Direct, yen);
            a.currency = "JPY".into();
            allocations.push(a);
        }
        for (service, fils) in [
            ("a", 3_333_500_000),
            ("b", 3_333_500_000),
            ("c", 3_333_500_000),
        ] {
            let mut a = alloc(service, "", Method::Direct, fils);
            a.currency = "KWD".into();
            allocations.push(a);
        }
        let billed = [
            ("JPY".to_string(), Nanos(7_611_830_000_000)),
            ("KWD".to_string(), Nanos(10_000_500_000)),
        ]
        .into();
        let s =
            statement(&input(&allocations, &billed), GroupBy::Service, false).expect("statement");
        assert!(s.reconciled());
        let csv = s.csv();
        let jpy: Vec<&str> = csv.lines().filter(|l| l.contains(",JPY,")).collect();
        assert_eq!(jpy.len(), 3);
        assert!(
            jpy.iter()
                .all(|l| l.contains(",2537,") || l.contains(",2538,")),
            "{csv}"
        );
        let kwd: Vec<&str> = csv.lines().filter(|l| l.contains(",KWD,")).collect();
        assert!(
            kwd.iter()
                .all(|l| l.contains(",3.334,") || l.contains(",3.333,")),
            "{csv}"
        );
        let summary = s.summary_csv();
        assert!(
            summary.contains("2025-03,JPY,effective,7612,7612,0,"),
            "{summary}"
        );
        assert!(
            summary.contains("2025-03,KWD,effective,10.001,10.001,0.000,"),
            "{summary}"
        );
    }

    #[test]
    fn stale_allocations_are_refused() {
        let allocations = vec![alloc("a", "", Method::Direct, 5)];
        let billed = [("USD".to_string(), Nanos(6))].into();
        let input = input(&allocations, &billed);
        let err = statement(&input, GroupBy::Service, false).expect_err("stale");
        assert!(err
            .to_string()
            .contains("costsplit allocate --month 2025-03"));
    }
}
