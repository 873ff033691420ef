//! Stage one and two of rule loading: walk each TOML file by hand (so every unknown key and
//! bad value is reported with its own file:line:col, not only the first), then check the
//! files together (duplicates, unknown services, overlaps) and build [`Rules`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;
use sha2::{Digest, Sha256};
use toml_edit::{Document, Item, TableLike, Value};

use super::diagnostic::{Diagnostic, LineIndex};
use super::sources::{self, LiveUsage, UsageSource};
use super::weights::{self, WeightKey, WeightRow, WeightTable};
use super::{
    Fallback, Loaded, Matcher, Pattern, Pool, Rules, Service, Settings, SplitMethod, Undeclared,
    ValueCase,
};
use crate::money::parse_scaled;

/// A place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Loc {
    pub file: PathBuf,
    pub line: usize,
    pub col: usize,
}

impl Loc {
    pub(super) fn pos(&self) -> (usize, usize) {
        (self.line, self.col)
    }
    pub(super) fn short(&self) -> String {
        format!("{}:{}", self.file.display(), self.line)
    }
}

#[derive(Debug)]
struct RawService {
    name: (String, Loc),
    team: String,
    cost_center: String,
    slack_channel: Option<String>,
    aliases: Vec<(String, Loc)>,
}

#[derive(Debug, Default)]
struct RawMatch {
    resource_id: Vec<(String, Loc)>,
    provider_service: Vec<(String, Loc)>,
    charge_category: Vec<(String, Loc)>,
    sub_account: Vec<(String, Loc)>,
    tags: Vec<(String, String, Loc)>,
    untagged: Option<bool>,
}

/// `name = number` entries of a table (numbers kept as decimal text), and where the table is.
type NumberTable = (Vec<(String, String, Loc)>, Loc);

#[derive(Debug)]
enum RawUsage {
    Static(Vec<(String, String, Loc)>),
    File(String, Loc),
    /// `source = "name"` or `source = ["a", "b"]`, measured by the daemon.
    Live {
        sources: Vec<(String, Loc)>,
        max_age_days: u32,
        missing_is_zero: bool,
    },
}

#[derive(Debug)]
struct RawPool {
    name: (String, Loc),
    header: Loc,
    priority: i64,
    matcher: Option<RawMatch>,
    members: Option<Vec<(String, Loc)>>,
    method: Option<(String, Loc)>,
    percent: Option<NumberTable>,
    usage: Option<RawUsage>,
    fallback: Option<(String, Loc)>,
    dir: PathBuf,
}

#[derive(Default)]
struct Raw {
    settings: Option<(Settings, Loc)>,
    alerts: Option<(RawAlerts, Loc)>,
    reports: Option<(super::ReportRules, Loc)>,
    tests: Vec<super::cases::RawCase>,
    services: Vec<RawService>,
    pools: Vec<RawPool>,
    sources: Vec<sources::RawSource>,
}

/// One file being walked: its path, line index and the diagnostics gathered so far.
pub(super) struct FileCtx<'a> {
    pub path: &'a Path,
    index: LineIndex,
    diags: &'a mut Vec<Diagnostic>,
}

impl FileCtx<'_> {
    /// An error at a place already located.
    pub(super) fn push(&mut self, loc: &Loc, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::error(&loc.file, loc.pos(), message));
    }

    pub(super) fn error_count(&self) -> usize {
        self.diags
            .iter()
            .filter(|d| d.severity == super::Severity::Error)
            .count()
    }

    pub(super) fn loc(&self, span: Option<Range<usize>>) -> Loc {
        let (line, col) = self.index.span(span);
        Loc {
            file: self.path.to_path_buf(),
            line,
            col,
        }
    }

    pub(super) fn error(&mut self, span: Option<Range<usize>>, message: impl Into<String>) {
        let pos = self.index.span(span);
        self.diags.push(Diagnostic::error(self.path, pos, message));
    }

    /// Reports every key of `table` that is not in `allowed`.
    pub(super) fn check_keys(&mut self, table: &dyn TableLike, allowed: &[&str], what: &str) {
        for (key, _) in table.iter() {
            if !allowed.contains(&key) {
                let span = table.get_key_value(key).and_then(|(k, _)| k.span());
                self.error(
                    span,
                    format!(
                        "unknown key `{key}` in {what}; expected one of: {}",
                        allowed.join(", ")
                    ),
                );
            }
        }
    }

    pub(super) fn key_loc(&self, table: &dyn TableLike, key: &str) -> Loc {
        self.loc(table.get_key_value(key).and_then(|(k, _)| k.span()))
    }

    pub(super) fn string(&mut self, table: &dyn TableLike, key: &str) -> Option<(String, Loc)> {
        let item = table.get(key)?;
        match item.as_str() {
            Some(s) => Some((s.to_string(), self.loc(item.span()))),
            None => {
                self.error(item.span(), format!("`{key}` must be a string"));
                None
            }
        }
    }

    /// A string or an array of strings.
    fn strings(&mut self, table: &dyn TableLike, key: &str) -> Option<Vec<(String, Loc)>> {
        let item = table.get(key)?;
        if let Some(s) = item.as_str() {
            return Some(vec![(s.to_string(), self.loc(item.span()))]);
        }
        let Some(array) = item.as_array() else {
            self.error(
                item.span(),
                format!("`{key}` must be a string or an array of strings"),
            );
            return None;
        };
        let mut out = Vec::new();
        for value in array.iter() {
            match value.as_str() {
                Some(s) => out.push((s.to_string(), self.loc(value.span()))),
                None => self.error(value.span(), format!("`{key}` must hold only strings")),
            }
        }
        Some(out)
    }

    pub(super) fn integer(&mut self, table: &dyn TableLike, key: &str) -> Option<i64> {
        let item = table.get(key)?;
        item.as_integer().or_else(|| {
            self.error(item.span(), format!("`{key}` must be an integer"));
            None
        })
    }

    fn boolean(&mut self, table: &dyn TableLike, key: &str) -> Option<bool> {
        let item = table.get(key)?;
        item.as_bool().or_else(|| {
            self.error(item.span(), format!("`{key}` must be true or false"));
            None
        })
    }

    pub(super) fn table<'t>(
        &mut self,
        table: &'t dyn TableLike,
        key: &str,
    ) -> Option<&'t dyn TableLike> {
        let item = table.get(key)?;
        item.as_table_like().or_else(|| {
            self.error(item.span(), format!("`{key}` must be a table"));
            None
        })
    }

    /// A table of `name = number`, numbers kept as decimal text.
    fn number_table(&mut self, table: &dyn TableLike, key: &str) -> Option<NumberTable> {
        let where_ = self.key_loc(table, key);
        let inner = self.table(table, key)?;
        let mut out = Vec::new();
        for (name, item) in inner.iter() {
            let text = match item.as_value() {
                Some(Value::Integer(i)) => Some(i.value().to_string()),
                Some(Value::Float(f)) => Some(f.value().to_string()),
                _ => None,
            };
            let name_loc = self.key_loc(inner, name);
            match text {
                Some(text) => out.push((name.to_string(), text, name_loc)),
                None => self.error(item.span(), format!("`{key}.{name}` must be a number")),
            }
        }
        Some((out, where_))
    }
}

