//! Each billing fact split into the allocated charges a FOCUS consumer sees: a fact a pool
//! took becomes one charge per member (and `unallocated` where the pool's fallback says so)
//! whose amounts sum exactly to the fact, and whose sums per (day, service, pool) are exactly
//! the allocations `allocate` computes, so a FOCUS export agrees with the statement to the
//! nano-unit. A fact charged directly (or unallocated) stays one charge. Pure.

use super::engine::{run, AllocateError, BucketKey, Claim, Input, Trace};
use crate::model::{CostBasis, Fact, Method, UNALLOCATED};
use crate::money::{split_largest_remainder, Nanos, NANOS_PER_UNIT};

/// One allocated charge of a fact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargePart {
    pub service: String,
    pub method: Method,
    pub fallback_used: bool,
    /// The usage sample or fallback reason behind the share (see `Allocation::basis`).
    pub basis: String,
    /// Of the allocated cost basis, and of the other one.
    pub amount: Nanos,
    pub other_amount: Nanos,
    /// The fact's list and contracted cost, split in the same proportions.
    pub list: Nanos,
    pub contracted: Nanos,
    /// The part's share of the fact in parts per billion; the parts of a fact sum to 1e9.
    pub ratio_ppb: i64,
}

/// A fact and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargeSplit<'a> {
    pub fact: &'a Fact,
    /// The pool that took it; `None` for direct and unallocated cost.
    pub pool: Option<String>,
    pub parts: Vec<ChargePart>,
}

fn abs_weights(amounts: &[Nanos]) -> Vec<u128> {
    let weights: Vec<u128> = amounts.iter().map(|a| a.0.unsigned_abs()).collect();
    if weights.iter().all(|w| *w == 0) {
        vec![1; amounts.len()]
    } else {
        weights
    }
}

/// Splits `total` in proportion to `like` (by absolute value; equally when all are zero).
pub fn split_like(total: Nanos, like: &[Nanos]) -> Vec<Nanos> {
    split_largest_remainder(total, &abs_weights(like)).expect("weights with a positive sum")
}

/// Every fact of `input` with its allocated charges, in fact order.
pub fn split_charges<'a>(input: &Input<'a>) -> Result<Vec<ChargeSplit<'a>>, AllocateError> {
    let mut trace = Trace::default();
    run(input, Some(&mut trace))?;
    let other_basis = match input.basis {
        CostBasis::Effective => CostBasis::Billed,
        CostBasis::Billed => CostBasis::Effective,
    };
    // The facts of each bucket, in order.
    let mut members: std::collections::BTreeMap<&BucketKey, Vec<usize>> = Default::default();
    for (i, claim) in trace.claims.iter().enumerate() {
        if let Claim::Bucket(key) = claim {
            members.entry(key).or_default().push(i);
        }
    }
    let mut out: Vec<Option<ChargeSplit<'a>>> = vec![None; input.facts.len()];
    for (i, claim) in trace.claims.iter().enumerate() {
        let fact = &input.facts[i];
        let (service, method) = match claim {
            Claim::Bucket(_) => continue,
            Claim::Direct(s) => (s.to_string(), Method::Direct),
            Claim::Unallocated => (UNALLOCATED.to_string(), Method::Unallocated),
        };
        out[i] = Some(ChargeSplit {
            fact,
            pool: None,
            parts: vec![ChargePart {
                service,
                method,
                fallback_used: false,
                basis: String::new(),
                amount: fact.amount(input.basis),
                other_amount: fact.amount(other_basis),
                list: fact.list,
                contracted: fact.contracted,
                ratio_ppb: 1_000_000_000,
            }],
        });
    }
    for (key, facts) in members {
        let parts = &trace.parts[key];
        let targets: Vec<Nanos> = parts.iter().map(|p| p.amount).collect();
        let mut remaining = targets.clone();
        let last = facts.len() - 1;
        for (n, &i) in facts.iter().enumerate() {
            let fact = &input.facts[i];
            // Each fact in proportion to the bucket's parts; the last takes what is left, so
            // the parts of every member add up to its allocation exactly.
            let amounts = if n == last {
                remaining.clone()
            } else {
                split_like(fact.amount(input.basis), &targets)
            };
            for (r, a) in remaining.iter_mut().zip(&amounts) {
                *r = *r - *a;
            }
            let others = split_like(fact.amount(other_basis), &amounts);
            let lists = split_like(fact.list, &amounts);
            let contracted = split_like(fact.contracted, &amounts);
            let ratios = split_like(Nanos(NANOS_PER_UNIT), &amounts);
            // Members with nothing of this fact are left out, unless the whole fact is zero.
            let some = |m: usize| {
                [amounts[m], others[m], lists[m], contracted[m]]
                    .iter()
                    .any(|a| a.0 != 0)
            };
            let any = (0..amounts.len()).any(some);
            out[i] = Some(ChargeSplit {
                fact,
                pool: Some(input.rules.pools[key.pool].name.clone()),
                parts: parts
                    .iter()
                    .enumerate()
                    .filter(|&(m, _)| !any || some(m))
                    .map(|(m, p)| ChargePart {
                        service: p.service.clone(),
                        method: p.method,
                        fallback_used: p.fallback_used,
                        basis: p.basis.clone(),
                        amount: amounts[m],
                        other_amount: others[m],
                        list: lists[m],
                        contracted: contracted[m],
                        ratio_ppb: i64::try_from(ratios[m].0).expect("at most 1e9"),
                    })
                    .collect(),
            });
        }
    }
    Ok(out
        .into_iter()
        .map(|s| s.expect("every fact is claimed once"))
        .collect())
}
