//! `[[unit]]`: cost per unit of work: a scope's allocated cost over a daily measure (a usage
//! source's samples, or values pushed to the API), scaled and labelled.

use std::collections::BTreeMap;
use std::ops::Range;

use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::model::{Service, Unit, UnitMeasure};
use super::scope::{scope_team, walk_scope, Known};
use super::sources::UsageSource;
use super::walk::{first_of_name, FileCtx, Loc};

const KEYS: [&str; 12] = [
    "name",
    "service",
    "team",
    "cost_center",
    "pool",
    "source",
    "push",
    "measure",
    "scale",
    "label",
    "notify_team",
    "currency",
];

/// A `[[unit]]` as read, before its names are checked.
#[derive(Debug)]
pub(super) struct RawUnit {
    unit: Unit,
    loc: Loc,
    scope_loc: Loc,
    source_loc: Option<Loc>,
}

/// `name` as a URL path segment: letters, digits, `-`, `_` and `.`.
fn path_safe(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub(super) fn walk(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawUnit> {
    ctx.check_keys(table, &KEYS, "[[unit]]");
    let loc = ctx.loc(span.clone());
    let errors = ctx.error_count();
    let name = match ctx.string(table, "name") {
        Some((name, nloc)) => {
            let name = name.trim().to_string();
            if !path_safe(&name) {
                ctx.push(
                    &nloc,
                    format!("a unit's `name` is part of its push URL (/api/v1/units/NAME): use letters, digits, `-`, `_` and `.`, e.g. \"checkout-requests\", not `{name}`"),
                );
            }
            name
        }
        None => {
            ctx.error(
                span,
                "[[unit]] needs a `name`, e.g. name = \"checkout-requests\"",
            );
            return None;
        }
    };
    let scope = walk_scope(ctx, table, &loc, &format!("[[unit]] `{name}`"));
    let source = ctx.string(table, "source");
    let push = ctx.boolean(table, "push").unwrap_or(false);
    let measure = match (&source, push) {
        (Some((s, _)), false) => Some(UnitMeasure::Source(s.trim().to_string())),
        (None, true) => Some(UnitMeasure::Push),
        _ => {
            ctx.push(
                &loc,
                format!("[[unit]] `{name}` needs where its daily measure comes from: either `source = \"<a [[source]] name>\"` (its samples of the day, summed) or `push = true` (values posted to /api/v1/units/{name}), not both"),
            );
            None
        }
    };
    let noun = ctx
        .string(table, "measure")
        .map(|(m, _)| m.trim().to_string())
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| "units".to_string());
    let scale = match ctx.integer(table, "scale") {
        None => 1,
        Some(n) if n >= 1 => n as u64,
        Some(_) => {
            let sloc = ctx.key_loc(table, "scale");
            ctx.push(
                &sloc,
                "`scale` must be a whole number of at least 1, e.g. 1000",
            );
            1
        }
    };
    let label = ctx
        .string(table, "label")
        .map(|(l, _)| l.trim().to_string())
        .unwrap_or_else(|| {
            if scale == 1 {
                format!("per {}", singular(&noun))
            } else {
                format!(
                    "per {} {noun}",
                    crate::money::group_thousands(&scale.to_string())
                )
            }
        });
    let team = ctx.string(table, "notify_team");
    let currency = ctx
        .string(table, "currency")
        .map_or_else(|| "USD".to_string(), |(c, _)| c.trim().to_string());
    if ctx.error_count() > errors {
        return None;
    }
    let (scope, scope_loc) = scope?;
    Some(RawUnit {
        unit: Unit {
            name,
            scope,
            measure: measure?,
            noun,
            scale,
            label,
            team: team
                .as_ref()
                .map(|(t, _)| t.trim().to_string())
                .unwrap_or_default(),
            currency,
        },
        loc,
        scope_loc,
        source_loc: source.map(|(_, l)| l),
    })
}

/// `requests` as `request`, `queries` as `query`, `GB` as `GB`.
fn singular(noun: &str) -> String {
    if let Some(stem) = noun.strip_suffix("ies") {
        format!("{stem}y")
    } else if let Some(stem) = noun.strip_suffix('s').filter(|s| !s.is_empty()) {
        stem.to_string()
    } else {
        noun.to_string()
    }
}

/// Checks each unit's scope, source and name.
pub(super) fn build(
    raw: Vec<RawUnit>,
    services: &[Service],
    pools: &[&str],
    sources: &[&UsageSource],
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Unit> {
    let known = Known::new(services, pools);
    let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
    let mut out = Vec::new();
    for RawUnit {
        mut unit,
        loc,
        scope_loc,
        source_loc,
    } in raw
    {
        let error = |diags: &mut Vec<Diagnostic>, at: &Loc, message: String| {
            diags.push(Diagnostic::error(&at.file, at.pos(), message));
        };
        if !first_of_name(&mut seen, ("unit", "unit"), &unit.name, &loc, diags) {
            continue;
        }
        let checked = known.check(&mut unit.scope, &format!("unit `{}`", unit.name), resolve);
        if let Err(message) = checked {
            error(diags, &scope_loc, message);
            continue;
        }
        if let (UnitMeasure::Source(name), Some(sloc)) = (&unit.measure, &source_loc) {
            if !sources.iter().any(|s| &s.name == name) {
                let names: Vec<&str> = sources.iter().map(|s| s.name.as_str()).collect();
                error(
                    diags,
                    sloc,
                    format!(
                        "unit `{}` names source `{name}`, which no [[source]] declares; the sources are: {}",
                        unit.name,
                        if names.is_empty() { "(none)".to_string() } else { names.join(", ") }
                    ),
                );
                continue;
            }
        }
        if unit.team.is_empty() {
            unit.team = scope_team(&unit.scope, services);
        }
        out.push(unit);
    }
    out
}