pub(super) fn load_dir(dir: &Path) -> Loaded {
    let mut diags = Vec::new();
    let files = match super::rule_files(dir) {
        Ok(files) => files,
        Err(e) => {
            diags.push(Diagnostic::error(
                dir,
                (0, 0),
                format!("cannot read the rules directory: {e}; pass the directory that holds your *.toml rules"),
            ));
            return Loaded {
                rules: None,
                diagnostics: diags,
                inputs: Vec::new(),
            };
        }
    };
    if files.is_empty() {
        diags.push(Diagnostic::error(
            dir,
            (0, 0),
            "no *.toml rules files here; copy rules/example.toml to start",
        ));
    }
    let mut raw = Raw::default();
    let mut hasher = Sha256::new();
    let mut all_parsed = true;
    for file in &files {
        let text = match std::fs::read_to_string(file) {
            Ok(text) => text,
            Err(e) => {
                diags.push(Diagnostic::error(file, (0, 0), format!("cannot read: {e}")));
                continue;
            }
        };
        hash_part(&mut hasher, file, text.as_bytes());
        let mut ctx = FileCtx {
            path: file,
            index: LineIndex::new(&text),
            diags: &mut diags,
        };
        all_parsed &= walk_file(&mut ctx, &text, &mut raw);
    }
    let mut inputs = files.clone();
    inputs.extend(raw.pools.iter().filter_map(|p| match &p.usage {
        Some(RawUsage::File(file, _)) => Some(p.dir.join(file)),
        _ => None,
    }));
    // A file that is not TOML is reported alone: checking the others against a set with a
    // file missing would report what that file would have declared (a service, a source)
    // as errors of the files that use it.
    let rules = if all_parsed {
        build(raw, &mut diags, &mut hasher)
    } else {
        diags.retain(|d| d.message.starts_with(INVALID_TOML));
        None
    };
    sort_diagnostics(&mut diags);
    let has_errors = diags.iter().any(|d| d.severity == super::Severity::Error);
    Loaded {
        rules: if has_errors { None } else { rules },
        diagnostics: diags,
        inputs,
    }
}

fn sort_diagnostics(diags: &mut [Diagnostic]) {
    diags.sort_by(|a, b| {
        (&a.file, a.line, a.col, a.severity).cmp(&(&b.file, b.line, b.col, b.severity))
    });
}

fn hash_part(hasher: &mut Sha256, file: &Path, bytes: &[u8]) {
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned());
    hasher.update(name.unwrap_or_default().as_bytes());
    hasher.update([0]);
    hasher.update((bytes.len() as u64).to_le_bytes());
    hasher.update(bytes);
}

const INVALID_TOML: &str = "invalid TOML: ";

/// Walks one file into `raw`. False when it is not TOML at all (its syntax error is then
/// its one diagnostic).
fn walk_file(ctx: &mut FileCtx<'_>, text: &str, raw: &mut Raw) -> bool {
    let doc = match Document::parse(text) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().trim().replace('\n', " ");
            ctx.error(e.span(), format!("{INVALID_TOML}{message}"));
            return false;
        }
    };
    let root = doc.as_table();
    ctx.check_keys(
        root,
        &[
            "settings", "service", "pool", "source", "alerts", "reports", "test",
        ],
        "a rules file",
    );
    walk_single(ctx, root, "settings", &mut raw.settings, walk_settings);
    walk_single(ctx, root, "alerts", &mut raw.alerts, walk_alerts);
    walk_single(ctx, root, "reports", &mut raw.reports, walk_reports);
    for (key, walk) in [
        ("service", walk_service as Walker),
        ("pool", walk_pool),
        ("source", walk_source),
        ("test", walk_test),
    ] {
        let Some(item) = root.get(key) else { continue };
        match item {
            Item::ArrayOfTables(array) => {
                for table in array.iter() {
                    walk(ctx, table, table.span(), raw);
                }
            }
            _ => ctx.error(
                item.span(),
                format!("`{key}` must be written as [[{key}]] tables, one per {key}"),
            ),
        }
    }
    true
}

