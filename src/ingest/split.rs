//! Split cost allocation data (EKS pods and ECS tasks on EC2, CUR 2.0's `split_line_item_*`
//! columns): each pod's row is a share of its parent instance's hour, not money of its own.
//! Rows are read at the grain rules can match (cluster, namespace, workload and the pod's
//! lasting labels), never per pod id; after a batch is read, [`attribute`] moves each
//! instance-day's money from the instance's own lines to its workloads in proportion to their
//! `split_line_item_split_cost`, and what stays on the instance is its idle capacity. The
//! instance's money is moved, never added to: the pods plus the idle equal the instance's lines
//! to the 1e-11 unit, in every cost column, so the parent is counted once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;

use rustc_hash::FxHashMap;

use super::line::{
    tag_key, RawFact, AMOUNT_COUNT, CUR_JSON_TAGS, DIMENSIONS, KV_PAIR, KV_SEP, KV_TAGS,
};
use crate::model::split_tags::{
    CLUSTER as CLUSTER_TAG, DIMENSION, DIMENSION_NAMES, IDLE, NAMESPACE as NAMESPACE_TAG, REQUESTS,
    SPLIT as SPLIT_TAG, UNUSED, WORKLOAD, WORKLOAD_NAME as WORKLOAD_TAG,
};
use crate::model::{Key, Tags};

/// Starts the resource key of a split row while a batch is read: `MARK parent MARK grain`.
const MARK: char = '\u{1a}';

/// Tags that name a workload, in the spellings of CUR 2.0's `resource_tags` map and of the
/// legacy columns; the first present wins.
const WORKLOAD_KEYS: [&str; 6] = [
    "aws:eks:workload-name",
    "aws_eks_workload_name",
    "aws:eks:deployment",
    "aws_eks_deployment",
    "aws:ecs:serviceName",
    "aws_ecs_service_name",
];

/// Tags that change with every pod, node or rollout: dropped, so a workload's facts do not
/// multiply with them.
fn churns(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("pod-template-hash")
        || key.contains("pod_template_hash")
        || key.contains("controller-revision-hash")
        || key.contains("controller_revision_hash")
        || key == "aws:eks:node"
        || key == "aws_eks_node"
        || key == "aws:eks:pod"
        || key == "aws_eks_pod"
}

/// Replaces a split row's tags text (either CUR encoding) by the same without the tags that
/// churn, so a workload's rows of a day share one tags value whatever node or rollout they
/// ran on. Each distinct text is decoded once (`cache`, bounded); others pass unchanged.
pub fn drop_churning_tags(tags: &mut Vec<u8>, cache: &mut FxHashMap<Vec<u8>, Vec<u8>>) {
    if let Some(lasting) = cache.get(tags.as_slice()) {
        tags.clear();
        tags.extend_from_slice(lasting);
        return;
    }
    let lasting = lasting_text(tags).unwrap_or_else(|| tags.clone());
    if cache.len() >= 1 << 13 {
        cache.clear();
    }
    cache.insert(std::mem::replace(tags, lasting.clone()), lasting);
}

/// The tags text without churning keys, in the same encoding; `None` when it has none (or is
/// not text this can read, which the aggregator then reports as usual).
fn lasting_text(tags: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(tags).ok()?;
    let mut json_mark = [0; 4];
    let json_mark: &str = CUR_JSON_TAGS.encode_utf8(&mut json_mark);
    if let Some(json) = text.strip_prefix(json_mark) {
        let mut map: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json).ok()?;
        let before = map.len();
        map.retain(|k, _| !churns(tag_key(k)));
        if map.len() == before {
            return None;
        }
        let mut out = json_mark.as_bytes().to_vec();
        out.extend_from_slice(serde_json::Value::Object(map).to_string().as_bytes());
        return Some(out);
    }
    let pairs = text.strip_prefix(KV_TAGS)?;
    let kept: Vec<&str> = pairs
        .split(KV_PAIR)
        .filter(|pair| {
            let key = pair.split_once(KV_SEP).map_or(*pair, |(k, _)| k);
            !churns(tag_key(key))
        })
        .collect();
    if kept.len() == pairs.split(KV_PAIR).count() {
        return None;
    }
    let mut out = String::new();
    if !kept.is_empty() {
        out.push(KV_TAGS);
        out.push_str(&kept.join(&KV_PAIR.to_string()));
    }
    Some(out.into_bytes())
}

