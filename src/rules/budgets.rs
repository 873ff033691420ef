//! `[[budget]]`: a monthly amount for a service, a team, a cost center or a pool, on
//! allocated cost, with thresholds on actual and forecast spend.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use toml_edit::{TableLike, Value};

use super::diagnostic::Diagnostic;
use super::model::{Budget, BudgetBasis, BudgetLevel, BudgetScope, BudgetThreshold, Service};
use super::scope::{scope_team, walk_scope, Known};
use super::walk::{first_of_name, number_text, FileCtx, Loc};
use crate::money::Nanos;

const KEYS: [&str; 11] = [
    "name",
    "service",
    "team",
    "cost_center",
    "pool",
    "amount",
    "currency",
    "months",
    "thresholds",
    "notify_team",
    "channel",
];

const THRESHOLD_KEYS: [(&str, BudgetBasis, bool); 4] = [
    ("actual_percent", BudgetBasis::Actual, true),
    ("forecast_percent", BudgetBasis::Forecast, true),
    ("actual_amount", BudgetBasis::Actual, false),
    ("forecast_amount", BudgetBasis::Forecast, false),
];

/// The thresholds of a budget that names none: 80% and 100% of actual spend, and the
/// forecast's upper bound passing the budget.
pub const DEFAULT_THRESHOLDS: [BudgetThreshold; 3] = [
    BudgetThreshold {
        basis: BudgetBasis::Actual,
        level: BudgetLevel::Percent(80),
    },
    BudgetThreshold {
        basis: BudgetBasis::Actual,
        level: BudgetLevel::Percent(100),
    },
    BudgetThreshold {
        basis: BudgetBasis::Forecast,
        level: BudgetLevel::Percent(100),
    },
];

/// A `[[budget]]` as read, before its scope is checked against the services and pools.
#[derive(Debug)]
pub(super) struct RawBudget {
    budget: Budget,
    loc: Loc,
    scope_loc: Loc,
    team_loc: Option<Loc>,
}

/// An amount: positive, exact, written as a number or a decimal string.
fn amount(ctx: &mut FileCtx<'_>, value: &Value, what: &str) -> Option<Nanos> {
    let text = match value {
        Value::String(s) => s.value().trim().to_string(),
        other => number_text(Some(other)),
    };
    match Nanos::parse(&text).filter(|n| n.0 > 0) {
        Some(n) => Some(n),
        None => {
            ctx.error(
                value.span(),
                format!("`{what}` must be a positive amount, e.g. 12000 or \"12000.50\""),
            );
            None
        }
    }
}

pub(super) fn walk(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawBudget> {
    ctx.check_keys(table, &KEYS, "[[budget]]");
    let loc = ctx.loc(span.clone());
    let errors = ctx.error_count();
    let name = match ctx.string(table, "name") {
        Some((name, _)) if !name.trim().is_empty() => name.trim().to_string(),
        _ => {
            ctx.error(
                span,
                "[[budget]] needs a `name`, e.g. name = \"payments monthly\"",
            );
            return None;
        }
    };
    let scope = walk_scope(ctx, table, &loc, &format!("[[budget]] `{name}`"));
    let monthly = table.get("amount").and_then(|item| match item.as_value() {
        Some(value) => amount(ctx, value, "amount"),
        None => {
            ctx.error(item.span(), "`amount` must be a positive amount");
            None
        }
    });
    let mut months = BTreeMap::new();
    if let Some(inner) = ctx.table(table, "months") {
        for (month, item) in inner.iter() {
            let mloc = ctx.key_loc(inner, month);
            if crate::model::month_bounds(month).is_none() {
                ctx.push(
                    &mloc,
                    format!("`months` keys are months written YYYY-MM, e.g. \"2025-12\" = 15000, not `{month}`"),
                );
                continue;
            }
            let Some(value) = item.as_value() else {
                ctx.push(&mloc, format!("`months.{month}` must be a positive amount"));
                continue;
            };
            if let Some(n) = amount(ctx, value, &format!("months.{month}")) {
                months.insert(month.to_string(), n);
            }
        }
    }
    if monthly.is_none() && months.is_empty() && table.get("amount").is_none() {
        ctx.push(
            &loc,
            format!("[[budget]] `{name}` needs an `amount` per month (e.g. amount = 12000), or planned `months` (e.g. months = {{ \"2025-12\" = 15000 }})"),
        );
    }
    let currency = match ctx.string(table, "currency") {
        None => "USD".to_string(),
        Some((c, cloc)) => {
            let c = c.trim().to_string();
            if c.len() != 3 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                ctx.push(
                    &cloc,
                    format!(
                        "`currency` must be an ISO 4217 code such as \"USD\" or \"EUR\", not `{c}`"
                    ),
                );
            }
            c
        }
    };
    let thresholds = walk_thresholds(ctx, table);
    let notify_team = ctx.string(table, "notify_team");
    let channel = ctx
        .string(table, "channel")
        .map(|(c, _)| c.trim().to_string())
        .filter(|c| !c.is_empty());
    if ctx.error_count() > errors {
        return None;
    }
    let (scope, scope_loc) = scope?;
    Some(RawBudget {
        budget: Budget {
            name,
            scope,
            currency,
            amount: monthly,
            months,
            thresholds,
            team: notify_team
                .as_ref()
                .map(|(t, _)| t.trim().to_string())
                .unwrap_or_default(),
            channel,
        },
        loc,
        scope_loc,
        team_loc: notify_team.map(|(_, l)| l),
    })
}