/// A table that may appear once across all rules files, like `[settings]`.
fn walk_single<T>(
    ctx: &mut FileCtx<'_>,
    root: &dyn TableLike,
    key: &str,
    slot: &mut Option<(T, Loc)>,
    walk: fn(&mut FileCtx<'_>, &dyn TableLike) -> T,
) {
    let Some(table) = ctx.table(root, key) else {
        return;
    };
    let loc = ctx.key_loc(root, key);
    match slot {
        Some((_, first)) => {
            let message = format!(
                "[{key}] is already given at {}; keep one [{key}] table",
                first.short()
            );
            ctx.error(root.get_key_value(key).and_then(|(k, _)| k.span()), message);
        }
        None => *slot = Some((walk(ctx, table), loc)),
    }
}

type Walker = fn(&mut FileCtx<'_>, &dyn TableLike, Option<Range<usize>>, &mut Raw);

fn walk_settings(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> Settings {
    ctx.check_keys(
        table,
        &["service_tag_keys", "value_case", "undeclared_services"],
        "[settings]",
    );
    let mut settings = Settings::defaults();
    if let Some(keys) = ctx.strings(table, "service_tag_keys") {
        if keys.is_empty() {
            let loc = ctx.key_loc(table, "service_tag_keys");
            ctx.diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                "`service_tag_keys` is empty; list at least one tag key, e.g. [\"service\"]",
            ));
        } else {
            settings.service_tag_keys = keys.into_iter().map(|(k, _)| k).collect();
        }
    }
    if let Some((value, loc)) = ctx.string(table, "value_case") {
        match value.as_str() {
            "lower" => settings.value_case = ValueCase::Lower,
            "keep" => settings.value_case = ValueCase::Keep,
            other => ctx.diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("unknown value_case `{other}`: use \"lower\" or \"keep\""),
            )),
        }
    }
    if let Some((value, loc)) = ctx.string(table, "undeclared_services") {
        match value.as_str() {
            "direct" => settings.undeclared_services = Undeclared::Direct,
            "unallocated" => settings.undeclared_services = Undeclared::Unallocated,
            other => ctx.diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("unknown undeclared_services `{other}`: use \"direct\" or \"unallocated\""),
            )),
        }
    }
    settings
}

fn walk_service(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
    raw: &mut Raw,
) {
    ctx.check_keys(
        table,
        &["name", "team", "cost_center", "slack_channel", "aliases"],
        "[[service]]",
    );
    let name = ctx.string(table, "name");
    let team = ctx
        .string(table, "team")
        .map(|(t, _)| t)
        .unwrap_or_default();
    let cost_center = ctx
        .string(table, "cost_center")
        .map(|(c, _)| c)
        .unwrap_or_default();
    let slack_channel = ctx.string(table, "slack_channel").map(|(c, _)| c);
    let aliases = ctx.strings(table, "aliases").unwrap_or_default();
    match name {
        Some((name, loc)) if !name.trim().is_empty() => raw.services.push(RawService {
            name: (name, loc),
            team,
            cost_center,
            slack_channel,
            aliases,
        }),
        Some((_, loc)) => ctx.diags.push(Diagnostic::error(
            &loc.file,
            loc.pos(),
            "service `name` is empty",
        )),
        None => ctx.error(
            span,
            "[[service]] needs a `name`, e.g. name = \"checkout-api\"",
        ),
    }
}

fn walk_test(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
    raw: &mut Raw,
) {
    if let Some(case) = super::cases::walk_case(ctx, table, span) {
        raw.tests.push(case);
    }
}

