//! Split rules, in two stages: raw TOML files under `rules/` are read and checked in
//! [`parse`] (every problem reported with file:line:col, not only the first), producing the
//! validated [`Rules`] that the pure allocator trusts. Nothing here touches the store.

mod alerts;
mod budgets;
mod cases;
mod clusters;
mod diagnostic;
mod model;
mod parse;
mod pools;
mod reports;
mod scope;
mod services;
mod settings;
mod sources;
mod thresholds;
mod units;
mod walk;
mod weights;

pub use cases::TestCase;
pub use diagnostic::{Diagnostic, Severity};
pub use sources::{
    CloudWatchQuery, KubeBasis, KubeQuery, LiveUsage, PgGrain, RedisMeasure, SecretError,
    SecretRef, ServiceMap, SourceKind, UsageSource,
};
pub use thresholds::{Floors, Thresholds};
pub use weights::{parse_weight, WeightKey, WeightRow, WeightTable, WEIGHT_DECIMALS};

pub use budgets::DEFAULT_THRESHOLDS;
pub use model::{
    AlertRules, Budget, BudgetBasis, BudgetLevel, BudgetScope, BudgetThreshold, Fallback,
    FloorOverrides, IdlePolicy, IdleShare, Loaded, Matcher, Pattern, Pool, ReportRules, Rules,
    Service, Settings, SplitMethod, Tagged, Undeclared, Unit, UnitMeasure, ValueCase, WorkloadKey,
    Workloads,
};
pub use parse::{load, load_or_error, load_texts, load_with_catalog, rule_files, rules_or_error};
