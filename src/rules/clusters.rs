//! `[[cluster]]`: a Kubernetes (EKS) or ECS cluster whose split cost allocation data the
//! bill carries. It becomes two pools that claim before every other pool: `NAME`, the
//! cluster's workloads, each charged whole to the service its namespace, workload or label
//! maps to (else `unallocated`, under the cluster's name); and `NAME idle`, the cluster's
//! unused capacity, shared by the policy the platform team chose.

use std::ops::Range;

use toml_edit::TableLike;

use super::diagnostic::Diagnostic;
use super::model::{
    Fallback, IdlePolicy, IdleShare, Matcher, Pool, SplitMethod, WorkloadKey, Workloads,
};
use super::sources::{map_entries, service_map};
use super::walk::{choice, label_key, FileCtx, Loc};
use crate::model::split_tags;

#[derive(Debug)]
pub(super) struct RawCluster {
    name: (String, Loc),
    cluster: Option<(String, Loc)>,
    by: Option<(String, Loc)>,
    map: Option<Vec<(String, String, Loc)>>,
    idle: Option<(String, Loc)>,
    owner: Option<(String, Loc)>,
}

const KEYS: [&str; 6] = ["name", "cluster", "by", "map", "idle", "owner"];

pub(super) fn walk(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawCluster> {
    ctx.check_keys(table, &KEYS, "[[cluster]]");
    let name = ctx.string(table, "name");
    let cluster = ctx.string(table, "cluster");
    let by = ctx.string(table, "by");
    let map = ctx.table(table, "map").map(|m| map_entries(ctx, m));
    let idle = ctx.string(table, "idle");
    let owner = ctx.string(table, "owner");
    let Some(name) = name.filter(|(n, _)| !n.trim().is_empty()) else {
        ctx.error(
            span,
            "[[cluster]] needs a non-empty `name`, e.g. name = \"eks-prod\" (its pools are `eks-prod` and `eks-prod idle`)",
        );
        return None;
    };
    Some(RawCluster {
        name,
        cluster,
        by,
        map,
        idle,
        owner,
    })
}

#[derive(Debug, Clone, Copy)]
enum Policy {
    Central,
    Equal,
    Requests,
    Unallocated,
}

const POLICIES: [(&str, Policy); 4] = [
    ("central", Policy::Central),
    ("equal", Policy::Equal),
    ("requests", Policy::Requests),
    ("unallocated", Policy::Unallocated),
];

/// The pools of every cluster, workloads then idle for each, in file order.
pub(super) fn build(
    raw: Vec<RawCluster>,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    taken: &dyn Fn(&str) -> bool,
    diags: &mut Vec<Diagnostic>,
) -> Vec<Pool> {
    let mut pools: Vec<Pool> = Vec::new();
    for rc in raw {
        let before = diags.len();
        let (name, loc) = rc.name.clone();
        let at = |loc: &Loc, message: String| Diagnostic::error(&loc.file, loc.pos(), message);
        let idle_name = format!("{name} idle");
        for pool in [&name, &idle_name] {
            if taken(pool) || pools.iter().any(|p| &p.name == pool) {
                diags.push(at(
                    &loc,
                    format!("cluster `{name}`: a pool named `{pool}` already exists; rename the cluster or the pool"),
                ));
            }
        }
        let cluster = rc.cluster.as_ref().map_or(name.clone(), |(c, _)| c.clone());
        let by = match &rc.by {
            None => WorkloadKey::Namespace,
            Some((text, _)) if text == "namespace" => WorkloadKey::Namespace,
            Some((text, _)) if text == "workload" => WorkloadKey::Workload,
            Some((text, bloc)) => match label_key(text) {
                Some(key) => WorkloadKey::Label(key.to_string()),
                None => {
                    diags.push(at(
                        bloc,
                        format!("cluster `{name}`: unknown `by = \"{text}\"`: use \"namespace\", \"workload\" or \"label:KEY\" (a pod label, e.g. \"label:app\")"),
                    ));
                    WorkloadKey::Namespace
                }
            },
        };
        let map = rc.map.and_then(|entries| {
            service_map(&format!("cluster `{name}`"), entries, false, resolve, diags)
        });
        let owner = rc.owner.as_ref().and_then(|(o, oloc)| match resolve(o) {
            Ok(service) => Some(service),
            Err(message) => {
                diags.push(at(oloc, format!("cluster `{name}`: owner: {message}")));
                None
            }
        });
        let policy = match &rc.idle {
            None if owner.is_some() => Policy::Central,
            None => Policy::Unallocated,
            Some((text, iloc)) => choice(text, &POLICIES, true).unwrap_or_else(|list| {
                diags.push(at(
                    iloc,
                    format!("cluster `{name}`: unknown `idle = \"{text}\"`: use {list}"),
                ));
                Policy::Unallocated
            }),
        };
        let policy = match (policy, owner.clone()) {
            (Policy::Central, Some(owner)) => IdlePolicy::Central(owner),
            (Policy::Central, None) => {
                let iloc = rc.idle.as_ref().map_or(&loc, |(_, l)| l);
                if rc.owner.is_none() {
                    diags.push(at(
                        iloc,
                        format!("cluster `{name}`: idle = \"central\" needs `owner`, the service that pays for the idle capacity, e.g. owner = \"platform\""),
                    ));
                }
                IdlePolicy::Unallocated
            }
            (other, Some(_)) => {
                if let Some((_, oloc)) = &rc.owner {
                    diags.push(at(
                        oloc,
                        format!("cluster `{name}`: `owner` only applies to idle = \"central\""),
                    ));
                }
                plain(other)
            }
            (other, None) => plain(other),
        };
        if diags.len() > before {
            continue;
        }
        let members: Vec<String> = {
            let mut members: std::collections::BTreeSet<String> = map
                .as_ref()
                .map(|m| m.services().into_iter().map(str::to_string).collect())
                .unwrap_or_default();
            if let IdlePolicy::Central(owner) = &policy {
                members.insert(owner.clone());
            }
            members.into_iter().collect()
        };
        let matcher = |what: &str| Matcher {
            tags: vec![
                (split_tags::SPLIT.to_string(), what.to_string()),
                (split_tags::CLUSTER.to_string(), cluster.clone()),
            ],
            ..Matcher::default()
        };
        pools.push(Pool {
            name: name.clone(),
            priority: i64::MIN,
            matcher: matcher(split_tags::WORKLOAD),
            members: members.clone(),
            method: SplitMethod::Workloads(Workloads {
                cluster: cluster.clone(),
                by,
                map,
            }),
            fallback: Fallback::Unallocated,
            live: None,
        });
        pools.push(Pool {
            name: idle_name,
            priority: i64::MIN,
            matcher: matcher(split_tags::IDLE),
            members,
            method: SplitMethod::Idle(IdleShare {
                workloads: name,
                policy,
            }),
            fallback: Fallback::Unallocated,
            live: None,
        });
    }
    pools
}

fn plain(policy: Policy) -> IdlePolicy {
    match policy {
        Policy::Equal => IdlePolicy::Equal,
        Policy::Requests => IdlePolicy::Requests,
        Policy::Central | Policy::Unallocated => IdlePolicy::Unallocated,
    }
}