/// `[reports]`: what the per-team Slack digests list.
fn walk_reports(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> super::ReportRules {
    ctx.check_keys(table, &["min_service_dollars", "top_movers"], "[reports]");
    let mut rules = super::ReportRules::defaults();
    if let Some(item) = table.get("min_service_dollars") {
        let text = match item.as_value() {
            Some(Value::Integer(i)) => i.value().to_string(),
            Some(Value::Float(f)) => f.value().to_string(),
            _ => String::new(),
        };
        match crate::money::Nanos::parse(&text).filter(|n| n.0 >= 0) {
            Some(n) => rules.min_service_amount = n,
            None => ctx.error(
                item.span(),
                "`min_service_dollars` must be a non-negative amount, e.g. 10",
            ),
        }
    }
    if let Some(n) = ctx.integer(table, "top_movers") {
        match usize::try_from(n) {
            Ok(n) if n <= 20 => rules.top_movers = n,
            _ => {
                let loc = ctx.key_loc(table, "top_movers");
                ctx.push(&loc, "`top_movers` must be between 0 and 20");
            }
        }
    }
    rules
}

fn walk_source(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
    raw: &mut Raw,
) {
    if let Some(source) = sources::walk_source(ctx, table, span) {
        raw.sources.push(source);
    }
}

fn walk_pool(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
    raw: &mut Raw,
) {
    ctx.check_keys(
        table,
        &[
            "name", "priority", "match", "members", "method", "percent", "usage", "fallback",
        ],
        "[[pool]]",
    );
    let header = ctx.loc(span.clone());
    let name = ctx.string(table, "name");
    let priority = ctx.integer(table, "priority").unwrap_or(0);
    let matcher = ctx.table(table, "match").map(|m| walk_match(ctx, m));
    let members = ctx.strings(table, "members");
    let method = ctx.string(table, "method");
    let percent = ctx.number_table(table, "percent");
    let usage = ctx
        .table(table, "usage")
        .and_then(|u| walk_usage(ctx, u, ctx.key_loc(table, "usage")));
    let fallback = ctx.string(table, "fallback");
    let Some(name) = name.filter(|(n, _)| !n.trim().is_empty()) else {
        ctx.error(
            span,
            "[[pool]] needs a non-empty `name`, e.g. name = \"shared-aurora\"",
        );
        return;
    };
    raw.pools.push(RawPool {
        name,
        header,
        priority,
        matcher,
        members,
        method,
        percent,
        usage,
        fallback,
        dir: ctx.path.parent().unwrap_or(Path::new(".")).to_path_buf(),
    });
}

fn walk_match(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> RawMatch {
    ctx.check_keys(
        table,
        &[
            "resource_id",
            "provider_service",
            "charge_category",
            "sub_account",
            "tags",
            "untagged",
        ],
        "a pool's `match`",
    );
    let mut raw = RawMatch {
        resource_id: ctx.strings(table, "resource_id").unwrap_or_default(),
        provider_service: ctx.strings(table, "provider_service").unwrap_or_default(),
        charge_category: ctx.strings(table, "charge_category").unwrap_or_default(),
        sub_account: ctx.strings(table, "sub_account").unwrap_or_default(),
        untagged: ctx.boolean(table, "untagged"),
        tags: Vec::new(),
    };
    if let Some(tags) = ctx.table(table, "tags") {
        for (key, item) in tags.iter() {
            match item.as_str() {
                Some(value) => {
                    raw.tags
                        .push((key.to_string(), value.to_string(), ctx.key_loc(tags, key)))
                }
                None => ctx.error(item.span(), format!("tag `{key}` must be a string value")),
            }
        }
    }
    raw
}

fn walk_usage(ctx: &mut FileCtx<'_>, table: &dyn TableLike, loc: Loc) -> Option<RawUsage> {
    ctx.check_keys(
        table,
        &["weights", "file", "source", "max_age_days", "missing"],
        "a pool's `usage`",
    );
    let weights = ctx.number_table(table, "weights");
    let file = ctx.string(table, "file");
    let source = ctx.strings(table, "source");
    let max_age = ctx.integer(table, "max_age_days");
    let missing = ctx.string(table, "missing");
    if source.is_none() {
        for key in ["max_age_days", "missing"] {
            if table.contains_key(key) {
                let at = ctx.key_loc(table, key);
                ctx.push(&at, format!("`{key}` applies only to a live `source`"));
            }
        }
    }
    match (weights, file, source) {
        (Some((w, _)), None, None) => Some(RawUsage::Static(w)),
        (None, Some((f, floc)), None) => Some(RawUsage::File(f, floc)),
        (None, None, Some(sources)) if !sources.is_empty() => {
            let max_age_days = match max_age {
                None => 3,
                Some(days) if (0..=366).contains(&days) => days as u32,
                Some(_) => {
                    let at = ctx.key_loc(table, "max_age_days");
                    ctx.push(&at, "`max_age_days` must be between 0 and 366");
                    3
                }
            };
            let missing_is_zero = match missing {
                None => false,
                Some((m, _)) if m == "fallback" => false,
                Some((m, _)) if m == "zero" => true,
                Some((other, mloc)) => {
                    ctx.push(
                        &mloc,
                        format!("unknown `missing = \"{other}\"`: use \"fallback\" (the default: a member without a sample makes the pool fall back that day) or \"zero\""),
                    );
                    false
                }
            };
            Some(RawUsage::Live {
                sources,
                max_age_days,
                missing_is_zero,
            })
        }
        _ => {
            ctx.diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                "`usage` needs exactly one of `weights = { service = number, ... }`, `file = \"weights.csv\"` or `source = \"a [[source]] name\"`",
            ));
            None
        }
    }
}

/// `[alerts]` as read, before team and service names are checked.
#[derive(Debug)]
struct RawAlerts {
    rules: super::AlertRules,
    teams: Vec<(String, Loc, super::FloorOverrides)>,
    services: Vec<(String, Loc, super::FloorOverrides)>,
}

const FLOOR_KEYS: [&str; 4] = [
    "spike_min_dollars",
    "spike_min_percent",
    "mom_min_dollars",
    "mom_min_percent",
];

fn walk_alerts(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> RawAlerts {
    let mut allowed: Vec<&str> = vec![
        "baseline_days",
        "min_history_days",
        "sigmas",
        "growth_step_percent",
        "persistence_days",
        "lookback_days",
        "dashboard_url",
        "team",
        "service",
    ];
    allowed.extend(FLOOR_KEYS);
    ctx.check_keys(table, &allowed, "[alerts]");
    let mut rules = super::AlertRules::defaults();
    let count = |ctx: &mut FileCtx<'_>, key: &str| -> Option<i64> {
        let value = ctx.integer(table, key)?;
        if value < 0 {
            let loc = ctx.key_loc(table, key);
            ctx.diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("`{key}` must not be negative"),
            ));
            return None;
        }
        Some(value)
    };
    if let Some(v) = count(ctx, "baseline_days") {
        rules.base.baseline_days = v as usize;
    }
    if let Some(v) = count(ctx, "min_history_days") {
        rules.base.min_history_days = v as usize;
    }
    if let Some(v) = count(ctx, "sigmas") {
        rules.base.sigmas = v;
    }
    if let Some(v) = count(ctx, "growth_step_percent") {
        rules.base.growth_step_percent = v;
    }
    if let Some(v) = count(ctx, "persistence_days") {
        rules.base.persistence_days = v as usize;
    }
    if let Some(v) = count(ctx, "lookback_days") {
        rules.lookback_days = u32::try_from(v).unwrap_or(u32::MAX);
    }
    rules.dashboard_url = ctx.string(table, "dashboard_url").map(|(u, _)| u);
    super::FloorOverrides::apply(&floors(ctx, table), &mut rules.base);
    let named = |ctx: &mut FileCtx<'_>, key: &str| -> Vec<(String, Loc, super::FloorOverrides)> {
        let Some(inner) = ctx.table(table, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (name, item) in inner.iter() {
            let loc = ctx.key_loc(inner, name);
            match item.as_table_like() {
                Some(t) => {
                    ctx.check_keys(t, &FLOOR_KEYS, &format!("[alerts.{key}.{name}]"));
                    out.push((name.to_string(), loc, floors(ctx, t)));
                }
                None => ctx.error(
                    item.span(),
                    format!("`alerts.{key}.{name}` must be a table of thresholds"),
                ),
            }
        }
        out
    };
    let teams = named(ctx, "team");
    let services = named(ctx, "service");
    RawAlerts {
        rules,
        teams,
        services,
    }
}