/// Writes the resource key of a split row: its parent instance and the pod's cluster,
/// namespace and name without the suffixes a ReplicaSet or DaemonSet adds
/// (`eks/prod/shop/checkout` for `arn:aws:eks:…:pod/prod/shop/checkout-7d9f8b6c5-x2k4p/UID`;
/// `ecs/prod` for an ECS task, whose service is a tag).
pub fn workload_key(parent: &[u8], resource: &[u8], out: &mut Vec<u8>) {
    let mut mark = [0; 4];
    let mark = MARK.encode_utf8(&mut mark).as_bytes();
    out.clear();
    out.extend_from_slice(mark);
    out.extend_from_slice(parent);
    out.extend_from_slice(mark);
    let text = String::from_utf8_lossy(resource);
    let path = text.splitn(6, ':').nth(5).unwrap_or(&text);
    let mut parts = path.split('/');
    let mut push = |pieces: &[&str]| {
        for (i, piece) in pieces.iter().enumerate() {
            if i > 0 {
                out.push(b'/');
            }
            out.extend_from_slice(piece.as_bytes());
        }
    };
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some("pod"), Some(cluster), Some(namespace), Some(pod)) => {
            push(&["eks", cluster, namespace, pod_base(pod)])
        }
        (Some("task"), Some(cluster), _, _) => push(&["ecs", cluster]),
        _ => push(&[path]),
    }
}

/// A pod's name without the random suffix its controller adds: `checkout-7d9f8b6c5-x2k4p`
/// (Deployment) → `checkout`, `agent-x2k4p` (DaemonSet, Job) → `agent`; `db-0` stays.
fn pod_base(pod: &str) -> &str {
    let suffix = |name: &str, lens: std::ops::RangeInclusive<usize>| -> Option<usize> {
        let (base, last) = name.rsplit_once('-')?;
        let random = lens.contains(&last.len())
            && last
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
            && !last.bytes().all(|b| b.is_ascii_digit());
        (random && !base.is_empty()).then_some(base.len())
    };
    let Some(end) = suffix(pod, 5..=5) else {
        return pod;
    };
    let base = &pod[..end];
    match suffix(base, 6..=10) {
        Some(end) => &base[..end],
        None => base,
    }
}

/// The dimension of a split row by its usage type (`USE1-EKS-EC2-vCPU-Hours`,
/// `…-GB-Hours`, `…-GPU-Hours`), an index into [`DIMENSION_NAMES`]; vCPU when it names none.
pub fn dimension_of(usage_type: &[u8]) -> usize {
    let has = |word: &[u8]| {
        usage_type
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    if has(b"GPU") || has(b"Accelerator") || has(b"Neuron") {
        2
    } else if has(b"GB-Hours") || has(b"GB-Hrs") {
        1
    } else {
        0
    }
}

/// What [`attribute`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Instance-days whose money moved to workloads.
    pub instance_days: usize,
    /// Split rows read.
    pub workload_rows: i64,
    /// Split rows whose parent instance has no line that day: their share moves nothing
    /// (the instance's money, wherever it is, is not in this batch).
    pub orphan_rows: i64,
}

/// One workload's share of one instance-day: the workload (an index into the distinct
/// workload facts) and its weight.
struct Share {
    workload: usize,
    weight: i128,
}

/// The columns a moved part takes from its instance's line, so it keeps that line's
/// dimensions (FOCUS: an allocated charge's dimensions are its origin charge's).
type Dims = [Key; 7];

fn dims(f: &crate::model::Fact) -> Dims {
    [
        f.billing_period.clone(),
        f.billing_account.clone(),
        f.sub_account.clone(),
        f.provider.clone(),
        f.provider_service.clone(),
        f.charge_category.clone(),
        f.currency.clone(),
    ]
}

