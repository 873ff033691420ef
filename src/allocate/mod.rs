//! Pure allocation: facts + usage weights + validated rules in, allocations out. No IO, no
//! clock, no floats. Invariant: for every day and currency, the allocations sum exactly to
//! the facts; a line item is claimed by at most one pool and counted once.

use std::collections::{BTreeMap, HashMap};

use chrono::NaiveDate;

use crate::model::{Allocation, CostBasis, Fact, Method, UNALLOCATED};
use crate::money::{ratio_ppb, split_largest_remainder, Nanos};
use crate::rules::{Fallback, Pool, Rules, SplitMethod, Tagged, Undeclared, WeightTable};

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
struct BucketKey {
    day: NaiveDate,
    pool: usize,
    resource: Option<String>,
}

struct Bucket {
    currency: String,
    amount: Nanos,
}

/// Who gets charged, before grouping into rows.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct RowKey {
    day: NaiveDate,
    service: String,
    pool: String,
    provider_service: String,
    method: Method,
    fallback_used: bool,
    currency: String,
    basis: String,
}

/// Computes the allocations for the given facts. Deterministic: the same input gives the same
/// output in the same order (day, service, pool).
pub fn allocate(input: &Input<'_>) -> Result<Vec<Allocation>, AllocateError> {
    run(input, None)
}

/// Who took a fact: a pool's bucket, a service directly, or nobody.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Claim {
    Bucket(BucketKey),
    Direct(String),
    Unallocated,
}

/// One member's part of a pool bucket, as `allocate` computed it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BucketPart {
    service: String,
    method: Method,
    fallback_used: bool,
    basis: String,
    amount: Nanos,
}

/// What a run can record beside its allocations: each fact's claim and each bucket's parts.
#[derive(Default)]
struct Trace {
    claims: Vec<Claim>,
    parts: BTreeMap<BucketKey, Vec<BucketPart>>,
}