fn floors(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> super::FloorOverrides {
    let money = |ctx: &mut FileCtx<'_>, key: &str| {
        let item = table.get(key)?;
        let text = match item.as_value() {
            Some(Value::Integer(i)) => i.value().to_string(),
            Some(Value::Float(f)) => f.value().to_string(),
            _ => String::new(),
        };
        match crate::money::Nanos::parse(&text).filter(|n| n.0 >= 0) {
            Some(n) => Some(n),
            None => {
                ctx.error(
                    item.span(),
                    format!("`{key}` must be a non-negative amount"),
                );
                None
            }
        }
    };
    let spike_min_amount = money(ctx, "spike_min_dollars");
    let mom_min_amount = money(ctx, "mom_min_dollars");
    let percent = |ctx: &mut FileCtx<'_>, key: &str| {
        let v = ctx.integer(table, key)?;
        (v >= 0).then_some(v).or_else(|| {
            let loc = ctx.key_loc(table, key);
            ctx.diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("`{key}` must not be negative"),
            ));
            None
        })
    };
    super::FloorOverrides {
        spike_min_amount,
        spike_min_percent: percent(ctx, "spike_min_percent"),
        mom_min_amount,
        mom_min_percent: percent(ctx, "mom_min_percent"),
    }
}

/// Checks `[alerts]` team and service names against the declared services.
fn build_alerts(
    raw: Option<RawAlerts>,
    services: &[Service],
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> super::AlertRules {
    let Some(raw) = raw else {
        return super::AlertRules::defaults();
    };
    let mut rules = raw.rules;
    let teams: BTreeSet<&str> = services.iter().map(|s| s.team.as_str()).collect();
    for (team, loc, o) in raw.teams {
        if teams.contains(team.as_str()) {
            rules.teams.insert(team, o);
        } else {
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("no service has team `{team}`; use a team named in a [[service]] table"),
            ));
        }
    }
    for (service, loc, o) in raw.services {
        match resolve(&service) {
            Ok(name) => {
                rules.services.insert(name, o);
            }
            Err(message) => diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("[alerts.service]: {message}"),
            )),
        }
    }
    rules
}

/// Stage two: the files together.
fn build(raw: Raw, diags: &mut Vec<Diagnostic>, hasher: &mut Sha256) -> Option<Rules> {
    let settings = raw
        .settings
        .map(|(s, _)| s)
        .unwrap_or_else(Settings::defaults);
    let normalise = |v: &str| settings.value_case.normalise(v);

    // Services and their aliases.
    let mut services: Vec<Service> = Vec::new();
    let mut names: HashMap<String, (usize, Loc)> = HashMap::new();
    let mut sorted = raw.services;
    sorted.sort_by_key(|s| normalise(&s.name.0));
    for rs in sorted {
        let name = normalise(&rs.name.0);
        let loc = rs.name.1.clone();
        if name == crate::model::UNALLOCATED {
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                "`unallocated` is the name of the cost nobody owns; give the service another name",
            ));
            continue;
        }
        if let Some((_, first)) = names.get(&name) {
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!(
                    "service `{name}` is already declared at {}; remove one",
                    first.short()
                ),
            ));
            continue;
        }
        names.insert(name.clone(), (services.len(), loc));
        services.push(Service {
            name,
            team: rs.team,
            cost_center: rs.cost_center,
            slack_channel: rs.slack_channel,
            aliases: rs.aliases.iter().map(|(a, _)| normalise(a)).collect(),
        });
        let index = services.len() - 1;
        for (alias, aloc) in rs.aliases {
            let alias = normalise(&alias);
            match names.get(&alias) {
                Some((other, first)) if *other != index => diags.push(Diagnostic::error(
                    &aloc.file,
                    aloc.pos(),
                    format!(
                        "alias `{alias}` already names service `{}` ({}); an alias must name one service",
                        services[*other].name,
                        first.short()
                    ),
                )),
                _ => {
                    names.insert(alias, (index, aloc));
                }
            }
        }
    }
    let lookup: HashMap<String, usize> = names.iter().map(|(k, (i, _))| (k.clone(), *i)).collect();
    let resolve = |value: &str| -> Result<String, String> {
        let value = normalise(value);
        match lookup.get(&value) {
            Some(&i) => Ok(services[i].name.clone()),
            None if value.is_empty() => Err("empty service name".to_string()),
            None => Err(format!(
                "unknown service `{value}`; declare it in a [[service]] table or fix the name"
            )),
        }
    };

    // Usage sources, then pools (which may name them).
    let sources = sources::build_sources(raw.sources, &resolve, diags);

    // Pools.
    let mut pools: Vec<(Pool, Loc, RawMatch)> = Vec::new();
    let mut pool_names: HashMap<String, Loc> = HashMap::new();
    for rp in raw.pools {
        let (name, loc) = rp.name.clone();
        if let Some(first) = pool_names.get(&name) {
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!(
                    "pool `{name}` is already defined at {}; pool names must be unique",
                    first.short()
                ),
            ));
            continue;
        }
        pool_names.insert(name.clone(), loc.clone());
        if let Some(pool) = build_pool(rp, &resolve, &sources, diags, hasher) {
            pools.push(pool);
        }
    }
    pools.sort_by_key(|(p, _, _)| p.priority);
    warn_overlaps(&pools, diags);
    let alerts = build_alerts(raw.alerts.map(|(a, _)| a), &services, &resolve, diags);
    let usage_pools: Vec<&str> = pools
        .iter()
        .filter(|(p, _, _)| matches!(p.method, SplitMethod::Usage(_)))
        .map(|(p, _, _)| p.name.as_str())
        .collect();
    let tests = super::cases::build_cases(raw.tests, &resolve, &usage_pools, diags);
    let reports = raw
        .reports
        .map(|(r, _)| r)
        .unwrap_or_else(super::ReportRules::defaults);

    let hash = hex::encode(&hasher.clone().finalize()[..8]);
    Some(Rules {
        hash,
        settings,
        services,
        pools: pools.into_iter().map(|(p, _, _)| p).collect(),
        sources: sources.into_iter().map(|(s, _)| s).collect(),
        alerts,
        reports,
        tests,
        lookup,
    })
}