fn with_dims(mut fact: RawFact, dims: &Dims) -> RawFact {
    let f = &mut fact.fact;
    f.billing_period.clone_from(&dims[0]);
    f.billing_account.clone_from(&dims[1]);
    f.sub_account.clone_from(&dims[2]);
    f.provider.clone_from(&dims[3]);
    f.provider_service.clone_from(&dims[4]);
    f.charge_category.clone_from(&dims[5]);
    f.currency.clone_from(&dims[6]);
    fact
}

/// The distinct workload facts of a batch, each kept once (its rows' line counts summed), and
/// the parts moved to each, summed per (workload, instance line dimensions): memory follows
/// the workloads and days, never the pods or the (instance, workload) pairs.
#[derive(Default)]
struct Workloads {
    facts: Vec<RawFact>,
    index: HashMap<(NaiveDate, Key, Arc<Tags>, Dims), usize>,
    dims: Vec<Dims>,
    dims_index: HashMap<Dims, usize>,
    parts: HashMap<(usize, usize), [i128; AMOUNT_COUNT]>,
}

impl Workloads {
    fn intern(&mut self, fact: RawFact) -> usize {
        let key = (
            fact.fact.day,
            fact.fact.resource_id.clone(),
            fact.fact.tags.clone(),
            dims(&fact.fact),
        );
        match self.index.get(&key) {
            Some(&i) => {
                let kept = &mut self.facts[i];
                for (sum, amount) in kept.amounts.iter_mut().zip(fact.amounts) {
                    *sum += amount;
                }
                kept.fact.line_count += fact.fact.line_count;
                i
            }
            None => {
                self.facts.push(fact);
                self.index.insert(key, self.facts.len() - 1);
                self.facts.len() - 1
            }
        }
    }

    fn add_part(
        &mut self,
        workload: usize,
        of: &crate::model::Fact,
        amounts: [i128; AMOUNT_COUNT],
    ) {
        let d = dims(of);
        let dims_id = match self.dims_index.get(&d) {
            Some(&i) => i,
            None => {
                self.dims.push(d.clone());
                self.dims_index.insert(d, self.dims.len() - 1);
                self.dims.len() - 1
            }
        };
        let sums = self
            .parts
            .entry((workload, dims_id))
            .or_insert([0; AMOUNT_COUNT]);
        for (sum, amount) in sums.iter_mut().zip(amounts) {
            *sum += amount;
        }
    }

    /// The workload facts (their rows' own amounts and line counts) and the moved parts.
    fn into_facts(self) -> Vec<RawFact> {
        let mut out = Vec::with_capacity(self.facts.len() + self.parts.len());
        let mut parts: Vec<((usize, usize), [i128; AMOUNT_COUNT])> =
            self.parts.into_iter().collect();
        parts.sort_unstable_by_key(|(key, _)| *key);
        for ((workload, dims_id), amounts) in parts {
            let mut part = with_dims(self.facts[workload].clone(), &self.dims[dims_id]);
            part.amounts = amounts;
            part.fact.line_count = 0;
            out.push(part);
        }
        out.extend(self.facts);
        out
    }
}

/// A batch's split rows at the workload grain, taken in one fact at a time as the facts are
/// built (see `Aggregator::into_raw_facts`), so the facts per (day, instance, workload) are
/// never all held: only the distinct workload facts and each instance-day's shares are.
#[derive(Default)]
pub struct SplitRows {
    workloads: Workloads,
    /// (day, instance) -> its workloads' shares, its cluster, rows and idle per dimension.
    groups: BTreeMap<(NaiveDate, String), Group>,
    /// Split rows taken.
    rows: i64,
}

impl SplitRows {
    /// Whether a fact with this resource key is a split row's (a parent and a grain).
    pub fn is_split_resource(resource: &str) -> bool {
        resource.starts_with(MARK)
    }

