//! `[[service]]`: the services, their owners and aliases; and resolving a name the rules or
//! the billing data use to a declared service.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;

use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::model::{Service, ValueCase};
use super::walk::{FileCtx, Loc};
use crate::catalog::Catalog;

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

/// The catalog's services, merged into the declared ones: a service the rules declare keeps
/// what they say, with what they leave out (team, cost center, channel) taken from the catalog
/// and a warning where both say something different; a service only the catalog names is
/// declared as the catalog says. A component without an owner is declared too, with a warning.
pub(super) fn merge_catalog(
    raw: &mut Vec<RawService>,
    catalog: &Catalog,
    case: ValueCase,
    diags: &mut Vec<Diagnostic>,
) {
    let normalise = |v: &str| case.normalise(v);
    let mut declared: HashMap<String, usize> = HashMap::new();
    for (i, rs) in raw.iter().enumerate() {
        declared.insert(normalise(&rs.name.0), i);
        for (alias, _) in &rs.aliases {
            declared.entry(normalise(alias)).or_insert(i);
        }
    }
    for cs in &catalog.services {
        let loc = Loc {
            file: PathBuf::from(&cs.origin),
            line: cs.line,
            col: usize::from(cs.line > 0),
        };
        let Some(&i) = declared.get(&normalise(&cs.service)) else {
            if cs.team.is_empty() {
                diags.push(Diagnostic::warning(
                    &loc.file,
                    loc.pos(),
                    format!("component `{}` has no owner (`spec.owner`) in the catalog; its cost is charged to the service with no team", cs.service),
                ));
            }
            raw.push(RawService {
                name: (cs.service.clone(), loc.clone()),
                team: cs.team.clone(),
                cost_center: cs.cost_center.clone(),
                slack_channel: cs.slack_channel.clone(),
                aliases: cs
                    .aliases
                    .iter()
                    .map(|a| (a.clone(), loc.clone()))
                    .collect(),
            });
            continue;
        };
        let rs = &mut raw[i];
        let rules_loc = rs.name.1.clone();
        let mut differ = Vec::new();
        let mut fill = |field: &str, ours: &mut String, theirs: &str| {
            if ours.is_empty() {
                *ours = theirs.to_string();
            } else if !theirs.is_empty() && ours != theirs {
                differ.push(format!("{field} `{theirs}` (the rules: `{ours}`)"));
            }
        };
        fill("team", &mut rs.team, &cs.team);
        fill("cost_center", &mut rs.cost_center, &cs.cost_center);
        match (&rs.slack_channel, &cs.slack_channel) {
            (None, Some(theirs)) => rs.slack_channel = Some(theirs.clone()),
            (Some(ours), Some(theirs)) if ours != theirs => {
                differ.push(format!("slack_channel `{theirs}` (the rules: `{ours}`)"))
            }
            _ => {}
        }
        if !differ.is_empty() {
            diags.push(Diagnostic::warning(
                &rules_loc.file,
                rules_loc.pos(),
                format!(
                    "service `{}`: the catalog ({}) says {}; the rules win (leave the field out here to follow the catalog)",
                    rs.name.0,
                    cs.place(),
                    differ.join(", ")
                ),
            ));
        }
    }
}
