//! The split itself: claim each fact (the first pool that matches, else its service, else
//! `unallocated`), split each pool's bucket among its members by the pool's method or its
//! fallback, and finish the rows as allocations.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use chrono::NaiveDate;
use rustc_hash::FxHashMap;

use crate::model::{Allocation, CostBasis, Fact, Key, Method, Tags, UNALLOCATED};
use crate::money::{ratio_ppb, split_largest_remainder, Nanos};
use crate::rules::{
    Fallback, IdlePolicy, IdleShare, Pool, Rules, SplitMethod, Tagged, Undeclared, WeightTable,
    Workloads,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AllocateError {
    #[error("pool `{pool}` has line items in more than one currency on {day} ({currencies}); split the pool by currency (e.g. match on sub_account) so each pool holds one currency")]
    MixedCurrency {
        pool: String,
        day: NaiveDate,
        currencies: String,
    },
}

/// Usage weights measured outside the rules (live sources), by pool name. They replace the
/// rules' own static weights for the same (day, resource) keys. Empty means "use the rules".
#[derive(Debug, Clone, Default)]
pub struct UsageWeights {
    pub by_pool: HashMap<String, WeightTable>,
    /// For pools measured by live sources: per (pool, day), where the weights came from or
    /// why there are none. It becomes the `basis` of the pool's allocation rows.
    pub basis: HashMap<(String, NaiveDate), UsageBasis>,
}

/// Where a live pool's weights of one day came from, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UsageBasis {
    /// Per member: the sample that gave its share (`orders-db 2025-03-14: 12 of 40 bytes`).
    Measured(BTreeMap<String, String>),
    /// Why the pool falls back that day (`no sample of orders-db within 3 days`).
    Missing(String),
}

/// Everything `allocate` needs.
pub struct Input<'a> {
    pub facts: &'a [Fact],
    pub rules: &'a Rules,
    pub usage: &'a UsageWeights,
    pub basis: CostBasis,
}

/// A pool's cost on one day (and, for per-resource weights, one resource).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct BucketKey {
    pub(super) day: NaiveDate,
    pub(super) pool: usize,
    pub(super) resource: Option<Key>,
}

pub(super) struct Bucket {
    pub(super) currency: Key,
    pub(super) amount: Nanos,
}

/// Who gets charged, before grouping into rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RowKey {
    day: NaiveDate,
    service: Key,
    pool: Key,
    provider_service: Key,
    method: Method,
    fallback_used: bool,
    currency: Key,
    basis: String,
}

/// Computes the allocations for the given facts. Deterministic: the same input gives the same
/// output in the same order (day, service, pool).
pub fn allocate(input: &Input<'_>) -> Result<Vec<Allocation>, AllocateError> {
    run(input, None)
}

/// Who took a fact: a pool's bucket, a service directly, or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Claim {
    Bucket(BucketKey),
    Direct(Key),
    Unallocated,
}

/// One member's part of a pool bucket, as `allocate` computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct BucketPart {
    pub(super) service: String,
    pub(super) method: Method,
    pub(super) fallback_used: bool,
    pub(super) basis: String,
    pub(super) amount: Nanos,
}

/// What a run can record beside its allocations: each fact's claim and each bucket's parts.
#[derive(Default)]
pub(super) struct Trace {
    pub(super) claims: Vec<Claim>,
    pub(super) parts: BTreeMap<BucketKey, Vec<BucketPart>>,
}

/// Claim every fact (a pool's bucket, a service directly, or nobody), split each bucket among
/// its pool's members, then finish the rows as allocations.
pub(super) fn run(
    input: &Input<'_>,
    mut trace: Option<&mut Trace>,
) -> Result<Vec<Allocation>, AllocateError> {
    let mut run = Run::new(input);
    for fact in input.facts {
        let claim = run.claim(fact)?;
        if let Some(t) = trace.as_deref_mut() {
            t.claims.push(claim);
        }
    }
    let buckets = std::mem::take(&mut run.buckets);
    for (key, bucket) in &buckets {
        let parts = run.split(key, bucket);
        if let Some(t) = trace.as_deref_mut() {
            t.parts.insert(key.clone(), parts.clone());
        }
        for part in parts {
            run.charge(key, bucket, part);
        }
    }
    Ok(run.finish(&buckets))
}

