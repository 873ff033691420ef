//! `[[pool]]`: a shared cost (matched line items) split among member services by a method
//! (equal, fixed percent, proportional to direct cost, usage weights: static, a CSV file or a
//! live `[[source]]`), with a fallback; overlapping pools are warned about.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use globset::GlobBuilder;
use sha2::Sha256;
use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::model::{Fallback, Matcher, Pattern, Pool, SplitMethod};
use super::sources::{LiveUsage, UsageSource};
use super::walk::{choice, hash_part, FileCtx, Loc, NumberTable};
use super::weights::{self, WeightKey, WeightRow, WeightTable};
use crate::money::parse_scaled;

#[derive(Debug, Default)]
pub(super) struct RawMatch {
    resource_id: Vec<(String, Loc)>,
    provider_service: Vec<(String, Loc)>,
    charge_category: Vec<(String, Loc)>,
    sub_account: Vec<(String, Loc)>,
    tags: Vec<(String, String, Loc)>,
    untagged: Option<bool>,
}

#[derive(Debug)]
pub(super) enum RawUsage {
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
pub(super) struct RawPool {
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

pub(super) fn walk(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawPool> {
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
        return None;
    };
    Some(RawPool {
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
    })
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
            ctx.push(
                &loc,
                "`usage` needs exactly one of `weights = { service = number, ... }`, `file = \"weights.csv\"` or `source = \"a [[source]] name\"`",
            );
            None
        }
    }
}

/// The pools, in priority order (then file order), each with where it is declared and its
/// match as written; a name declared twice is refused and overlaps are warned about.
pub(super) fn build(
    raw: Vec<RawPool>,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    sources: &[(UsageSource, Loc)],
    diags: &mut Vec<Diagnostic>,
    hasher: &mut Sha256,
) -> Vec<(Pool, Loc, RawMatch)> {
    let mut pools: Vec<(Pool, Loc, RawMatch)> = Vec::new();
    let mut pool_names: HashMap<String, Loc> = HashMap::new();
    for rp in raw {
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
        if let Some(pool) = build_pool(rp, resolve, sources, diags, hasher) {
            pools.push(pool);
        }
    }
    pools.sort_by_key(|(p, _, _)| p.priority);
    warn_overlaps(&pools, diags);
    pools
}

/// The split methods a pool can name.
#[derive(Debug, Clone, Copy)]
enum Method {
    Equal,
    Fixed,
    Proportional,
    Usage,
}

const METHODS: [(&str, Method); 4] = [
    ("equal", Method::Equal),
    ("fixed", Method::Fixed),
    ("proportional", Method::Proportional),
    ("usage", Method::Usage),
];

const FALLBACKS: [(&str, Fallback); 3] = [
    ("equal", Fallback::Equal),
    ("proportional", Fallback::Proportional),
    ("unallocated", Fallback::Unallocated),
];

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

    let mut members = resolve_members(&name, &rp, resolve, diags);
    let build = PoolBuild {
        name: &name,
        rp: &rp,
        resolve,
        sources,
    };
    let method = build.split_method(&mut members, diags, hasher);

    let fallback = match &rp.fallback {
        None => Fallback::Equal,
        Some((f, loc)) => choice(f, &FALLBACKS, false).unwrap_or_else(|list| {
            diags.push(at(loc, format!("unknown fallback `{f}`: use {list}")));
            Fallback::Equal
        }),
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
            live: live_usage(rp.usage),
        },
        rp.name.1,
        raw_match,
    ))
}

/// The pool's `members`, resolved to declared service names (None when left out).
fn resolve_members(
    name: &str,
    rp: &RawPool,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Option<BTreeSet<String>> {
    let list = rp.members.as_ref()?;
    let mut set = BTreeSet::new();
    for (member, loc) in list {
        match resolve(member) {
            Ok(service) => {
                if !set.insert(service.clone()) {
                    diags.push(Diagnostic::error(
                        &loc.file,
                        loc.pos(),
                        format!("`{service}` is listed twice in pool `{name}`"),
                    ));
                }
            }
            Err(message) => diags.push(Diagnostic::error(
                &loc.file,
                loc.pos(),
                format!("pool `{name}`: {message}"),
            )),
        }
    }
    Some(set)
}

/// What building one pool's split method reads: the pool, the service resolver and the
/// declared usage sources.
#[derive(Clone, Copy)]
struct PoolBuild<'a> {
    name: &'a str,
    rp: &'a RawPool,
    resolve: &'a dyn Fn(&str) -> Result<String, String>,
    sources: &'a [(UsageSource, Loc)],
}

