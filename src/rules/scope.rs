//! What a `[[budget]]` or a `[[unit]]` covers: one service, team, cost center or pool, read
//! and checked the same way for both.

use std::collections::BTreeSet;

use toml_edit::TableLike;

use super::model::{BudgetScope, Service};
use super::walk::{FileCtx, Loc};

const SCOPE_KEYS: [&str; 4] = ["service", "team", "cost_center", "pool"];

/// The one scope key of `table` (`owner` names the table in messages: "[[budget]] `x`").
pub(super) fn walk_scope(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    loc: &Loc,
    owner: &str,
) -> Option<(BudgetScope, Loc)> {
    let given: Vec<&str> = SCOPE_KEYS
        .iter()
        .copied()
        .filter(|k| table.get(k).is_some())
        .collect();
    match given.as_slice() {
        [key] => ctx.string(table, key).map(|(value, vloc)| {
            let value = value.trim().to_string();
            let scope = match *key {
                "service" => BudgetScope::Service(value),
                "team" => BudgetScope::Team(value),
                "cost_center" => BudgetScope::CostCenter(value),
                _ => BudgetScope::Pool(value),
            };
            (scope, vloc)
        }),
        [] => {
            ctx.push(
                loc,
                format!("{owner} needs what it covers: one of `service`, `team`, `cost_center` or `pool`, e.g. team = \"payments\""),
            );
            None
        }
        [_, second, ..] => {
            let kloc = ctx.key_loc(table, second);
            ctx.push(
                &kloc,
                format!("{owner} covers one thing; give one of `service`, `team`, `cost_center` or `pool`, not {}", given.join(" and ")),
            );
            None
        }
    }
}

/// The names a scope may take.
pub(super) struct Known<'a> {
    pub teams: BTreeSet<&'a str>,
    pub centers: BTreeSet<&'a str>,
    pub pools: &'a [&'a str],
}

impl<'a> Known<'a> {
    pub fn new(services: &'a [Service], pools: &'a [&'a str]) -> Known<'a> {
        Known {
            teams: services.iter().map(|s| s.team.as_str()).collect(),
            centers: services.iter().map(|s| s.cost_center.as_str()).collect(),
            pools,
        }
    }

    /// A team name that some service has, or the error naming the teams (`owner`: "budget
    /// `x`").
    pub fn team(&self, owner: &str, name: &str) -> Result<(), String> {
        known(&self.teams, owner, "team", name)
    }

    /// Checks `scope` (a service is made its canonical name).
    pub fn check(
        &self,
        scope: &mut BudgetScope,
        owner: &str,
        resolve: &dyn Fn(&str) -> Result<String, String>,
    ) -> Result<(), String> {
        match scope {
            BudgetScope::Service(name) => resolve(name).map(|canonical| *name = canonical),
            BudgetScope::Team(name) => self.team(owner, name),
            BudgetScope::CostCenter(name) => known(&self.centers, owner, "cost center", name),
            BudgetScope::Pool(name) if self.pools.contains(&name.as_str()) => Ok(()),
            BudgetScope::Pool(name) => Err(format!(
                "{owner} names pool `{name}`, which is not declared; the pools are: {}",
                self.pools.join(", ")
            )),
        }
    }
}

fn known(set: &BTreeSet<&str>, owner: &str, what: &str, name: &str) -> Result<(), String> {
    if set.contains(name) && !name.is_empty() {
        return Ok(());
    }
    let list: Vec<&str> = set.iter().copied().filter(|s| !s.is_empty()).collect();
    Err(format!(
        "{owner} names {what} `{name}`, which no [[service]] has; the {what}s are: {}",
        if list.is_empty() {
            "(none)".to_string()
        } else {
            list.join(", ")
        }
    ))
}

/// The team a scope belongs to: a team's own, a service's team; none for the others.
pub(super) fn scope_team(scope: &BudgetScope, services: &[Service]) -> String {
    match scope {
        BudgetScope::Team(t) => t.clone(),
        BudgetScope::Service(s) => services
            .iter()
            .find(|x| &x.name == s)
            .map(|x| x.team.clone())
            .unwrap_or_default(),
        _ => String::new(),
    }
}
