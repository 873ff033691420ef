//! Live usage sources (`[[source]]`): what each one measures, where it connects and how its
//! measurements map to services. Connection secrets never sit in the rules: a DSN, URL or
//! token is named by an environment variable (`*_env`) or a file (`*_file`). Validated here
//! like every other rule (file:line:col); nothing here connects anywhere.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobMatcher};
use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::walk::{choice, label_key, FileCtx, Loc};

/// A validated live usage source.
#[derive(Debug, Clone)]
pub struct UsageSource {
    pub name: String,
    pub kind: SourceKind,
    /// What it measures (schema, table, key prefix, topic, label value) -> service.
    pub map: ServiceMap,
    /// The shared resource whose cost these measurements split; `None`: the whole pool's.
    pub resource_id: Option<String>,
    /// The longest one collection may take, connecting included.
    pub timeout: Duration,
    /// What a value counts, for reports (`bytes`, `keys`, ...).
    pub unit: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// Bytes per schema or per `schema.table` (`pg_total_relation_size`: heap, indexes and
    /// TOAST), in a read-only session with a statement timeout.
    Postgres { dsn: SecretRef, by: PgGrain },
    /// Keys (or sampled memory) per key prefix, by `SCAN` with `MATCH`/`COUNT` under a key
    /// budget; never `KEYS`.
    Redis {
        url: SecretRef,
        measure: RedisMeasure,
        /// The most keys one collection reads; past it the counts are those of the keys
        /// scanned (SCAN walks the keyspace in hash order, so they are a sample of it).
        max_keys: u64,
        /// The `COUNT` hint of each `SCAN` call.
        scan_count: u64,
        /// Keys per prefix whose `MEMORY USAGE` is read (measure = "memory").
        memory_samples: u64,
    },
    /// An instant PromQL query whose result label names the member.
    Prometheus {
        url: SecretRef,
        token: Option<SecretRef>,
        query: String,
        label: String,
    },
    /// CloudWatch `GetMetricData`, one query per member, a day's statistic over `period`.
    CloudWatch(CloudWatchQuery),
    /// A Kubernetes cluster's requests (or usage) per namespace or pod label, from its
    /// Prometheus, in vCPU-equivalents.
    Kubernetes {
        url: SecretRef,
        token: Option<SecretRef>,
        query: KubeQuery,
    },
}

/// What a `kubernetes` source asks its Prometheus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeQuery {
    /// A pod label whose values are the members (`app`); `None`: namespaces.
    pub label: Option<String>,
    /// Extra PromQL label matchers every series must carry (`cluster="prod"`).
    pub selector: String,
    pub basis: KubeBasis,
    /// What one vCPU and one GiB weigh (AWS: 9 and 1).
    pub cpu_weight: u32,
    pub memory_weight: u32,
    /// The range the day's average is taken over, and its step (PromQL durations).
    pub window: String,
    pub step: String,
}

impl KubeQuery {
    /// The result label that names a member: `namespace`, or kube-state-metrics' name of the
    /// pod label (`label_app`, `label_app_kubernetes_io_name`).
    pub fn member_label(&self) -> String {
        match &self.label {
            None => "namespace".to_string(),
            Some(key) => format!(
                "label_{}",
                key.chars()
                    .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                    .collect::<String>()
            ),
        }
    }
}

/// Which side of a pod's resources counts: what it requests, what it uses, or the larger
/// (per member and resource, of the day's averages).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeBasis {
    Requests,
    Usage,
    Max,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudWatchQuery {
    pub namespace: String,
    pub metric: String,
    /// The dimension whose values are the members (e.g. `Topic`).
    pub dimension: String,
    /// Fixed dimensions every query carries (e.g. `Cluster Name`).
    pub dimensions: Vec<(String, String)>,
    pub statistic: String,
    pub period_seconds: i32,
    pub region: Option<String>,
}

impl SourceKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceKind::Postgres { .. } => "postgres",
            SourceKind::Redis { .. } => "redis",
            SourceKind::Prometheus { .. } => "prometheus",
            SourceKind::CloudWatch(_) => "cloudwatch",
            SourceKind::Kubernetes { .. } => "kubernetes",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgGrain {
    Schema,
    /// `schema.table`.
    Table,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RedisMeasure {
    Keys,
    Memory,
}

/// Where a secret is read from at collection time; never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    File(PathBuf),
    /// A value that is no secret, written in the rules (a Prometheus URL without credentials).
    Inline(String),
}

