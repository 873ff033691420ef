//! The shared vocabulary: billing facts (what the bill says, per day) and allocations (who
//! pays for it). Plain data with no IO; every other module speaks in these types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::NaiveDate;

use crate::money::Nanos;

/// Tag key/value pairs of a line item, sorted by key so equal tag sets compare equal.
pub type Tags = BTreeMap<String, String>;

/// Which cost column of the bill is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CostBasis {
    /// Amortized cost: commitments spread over the usage they cover (FOCUS `EffectiveCost`).
    Effective,
    /// What the invoice charges (FOCUS `BilledCost`).
    Billed,
}

impl CostBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            CostBasis::Effective => "effective",
            CostBasis::Billed => "billed",
        }
    }
}

impl fmt::Display for CostBasis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CostBasis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "effective" | "effectivecost" | "amortized" => Ok(CostBasis::Effective),
            "billed" | "billedcost" => Ok(CostBasis::Billed),
            other => Err(format!(
                "unknown cost basis `{other}`: use `effective` (amortized) or `billed`"
            )),
        }
    }
}

/// One day of cost at the grain the rules can see: the sum of every line item that shares
/// these keys. Facts are independent of the rules, so changing rules never needs a re-import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub day: NaiveDate,
    /// `YYYY-MM` of the billing period the line belongs to (the unit of re-import).
    pub billing_period: String,
    pub billing_account: String,
    pub sub_account: String,
    pub provider: String,
    /// Provider service name, e.g. `Amazon Relational Database Service`.
    pub provider_service: String,
    /// Empty when the line has no resource (tax, some fees).
    pub resource_id: String,
    /// FOCUS ChargeCategory: Usage, Purchase, Tax, Credit, Adjustment.
    pub charge_category: String,
    pub tags: Tags,
    pub currency: String,
    pub effective: Nanos,
    pub billed: Nanos,
    /// FOCUS `ListCost` and `ContractedCost` (CUR: the public on-demand cost and the unblended
    /// cost), summed like the costs; a source without them carries the billed cost, as FOCUS
    /// asks of a charge without a list or contracted price. Only the FOCUS export shows them.
    pub list: Nanos,
    pub contracted: Nanos,
    /// Number of billing line items summed into this fact.
    pub line_count: i64,
    /// The provider may still revise this day (Cost Explorer `Estimated`).
    pub estimated: bool,
}

impl Fact {
    pub fn amount(&self, basis: CostBasis) -> Nanos {
        match basis {
            CostBasis::Effective => self.effective,
            CostBasis::Billed => self.billed,
        }
    }
}

/// How an allocation's amount was arrived at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Method {
    /// The line item's own service tag.
    Direct,
    Equal,
    Fixed,
    Proportional,
    Usage,
    /// Nobody could be charged: untagged and in no pool, or a pool whose fallback says so.
    Unallocated,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Direct => "direct",
            Method::Equal => "equal",
            Method::Fixed => "fixed",
            Method::Proportional => "proportional",
            Method::Usage => "usage",
            Method::Unallocated => "unallocated",
        }
    }

    pub fn parse(text: &str) -> Option<Method> {
        Some(match text {
            "direct" => Method::Direct,
            "equal" => Method::Equal,
            "fixed" => Method::Fixed,
            "proportional" => Method::Proportional,
            "usage" => Method::Usage,
            "unallocated" => Method::Unallocated,
            _ => return None,
        })
    }
}

/// The name under which unattributable cost is reported.
pub const UNALLOCATED: &str = "unallocated";

/// A share of one day's cost charged to one service (or to `unallocated`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub day: NaiveDate,
    pub service: String,
    pub team: String,
    pub cost_center: String,
    /// Empty for direct cost.
    pub pool: String,
    /// The provider service of direct and unallocated cost (what drove it); empty for pools.
    pub provider_service: String,
    pub method: Method,
    /// The pool's own method had no usable weights that day, so its fallback was applied.
    pub fallback_used: bool,
    /// The share of the pool (or 1e9 for direct cost), in parts per billion.
    pub ratio_ppb: i64,
    pub amount: Nanos,
    pub currency: String,
    /// Where a usage share came from (`orders-db 2025-03-14: 1234 of 5678 bytes`), or why
    /// the pool fell back that day; empty for other methods.
    pub basis: String,
}

/// One measurement of one member (schema, key prefix, topic, label value) on one day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageSample {
    pub day: NaiveDate,
    pub source: String,
    pub member: String,
    /// Whom the rules' map gives the member to; empty when it names no service.
    pub service: String,
    /// An exact non-negative decimal (bytes, keys, a metric's value).
    pub value: String,
    pub unit: String,
}

/// Formats a day as `YYYY-MM-DD`, the form used at rest and in reports.
pub fn day_key(day: NaiveDate) -> String {
    day.format("%Y-%m-%d").to_string()
}

/// Parses `YYYY-MM-DD`.
pub fn parse_day(text: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
}

/// First and last day of a `YYYY-MM` month.
pub fn month_bounds(month: &str) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some((first, next.pred_opt()?))
}