fn run(input: &Input<'_>, mut trace: Option<&mut Trace>) -> Result<Vec<Allocation>, AllocateError> {
    let rules = input.rules;
    let mut rows: BTreeMap<RowKey, Nanos> = BTreeMap::new();
    let mut direct: HashMap<(NaiveDate, String, String), Nanos> = HashMap::new();
    let mut buckets: BTreeMap<BucketKey, Bucket> = BTreeMap::new();
    let per_resource: Vec<bool> = rules
        .pools
        .iter()
        .map(|p| weights_for(p, input.usage).is_some_and(WeightTable::per_resource))
        .collect();

    for fact in input.facts {
        let amount = fact.amount(input.basis);
        let (tagged, undeclared) = rules.tagged_service(&fact.tags);
        let service: Option<String> = match tagged {
            Tagged::Declared(s) => Some(s.name.clone()),
            Tagged::Undeclared => match rules.settings.undeclared_services {
                Undeclared::Direct => undeclared,
                Undeclared::Unallocated => None,
            },
            Tagged::Untagged => None,
        };
        let pool = rules
            .pools
            .iter()
            .position(|p| p.matcher.matches(fact, service.as_deref()));
        if let Some(pool) = pool {
            let key = BucketKey {
                day: fact.day,
                pool,
                resource: per_resource[pool].then(|| fact.resource_id.clone()),
            };
            if let Some(t) = trace.as_deref_mut() {
                t.claims.push(Claim::Bucket(key.clone()));
            }
            let bucket = buckets.entry(key).or_insert_with(|| Bucket {
                currency: fact.currency.clone(),
                amount: Nanos::ZERO,
            });
            if bucket.currency != fact.currency {
                let mut currencies = [bucket.currency.clone(), fact.currency.clone()];
                currencies.sort();
                return Err(AllocateError::MixedCurrency {
                    pool: rules.pools[pool].name.clone(),
                    day: fact.day,
                    currencies: currencies.join(", "),
                });
            }
            bucket.amount += amount;
            continue;
        }
        if let Some(t) = trace.as_deref_mut() {
            t.claims.push(match &service {
                Some(s) => Claim::Direct(s.clone()),
                None => Claim::Unallocated,
            });
        }
        let (service, method) = match service {
            Some(service) => {
                *direct
                    .entry((fact.day, service.clone(), fact.currency.clone()))
                    .or_default() += amount;
                (service, Method::Direct)
            }
            None => (UNALLOCATED.to_string(), Method::Unallocated),
        };
        *rows
            .entry(RowKey {
                day: fact.day,
                service,
                pool: String::new(),
                provider_service: fact.provider_service.clone(),
                method,
                fallback_used: false,
                currency: fact.currency.clone(),
                basis: String::new(),
            })
            .or_default() += amount;
    }

    // Pool totals per day, for the ratio shown on each row.
    let mut pool_day_totals: HashMap<(NaiveDate, usize), Nanos> = HashMap::new();
    for (key, bucket) in &buckets {
        *pool_day_totals.entry((key.day, key.pool)).or_default() += bucket.amount;
    }

    for (key, bucket) in &buckets {
        let pool = &rules.pools[key.pool];
        let direct_weights = |day: NaiveDate| -> Vec<u128> {
            pool.members
                .iter()
                .map(|m| {
                    let cost = direct
                        .get(&(day, m.clone(), bucket.currency.clone()))
                        .map_or(0, |n| n.0);
                    u128::try_from(cost.max(0)).expect("non-negative")
                })
                .collect()
        };
        let own: Option<Vec<Nanos>> = match &pool.method {
            SplitMethod::Equal => {
                split_largest_remainder(bucket.amount, &vec![1; pool.members.len()])
            }
            SplitMethod::Fixed(parts) => {
                let weights: Vec<u128> = pool
                    .members
                    .iter()
                    .map(|m| parts.iter().find(|(s, _)| s == m).map_or(0, |(_, p)| *p))
                    .collect();
                split_largest_remainder(bucket.amount, &weights)
            }
            SplitMethod::Proportional => {
                split_largest_remainder(bucket.amount, &direct_weights(key.day))
            }
            SplitMethod::Usage(_) => {
                let table = weights_for(pool, input.usage).expect("usage pools have weights");
                let set = table.lookup(key.day, key.resource.as_deref());
                let weights: Vec<u128> = pool
                    .members
                    .iter()
                    .map(|m| set.and_then(|s| s.get(m)).copied().unwrap_or(0))
                    .collect();
                split_largest_remainder(bucket.amount, &weights)
            }
        };
        let (parts, method, fallback_used) = match own {
            Some(parts) => (Some(parts), pool.method.method(), false),
            None => match pool.fallback {
                Fallback::Equal => (
                    split_largest_remainder(bucket.amount, &vec![1; pool.members.len()]),
                    Method::Equal,
                    true,
                ),
                Fallback::Proportional => {
                    match split_largest_remainder(bucket.amount, &direct_weights(key.day)) {
                        Some(parts) => (Some(parts), Method::Proportional, true),
                        None => (
                            split_largest_remainder(bucket.amount, &vec![1; pool.members.len()]),
                            Method::Equal,
                            true,
                        ),
                    }
                }
                Fallback::Unallocated => (None, Method::Unallocated, true),
            },
        };
        let usage_basis = input.usage.basis.get(&(pool.name.clone(), key.day));
        let basis = |member: &str| -> String {
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
        };
        let row = |service: String, method: Method| RowKey {
            day: key.day,
            basis: basis(&service),
            service,
            pool: pool.name.clone(),
            provider_service: String::new(),
            method,
            fallback_used,
            currency: bucket.currency.clone(),
        };
        let mut traced = Vec::new();
        match parts {
            Some(parts) => {
                for (member, part) in pool.members.iter().zip(parts) {
                    let r = row(member.clone(), method);
                    if trace.is_some() {
                        traced.push(BucketPart {
                            service: member.clone(),
                            method,
                            fallback_used,
                            basis: r.basis.clone(),
                            amount: part,
                        });
                    }
                    *rows.entry(r).or_default() += part;
                }
            }
            None => {
                let r = row(UNALLOCATED.to_string(), Method::Unallocated);
                if trace.is_some() {
                    traced.push(BucketPart {
                        service: UNALLOCATED.to_string(),
                        method: Method::Unallocated,
                        fallback_used,
                        basis: r.basis.clone(),
                        amount: bucket.amount,
                    });
                }
                *rows.entry(r).or_default() += bucket.amount;
            }
        }
        if let Some(t) = trace.as_deref_mut() {
            t.parts.insert(key.clone(), traced);
        }
    }

    let pool_index: HashMap<&str, usize> = rules
        .pools
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    Ok(rows
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
                service: key.service,
                team,
                cost_center,
                pool: key.pool,
                provider_service: key.provider_service,
                method: key.method,
                fallback_used: key.fallback_used,
                ratio_ppb: ratio,
                amount,
                currency: key.currency,
                basis: key.basis,
            }
        })
        .collect())
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
    let mut sums: BTreeMap<(NaiveDate, String), (i128, i128)> = BTreeMap::new();
    for f in facts {
        sums.entry((f.day, f.currency.clone())).or_default().0 += f.amount(basis).0;
    }
    for a in allocations {
        sums.entry((a.day, a.currency.clone())).or_default().1 += a.amount.0;
    }
    sums.into_iter()
        .filter(|(_, (billed, allocated))| billed != allocated)
        .map(|((day, currency), (billed, allocated))| (day, currency, billed, allocated))
        .collect()
}

mod charges;
mod usage;

pub use charges::{split_charges, ChargePart, ChargeSplit};
pub use usage::live_weights;

#[cfg(test)]
mod tests;