    /// Takes one split row's fact.
    pub fn add(&mut self, row: RawFact) {
        self.rows += row.fact.line_count;
        let day = row.fact.day;
        let lines = row.fact.line_count;
        let (parent, cluster, shares, unused) = shares_of(row);
        let group = self.groups.entry((day, parent)).or_default();
        group.take(cluster, lines, unused);
        for (fact, weight) in shares {
            let workload = self.workloads.intern(fact);
            group.shares.push(Share { workload, weight });
        }
    }

    /// Takes the split rows of another batch (another file of the same export).
    pub fn merge(&mut self, other: SplitRows) {
        if self.workloads.facts.is_empty() && self.groups.is_empty() {
            *self = other;
            return;
        }
        let ids: Vec<usize> = other
            .workloads
            .facts
            .into_iter()
            .map(|f| self.workloads.intern(f))
            .collect();
        for (key, group) in other.groups {
            let into = self.groups.entry(key).or_default();
            into.take(group.cluster, group.rows, group.unused);
            into.shares.extend(group.shares.into_iter().map(|s| Share {
                workload: ids[s.workload],
                weight: s.weight,
            }));
        }
        self.rows += other.rows;
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// The workload facts taken so far (their rows' own amounts and line counts).
    pub fn facts(&self) -> impl Iterator<Item = &RawFact> {
        self.workloads.facts.iter()
    }

    /// `raw` without its split rows, and those rows taken in.
    pub fn partition(raw: Vec<RawFact>) -> (Vec<RawFact>, SplitRows) {
        let mut split = SplitRows::default();
        let mut facts = Vec::with_capacity(raw.len());
        for fact in raw {
            if is_split_row(&fact) {
                split.add(fact);
            } else {
                facts.push(fact);
            }
        }
        (facts, split)
    }
}

/// Moves each instance-day's money from the instance's lines to the workloads that ran on
/// it, by their split shares; the rest stays on the instance as its idle capacity, tagged
/// [`IDLE`] with its cluster (and its dimension). Without split rows the facts pass through.
pub fn attribute(mut facts: Vec<RawFact>, split: SplitRows) -> (Vec<RawFact>, Summary) {
    let mut summary = Summary::default();
    if split.is_empty() {
        return (facts, summary);
    }
    let SplitRows {
        mut workloads,
        groups,
        rows,
    } = split;
    summary.workload_rows = rows;
    let mut parents: HashMap<(NaiveDate, String), Vec<usize>> = HashMap::new();
    for (i, f) in facts.iter().enumerate() {
        let key = (f.fact.day, f.fact.resource_id.to_string());
        if groups.contains_key(&key) {
            parents.entry(key).or_default().push(i);
        }
    }
    let mut idle_parts = Vec::new();
    for (key, group) in groups {
        let Group {
            shares,
            cluster,
            rows,
            unused,
        } = group;
        let Some(lines) = parents.get(&key) else {
            // The rows' line counts stay with their workloads; their shares move nothing.
            summary.orphan_rows += rows;
            continue;
        };
        summary.instance_days += 1;
        let total: i128 = shares.iter().map(|s| s.weight).sum();
        // The instance's amortized usage cost: AWS splits it, so the pods' shares are read
        // against it; shares that add up to more are scaled to the whole.
        let usage: i128 = lines
            .iter()
            .map(|&i| &facts[i])
            .filter(|f| f.fact.charge_category.eq_ignore_ascii_case("Usage"))
            .map(|f| f.amounts[0])
            .sum();
        let whole = total.max(usage);
        for &i in lines {
            let parent = &mut facts[i];
            let whole_amounts = parent.amounts;
            for share in &shares {
                let moved: [i128; AMOUNT_COUNT] =
                    std::array::from_fn(|k| mul_div(whole_amounts[k], share.weight, whole));
                for (amount, part) in parent.amounts.iter_mut().zip(moved) {
                    *amount -= part;
                }
                workloads.add_part(share.workload, &parent.fact, moved);
            }
            let tags = Arc::make_mut(&mut parent.fact.tags);
            tags.insert(SPLIT_TAG.to_string(), IDLE.to_string());
            tags.insert(CLUSTER_TAG.to_string(), cluster.clone());
            idle_parts.extend(idle_by_dimension(parent, &unused));
        }
    }
    facts.extend(idle_parts);
    facts.extend(workloads.into_facts());
    (facts, summary)
}

/// An instance-day's split rows: the workloads' shares, the cluster, the rows' line count and
/// the instance's idle capacity per dimension as its pods' rows tell it.
#[derive(Default)]
struct Group {
    shares: Vec<Share>,
    cluster: String,
    rows: i64,
    unused: [i128; DIMENSIONS],
}

impl Group {
    /// Counts more of the instance-day's rows (their cluster, line count and unused cost).
    fn take(&mut self, cluster: String, rows: i64, unused: [i128; DIMENSIONS]) {
        self.cluster = cluster;
        self.rows += rows;
        for (sum, u) in self.unused.iter_mut().zip(unused) {
            *sum += u;
        }
    }
}

/// Tags an instance's idle line with the dimension its idle capacity is of; idle of several
/// dimensions is split among them in proportion to the pods' `unused_cost` of each (the first
/// keeps the rest of the division), the parts returned as facts of their own. Without any
/// unused cost the idle names no dimension.
fn idle_by_dimension(idle: &mut RawFact, unused: &[i128; DIMENSIONS]) -> Vec<RawFact> {
    let dims: Vec<usize> = (0..DIMENSIONS).filter(|&d| unused[d] > 0).collect();
    let Some((&first, rest)) = dims.split_first() else {
        return Vec::new();
    };
    let total: i128 = dims.iter().map(|&d| unused[d]).sum();
    let whole = idle.amounts;
    let mut parts = Vec::with_capacity(rest.len());
    for &d in rest {
        let mut part = idle.clone();
        part.amounts = std::array::from_fn(|k| mul_div(whole[k], unused[d], total));
        for (amount, moved) in idle.amounts.iter_mut().zip(part.amounts) {
            *amount -= moved;
        }
        if part.amounts.iter().all(|a| *a == 0) {
            continue;
        }
        part.fact.line_count = 0;
        Arc::make_mut(&mut part.fact.tags)
            .insert(DIMENSION.to_string(), DIMENSION_NAMES[d].to_string());
        parts.push(part);
    }
    Arc::make_mut(&mut idle.fact.tags)
        .insert(DIMENSION.to_string(), DIMENSION_NAMES[first].to_string());
    parts
}

fn is_split_row(f: &RawFact) -> bool {
    SplitRows::is_split_resource(&f.fact.resource_id)
}

/// A split row as its parent instance and the workload facts it becomes: the grain as their
/// resource id, their tags with the cluster, namespace and workload named and the churning
/// ones dropped, one per resource dimension (tagged `costsplit:resource`); the part its pods
/// requested but did not use is a fact of its own, tagged `costsplit:requests = unused`. Also
/// the row's part of its instance's idle capacity, per dimension.
fn shares_of(mut row: RawFact) -> (String, String, Vec<(RawFact, i128)>, [i128; DIMENSIONS]) {
    let key = row.fact.resource_id.trim_start_matches(MARK).to_string();
    let (parent, grain) = key.split_once(MARK).unwrap_or((&key, ""));
    let parts: Vec<&str> = grain.split('/').collect();
    let tags = &row.fact.tags;
    let named = WORKLOAD_KEYS
        .iter()
        .find_map(|k| tags.get(*k).filter(|v| !v.is_empty()).cloned());
    let (kind, cluster, namespace, workload) = match parts.as_slice() {
        ["eks", cluster, namespace, pod] => (
            "eks",
            cluster.to_string(),
            namespace.to_string(),
            named.unwrap_or_else(|| pod.to_string()),
        ),
        ["ecs", cluster] => {
            let service = named.unwrap_or_default();
            ("ecs", cluster.to_string(), service.clone(), service)
        }
        _ => ("", String::new(), String::new(), named.unwrap_or_default()),
    };
    let mut tags: Tags = Arc::unwrap_or_clone(std::mem::take(&mut row.fact.tags))
        .into_iter()
        .filter(|(k, _)| !churns(k))
        .collect();
    tags.insert(SPLIT_TAG.to_string(), WORKLOAD.to_string());
    for (key, value) in [
        (CLUSTER_TAG, &cluster),
        (NAMESPACE_TAG, &namespace),
        (WORKLOAD_TAG, &workload),
    ] {
        if !value.is_empty() {
            tags.insert(key.to_string(), value.clone());
        }
    }
    row.fact.tags = Arc::new(tags);
    row.fact.resource_id = match kind {
        "eks" => format!("eks/{cluster}/{namespace}/{workload}").into(),
        "ecs" => format!("ecs/{cluster}/{namespace}").into(),
        _ => grain.into(),
    };
    let sums = row.split.take().map(|s| *s).unwrap_or_default();
    // One fact per dimension the row has a share of (its part requested but not used a fact
    // of its own, tagged `costsplit:requests = unused`); the first keeps the row's line count.
    let mut shares = Vec::with_capacity(2);
    for (d, name) in DIMENSION_NAMES.iter().enumerate() {
        let weight = sums.share[d].max(0);
        if weight == 0 {
            continue;
        }
        let unused = sums.requested_unused[d].clamp(0, weight);
        let mut used = row.clone();
        Arc::make_mut(&mut used.fact.tags).insert(DIMENSION.to_string(), name.to_string());
        if !shares.is_empty() {
            used.amounts = [0; AMOUNT_COUNT];
            used.fact.line_count = 0;
        }
        if unused > 0 {
            let mut requested = used.clone();
            Arc::make_mut(&mut requested.fact.tags)
                .insert(REQUESTS.to_string(), UNUSED.to_string());
            requested.amounts = [0; AMOUNT_COUNT];
            requested.fact.line_count = 0;
            shares.push((used, weight - unused));
            shares.push((requested, unused));
        } else {
            shares.push((used, weight));
        }
    }
    if shares.is_empty() {
        // No share at all: the row's line count (and any amount) stays on its workload.
        shares.push((row, 0));
    }
    (parent.to_string(), cluster, shares, sums.unused)
}

/// `amount × part ÷ whole`, rounded toward zero (`part ≤ whole`), without overflowing: when the
/// product would not fit, the ratio is read at less precision (the rest stays idle; nothing is
/// lost).
pub(super) fn mul_div(amount: i128, mut part: i128, mut whole: i128) -> i128 {
    if whole <= 0 || part <= 0 {
        return 0;
    }
    loop {
        if let Some(product) = amount.checked_mul(part) {
            return product / whole;
        }
        part /= 10;
        whole /= 10;
        if whole == 0 {
            return 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::line::SplitSums;
    use super::*;

    #[test]
    fn pod_names_lose_their_controllers_suffixes() {
        assert_eq!(pod_base("checkout-7d9f8b6c5-x2k4p"), "checkout");
        assert_eq!(pod_base("node-agent-x2k4p"), "node-agent");
        assert_eq!(pod_base("db-0"), "db-0");
        assert_eq!(pod_base("web"), "web");
        assert_eq!(pod_base("batch-12345"), "batch-12345");
    }

    #[test]
    fn a_pod_arn_keys_by_parent_cluster_namespace_and_workload() {
        let mut out = Vec::new();
        workload_key(
            b"i-0abc",
            b"arn:aws:eks:us-east-1:123456789012:pod/prod/shop/checkout-7d9f8b6c5-x2k4p/0f1e",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).expect("text"),
            format!("{MARK}i-0abc{MARK}eks/prod/shop/checkout")
        );
    }

    fn raw(resource: &str, category: &str, amounts: [i128; 4], split: i128) -> RawFact {
        let split = (split != 0).then(|| {
            Box::new(SplitSums {
                share: [split, 0, 0],
                ..SplitSums::default()
            })
        });
        let day = NaiveDate::from_ymd_opt(2026, 4, 1).expect("day");
        RawFact {
            fact: crate::model::Fact {
                day,
                billing_period: "2026-04".into(),
                billing_account: "a".into(),
                sub_account: "a".into(),
                provider: "AWS".into(),
                provider_service: "AmazonEC2".into(),
                resource_id: resource.into(),
                charge_category: category.into(),
                tags: Default::default(),
                currency: "USD".into(),
                effective: crate::money::Nanos::ZERO,
                billed: crate::money::Nanos::ZERO,
                list: crate::money::Nanos::ZERO,
                contracted: crate::money::Nanos::ZERO,
                line_count: 1,
                estimated: false,
            },
            amounts,
            split,
        }
    }

    fn row(parent: &str, pod: &str, split: i128) -> RawFact {
        let mut key = Vec::new();
        workload_key(
            parent.as_bytes(),
            format!("arn:aws:eks:us-east-1:1:pod/prod/shop/{pod}/uid").as_bytes(),
            &mut key,
        );
        raw(
            &String::from_utf8(key).expect("text"),
            "Usage",
            [0; 4],
            split,
        )
    }

    #[test]
    fn an_instance_moves_to_its_workloads_by_share_and_keeps_its_idle_in_every_column() {
        let facts = vec![
            // Savings-plan covered usage (amortized 72, billed 100) and its negation line.
            raw("i-1", "Usage", [72, 100, 120, 100], 0),
            raw("i-1", "Adjustment", [0, -100, -100, -100], 0),
            row("i-1", "web-7d9f8b6c5-x2k4p", 36),
            row("i-1", "web-7d9f8b6c5-abcde", 18),
            row("i-1", "api-7d9f8b6c5-abcde", 9),
            // A pod whose instance is not in the batch moves nothing.
            row("i-gone", "api-7d9f8b6c5-abcde", 50),
            raw("i-2", "Usage", [10, 10, 10, 10], 0),
        ];
        let totals = |facts: &[RawFact]| -> [i128; 4] {
            std::array::from_fn(|k| facts.iter().map(|f| f.amounts[k]).sum())
        };
        let before = totals(&facts);
        let (facts, split) = SplitRows::partition(facts);
        let (after, summary) = attribute(facts, split);
        assert_eq!(totals(&after), before, "moved, never added");
        assert_eq!(summary.instance_days, 1);
        assert_eq!(summary.workload_rows, 4);
        assert_eq!(summary.orphan_rows, 1);
        let of = |resource: &str| -> [i128; 4] {
            let mine: Vec<RawFact> = after
                .iter()
                .filter(|f| f.fact.resource_id == resource)
                .cloned()
                .collect();
            totals(&mine)
        };
        // web: 54 of 72 amortized; api 9 of 72; every column in the same proportion.
        // (list: 120 × 3/4 − 100 × 3/4 = 15; api's parts round toward zero, the idle keeps
        // the rest.)
        assert_eq!(of("eks/prod/shop/web"), [54, 0, 15, 0]);
        assert_eq!(of("eks/prod/shop/api"), [9, 0, 3, 0]);
        assert_eq!(of("i-1"), [9, 0, 2, 0], "the idle stays on the instance");
        assert_eq!(
            of("i-2"),
            [10, 10, 10, 10],
            "an instance without pods is untouched"
        );
        let idle = after
            .iter()
            .find(|f| f.fact.resource_id == "i-1")
            .expect("idle");
        assert_eq!(
            idle.fact.tags.get(SPLIT_TAG).map(String::as_str),
            Some(IDLE)
        );
        assert_eq!(
            idle.fact.tags.get(CLUSTER_TAG).map(String::as_str),
            Some("prod")
        );
    }

    #[test]
    fn each_dimension_is_a_fact_of_its_own_and_the_idle_splits_by_the_pods_unused_cost() {
        let mut cpu = row("i-1", "web-7d9f8b6c5-x2k4p", 0);
        cpu.split = Some(Box::new(SplitSums {
            share: [300, 100, 0],
            requested_unused: [60, 0, 0],
            unused: [0, 30, 0],
        }));
        let mut other = row("i-1", "api-7d9f8b6c5-x2k4p", 0);
        other.split = Some(Box::new(SplitSums {
            share: [200, 100, 0],
            requested_unused: [0, 0, 0],
            unused: [10, 10, 0],
        }));
        let facts = vec![raw("i-1", "Usage", [1000, 1000, 1000, 1000], 0), cpu, other];
        let (facts, split) = SplitRows::partition(facts);
        let (after, _) = attribute(facts, split);
        let find = |resource: &str, dimension: &str, requested: bool| -> i128 {
            after
                .iter()
                .filter(|f| {
                    f.fact.resource_id == resource
                        && f.fact.tags.get(DIMENSION).map(String::as_str) == Some(dimension)
                        && f.fact.tags.contains_key(REQUESTS) == requested
                })
                .map(|f| f.amounts[0])
                .sum()
        };
        assert_eq!(find("eks/prod/shop/web", "cpu", false), 240);
        assert_eq!(find("eks/prod/shop/web", "cpu", true), 60);
        assert_eq!(find("eks/prod/shop/web", "memory", false), 100);
        assert_eq!(find("eks/prod/shop/api", "cpu", false), 200);
        assert_eq!(find("eks/prod/shop/api", "memory", false), 100);
        // The idle (1000 − 700 = 300) is a fifth vCPU (10 of 50 unused) and the rest memory.
        assert_eq!(find("i-1", "cpu", false), 60);
        assert_eq!(find("i-1", "memory", false), 240);
        let total: i128 = after.iter().map(|f| f.amounts[0]).sum();
        assert_eq!(total, 1000);
        let lines: i64 = after.iter().map(|f| f.fact.line_count).sum();
        assert_eq!(lines, 3, "each row's line counted once");
    }

    #[test]
    fn usage_types_name_their_dimension() {
        assert_eq!(dimension_of(b"USE1-EKS-EC2-vCPU-Hours"), 0);
        assert_eq!(dimension_of(b"USE1-EKS-EC2-GB-Hours"), 1);
        assert_eq!(dimension_of(b"USW2-EKS-EC2-GPU-Hours"), 2);
        assert_eq!(dimension_of(b""), 0);
    }

    #[test]
    fn churning_tags_are_dropped_in_both_encodings_once_per_distinct_text() {
        let mut cache = FxHashMap::default();
        let json = format!(
            r#"{CUR_JSON_TAGS}{{"aws_eks_node":"ip-1","user_app":"web","user_pod_template_hash":"7d9f"}}"#
        );
        let mut tags = json.clone().into_bytes();
        drop_churning_tags(&mut tags, &mut cache);
        assert_eq!(
            String::from_utf8(tags.clone()).expect("text"),
            format!(r#"{CUR_JSON_TAGS}{{"user_app":"web"}}"#)
        );
        let mut again = json.into_bytes();
        drop_churning_tags(&mut again, &mut cache);
        assert_eq!(again, tags, "the cached answer");
        let mut kv =
            format!("{KV_TAGS}user:app{KV_SEP}web{KV_PAIR}aws:eks:node{KV_SEP}ip-1").into_bytes();
        drop_churning_tags(&mut kv, &mut cache);
        assert_eq!(
            String::from_utf8(kv).expect("text"),
            format!("{KV_TAGS}user:app{KV_SEP}web")
        );
        let mut plain = br#"{"app":"web"}"#.to_vec();
        drop_churning_tags(&mut plain, &mut cache);
        assert_eq!(plain, br#"{"app":"web"}"#.to_vec());
    }

    #[test]
    fn mul_div_never_overflows_and_never_exceeds_the_amount() {
        assert_eq!(mul_div(100, 1, 3), 33);
        assert_eq!(mul_div(-100, 1, 3), -33);
        let big = i128::MAX / 2;
        let got = mul_div(big, 1 << 100, 1 << 101);
        assert!(got <= big / 2 && got > big / 3);
        assert_eq!(mul_div(5, 0, 0), 0);
    }
}