fn build_pool(
    rp: RawPool,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    sources: &[(UsageSource, Loc)],
    diags: &mut Vec<Diagnostic>,
    hasher: &mut Sha256,
) -> Option<(Pool, Loc, RawMatch)> {
    let name = rp.name.0.clone();
    let at = |loc: &Loc, message: String| Diagnostic::error(&loc.file, loc.pos(), message);
    let errors_before = diags.len();

    // Members, resolved to declared service names.
    let mut members: Option<BTreeSet<String>> = None;
    if let Some(list) = &rp.members {
        let mut set = BTreeSet::new();
        for (member, loc) in list {
            match resolve(member) {
                Ok(service) => {
                    if !set.insert(service.clone()) {
                        diags.push(at(
                            loc,
                            format!("`{service}` is listed twice in pool `{name}`"),
                        ));
                    }
                }
                Err(message) => diags.push(at(loc, format!("pool `{name}`: {message}"))),
            }
        }
        members = Some(set);
    }

    let method_name = rp.method.as_ref().map(|(m, _)| m.as_str());
    if let (Some((_, loc)), false) = (&rp.percent, method_name == Some("fixed")) {
        diags.push(at(
            loc,
            format!("pool `{name}`: `percent` only applies to method = \"fixed\""),
        ));
    }
    if rp.usage.is_some() && method_name != Some("usage") {
        diags.push(at(
            &rp.header,
            format!("pool `{name}`: `usage` only applies to method = \"usage\""),
        ));
    }
    let method = match &rp.method {
        None => {
            diags.push(at(
                &rp.header,
                format!("pool `{name}` needs a `method`: equal, fixed, proportional or usage"),
            ));
            None
        }
        Some((m, loc)) => match m.as_str() {
            "equal" => Some(SplitMethod::Equal),
            "proportional" => Some(SplitMethod::Proportional),
            "fixed" => fixed_percent(&name, &rp, &mut members, resolve, diags),
            "usage" => usage_weights(&name, &rp, &mut members, resolve, sources, diags, hasher),
            other => {
                diags.push(at(
                    loc,
                    format!("unknown method `{other}`: use equal, fixed, proportional or usage"),
                ));
                None
            }
        },
    };

    let fallback = match rp.fallback.as_ref().map(|(f, l)| (f.as_str(), l)) {
        None | Some(("equal", _)) => Fallback::Equal,
        Some(("proportional", _)) => Fallback::Proportional,
        Some(("unallocated", _)) => Fallback::Unallocated,
        Some((other, loc)) => {
            diags.push(at(
                loc,
                format!("unknown fallback `{other}`: use equal, proportional or unallocated"),
            ));
            Fallback::Equal
        }
    };

    let members: Vec<String> = members.unwrap_or_default().into_iter().collect();
    if members.is_empty() && method.is_some() {
        diags.push(at(
            &rp.header,
            format!("pool `{name}` has no members; list them in `members = [\"service\", ...]`"),
        ));
    }

    let raw_match = match rp.matcher {
        Some(m) => m,
        None => {
            diags.push(at(
                &rp.header,
                format!("pool `{name}` needs a `match` table saying which line items it takes, e.g. match = {{ resource_id = \"arn:aws:rds:*:db:shared-*\" }}"),
            ));
            RawMatch::default()
        }
    };
    let matcher = build_matcher(&name, &raw_match, &rp.header, diags);

    if diags.len() > errors_before {
        return None;
    }
    Some((
        Pool {
            name,
            priority: rp.priority,
            matcher: matcher?,
            members,
            method: method?,
            fallback,
            live: match rp.usage {
                Some(RawUsage::Live {
                    sources,
                    max_age_days,
                    missing_is_zero,
                }) => Some(LiveUsage {
                    sources: sources.into_iter().map(|(s, _)| s).collect(),
                    max_age_days,
                    missing_is_zero,
                }),
                _ => None,
            },
        },
        rp.name.1,
        raw_match,
    ))
}

