//! The validated rules: what the allocator, the detectors and the reports trust. Built only
//! by the loader (`parse.rs`); every name in them exists.

use std::collections::HashMap;
use std::path::PathBuf;

use globset::GlobMatcher;

use super::cases::TestCase;
use super::diagnostic::{Diagnostic, Severity};
use super::sources::{LiveUsage, ServiceMap, UsageSource};
use super::thresholds::Thresholds;
use super::weights::WeightTable;
use crate::model::{Fact, Tags};

/// A validated rule set. Built only by [`load`]; every name it refers to exists.
#[derive(Debug, Clone)]
pub struct Rules {
    /// Short hash of every rules file and weight file that produced these rules.
    pub hash: String,
    pub settings: Settings,
    /// Declared services, sorted by name.
    pub services: Vec<Service>,
    /// Pools in the order they claim line items: ascending priority, then declaration order.
    pub pools: Vec<Pool>,
    /// Live usage sources (`[[source]]`), in file order.
    pub sources: Vec<UsageSource>,
    /// Alert thresholds, with team and service overrides.
    pub alerts: AlertRules,
    /// The `[reports]` table: what the per-team Slack digests list.
    pub reports: ReportRules,
    /// Test cases carried by the rule files (`[[test]]`), run by `costsplit rules test`.
    pub tests: Vec<TestCase>,
    /// Monthly budgets on allocated cost (`[[budget]]`), in file order.
    pub budgets: Vec<Budget>,
    /// Cost per unit of work (`[[unit]]`), in file order.
    pub units: Vec<Unit>,
    /// Normalised tag value (name or alias) -> index into `services`.
    pub(super) lookup: HashMap<String, usize>,
}

/// The `[alerts]` table: detector thresholds, overridable per team and per service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertRules {
    pub base: Thresholds,
    pub teams: HashMap<String, FloorOverrides>,
    pub services: HashMap<String, FloorOverrides>,
    /// Days before the check day re-examined for spikes (restated data).
    pub lookback_days: u32,
    /// Link shown in alerts; `{service}` and `{team}` are filled in.
    pub dashboard_url: Option<String>,
}

impl AlertRules {
    pub fn defaults() -> AlertRules {
        AlertRules {
            base: Thresholds::defaults(),
            teams: HashMap::new(),
            services: HashMap::new(),
            lookback_days: 3,
            dashboard_url: None,
        }
    }

    /// Thresholds for one service: global, then its team's overrides, then its own.
    pub fn thresholds_for(&self, service: &str, team: &str) -> Thresholds {
        let mut t = self.base.clone();
        for o in [self.teams.get(team), self.services.get(service)]
            .into_iter()
            .flatten()
        {
            o.apply(&mut t);
        }
        t
    }
}

/// What a budget covers: the allocated cost (shares of shared pools included) of one
/// service, of every service of a team or a cost center, or of one pool's shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BudgetScope {
    Service(String),
    Team(String),
    CostCenter(String),
    Pool(String),
}

impl BudgetScope {
    /// `team payments`, as reports say it.
    pub fn label(&self) -> String {
        let (kind, name) = self.parts();
        format!("{kind} {name}")
    }

    /// The scope's kind (`service`, `team`, `cost_center`, `pool`) and name.
    pub fn parts(&self) -> (&'static str, &str) {
        match self {
            BudgetScope::Service(n) => ("service", n),
            BudgetScope::Team(n) => ("team", n),
            BudgetScope::CostCenter(n) => ("cost_center", n),
            BudgetScope::Pool(n) => ("pool", n),
        }
    }
}

/// What a budget threshold compares with the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetBasis {
    /// Month-to-date allocated cost.
    Actual,
    /// The upper bound of the month-end forecast's 80% interval.
    Forecast,
}

impl BudgetBasis {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetBasis::Actual => "actual",
            BudgetBasis::Forecast => "forecast",
        }
    }
}

/// When a budget alerts: a percent of the month's budget, or an amount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum BudgetLevel {
    Percent(i64),
    Amount(crate::money::Nanos),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BudgetThreshold {
    pub basis: BudgetBasis,
    pub level: BudgetLevel,
}

impl BudgetThreshold {
    /// `actual 80%`, `forecast 100%`, `actual 9000`: also the threshold's part of an alert's
    /// fingerprint.
    pub fn label(&self) -> String {
        match self.level {
            BudgetLevel::Percent(p) => format!("{} {p}%", self.basis.as_str()),
            BudgetLevel::Amount(a) => format!("{} {a}", self.basis.as_str()),
        }
    }

