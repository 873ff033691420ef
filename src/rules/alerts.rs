//! `[alerts]`: the spike and month-over-month thresholds, with per-team and per-service floors.

use std::collections::BTreeSet;

use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::model::{AlertRules, FloorOverrides, Service};
use super::walk::{number_text, FileCtx, Loc};

/// `[alerts]` as read, before team and service names are checked.
#[derive(Debug)]
pub(super) struct RawAlerts {
    rules: AlertRules,
    teams: Vec<(String, Loc, FloorOverrides)>,
    services: Vec<(String, Loc, FloorOverrides)>,
}

const FLOOR_KEYS: [&str; 4] = [
    "spike_min_dollars",
    "spike_min_percent",
    "mom_min_dollars",
    "mom_min_percent",
];

pub(super) fn walk(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> RawAlerts {
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
    let mut rules = AlertRules::defaults();
    let count = |ctx: &mut FileCtx<'_>, key: &str| -> Option<i64> {
        let value = ctx.integer(table, key)?;
        if value < 0 {
            let loc = ctx.key_loc(table, key);
            ctx.push(&loc, format!("`{key}` must not be negative"));
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
    FloorOverrides::apply(&floors(ctx, table), &mut rules.base);
    let named = |ctx: &mut FileCtx<'_>, key: &str| -> Vec<(String, Loc, FloorOverrides)> {
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

fn floors(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> FloorOverrides {
    let money = |ctx: &mut FileCtx<'_>, key: &str| {
        let item = table.get(key)?;
        let text = number_text(item.as_value());
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
            ctx.push(&loc, format!("`{key}` must not be negative"));
            None
        })
    };
    FloorOverrides {
        spike_min_amount,
        spike_min_percent: percent(ctx, "spike_min_percent"),
        mom_min_amount,
        mom_min_percent: percent(ctx, "mom_min_percent"),
    }
}

/// Checks `[alerts]` team and service names against the declared services.
pub(super) fn build(
    raw: Option<RawAlerts>,
    services: &[Service],
    resolve: &dyn Fn(&str) -> Result<String, String>,
    diags: &mut Vec<Diagnostic>,
) -> AlertRules {
    let Some(raw) = raw else {
        return AlertRules::defaults();
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