/// One allocation run's working state.
struct Run<'a> {
    input: &'a Input<'a>,
    rows: BTreeMap<RowKey, Nanos>,
    /// Direct cost per (day, service, currency): the weights of proportional splits.
    direct: HashMap<(NaiveDate, Key, Key), Nanos>,
    buckets: BTreeMap<BucketKey, Bucket>,
    /// Per pool: whether its weights are per resource (a bucket per day and resource).
    per_resource: Vec<bool>,
    /// What each cluster's workloads pool charged each service per day: the weights of its
    /// idle pool (split after it: buckets go in (day, pool) order, workloads pool first).
    workload_totals: HashMap<(NaiveDate, usize), BTreeMap<String, Nanos>>,
    /// The service each tag set names (facts share their tag maps: one answer per map).
    services: FxHashMap<*const Tags, Option<Key>>,
    /// The pools' names, and the empty text of a row without pool, provider service or basis.
    pool_names: Vec<Key>,
    empty: Key,
    unallocated: Key,
}

impl<'a> Run<'a> {
    fn new(input: &'a Input<'a>) -> Run<'a> {
        let per_resource = input
            .rules
            .pools
            .iter()
            .map(|p| weights_for(p, input.usage).is_some_and(WeightTable::per_resource))
            .collect();
        Run {
            input,
            rows: BTreeMap::new(),
            direct: HashMap::new(),
            buckets: BTreeMap::new(),
            per_resource,
            workload_totals: HashMap::new(),
            services: FxHashMap::default(),
            pool_names: input
                .rules
                .pools
                .iter()
                .map(|p| Key::from(&p.name))
                .collect(),
            empty: Key::default(),
            unallocated: Key::from(UNALLOCATED),
        }
    }

    /// The service a fact's tags name, as the settings treat undeclared services.
    fn service_of(&mut self, fact: &Fact) -> Option<Key> {
        let rules = self.input.rules;
        self.services
            .entry(Arc::as_ptr(&fact.tags))
            .or_insert_with(|| {
                let (tagged, undeclared) = rules.tagged_service(&fact.tags);
                match tagged {
                    Tagged::Declared(s) => Some(Key::from(&s.name)),
                    Tagged::Undeclared => match rules.settings.undeclared_services {
                        Undeclared::Direct => undeclared.map(Key::from),
                        Undeclared::Unallocated => None,
                    },
                    Tagged::Untagged => None,
                }
            })
            .clone()
    }

    /// Adds a fact to the first pool that matches it, else to its service's direct cost,
    /// else to `unallocated`.
    fn claim(&mut self, fact: &Fact) -> Result<Claim, AllocateError> {
        let rules = self.input.rules;
        let amount = fact.amount(self.input.basis);
        let service = self.service_of(fact);
        if let Some(pool) = rules
            .pools
            .iter()
            .position(|p| p.matcher.matches(fact, service.as_deref()))
        {
            let resource = match &rules.pools[pool].method {
                // A bucket per value that names a service (namespace, workload or label).
                SplitMethod::Workloads(w) => Some(w.bucket_of(fact).into()),
                _ => self.per_resource[pool].then(|| fact.resource_id.clone()),
            };
            let key = BucketKey {
                day: fact.day,
                pool,
                resource,
            };
            let bucket = self.buckets.entry(key.clone()).or_insert_with(|| Bucket {
                currency: fact.currency.clone(),
                amount: Nanos::ZERO,
            });
            if bucket.currency != fact.currency {
                let mut currencies = [bucket.currency.to_string(), fact.currency.to_string()];
                currencies.sort();
                return Err(AllocateError::MixedCurrency {
                    pool: rules.pools[pool].name.clone(),
                    day: fact.day,
                    currencies: currencies.join(", "),
                });
            }
            bucket.amount += amount;
            return Ok(Claim::Bucket(key));
        }
        let (claim, service, method) = match service {
            Some(service) => {
                *self
                    .direct
                    .entry((fact.day, service.clone(), fact.currency.clone()))
                    .or_default() += amount;
                (Claim::Direct(service.clone()), service, Method::Direct)
            }
            None => (
                Claim::Unallocated,
                self.unallocated.clone(),
                Method::Unallocated,
            ),
        };
        *self
            .rows
            .entry(RowKey {
                day: fact.day,
                service,
                pool: self.empty.clone(),
                provider_service: fact.provider_service.clone(),
                method,
                fallback_used: false,
                currency: fact.currency.clone(),
                basis: String::new(),
            })
            .or_default() += amount;
        Ok(claim)
    }

    /// Each member's direct cost of the day in the bucket's currency (negative counts as 0).
    fn direct_weights(&self, pool: &Pool, day: NaiveDate, currency: &str) -> Vec<u128> {
        pool.members
            .iter()
            .map(|m| {
                let cost = self
                    .direct
                    .get(&(day, Key::from(m), Key::from(currency)))
                    .map_or(0, |n| n.0);
                u128::try_from(cost.max(0)).expect("non-negative")
            })
            .collect()
    }

    /// The pool's own weights for a bucket: none when they sum to 0 (the pool falls back).
    fn own_split(&self, pool: &Pool, key: &BucketKey, bucket: &Bucket) -> Option<Vec<Nanos>> {
        let equal = || vec![1; pool.members.len()];
        match &pool.method {
            SplitMethod::Equal => split_largest_remainder(bucket.amount, &equal()),
            SplitMethod::Fixed(parts) => {
                let weights: Vec<u128> = pool
                    .members
                    .iter()
                    .map(|m| parts.iter().find(|(s, _)| s == m).map_or(0, |(_, p)| *p))
                    .collect();
                split_largest_remainder(bucket.amount, &weights)
            }
            SplitMethod::Proportional => split_largest_remainder(
                bucket.amount,
                &self.direct_weights(pool, key.day, &bucket.currency),
            ),
            SplitMethod::Usage(_) => {
                let table = weights_for(pool, self.input.usage).expect("usage pools have weights");
                let set = table.lookup(key.day, key.resource.as_deref());
                let weights: Vec<u128> = pool
                    .members
                    .iter()
                    .map(|m| set.and_then(|s| s.get(m)).copied().unwrap_or(0))
                    .collect();
                split_largest_remainder(bucket.amount, &weights)
            }
            // Split whole by `split` before the pool's own weights are asked for.
            SplitMethod::Workloads(_) | SplitMethod::Idle(_) => None,
        }
    }

    /// A bucket's parts: by the pool's method, else by its fallback (an equal split when
    /// proportional weights are 0 too), else the whole bucket to `unallocated`.
    fn split(&self, key: &BucketKey, bucket: &Bucket) -> Vec<BucketPart> {
        let pool = &self.input.rules.pools[key.pool];
        match &pool.method {
            SplitMethod::Workloads(w) => return vec![self.workload_part(w, key, bucket)],
            SplitMethod::Idle(idle) => return self.idle_parts(idle, key, bucket),
            _ => {}
        }
        let equal = || split_largest_remainder(bucket.amount, &vec![1; pool.members.len()]);
        let (parts, method, fallback_used) = match self.own_split(pool, key, bucket) {
            Some(parts) => (Some(parts), pool.method.method(), false),
            None => match pool.fallback {
                Fallback::Equal => (equal(), Method::Equal, true),
                Fallback::Proportional => match split_largest_remainder(
                    bucket.amount,
                    &self.direct_weights(pool, key.day, &bucket.currency),
                ) {
                    Some(parts) => (Some(parts), Method::Proportional, true),
                    None => (equal(), Method::Equal, true),
                },
                Fallback::Unallocated => (None, Method::Unallocated, true),
            },
        };
        let usage_basis = self.input.usage.basis.get(&(pool.name.clone(), key.day));
        let part = |service: &str, method: Method, amount: Nanos| BucketPart {
            service: service.to_string(),
            method,
            fallback_used,
            basis: basis_text(pool, usage_basis, fallback_used, service),
            amount,
        };
        match parts {
            Some(parts) => pool
                .members
                .iter()
                .zip(parts)
                .map(|(member, amount)| part(member, method, amount))
                .collect(),
            None => vec![part(UNALLOCATED, Method::Unallocated, bucket.amount)],
        }
    }

    /// A cluster's workloads bucket (one namespace, workload or label value) whole to the
    /// service the value maps to, else to `unallocated` with the reason.
    fn workload_part(&self, w: &Workloads, key: &BucketKey, bucket: &Bucket) -> BucketPart {
        let rules = self.input.rules;
        let (value, requested) =
            Workloads::value_of_bucket(key.resource.as_deref().unwrap_or_default());
        let named = w.by.describe(value);
        let service = match &w.map {
            Some(map) => map.service_of(value).map(str::to_string),
            None => rules
                .service(&rules.settings.value_case.normalise(value))
                .map(|s| s.name.clone()),
        };
        let (service, method, basis) = match service {
            Some(service) if requested => (
                service,
                Method::Requested,
                format!("{named}: requested above usage"),
            ),
            Some(service) => (service, Method::Split, named),
            None if value.is_empty() => (
                UNALLOCATED.to_string(),
                Method::Unallocated,
                format!("no {} in cluster {}", w.by.name(), w.cluster),
            ),
            None => (
                UNALLOCATED.to_string(),
                Method::Unallocated,
                format!("{named} of cluster {} names no service", w.cluster),
            ),
        };
        BucketPart {
            service,
            method,
            fallback_used: false,
            basis,
            amount: bucket.amount,
        }
    }

    /// A cluster's idle capacity of one day, by its policy: to its owner, equally among the
    /// services whose workloads ran, or in proportion to what their workloads were charged.
    /// A day without workloads leaves it `unallocated`, saying so.
    fn idle_parts(&self, idle: &IdleShare, key: &BucketKey, bucket: &Bucket) -> Vec<BucketPart> {
        let rules = self.input.rules;
        let part = |service: &str, method: Method, basis: String, amount: Nanos| BucketPart {
            service: service.to_string(),
            method,
            fallback_used: false,
            basis,
            amount,
        };
        let workloads = rules.pools.iter().position(|p| p.name == idle.workloads);
        let totals = workloads.and_then(|w| self.workload_totals.get(&(key.day, w)));
        let mut ran: Vec<(&String, u128)> = totals
            .map(|t| {
                t.iter()
                    .map(|(s, n)| (s, u128::try_from(n.0.max(0)).expect("non-negative")))
                    .collect()
            })
            .unwrap_or_default();
        let (weights, method, basis): (Vec<(&String, u128)>, Method, &str) = match &idle.policy {
            IdlePolicy::Central(owner) => {
                return vec![part(
                    owner,
                    Method::Central,
                    format!(
                        "central: {owner} pays the idle capacity of {}",
                        idle.workloads
                    ),
                    bucket.amount,
                )]
            }
            IdlePolicy::Unallocated => {
                return vec![part(
                    UNALLOCATED,
                    Method::Unallocated,
                    format!("idle capacity of {}: no idle policy chosen", idle.workloads),
                    bucket.amount,
                )]
            }
            IdlePolicy::Equal => {
                ran.retain(|(s, w)| s.as_str() != UNALLOCATED && *w > 0);
                let ran = ran.into_iter().map(|(s, _)| (s, 1)).collect();
                (
                    ran,
                    Method::Equal,
                    "equal among the services whose workloads ran in",
                )
            }
            IdlePolicy::Requests => (
                ran,
                Method::Proportional,
                "in proportion to the workloads' split (requests or usage) in",
            ),
        };
        let weight_list: Vec<u128> = weights.iter().map(|(_, w)| *w).collect();
        match split_largest_remainder(bucket.amount, &weight_list) {
            Some(parts) => weights
                .iter()
                .zip(parts)
                .map(|((service, _), amount)| {
                    part(
                        service,
                        method,
                        format!("{basis} {}", idle.workloads),
                        amount,
                    )
                })
                .collect(),
            None => vec![BucketPart {
                fallback_used: true,
                ..part(
                    UNALLOCATED,
                    Method::Unallocated,
                    format!("fallback: no workloads ran in {} that day", idle.workloads),
                    bucket.amount,
                )
            }],
        }
    }

    /// Adds a member's part of a bucket to its row.
    fn charge(&mut self, key: &BucketKey, bucket: &Bucket, part: BucketPart) {
        if matches!(
            self.input.rules.pools[key.pool].method,
            SplitMethod::Workloads(_)
        ) {
            *self
                .workload_totals
                .entry((key.day, key.pool))
                .or_default()
                .entry(part.service.clone())
                .or_default() += part.amount;
        }
        let row = RowKey {
            day: key.day,
            service: part.service.into(),
            pool: self.pool_names[key.pool].clone(),
            provider_service: self.empty.clone(),
            method: part.method,
            fallback_used: part.fallback_used,
            currency: bucket.currency.clone(),
            basis: part.basis,
        };
        *self.rows.entry(row).or_default() += part.amount;
    }

    /// The rows as allocations, with each row's ratio of its pool's day and its service's
    /// owners; zero pool rows are left out.
    fn finish(self, buckets: &BTreeMap<BucketKey, Bucket>) -> Vec<Allocation> {
        let rules = self.input.rules;
        // Pool totals per day, for the ratio shown on each row.
        let mut pool_day_totals: HashMap<(NaiveDate, usize), Nanos> = HashMap::new();
        for (key, bucket) in buckets {
            *pool_day_totals.entry((key.day, key.pool)).or_default() += bucket.amount;
        }
        let pool_index: HashMap<&str, usize> = rules
            .pools
            .iter()
            .enumerate()
            .map(|(i, p)| (p.name.as_str(), i))
            .collect();
        self.rows
            .into_iter()
            .filter(|(key, amount)| amount.0 != 0 || key.pool.is_empty())
            .map(|(key, amount)| {
                let ratio = match pool_index.get(key.pool.as_str()) {
                    None => 1_000_000_000,
                    Some(&p) => ratio_ppb(amount, pool_day_totals[&(key.day, p)]),
                };
                let (team, cost_center) = rules
                    .service(&key.service)
                    .map(|s| (s.team.clone(), s.cost_center.clone()))
                    .unwrap_or_default();
                Allocation {
                    day: key.day,
                    service: key.service.into(),
                    team,
                    cost_center,
                    pool: key.pool.into(),
                    provider_service: key.provider_service.into(),
                    method: key.method,
                    fallback_used: key.fallback_used,
                    ratio_ppb: ratio,
                    amount,
                    currency: key.currency.into(),
                    basis: key.basis,
                }
            })
            .collect()
    }
}