fn fixed_percent(
    name: &str,
    rp: &RawPool,
    members: &mut Option<BTreeSet<String>>,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<SplitMethod> {
    let Some((entries, loc)) = &rp.percent else {
        diags.push(Diagnostic::error(
            &rp.header.file,
            rp.header.pos(),
            format!("pool `{name}` uses method = \"fixed\" but has no `percent = {{ service = 60, other = 40 }}`"),
        ));
        return None;
    };
    let mut parts = BTreeMap::new();
    let mut ok = true;
    for (service, text, sloc) in entries {
        let value = parse_scaled(text, 9).filter(|v| *v >= 0);
        match (resolve(service), value) {
            (Ok(service), Some(v)) => {
                parts.insert(service, v as u128);
            }
            (Err(message), _) => {
                ok = false;
                diags.push(Diagnostic::error(
                    &sloc.file,
                    sloc.pos(),
                    format!("pool `{name}`: {message}"),
                ));
            }
            (_, None) => {
                ok = false;
                diags.push(Diagnostic::error(
                    &sloc.file,
                    sloc.pos(),
                    format!("pool `{name}`: percent `{text}` must be a number from 0 to 100"),
                ));
            }
        }
    }
    let total: u128 = parts.values().sum();
    if ok && total != 100 * 1_000_000_000 {
        ok = false;
        diags.push(Diagnostic::error(
            &loc.file,
            loc.pos(),
            format!(
                "pool `{name}`: percentages sum to {}, not 100; adjust them so they add up to exactly 100",
                crate::money::Nanos(i128::try_from(total).unwrap_or(i128::MAX)).format(9).trim_end_matches('0').trim_end_matches('.')
            ),
        ));
    }
    let keys: BTreeSet<String> = parts.keys().cloned().collect();
    match members {
        Some(m) if *m != keys => {
            ok = false;
            diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("pool `{name}`: `percent` must name exactly the `members` (or leave `members` out)"),
            ));
        }
        _ => *members = Some(keys),
    }
    ok.then(|| SplitMethod::Fixed(parts.into_iter().collect()))
}