impl SecretRef {
    /// The secret's text. The error names the variable or file, never a value.
    pub fn read(&self) -> Result<String, SecretError> {
        match self {
            SecretRef::Env(var) => match std::env::var(var) {
                Ok(value) if !value.trim().is_empty() => Ok(value.trim().to_string()),
                _ => Err(SecretError::Unset(var.clone())),
            },
            SecretRef::File(path) => std::fs::read_to_string(path)
                .map(|text| text.trim().to_string())
                .map_err(|e| SecretError::File {
                    path: path.clone(),
                    reason: e.to_string(),
                }),
            SecretRef::Inline(value) => Ok(value.clone()),
        }
    }
}

/// A secret that could not be read: names the variable or file, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("the environment variable {0} is not set")]
    Unset(String),
    #[error("cannot read the secret file {}: {reason}", path.display())]
    File { path: PathBuf, reason: String },
}

/// Measured names -> services: an exact name first; then, for key prefixes, the longest
/// prefix; otherwise the first glob pattern (`*`, `?`) in file order.
#[derive(Debug, Clone, Default)]
pub struct ServiceMap {
    entries: Vec<MapEntry>,
    prefixes: bool,
}

#[derive(Debug, Clone)]
struct MapEntry {
    key: String,
    glob: Option<GlobMatcher>,
    service: String,
}

impl ServiceMap {
    pub fn service_of(&self, measured: &str) -> Option<&str> {
        if let Some(e) = self.entries.iter().find(|e| e.key == measured) {
            return Some(&e.service);
        }
        if self.prefixes {
            return self
                .entries
                .iter()
                .filter(|e| measured.starts_with(&e.key))
                .max_by_key(|e| e.key.len())
                .map(|e| e.service.as_str());
        }
        self.entries
            .iter()
            .find(|e| e.glob.as_ref().is_some_and(|g| g.is_match(measured)))
            .map(|e| e.service.as_str())
    }

    /// Every service the map names.
    pub fn services(&self) -> BTreeSet<&str> {
        self.entries.iter().map(|e| e.service.as_str()).collect()
    }

    /// The map's keys (names, prefixes or patterns), in file order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.key.as_str())
    }

    /// Whether a key is a plain name rather than a pattern.
    pub fn is_literal(key: &str) -> bool {
        !key.contains(['*', '?', '[', '{'])
    }
}

/// A pool's `usage = { source = ... }`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveUsage {
    /// Source names, each declared by a `[[source]]`.
    pub sources: Vec<String>,
    /// A day without its own sample uses the latest one at most this many days older.
    pub max_age_days: u32,
    /// A member the samples do not cover gets weight 0 (`missing = "zero"`); otherwise the
    /// pool falls back for that day, so a failed probe never bills a service 0.
    pub missing_is_zero: bool,
}

/// `[[source]]` as walked: everything checked but the services its map names.
#[derive(Debug)]
pub(super) struct RawSource {
    pub name: (String, Loc),
    pub source: UsageSource,
    pub map: Vec<(String, String, Loc)>,
}

const COMMON_KEYS: [&str; 6] = [
    "name",
    "kind",
    "map",
    "resource_id",
    "timeout_seconds",
    "unit",
];

fn kind_keys(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "postgres" => &["dsn_env", "dsn_file", "by"],
        "redis" => &[
            "url_env",
            "url_file",
            "measure",
            "max_keys",
            "scan_count",
            "memory_samples",
        ],
        "prometheus" => &[
            "url",
            "url_env",
            "url_file",
            "token_env",
            "token_file",
            "query",
            "label",
        ],
        "kubernetes" => &[
            "url",
            "url_env",
            "url_file",
            "token_env",
            "token_file",
            "by",
            "selector",
            "basis",
            "cpu_weight",
            "memory_weight",
            "window",
            "step",
        ],
        "cloudwatch" => &[
            "namespace",
            "metric",
            "dimension",
            "dimensions",
            "statistic",
            "period_seconds",
            "region",
        ],
        _ => return None,
    })
}

/// Keys that would put a secret in the rules.
const SECRET_KEYS: [&str; 6] = ["dsn", "password", "token", "secret", "auth", "connection"];