/// The basis text of a member's share: the sample that gave it, or why the pool fell back.
fn basis_text(
    pool: &Pool,
    usage_basis: Option<&UsageBasis>,
    fallback_used: bool,
    member: &str,
) -> String {
    match (usage_basis, fallback_used) {
        (None, false) => String::new(),
        (None, true) if matches!(pool.method, SplitMethod::Usage(_)) => {
            "fallback: no usage weights for this day".to_string()
        }
        (None, true) => "fallback: the method's weights sum to 0".to_string(),
        (Some(UsageBasis::Measured(members)), false) => {
            members.get(member).cloned().unwrap_or_default()
        }
        (Some(UsageBasis::Measured(_)), true) => {
            "fallback: the measured usage of the members sums to 0".to_string()
        }
        (Some(UsageBasis::Missing(reason)), _) => format!("fallback: {reason}"),
    }
}

fn weights_for<'a>(pool: &'a Pool, usage: &'a UsageWeights) -> Option<&'a WeightTable> {
    match &pool.method {
        SplitMethod::Usage(table) => Some(usage.by_pool.get(&pool.name).unwrap_or(table)),
        _ => None,
    }
}

/// Days and currencies where the allocations do not sum to the facts, as
/// (day, currency, billed, allocated). Empty by construction; callers check it before
/// anything is stored, so a bug can never reach a bill.
pub fn conservation_gaps(
    facts: &[Fact],
    allocations: &[Allocation],
    basis: CostBasis,
) -> Vec<(NaiveDate, String, i128, i128)> {
    let mut sums: BTreeMap<(NaiveDate, &str), (i128, i128)> = BTreeMap::new();
    for f in facts {
        sums.entry((f.day, &f.currency)).or_default().0 += f.amount(basis).0;
    }
    for a in allocations {
        sums.entry((a.day, &a.currency)).or_default().1 += a.amount.0;
    }
    sums.into_iter()
        .filter(|(_, (billed, allocated))| billed != allocated)
        .map(|((day, currency), (billed, allocated))| {
            (day, currency.to_string(), billed, allocated)
        })
        .collect()
}