impl PoolBuild<'_> {
    /// The pool's split method with its parameters (`percent`, `usage`), each only where its
    /// method takes it.
    fn split_method(
        &self,
        members: &mut Option<BTreeSet<String>>,
        diags: &mut Vec<Diagnostic>,
        hasher: &mut Sha256,
    ) -> Option<SplitMethod> {
        let PoolBuild {
            name, rp, resolve, ..
        } = *self;
        let at = |loc: &Loc, message: String| Diagnostic::error(&loc.file, loc.pos(), message);
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
        let Some((m, loc)) = &rp.method else {
            diags.push(at(
                &rp.header,
                format!("pool `{name}` needs a `method`: equal, fixed, proportional or usage"),
            ));
            return None;
        };
        match choice(m, &METHODS, false) {
            Ok(Method::Equal) => Some(SplitMethod::Equal),
            Ok(Method::Proportional) => Some(SplitMethod::Proportional),
            Ok(Method::Fixed) => fixed_percent(name, rp, members, resolve, diags),
            Ok(Method::Usage) => self.usage_weights(members, diags, hasher),
            Err(list) => {
                diags.push(at(loc, format!("unknown method `{m}`: use {list}")));
                None
            }
        }
    }
}

/// What the daemon measures for a live-usage pool.
fn live_usage(usage: Option<RawUsage>) -> Option<LiveUsage> {
    match usage? {
        RawUsage::Live {
            sources,
            max_age_days,
            missing_is_zero,
        } => Some(LiveUsage {
            sources: sources.into_iter().map(|(s, _)| s).collect(),
            max_age_days,
            missing_is_zero,
        }),
        _ => None,
    }
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

impl PoolBuild<'_> {
    fn usage_weights(
        &self,
        members: &mut Option<BTreeSet<String>>,
        diags: &mut Vec<Diagnostic>,
        hasher: &mut Sha256,
    ) -> Option<SplitMethod> {
        let PoolBuild {
            name,
            rp,
            resolve,
            sources,
        } = *self;
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
                return live_members(name, named, members, sources, diags)
                    .then(|| SplitMethod::Usage(WeightTable::default()));
            }
            Some(RawUsage::Static(entries)) => static_weights(name, rp, entries, resolve, diags),
            Some(RawUsage::File(file, floc)) => {
                let rows = file_weights(name, rp, file, floc, resolve, diags, hasher)?;
                (rows, floc.clone())
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
}

/// A live-usage pool: each named `[[source]]` must exist, and the services they map to are
/// the members (or must be among them). False after a diagnostic.
fn live_members(
    name: &str,
    named: &[(String, Loc)],
    members: &mut Option<BTreeSet<String>>,
    sources: &[(UsageSource, Loc)],
    diags: &mut Vec<Diagnostic>,
) -> bool {
    let mut mapped: BTreeSet<String> = BTreeSet::new();
    let mut ok = true;
    for (source, sloc) in named {
        match sources.iter().find(|(s, _)| &s.name == source) {
            Some((s, _)) => mapped.extend(s.map.services().into_iter().map(str::to_string)),
            None => {
                ok = false;
                let known: Vec<&str> = sources.iter().map(|(s, _)| s.name.as_str()).collect();
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
        return false;
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
                return false;
            }
        }
        None => *members = Some(mapped),
    }
    true
}

/// `usage = { weights = { service = 10 } }`: one undated weight per service, and where the
/// weights are declared.
fn static_weights(
    name: &str,
    rp: &RawPool,
    entries: &[(String, String, Loc)],
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<WeightRow>, Loc) {
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

/// `usage = { file = "weights.csv" }`: the weight file next to the rule file, hashed into the
/// rules hash.
fn file_weights(
    name: &str,
    rp: &RawPool,
    file: &str,
    floc: &Loc,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
    hasher: &mut Sha256,
) -> Option<Vec<WeightRow>> {
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
    weights::read_csv(&path, resolve)
        .map_err(|errors| diags.extend(errors))
        .ok()
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

/// The weight file a pool reads, if it names one (relative to its rules file).
pub(super) fn weight_file(pool: &RawPool) -> Option<PathBuf> {
    match &pool.usage {
        Some(RawUsage::File(file, _)) => Some(pool.dir.join(file)),
        _ => None,
    }
}