/// `[[source]]`: the common keys here, each kind's own in its function below.
pub(super) fn walk_source(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawSource> {
    let header = ctx.loc(span.clone());
    let name = ctx.string(table, "name");
    let kind = ctx.string(table, "kind");
    check_keys(ctx, table, kind.as_ref().map(|(k, _)| k.as_str()));
    let Some(name) = name.filter(|(n, _)| !n.trim().is_empty()) else {
        ctx.error(
            span,
            "[[source]] needs a non-empty `name`, e.g. name = \"orders-db\"",
        );
        return None;
    };
    let Some((kind, kind_loc)) = kind else {
        ctx.push(
            &header,
            format!(
                "source `{}` needs a `kind`: postgres, redis, prometheus, kubernetes or cloudwatch",
                name.0
            ),
        );
        return None;
    };
    let errors_before = ctx.error_count();
    let source = SourceTable {
        table,
        dir: ctx.path.parent().unwrap_or(Path::new(".")).to_path_buf(),
        header,
        name: name.0.clone(),
    };
    let kind_value = match kind.as_str() {
        "postgres" => walk_postgres(ctx, &source),
        "redis" => walk_redis(ctx, &source),
        "prometheus" => walk_prometheus(ctx, &source),
        "cloudwatch" => walk_cloudwatch(ctx, &source),
        "kubernetes" => walk_kubernetes(ctx, &source),
        other => {
            ctx.push(
                &kind_loc,
                format!(
                    "unknown source kind `{other}`: use postgres, redis, prometheus, kubernetes or cloudwatch"
                ),
            );
            None
        }
    };
    let timeout = Duration::from_secs(source.count(ctx, "timeout_seconds", 30));
    let resource_id = ctx.string(table, "resource_id").map(|(r, _)| r);
    let unit = ctx.string(table, "unit").map(|(u, _)| u);
    let map = walk_map(ctx, &source);
    if ctx.error_count() > errors_before {
        return None;
    }
    let kind_value = kind_value?;
    let unit = unit.unwrap_or_else(|| default_unit(&kind_value));
    Some(RawSource {
        name,
        source: UsageSource {
            name: String::new(),
            kind: kind_value,
            map: ServiceMap::default(),
            resource_id,
            timeout,
            unit,
        },
        map,
    })
}

/// Reports keys that are neither common nor the kind's, and any key that would put a secret
/// in the rules.
fn check_keys(ctx: &mut FileCtx<'_>, table: &dyn TableLike, kind: Option<&str>) {
    let own = kind.and_then(kind_keys);
    let allowed: Vec<&str> = match own {
        Some(keys) => COMMON_KEYS.iter().chain(keys).copied().collect(),
        None => COMMON_KEYS.to_vec(),
    };
    for (key, _) in table.iter() {
        if allowed.contains(&key) {
            continue;
        }
        let at = table.get_key_value(key).and_then(|(k, _)| k.span());
        if SECRET_KEYS.contains(&key) || key == "url" {
            ctx.error(
                at,
                format!(
                    "`{key}` would put a connection secret in the rules; name an environment variable ({key}_env = \"VAR\") or a file ({key}_file = \"/run/secrets/x\") instead"
                ),
            );
        } else if own.is_some() {
            ctx.error(
                at,
                format!(
                    "unknown key `{key}` in a [[source]] of kind `{}`; expected one of: {}",
                    kind.unwrap_or_default(),
                    allowed.join(", ")
                ),
            );
        }
    }
}

/// One `[[source]]` table being walked, with what its kind's keys are reported against.
struct SourceTable<'t> {
    table: &'t dyn TableLike,
    /// The folder of its rules file (secret files are relative to it).
    dir: PathBuf,
    header: Loc,
    name: String,
}

impl SourceTable<'_> {
    /// A non-empty string the kind needs.
    fn required(&self, ctx: &mut FileCtx<'_>, key: &str, example: &str) -> Option<String> {
        match ctx.string(self.table, key) {
            Some((value, _)) if !value.trim().is_empty() => Some(value),
            Some((_, loc)) => {
                ctx.push(&loc, format!("source `{}`: `{key}` is empty", self.name));
                None
            }
            None => {
                ctx.push(
                    &self.header,
                    format!(
                        "source `{}` needs `{key}`, e.g. {key} = {example}",
                        self.name
                    ),
                );
                None
            }
        }
    }

    /// A positive integer, or `default`.
    fn count(&self, ctx: &mut FileCtx<'_>, key: &str, default: u64) -> u64 {
        match ctx.integer(self.table, key) {
            None => default,
            Some(v) if v > 0 => v as u64,
            Some(_) => {
                let loc = ctx.key_loc(self.table, key);
                ctx.push(&loc, format!("`{key}` must be a positive integer"));
                default
            }
        }
    }

    /// A secret named by `{key}_env` or `{key}_file`.
    fn secret(&self, ctx: &mut FileCtx<'_>, key: &str, required: bool) -> Option<SecretRef> {
        secret(
            ctx,
            self.table,
            key,
            &self.dir,
            &self.header,
            &self.name,
            required,
        )
    }
}