/// `thresholds = [ { actual_percent = 80 }, { forecast_amount = 9000 } ]`.
fn walk_thresholds(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> Vec<BudgetThreshold> {
    let Some(item) = table.get("thresholds") else {
        return DEFAULT_THRESHOLDS.to_vec();
    };
    let example = "e.g. thresholds = [ { actual_percent = 80 }, { forecast_percent = 100 } ]";
    let Some(array) = item.as_array() else {
        ctx.error(
            item.span(),
            format!("`thresholds` must be an array of inline tables, {example}"),
        );
        return Vec::new();
    };
    let names: Vec<&str> = THRESHOLD_KEYS.iter().map(|(k, _, _)| *k).collect();
    let mut out = BTreeSet::new();
    for value in array.iter() {
        let Some(t) = value.as_inline_table() else {
            ctx.error(
                value.span(),
                format!("each threshold must be an inline table, {example}"),
            );
            continue;
        };
        ctx.check_keys(t, &names, "a budget threshold");
        let keys: Vec<&(&str, BudgetBasis, bool)> = THRESHOLD_KEYS
            .iter()
            .filter(|(k, _, _)| t.get(k).is_some())
            .collect();
        let [(key, basis, percent)] = keys.as_slice() else {
            // A table of unknown keys only is already reported key by key.
            let unknown_only = keys.is_empty() && !t.is_empty();
            if !unknown_only {
                ctx.error(
                    value.span(),
                    format!(
                        "a threshold names exactly one of {}, {example}",
                        names.join(", ")
                    ),
                );
            }
            continue;
        };
        let Some(v) = t.get(key) else { continue };
        let level = if *percent {
            match v.as_integer() {
                Some(p) if (1..=1000).contains(&p) => BudgetLevel::Percent(p),
                _ => {
                    ctx.error(
                        v.span(),
                        format!("`{key}` must be a whole percent from 1 to 1000, e.g. 80"),
                    );
                    continue;
                }
            }
        } else {
            match amount(ctx, v, key) {
                Some(a) => BudgetLevel::Amount(a),
                None => continue,
            }
        };
        out.insert(BudgetThreshold {
            basis: *basis,
            level,
        });
    }
    if out.is_empty() && !array.is_empty() {
        return Vec::new();
    }
    if array.is_empty() {
        ctx.error(
            item.span(),
            format!("`thresholds` is empty: leave it out for the defaults (80% and 100% of actual, and the forecast passing the budget), or list some, {example}"),
        );
    }
    out.into_iter().collect()
}

/// Checks every budget's scope against the services and pools, and names against each
/// other.
pub(super) fn build(
    raw: Vec<RawBudget>,
    services: &[Service],
    pools: &[&str],
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Budget> {
    let known = Known::new(services, pools);
    let mut seen: BTreeMap<String, Loc> = BTreeMap::new();
    let mut out = Vec::new();
    for RawBudget {
        mut budget,
        loc,
        scope_loc,
        team_loc,
    } in raw
    {
        let error = |diags: &mut Vec<Diagnostic>, at: &Loc, message: String| {
            diags.push(Diagnostic::error(&at.file, at.pos(), message));
        };
        if !first_of_name(&mut seen, ("budget", "budget"), &budget.name, &loc, diags) {
            continue;
        }
        let owner = format!("budget `{}`", budget.name);
        let checked = known.check(&mut budget.scope, &owner, resolve);
        if let Err(message) = checked {
            error(diags, &scope_loc, message);
            continue;
        }
        if let Some(tloc) = &team_loc {
            if let Err(message) = known.team(&owner, &budget.team) {
                error(diags, tloc, format!("`notify_team`: {message}"));
                continue;
            }
        }
        if budget.team.is_empty() {
            budget.team = scope_team(&budget.scope, services);
        }
        if budget.channel.is_none() {
            if let BudgetScope::Service(s) = &budget.scope {
                budget.channel = services
                    .iter()
                    .find(|x| &x.name == s)
                    .and_then(|x| x.slack_channel.clone());
            }
        }
        out.push(budget);
    }
    out
}