fn usage_weights(
    name: &str,
    rp: &RawPool,
    members: &mut Option<BTreeSet<String>>,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    sources: &[(UsageSource, Loc)],
    diags: &mut Vec<Diagnostic>,
    hasher: &mut Sha256,
) -> Option<SplitMethod> {
    let (rows, loc) = match &rp.usage {
        None => {
            diags.push(Diagnostic::error(
                &rp.header.file,
                rp.header.pos(),
                format!("pool `{name}` uses method = \"usage\" but has no `usage` table; add usage = {{ source = \"orders-db\" }}, usage = {{ file = \"weights.csv\" }} or usage = {{ weights = {{ service = 10 }} }}"),
            ));
            return None;
        }
        Some(RawUsage::Live { sources: named, .. }) => {
            let mut mapped: BTreeSet<String> = BTreeSet::new();
            let mut ok = true;
            for (source, sloc) in named {
                match sources.iter().find(|(s, _)| &s.name == source) {
                    Some((s, _)) => mapped.extend(s.map.services().into_iter().map(str::to_string)),
                    None => {
                        ok = false;
                        let known: Vec<&str> =
                            sources.iter().map(|(s, _)| s.name.as_str()).collect();
                        diags.push(Diagnostic::error(
                            &sloc.file,
                            sloc.pos(),
                            format!(
                                "pool `{name}`: no [[source]] is named `{source}`; declare it (known sources: {})",
                                if known.is_empty() { "none".to_string() } else { known.join(", ") }
                            ),
                        ));
                    }
                }
            }
            if !ok {
                return None;
            }
            match members {
                Some(m) => {
                    let strays: Vec<&str> = mapped.difference(m).map(String::as_str).collect();
                    if !strays.is_empty() {
                        let loc = &named[0].1;
                        diags.push(Diagnostic::error(
                            &loc.file,
                            loc.pos(),
                            format!("pool `{name}`: its sources map to services that are not members: {}; add them to `members` or change the source's `map`", strays.join(", ")),
                        ));
                        return None;
                    }
                }
                None => *members = Some(mapped),
            }
            return Some(SplitMethod::Usage(WeightTable::default()));
        }
        Some(RawUsage::Static(entries)) => {
            let mut rows = Vec::new();
            for (service, text, sloc) in entries {
                match (resolve(service), weights::parse_weight(text)) {
                    (Ok(service), Some(weight)) => rows.push(WeightRow {
                        key: WeightKey {
                            day: None,
                            resource_id: None,
                        },
                        service,
                        weight,
                    }),
                    (Err(message), _) => diags.push(Diagnostic::error(
                        &sloc.file,
                        sloc.pos(),
                        format!("pool `{name}`: {message}"),
                    )),
                    (_, None) => diags.push(Diagnostic::error(
                        &sloc.file,
                        sloc.pos(),
                        format!("pool `{name}`: weight `{text}` must be a non-negative number"),
                    )),
                }
            }
            let loc = entries
                .first()
                .map(|(_, _, l)| l.clone())
                .unwrap_or_else(|| rp.header.clone());
            (rows, loc)
        }
        Some(RawUsage::File(file, floc)) => {
            let path = rp.dir.join(file);
            match std::fs::read(&path) {
                Ok(bytes) => hash_part(hasher, &path, &bytes),
                Err(e) => {
                    diags.push(Diagnostic::error(
                        &floc.file,
                        floc.pos(),
                        format!(
                            "pool `{name}`: cannot read weight file {}: {e}",
                            path.display()
                        ),
                    ));
                    return None;
                }
            }
            match weights::read_csv(&path, resolve) {
                Ok(rows) => (rows, floc.clone()),
                Err(errors) => {
                    diags.extend(errors);
                    return None;
                }
            }
        }
    };
    let table = WeightTable::from_rows(rows);
    let named: BTreeSet<String> = table.services().into_iter().map(str::to_string).collect();
    match members {
        Some(m) => {
            let strays: Vec<&String> = named.difference(m).collect();
            if !strays.is_empty() {
                diags.push(Diagnostic::error(
                    &loc.file,
                    loc.pos(),
                    format!("pool `{name}`: weights name services that are not members: {}; add them to `members` or drop their weights", strays.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
                ));
                return None;
            }
        }
        None => *members = Some(named),
    }
    Some(SplitMethod::Usage(table))
}

fn build_matcher(
    name: &str,
    raw: &RawMatch,
    header: &Loc,
    diags: &mut Vec<Diagnostic>,
) -> Option<Matcher> {
    let mut ok = true;
    let mut resource_id = Vec::new();
    for (text, loc) in &raw.resource_id {
        match GlobBuilder::new(text).literal_separator(false).build() {
            Ok(glob) => resource_id.push(Pattern {
                text: text.clone(),
                glob: glob.compile_matcher(),
            }),
            Err(e) => {
                ok = false;
                diags.push(Diagnostic::error(
                    &loc.file,
                    loc.pos(),
                    format!("pool `{name}`: bad resource_id pattern: {e}"),
                ));
            }
        }
    }
    let values = |list: &[(String, Loc)]| list.iter().map(|(v, _)| v.clone()).collect::<Vec<_>>();
    let matcher = Matcher {
        resource_id,
        provider_service: values(&raw.provider_service),
        charge_category: values(&raw.charge_category),
        sub_account: values(&raw.sub_account),
        tags: raw
            .tags
            .iter()
            .map(|(k, v, _)| (k.clone(), v.clone()))
            .collect(),
        untagged: raw.untagged,
    };
    let empty = matcher.resource_id.is_empty()
        && matcher.provider_service.is_empty()
        && matcher.charge_category.is_empty()
        && matcher.sub_account.is_empty()
        && matcher.tags.is_empty()
        && matcher.untagged.is_none();
    if empty && ok {
        diags.push(Diagnostic::error(
            &header.file,
            header.pos(),
            format!("pool `{name}` has an empty `match`, which would take every line item; give at least one of resource_id, provider_service, charge_category, sub_account, tags, untagged"),
        ));
        ok = false;
    }
    ok.then_some(matcher)
}

/// Warns about pairs of pools of the same priority that could both claim a line item
/// (nothing in their `match` rules it out), since only file order then decides. Pools of
/// different priorities are ordered on purpose and are not reported.
fn warn_overlaps(pools: &[(Pool, Loc, RawMatch)], diags: &mut Vec<Diagnostic>) {
    for (i, (first, first_loc, _)) in pools.iter().enumerate() {
        for (second, loc, _) in &pools[i + 1..] {
            if first.priority != second.priority || disjoint(&first.matcher, &second.matcher) {
                continue;
            }
            diags.push(Diagnostic::warning(
                &loc.file,
                loc.pos(),
                format!(
                    "pools `{}` ({}) and `{}` may both match the same line items and have the same priority ({}); `{}` takes them because it comes first in file order; give them different `priority` values or narrow `match`",
                    first.name, first_loc.short(), second.name, first.priority, first.name
                ),
            ));
        }
    }
}

fn disjoint(a: &Matcher, b: &Matcher) -> bool {
    let lists_disjoint = |x: &[String], y: &[String]| {
        !x.is_empty()
            && !y.is_empty()
            && !x
                .iter()
                .any(|v| y.iter().any(|w| v.eq_ignore_ascii_case(w)))
    };
    let patterns_disjoint = |x: &[Pattern], y: &[Pattern]| {
        if x.is_empty() || y.is_empty() {
            return false;
        }
        let literal = |p: &[Pattern]| p.iter().all(Pattern::is_literal);
        match (literal(x), literal(y)) {
            (true, true) => !x.iter().any(|p| y.iter().any(|q| p.text == q.text)),
            (false, true) => !y.iter().any(|q| x.iter().any(|p| p.glob.is_match(&q.text))),
            (true, false) => !x.iter().any(|p| y.iter().any(|q| q.glob.is_match(&p.text))),
            (false, false) => !x
                .iter()
                .any(|p| y.iter().any(|q| prefixes_compatible(p, q))),
        }
    };
    let tags_disjoint = a.tags.iter().any(|(k, v)| {
        b.tags
            .iter()
            .any(|(k2, v2)| k.eq_ignore_ascii_case(k2) && v != v2)
    });
    patterns_disjoint(&a.resource_id, &b.resource_id)
        || lists_disjoint(&a.provider_service, &b.provider_service)
        || lists_disjoint(&a.charge_category, &b.charge_category)
        || lists_disjoint(&a.sub_account, &b.sub_account)
        || tags_disjoint
        || matches!((a.untagged, b.untagged), (Some(x), Some(y)) if x != y)
}

/// Two globs can match a common string only if their literal prefixes (up to the first
/// wildcard) agree as far as the shorter one goes.
fn prefixes_compatible(p: &Pattern, q: &Pattern) -> bool {
    let prefix = |t: &str| -> String { t.chars().take_while(|c| !"*?[{".contains(*c)).collect() };
    let (a, b) = (prefix(&p.text), prefix(&q.text));
    a.starts_with(&b) || b.starts_with(&a)
}