/// `kind = "postgres"`: table sizes by schema or table.
fn walk_postgres(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Option<SourceKind> {
    let dsn = source.secret(ctx, "dsn", true);
    let by = match ctx.string(source.table, "by") {
        None => PgGrain::Schema,
        Some((b, loc)) => choice(
            &b,
            &[("schema", PgGrain::Schema), ("table", PgGrain::Table)],
            true,
        )
        .unwrap_or_else(|list| {
            ctx.push(
                &loc,
                format!("unknown `by = \"{b}\"`: use {list} (schema.table names)"),
            );
            PgGrain::Schema
        }),
    };
    dsn.map(|dsn| SourceKind::Postgres { dsn, by })
}

/// `kind = "redis"`: keys (or memory) per key prefix.
fn walk_redis(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Option<SourceKind> {
    let url = source.secret(ctx, "url", true);
    let measure = match ctx.string(source.table, "measure") {
        None => RedisMeasure::Keys,
        Some((m, loc)) => choice(
            &m,
            &[
                ("keys", RedisMeasure::Keys),
                ("memory", RedisMeasure::Memory),
            ],
            true,
        )
        .unwrap_or_else(|list| {
            ctx.push(&loc, format!("unknown `measure = \"{m}\"`: use {list}"));
            RedisMeasure::Keys
        }),
    };
    let kind = SourceKind::Redis {
        url: url.clone().unwrap_or(SecretRef::Env(String::new())),
        measure,
        max_keys: source.count(ctx, "max_keys", 1_000_000),
        scan_count: source.count(ctx, "scan_count", 1_000),
        memory_samples: source.count(ctx, "memory_samples", 100),
    };
    url.map(|_| kind)
}

/// A Prometheus `url` (plain when it carries no credentials), `url_env` or `url_file`.
fn prometheus_url(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Option<SecretRef> {
    match ctx.string(source.table, "url") {
        // A plain URL is fine when it carries no credentials.
        Some((url, loc)) if url.contains('@') => {
            ctx.push(
                &loc,
                "a Prometheus `url` with credentials in it would put a secret in the rules; use url_env or url_file, or token_env for a bearer token",
            );
            None
        }
        Some((url, _)) => Some(SecretRef::Inline(url)),
        None => source.secret(ctx, "url", true),
    }
}

/// `kind = "prometheus"`: an instant query, one series per member label.
fn walk_prometheus(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Option<SourceKind> {
    let url = prometheus_url(ctx, source);
    let token = source.secret(ctx, "token", false);
    let query = source.required(ctx, "query", "'sum by (topic) (kafka_log_log_size)'");
    let label = source.required(ctx, "label", "\"topic\"");
    match (url, query, label) {
        (Some(url), Some(query), Some(label)) => Some(SourceKind::Prometheus {
            url,
            token,
            query,
            label,
        }),
        _ => None,
    }
}

/// `kind = "kubernetes"`: requests or usage per namespace or pod label, from Prometheus.
fn walk_kubernetes(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Option<SourceKind> {
    let table = source.table;
    let url = prometheus_url(ctx, source);
    let token = source.secret(ctx, "token", false);
    let label = match ctx.string(table, "by") {
        None => None,
        Some((by, _)) if by == "namespace" => None,
        Some((by, loc)) => match label_key(&by) {
            Some(key) => Some(key.to_string()),
            None => {
                ctx.push(
                    &loc,
                    format!("unknown `by = \"{by}\"`: use \"namespace\" or \"label:KEY\" (a pod label, e.g. \"label:app\")"),
                );
                None
            }
        },
    };
    let basis = match ctx.string(table, "basis") {
        None => KubeBasis::Requests,
        Some((b, loc)) => choice(
            &b,
            &[
                ("requests", KubeBasis::Requests),
                ("usage", KubeBasis::Usage),
                ("max", KubeBasis::Max),
            ],
            true,
        )
        .unwrap_or_else(|list| {
            ctx.push(&loc, format!("unknown `basis = \"{b}\"`: use {list}"));
            KubeBasis::Requests
        }),
    };
    let weight = |ctx: &mut FileCtx<'_>, key: &str, default: u64| {
        u32::try_from(source.count(ctx, key, default)).unwrap_or(u32::MAX)
    };
    let cpu_weight = weight(ctx, "cpu_weight", 9);
    let memory_weight = weight(ctx, "memory_weight", 1);
    let duration = |ctx: &mut FileCtx<'_>, key: &str, default: &str| match ctx.string(table, key) {
        None => default.to_string(),
        Some((d, loc)) => {
            let ok = !d.is_empty()
                && d.chars().all(|c| c.is_ascii_alphanumeric())
                && d.starts_with(|c: char| c.is_ascii_digit());
            if !ok {
                ctx.push(
                    &loc,
                    format!("`{key}` must be a PromQL duration such as \"1d\" or \"5m\""),
                );
            }
            d
        }
    };
    let window = duration(ctx, "window", "1d");
    let step = duration(ctx, "step", "5m");
    let selector = ctx
        .string(table, "selector")
        .map(|(s, _)| s)
        .unwrap_or_default();
    if selector.contains(['{', '}']) {
        let loc = ctx.key_loc(table, "selector");
        ctx.push(
            &loc,
            "`selector` is label matchers without braces, e.g. selector = 'cluster=\"prod\"'",
        );
    }
    url.map(|url| SourceKind::Kubernetes {
        url,
        token,
        query: KubeQuery {
            label,
            selector,
            basis,
            cpu_weight,
            memory_weight,
            window,
            step,
        },
    })
}

/// `kind = "cloudwatch"`: one metric per member dimension value, by GetMetricData.
fn walk_cloudwatch(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Option<SourceKind> {
    let table = source.table;
    let namespace = source.required(ctx, "namespace", "\"AWS/Kafka\"");
    let metric = source.required(ctx, "metric", "\"BytesInPerSec\"");
    let dimension = source.required(ctx, "dimension", "\"Topic\"");
    let statistic = ctx
        .string(table, "statistic")
        .map(|(s, _)| s)
        .unwrap_or_else(|| "Sum".to_string());
    if !["Sum", "Average", "Maximum", "Minimum", "SampleCount"].contains(&statistic.as_str()) {
        let loc = ctx.key_loc(table, "statistic");
        ctx.push(
            &loc,
            format!("unknown statistic `{statistic}`: use Sum, Average, Maximum, Minimum or SampleCount"),
        );
    }
    let period_seconds = source.count(ctx, "period_seconds", 86_400);
    if !period_seconds.is_multiple_of(60) || period_seconds > 86_400 {
        let loc = ctx.key_loc(table, "period_seconds");
        ctx.push(
            &loc,
            "`period_seconds` must be a multiple of 60 and at most 86400 (one day)",
        );
    }
    let mut dimensions = Vec::new();
    if let Some(dims) = ctx.table(table, "dimensions") {
        for (key, item) in dims.iter() {
            match item.as_str() {
                Some(value) => dimensions.push((key.to_string(), value.to_string())),
                None => ctx.error(
                    item.span(),
                    format!("dimension `{key}` must be a string value"),
                ),
            }
        }
    }
    let region = ctx.string(table, "region").map(|(r, _)| r);
    Some(SourceKind::CloudWatch(CloudWatchQuery {
        namespace: namespace?,
        metric: metric?,
        dimension: dimension?,
        dimensions,
        statistic,
        period_seconds: period_seconds.min(86_400) as i32,
        region,
    }))
}

/// The `map` from what a source measures to services (names checked when the files are put
/// together).
fn walk_map(ctx: &mut FileCtx<'_>, source: &SourceTable<'_>) -> Vec<(String, String, Loc)> {
    let mut map = Vec::new();
    match ctx.table(source.table, "map") {
        None => ctx.push(
            &source.header,
            format!(
                "source `{}` needs a `map` from what it measures to services, e.g. map = {{ \"orders\" = \"orders-api\" }}",
                source.name
            ),
        ),
        Some(entries) => map = map_entries(ctx, entries),
    }
    map
}

/// A `map` table's entries: (name or pattern, service, where).
pub(super) fn map_entries(
    ctx: &mut FileCtx<'_>,
    entries: &dyn TableLike,
) -> Vec<(String, String, Loc)> {
    let mut map = Vec::new();
    for (key, item) in entries.iter() {
        let loc = ctx.key_loc(entries, key);
        match item.as_str() {
            Some(service) => map.push((key.to_string(), service.to_string(), loc)),
            None => ctx.error(
                item.span(),
                format!("map entry `{key}` must name a service as a string"),
            ),
        }
    }
    map
}

fn default_unit(kind: &SourceKind) -> String {
    match kind {
        SourceKind::Postgres { .. } => "bytes".to_string(),
        SourceKind::Redis {
            measure: RedisMeasure::Keys,
            ..
        } => "keys".to_string(),
        SourceKind::Redis { .. } => "bytes".to_string(),
        SourceKind::Prometheus { .. } => "value".to_string(),
        SourceKind::CloudWatch(q) => format!("{} ({})", q.metric, q.statistic),
        // Says what was measured, so a digest line reads
        // "eks-prod (usage: 18.2% of requested vCPU-equivalents)".
        SourceKind::Kubernetes { query, .. } => match query.basis {
            KubeBasis::Requests => "requested vCPU-equivalents",
            KubeBasis::Usage => "used vCPU-equivalents",
            KubeBasis::Max => "vCPU-equivalents (requested or used, the larger)",
        }
        .to_string(),
    }
}

/// `{key}_env` or `{key}_file` (relative to the rules file), exactly one when `required`.
fn secret(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    key: &str,
    dir: &Path,
    header: &Loc,
    source: &str,
    required: bool,
) -> Option<SecretRef> {
    let env = ctx.string(table, &format!("{key}_env"));
    let file = ctx.string(table, &format!("{key}_file"));
    match (env, file) {
        (Some((var, _)), None) => Some(SecretRef::Env(var)),
        (None, Some((file, _))) => Some(SecretRef::File(dir.join(file))),
        (Some(_), Some((_, loc))) => {
            ctx.push(
                &loc,
                format!("source `{source}`: give one of `{key}_env` or `{key}_file`, not both"),
            );
            None
        }
        (None, None) if required => {
            ctx.push(
                header,
                format!(
                    "source `{source}` needs `{key}_env = \"VARIABLE\"` or `{key}_file = \"path\"` (the {key} itself never sits in the rules)"
                ),
            );
            None
        }
        (None, None) => None,
    }
}

/// A `map` of names (key prefixes with `prefixes`, else exact names or glob patterns) to
/// services, each service resolved; `None` when an entry is wrong (the errors name `what`).
pub(super) fn service_map(
    what: &str,
    map: Vec<(String, String, Loc)>,
    prefixes: bool,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<ServiceMap> {
    let mut entries = Vec::new();
    let mut ok = true;
    for (key, service, kloc) in map {
        let service = match resolve(&service) {
            Ok(service) => service,
            Err(message) => {
                ok = false;
                diags.push(Diagnostic::error(
                    &kloc.file,
                    kloc.pos(),
                    format!("{what}: map `{key}`: {message}"),
                ));
                continue;
            }
        };
        let glob = if prefixes || ServiceMap::is_literal(&key) {
            None
        } else {
            match GlobBuilder::new(&key).literal_separator(false).build() {
                Ok(g) => Some(g.compile_matcher()),
                Err(e) => {
                    ok = false;
                    diags.push(Diagnostic::error(
                        &kloc.file,
                        kloc.pos(),
                        format!("{what}: map `{key}` is not a valid pattern: {e}"),
                    ));
                    continue;
                }
            }
        };
        entries.push(MapEntry { key, glob, service });
    }
    ok.then_some(ServiceMap { entries, prefixes })
}

/// Stage two: the map's services resolved, each source checked against the others.
pub(super) fn build_sources(
    raw: Vec<RawSource>,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<(UsageSource, Loc)> {
    let mut out: Vec<(UsageSource, Loc)> = Vec::new();
    for rs in raw {
        let (name, loc) = rs.name;
        if let Some((_, first)) = out.iter().find(|(s, _)| s.name == name) {
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!(
                    "source `{name}` is already defined at {}; source names must be unique",
                    first.short()
                ),
            ));
            continue;
        }
        let prefixes = matches!(rs.source.kind, SourceKind::Redis { .. });
        let built = service_map(
            &format!("source `{name}`"),
            rs.map,
            prefixes,
            resolve,
            diags,
        );
        let mut ok = built.is_some();
        let map = built.unwrap_or_default();
        if map.entries.is_empty() && ok {
            ok = false;
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("source `{name}` has an empty `map`; map what it measures to services"),
            ));
        }
        if ok {
            out.push((
                UsageSource {
                    name,
                    map,
                    ..rs.source
                },
                loc,
            ));
        }
    }
    out
}
