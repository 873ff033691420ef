//! The shared vocabulary: billing facts (what the bill says, per day) and allocations (who
//! pays for it). Plain data with no IO; every other module speaks in these types.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

use crate::money::Nanos;

/// Tag key/value pairs of a line item, sorted by key so equal tag sets compare equal.
pub type Tags = BTreeMap<String, String>;

/// A fact's text key (an account, a service, a resource id): immutable text that the facts
/// of a month share. A month holds millions of facts and a few thousand distinct accounts and
/// services, and each resource id recurs every day, so the readers that build facts intern
/// their text with a [`Keys`] and every fact holding the same text points at one copy.
/// Reads as a `&str`; equal keys usually share their pointer, which compares first.
#[derive(Clone, Default)]
pub struct Key(Arc<str>);

impl Key {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for Key {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Key {
    fn from(text: &str) -> Key {
        Key(Arc::from(text))
    }
}

impl From<String> for Key {
    fn from(text: String) -> Key {
        Key(Arc::from(text))
    }
}

impl From<&String> for Key {
    fn from(text: &String) -> Key {
        Key(Arc::from(text.as_str()))
    }
}

impl From<Key> for String {
    fn from(key: Key) -> String {
        key.as_str().to_string()
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        Arc::ptr_eq(&self.0, &other.0) || self.0 == other.0
    }
}

impl Eq for Key {}

impl PartialEq<str> for Key {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for Key {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<Key> for String {
    fn eq(&self, other: &Key) -> bool {
        self.as_str() == &*other.0
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.0, &other.0) {
            std::cmp::Ordering::Equal
        } else {
            self.0.cmp(&other.0)
        }
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // As `str` hashes, so a map keyed by `Key` can be looked up by `&str`.
        self.as_str().hash(state)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The keys a reader has handed out: the same text gives the same shared [`Key`]. One per
/// load or import (dropped with it, so a long-running daemon keeps no text it no longer holds).
#[derive(Debug, Default)]
pub struct Keys {
    keys: rustc_hash::FxHashSet<Key>,
    /// The last key handed out per column: consecutive facts mostly share their account,
    /// period, provider and currency, which then cost one comparison.
    last: Vec<Option<Key>>,
}

impl Keys {
    pub fn new() -> Keys {
        Keys::default()
    }

    /// The shared key for `text`, made on first sight.
    pub fn get(&mut self, text: &str) -> Key {
        if let Some(key) = self.keys.get(text) {
            return key.clone();
        }
        let key = Key::from(text);
        self.keys.insert(key.clone());
        key
    }

    /// [`Keys::get`] for a value of column `column`.
    pub fn get_in(&mut self, column: usize, text: &str) -> Key {
        if column >= self.last.len() {
            self.last.resize(column + 1, None);
        }
        if let Some(last) = &self.last[column] {
            if last.as_str() == text {
                return last.clone();
            }
        }
        let key = self.get(text);
        self.last[column] = Some(key.clone());
        key
    }
}

/// Which cost column of the bill is allocated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    type Err = UnknownCostBasis;
    fn from_str(s: &str) -> Result<Self, UnknownCostBasis> {
        match s.to_ascii_lowercase().as_str() {
            "effective" | "effectivecost" | "amortized" => Ok(CostBasis::Effective),
            "billed" | "billedcost" => Ok(CostBasis::Billed),
            other => Err(UnknownCostBasis(other.to_string())),
        }
    }
}

/// A cost basis costsplit does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown cost basis `{0}`: use `effective` (amortized) or `billed`")]
pub struct UnknownCostBasis(pub String);

/// One day of cost at the grain the rules can see: the sum of every line item that shares
/// these keys. Facts are independent of the rules, so changing rules never needs a re-import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fact {
    pub day: NaiveDate,
    /// `YYYY-MM` of the billing period the line belongs to (the unit of re-import).
    pub billing_period: Key,
    pub billing_account: Key,
    pub sub_account: Key,
    pub provider: Key,
    /// Provider service name, e.g. `Amazon Relational Database Service`.
    pub provider_service: Key,
    /// Empty when the line has no resource (tax, some fees).
    pub resource_id: Key,
    /// FOCUS ChargeCategory: Usage, Purchase, Tax, Credit, Adjustment.
    pub charge_category: Key,
    /// Shared: every fact of one tag set points at the same map (a month holds hundreds of
    /// thousands of facts and a few thousand tag sets).
    pub tags: Arc<Tags>,
    pub currency: Key,
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
    /// A cluster's workloads by AWS's split cost allocation data (each pod's share of its
    /// instance: the larger of its requests and its usage, CPU and memory weighed 9:1).
    Split,
    /// The part of a cluster's workloads that their pods requested but did not use.
    Requested,
    /// A cluster's idle capacity, all of it charged to the owner its rules name.
    Central,
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
            Method::Split => "split",
            Method::Requested => "requested",
            Method::Central => "central",
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
            "split" => Method::Split,
            "requested" => Method::Requested,
            "central" => Method::Central,
            "unallocated" => Method::Unallocated,
            _ => return None,
        })
    }
}