    /// The amount that trips it, for a month whose budget is `budget`.
    pub fn amount(&self, budget: crate::money::Nanos) -> crate::money::Nanos {
        match self.level {
            BudgetLevel::Percent(p) => crate::money::Nanos(budget.0 * i128::from(p) / 100),
            BudgetLevel::Amount(a) => a,
        }
    }
}

/// A validated `[[budget]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Budget {
    pub name: String,
    pub scope: BudgetScope,
    pub currency: String,
    /// The amount of every month without a planned one; none when only planned months have one.
    pub amount: Option<crate::money::Nanos>,
    /// Planned amounts by month (`YYYY-MM`).
    pub months: std::collections::BTreeMap<String, crate::money::Nanos>,
    /// Sorted, without duplicates.
    pub thresholds: Vec<BudgetThreshold>,
    /// The team whose Slack route gets the alerts (the scope's team by default; empty: the
    /// default route).
    pub team: String,
    /// A channel for `chat.postMessage`, else the service's channel for a service budget.
    pub channel: Option<String>,
}

impl Budget {
    /// The budget of `month` (`YYYY-MM`): its planned amount, else the monthly amount.
    pub fn amount_for(&self, month: &str) -> Option<crate::money::Nanos> {
        self.months.get(month).copied().or(self.amount)
    }
}

/// Where a unit's daily measure (its denominator) comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitMeasure {
    /// The day's samples of a `[[source]]` (Prometheus, CloudWatch, …), summed.
    Source(String),
    /// Values pushed to `POST /api/v1/units/NAME`.
    Push,
}

/// A validated `[[unit]]`: allocated cost of a scope per unit of a daily measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    /// The numerator: the allocated cost of this service, team, cost center or pool.
    pub scope: BudgetScope,
    pub measure: UnitMeasure,
    /// What one unit of the measure is, plural (`requests`).
    pub noun: String,
    /// Cost per `scale` units.
    pub scale: u64,
    /// `per 1,000 requests`.
    pub label: String,
    /// The team whose digest shows it (the scope's team by default).
    pub team: String,
    pub currency: String,
}

/// What a per-team digest lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRules {
    /// Services below this total for the period are summed in one line, not listed.
    pub min_service_amount: crate::money::Nanos,
    /// How many of the largest changes the digest names.
    pub top_movers: usize,
}

impl ReportRules {
    pub fn defaults() -> ReportRules {
        ReportRules {
            min_service_amount: crate::money::Nanos(crate::money::NANOS_PER_UNIT),
            top_movers: 3,
        }
    }
}

/// Per-team or per-service floors; unset fields keep the level above.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FloorOverrides {
    pub spike_min_amount: Option<crate::money::Nanos>,
    pub spike_min_percent: Option<i64>,
    pub mom_min_amount: Option<crate::money::Nanos>,
    pub mom_min_percent: Option<i64>,
}

impl FloorOverrides {
    pub(super) fn apply(&self, t: &mut Thresholds) {
        if let Some(v) = self.spike_min_amount {
            t.spike.min_amount = v;
        }
        if let Some(v) = self.spike_min_percent {
            t.spike.min_percent = v;
        }
        if let Some(v) = self.mom_min_amount {
            t.mom_increase.min_amount = v;
            t.mom_decrease.min_amount = v;
        }
        if let Some(v) = self.mom_min_percent {
            t.mom_increase.min_percent = v;
            t.mom_decrease.min_percent = v;
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Tag keys that name the service, tried in order (compared case-insensitively).
    pub service_tag_keys: Vec<String>,
    pub value_case: ValueCase,
    pub undeclared_services: Undeclared,
}

impl Settings {
    pub(super) fn defaults() -> Settings {
        Settings {
            service_tag_keys: vec!["service".to_string()],
            value_case: ValueCase::Lower,
            undeclared_services: Undeclared::Direct,
        }
    }
}

/// How service tag values are normalised before they are compared with service names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueCase {
    /// Trim and lower-case (`Checkout ` and `checkout` are one service).
    Lower,
    /// Trim only.
    Keep,
}

impl ValueCase {
    /// `value` as this setting compares tag values.
    pub fn normalise(self, value: &str) -> String {
        let value = value.trim();
        match self {
            ValueCase::Lower => value.to_lowercase(),
            ValueCase::Keep => value.to_string(),
        }
    }
}

/// What happens to cost tagged with a service that no rules file declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Undeclared {
    /// Charge it directly to the tag value (it shows up with no team).
    Direct,
    /// Treat it as untagged: it goes to a pool that takes untagged cost, or to `unallocated`.
    Unallocated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub team: String,
    pub cost_center: String,
    pub slack_channel: Option<String>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Pool {
    pub name: String,
    pub priority: i64,
    pub matcher: Matcher,
    /// Member service names, sorted.
    pub members: Vec<String>,
    pub method: SplitMethod,
    pub fallback: Fallback,
    /// For method = "usage" measured by live sources: which, and how stale a sample may be.
    pub live: Option<LiveUsage>,
}

#[derive(Debug, Clone)]
pub enum SplitMethod {
    Equal,
    /// Percent per member, scaled by 1e9 (they sum to exactly 100e9).
    Fixed(Vec<(String, u128)>),
    Proportional,
    /// Usage weights: a static table or a CSV file, or (with [`Pool::live`]) empty here and
    /// filled per day from the stored samples of live sources.
    Usage(WeightTable),
    /// A `[[cluster]]`'s workloads: each bucket (one namespace, workload or label value) goes
    /// whole to the service it maps to, or to `unallocated`.
    Workloads(Workloads),
    /// A `[[cluster]]`'s idle capacity, shared by its policy.
    Idle(IdleShare),
}

/// How a cluster's workload facts find their service.
#[derive(Debug, Clone)]
pub struct Workloads {
    /// The cluster, as its facts' `costsplit:cluster` tag names it.
    pub cluster: String,
    pub by: WorkloadKey,
    /// Values to services (exact, else the first matching pattern); without one, a value
    /// that is a declared service's name or alias is that service.
    pub map: Option<ServiceMap>,
}

/// Which of a workload fact's values names its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkloadKey {
    Namespace,
    Workload,
    /// A pod label (a tag of the workload facts), by key.
    Label(String),
}

