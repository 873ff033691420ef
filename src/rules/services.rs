//! `[[service]]`: the services, their owners and aliases; and resolving a name the rules or
//! the billing data use to a declared service.

use std::collections::HashMap;
use std::ops::Range;

use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::model::{Service, ValueCase};
use super::walk::{FileCtx, Loc};

#[derive(Debug)]
pub(super) struct RawService {
    name: (String, Loc),
    team: String,
    cost_center: String,
    slack_channel: Option<String>,
    aliases: Vec<(String, Loc)>,
}

pub(super) fn walk(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawService> {
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
        Some((name, loc)) if !name.trim().is_empty() => {
            return Some(RawService {
                name: (name, loc),
                team,
                cost_center,
                slack_channel,
                aliases,
            })
        }
        Some((_, loc)) => ctx.push(&loc, "service `name` is empty"),
        None => ctx.error(
            span,
            "[[service]] needs a `name`, e.g. name = \"checkout-api\"",
        ),
    }
    None
}

/// The declared services (sorted by name, duplicates and `unallocated` refused) and the index
/// of each name and alias.
pub(super) fn build(
    raw: Vec<RawService>,
    case: ValueCase,
    diags: &mut Vec<Diagnostic>,
) -> (Vec<Service>, HashMap<String, usize>) {
    let normalise = |v: &str| case.normalise(v);
    // Services and their aliases.
    let mut services: Vec<Service> = Vec::new();
    let mut names: HashMap<String, (usize, Loc)> = HashMap::new();
    let mut sorted = raw;
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
    let lookup = names.into_iter().map(|(k, (i, _))| (k, i)).collect();
    (services, lookup)
}

/// The declared service a (normalised) name or alias names, or what is wrong with it.
pub(super) fn resolve(
    services: &[Service],
    lookup: &HashMap<String, usize>,
    value: String,
) -> Result<String, String> {
    match lookup.get(&value) {
        Some(&i) => Ok(services[i].name.clone()),
        None if value.is_empty() => Err("empty service name".to_string()),
        None => Err(format!(
            "unknown service `{value}`; declare it in a [[service]] table or fix the name"
        )),
    }
}