/// The tags split cost allocation data (EKS pods, ECS tasks) gives the facts it makes
/// (`ingest::split`), which `[[cluster]]` rules match.
pub mod split_tags {
    /// What the split made of a line: [`WORKLOAD`] or [`IDLE`].
    pub const SPLIT: &str = "costsplit:split";
    pub const WORKLOAD: &str = "workload";
    pub const IDLE: &str = "idle";
    /// The cluster, namespace (an ECS service for ECS tasks) and workload of a split fact.
    pub const CLUSTER: &str = "costsplit:cluster";
    pub const NAMESPACE: &str = "costsplit:namespace";
    pub const WORKLOAD_NAME: &str = "costsplit:workload";
    /// Marks the part of a workload's cost its pods requested but did not use.
    pub const REQUESTS: &str = "costsplit:requests";
    pub const UNUSED: &str = "unused";
    /// The resource dimension a split fact's money is of (AWS splits vCPU and memory apart),
    /// one of [`DIMENSION_NAMES`]; the FOCUS export's allocation elements name it.
    pub const DIMENSION: &str = "costsplit:resource";
    pub const DIMENSION_NAMES: [&str; 3] = ["cpu", "memory", "accelerator"];
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
    // The store's own `YYYY-MM-DD` without chrono's format parser (a month's load reads a day
    // per fact); anything else goes through it.
    match text.as_bytes() {
        [y0, y1, y2, y3, b'-', m0, m1, b'-', d0, d1] => {
            let digits = [*y0, *y1, *y2, *y3, *m0, *m1, *d0, *d1];
            if !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n = |ds: &[u8]| ds.iter().fold(0u32, |v, d| v * 10 + u32::from(d - b'0'));
            NaiveDate::from_ymd_opt(n(&digits[..4]) as i32, n(&digits[4..6]), n(&digits[6..]))
        }
        _ => NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
    }
}

/// First and last day of a `YYYY-MM` month.
pub fn month_bounds(month: &str) -> Option<(NaiveDate, NaiveDate)> {
    let first = NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").ok()?;
    let next = first.checked_add_months(chrono::Months::new(1))?;
    Some((first, next.pred_opt()?))
}

/// One day of one service's cost from one origin (a pool, or a provider service's direct cost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    pub day: NaiveDate,
    pub service: String,
    pub team: String,
    pub currency: String,
    /// Empty for direct cost.
    pub pool: String,
    pub provider_service: String,
    pub amount: Nanos,
}

impl SeriesRow {
    /// The pool the amount is a share of, or `direct` for the service's own cost.
    pub fn pool_or_direct(&self) -> &str {
        if self.pool.is_empty() {
            "direct"
        } else {
            &self.pool
        }
    }
}

/// An instant to the second, in UTC. Compared as a time; written as RFC 3339 text
/// (`2026-01-01T00:00:00Z`) only where it leaves the program: the store and the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// `at`, to the second.
    pub fn at(at: DateTime<Utc>) -> Timestamp {
        Timestamp(
            DateTime::from_timestamp(at.timestamp(), 0).expect("a whole second of a valid time"),
        )
    }

    /// RFC 3339 text, as the store writes it.
    pub fn parse(text: &str) -> Option<Timestamp> {
        DateTime::parse_from_rfc3339(text)
            .ok()
            .map(|t| Timestamp::at(t.with_timezone(&Utc)))
    }

    pub fn datetime(self) -> DateTime<Utc> {
        self.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Secs, true))
    }
}

impl std::ops::Add<chrono::Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, span: chrono::Duration) -> Timestamp {
        Timestamp::at(self.0 + span)
    }
}

/// What kind of change an alert reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// A day above what the day of week and the month's start lead one to expect.
    Spike,
    MonthOverMonth,
    /// A day below it.
    Fall,
    /// Growth over weeks, each day unremarkable.
    Drift,
    /// Cost where there was none.
    NewService,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::Spike => "spike",
            AlertKind::MonthOverMonth => "month_over_month",
            AlertKind::Fall => "fall",
            AlertKind::Drift => "drift",
            AlertKind::NewService => "new_service",
        }
    }
}

/// What an outbox message is: an alert (stored as costsplit's alert JSON) or a report
/// (stored as the very message to send).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Alert(AlertKind),
    /// A budget threshold passed, or forecast to be passed.
    Budget,
    Report,
}