impl WorkloadKey {
    /// The tag that holds the value.
    pub fn tag(&self) -> &str {
        match self {
            WorkloadKey::Namespace => crate::model::split_tags::NAMESPACE,
            WorkloadKey::Workload => crate::model::split_tags::WORKLOAD_NAME,
            WorkloadKey::Label(key) => key,
        }
    }

    /// What the values are, in basis texts: `namespace`, `label app`.
    pub fn name(&self) -> String {
        match self {
            WorkloadKey::Namespace => "namespace".to_string(),
            WorkloadKey::Workload => "workload".to_string(),
            WorkloadKey::Label(key) => format!("label {key}"),
        }
    }

    /// How a value is named in basis texts: `namespace shop`, `label app=shop`.
    pub fn describe(&self, value: &str) -> String {
        match self {
            WorkloadKey::Label(key) => format!("label {key}={value}"),
            _ => format!("{} {value}", self.name()),
        }
    }
}

/// Ends the bucket of the part of a value's cost its pods requested but did not use.
const REQUESTED: char = '\u{1f}';

impl Workloads {
    /// The bucket of a workload fact: the value that names its service (empty when it has
    /// none), marked when the fact is the part requested but not used.
    pub fn bucket_of(&self, fact: &Fact) -> String {
        let value = tag_value(&fact.tags, self.by.tag()).unwrap_or("");
        let requested = tag_value(&fact.tags, crate::model::split_tags::REQUESTS)
            == Some(crate::model::split_tags::UNUSED);
        if requested {
            format!("{value}{REQUESTED}")
        } else {
            value.to_string()
        }
    }

    /// A bucket's value, and whether it is the part requested but not used.
    pub fn value_of_bucket(bucket: &str) -> (&str, bool) {
        match bucket.strip_suffix(REQUESTED) {
            Some(value) => (value, true),
            None => (bucket, false),
        }
    }
}

/// A cluster's idle capacity and who pays for it.
#[derive(Debug, Clone)]
pub struct IdleShare {
    /// The pool of the same cluster's workloads.
    pub workloads: String,
    pub policy: IdlePolicy,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdlePolicy {
    /// All of it to one service (the platform team's).
    Central(String),
    /// Equally among the services whose workloads ran in the cluster that day.
    Equal,
    /// In proportion to what each service's workloads were charged that day (AWS's split is
    /// the larger of requests and usage), `unallocated` workloads included.
    Requests,
    /// Nobody: a visible `unallocated` line under the idle pool's name (the default).
    Unallocated,
}

impl IdlePolicy {
    pub fn as_str(&self) -> &'static str {
        match self {
            IdlePolicy::Central(_) => "central",
            IdlePolicy::Equal => "equal",
            IdlePolicy::Requests => "requests",
            IdlePolicy::Unallocated => "unallocated",
        }
    }
}