impl MessageKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageKind::Alert(kind) => kind.as_str(),
            MessageKind::Budget => "budget",
            MessageKind::Report => "report",
        }
    }

    pub fn parse(text: &str) -> Option<MessageKind> {
        match text {
            "spike" => Some(MessageKind::Alert(AlertKind::Spike)),
            "month_over_month" => Some(MessageKind::Alert(AlertKind::MonthOverMonth)),
            "fall" => Some(MessageKind::Alert(AlertKind::Fall)),
            "drift" => Some(MessageKind::Alert(AlertKind::Drift)),
            "new_service" => Some(MessageKind::Alert(AlertKind::NewService)),
            "budget" => Some(MessageKind::Budget),
            "report" => Some(MessageKind::Report),
            _ => None,
        }
    }
}

impl fmt::Display for MessageKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an outbox message is in its delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageState {
    /// Waiting to be sent (or to be tried again).
    Pending,
    /// Slack accepted it.
    Sent,
    /// Slack refused it for good; not tried again.
    Failed,
    /// Restated data no longer shows the anomaly; not sent.
    Resolved,
}

impl MessageState {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageState::Pending => "pending",
            MessageState::Sent => "sent",
            MessageState::Failed => "failed",
            MessageState::Resolved => "resolved",
        }
    }

    pub fn parse(text: &str) -> Option<MessageState> {
        [
            MessageState::Pending,
            MessageState::Sent,
            MessageState::Failed,
            MessageState::Resolved,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for MessageState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The schema of a billing export file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BillingSchema {
    Focus,
    Cur2,
    LegacyCur,
    /// Daily facts an engine summed from line items (`docs/facts.md`).
    Facts,
}

/// Where an import's facts came from, as its record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportSource {
    /// Billing files of one schema.
    Files(BillingSchema),
    /// Billing files of more than one schema, imported as one batch.
    MixedFiles,
    /// The Cost Explorer API.
    CostExplorer,
    /// A billing period of an S3 export (`sync exports`).
    S3Export,
}

impl ImportSource {
    /// The source of a batch of files of these schemas.
    pub fn of_files(schemas: impl IntoIterator<Item = BillingSchema>) -> ImportSource {
        let mut schemas = schemas.into_iter();
        match (schemas.next(), schemas.next()) {
            (Some(one), None) => ImportSource::Files(one),
            (Some(_), Some(_)) => ImportSource::MixedFiles,
            (None, _) => ImportSource::Files(BillingSchema::Focus),
        }
    }

    pub fn parse(text: &str) -> Option<ImportSource> {
        [
            ImportSource::Files(BillingSchema::Focus),
            ImportSource::Files(BillingSchema::Cur2),
            ImportSource::Files(BillingSchema::LegacyCur),
            ImportSource::Files(BillingSchema::Facts),
            ImportSource::MixedFiles,
            ImportSource::CostExplorer,
            ImportSource::S3Export,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ImportSource::Files(BillingSchema::Focus) => "focus",
            ImportSource::Files(BillingSchema::Cur2) => "cur2",
            ImportSource::Files(BillingSchema::LegacyCur) => "legacy-cur",
            ImportSource::Files(BillingSchema::Facts) => "facts",
            ImportSource::MixedFiles => "files",
            ImportSource::CostExplorer => "cost-explorer",
            ImportSource::S3Export => "s3-export",
        }
    }
}

/// What produced stored allocations: the cost basis and the rules (by hash).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Provenance {
    pub basis: CostBasis,
    pub rules_hash: String,
}

/// One service's cost over a range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceTotal {
    pub service: String,
    pub team: String,
    pub currency: String,
    pub direct: Nanos,
    pub shared: Nanos,
}

impl ServiceTotal {
    pub fn total(&self) -> Nanos {
        self.direct + self.shared
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_day_reads_as_chrono_reads_it() {
        for text in [
            "2025-03-01",
            "2024-02-29",
            "0999-12-31",
            "9999-01-01",
            "2025-1-01",
        ] {
            assert_eq!(
                parse_day(text),
                NaiveDate::parse_from_str(text, "%Y-%m-%d").ok(),
                "{text}"
            );
        }
        for bad in ["2025-02-29", "2025-13-01", "2025-00-10", "20a5-01-01", ""] {
            assert_eq!(parse_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn keys_hand_out_one_copy_of_each_text() {
        let mut keys = Keys::new();
        let a = keys.get_in(0, "i-1");
        let b = keys.get_in(1, "i-1");
        let c = keys.get("i-1");
        assert!(Arc::ptr_eq(&a.0, &b.0) && Arc::ptr_eq(&a.0, &c.0));
        assert_ne!(keys.get_in(0, "i-2"), a);
        // Equal text compares equal whether shared or not, and orders as text.
        assert_eq!(Key::from("i-1"), a);
        let (x, y) = (Key::from("a"), Key::from("b"));
        assert!(x < y);
        assert_eq!(a, "i-1");
    }
}