impl SplitMethod {
    pub fn method(&self) -> crate::model::Method {
        use crate::model::Method;
        match self {
            SplitMethod::Equal => Method::Equal,
            SplitMethod::Fixed(_) => Method::Fixed,
            SplitMethod::Proportional => Method::Proportional,
            SplitMethod::Usage(_) => Method::Usage,
            SplitMethod::Workloads(_) => Method::Split,
            SplitMethod::Idle(idle) => match idle.policy {
                IdlePolicy::Central(_) => Method::Fixed,
                IdlePolicy::Equal => Method::Equal,
                IdlePolicy::Requests => Method::Proportional,
                IdlePolicy::Unallocated => Method::Unallocated,
            },
        }
    }
}

/// What a pool does on a day its own method has no usable weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    Equal,
    Proportional,
    Unallocated,
}

/// Which line items a pool takes. Every given criterion must hold; within one criterion any
/// listed value may match.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    pub resource_id: Vec<Pattern>,
    /// Compared case-insensitively.
    pub provider_service: Vec<String>,
    /// Compared case-insensitively.
    pub charge_category: Vec<String>,
    pub sub_account: Vec<String>,
    /// Tag key (case-insensitive) = exact value.
    pub tags: Vec<(String, String)>,
    /// Only line items that no service tag claims.
    pub untagged: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Pattern {
    pub text: String,
    pub(super) glob: GlobMatcher,
}

impl Pattern {
    pub fn is_literal(&self) -> bool {
        !self.text.contains(['*', '?', '[', '{'])
    }
}

impl Matcher {
    /// Whether the pool takes this fact. `service` is the fact's resolved service tag, if any.
    pub fn matches(&self, fact: &Fact, service: Option<&str>) -> bool {
        (self.resource_id.is_empty()
            || self
                .resource_id
                .iter()
                .any(|p| p.glob.is_match(fact.resource_id.as_str())))
            && (self.provider_service.is_empty()
                || self
                    .provider_service
                    .iter()
                    .any(|s| s.eq_ignore_ascii_case(&fact.provider_service)))
            && (self.charge_category.is_empty()
                || self
                    .charge_category
                    .iter()
                    .any(|c| c.eq_ignore_ascii_case(&fact.charge_category)))
            && (self.sub_account.is_empty()
                || self.sub_account.iter().any(|a| *a == fact.sub_account))
            && self
                .tags
                .iter()
                .all(|(k, v)| tag_value(&fact.tags, k).is_some_and(|t| t == v))
            && self.untagged.is_none_or(|u| u == service.is_none())
    }
}

/// The value of a tag key, compared case-insensitively.
fn tag_value<'a>(tags: &'a Tags, key: &str) -> Option<&'a str> {
    tags.get(key).map(String::as_str).or_else(|| {
        tags.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    })
}

/// Whom a line item's tags name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tagged<'a> {
    /// A declared service (by name or alias).
    Declared(&'a Service),
    /// A tag value that no rules file declares (already normalised).
    Undeclared,
    /// No service tag, or an empty one.
    Untagged,
}

impl Rules {
    pub fn source(&self, name: &str) -> Option<&UsageSource> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The tag key Cost Explorer groups by: the first of `service_tag_keys`.
    pub fn service_tag(&self) -> &str {
        self.settings
            .service_tag_keys
            .first()
            .map_or("service", String::as_str)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.lookup.get(name).map(|&i| &self.services[i])
    }

    /// The service the tags name, trying the service tag keys in order. Returns the normalised
    /// value for undeclared services.
    pub fn tagged_service(&self, tags: &Tags) -> (Tagged<'_>, Option<String>) {
        for key in &self.settings.service_tag_keys {
            if let Some(value) = tag_value(tags, key) {
                let value = self.settings.value_case.normalise(value);
                // `unallocated` is costsplit's name for cost nobody owns: a tag saying so is
                // read as no owner (the cost is unallocated, by method, not a service).
                if value.is_empty() || value == crate::model::UNALLOCATED {
                    continue;
                }
                return match self.lookup.get(&value) {
                    Some(&i) => (Tagged::Declared(&self.services[i]), None),
                    None => (Tagged::Undeclared, Some(value)),
                };
            }
        }
        (Tagged::Untagged, None)
    }
}

/// The outcome of reading a rules directory: the rules when there are no errors, and every
/// diagnostic (errors and warnings) in file order.
#[derive(Debug)]
pub struct Loaded {
    pub rules: Option<Rules>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every file the load read or tried to read: the `*.toml` files and the weight files
    /// they name. A running daemon watches all of them.
    pub inputs: Vec<PathBuf>,
}

impl Loaded {
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}
