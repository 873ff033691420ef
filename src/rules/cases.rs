//! Test cases carried by the rule files (`[[test]]`): sample facts (and usage weights) in,
//! expected per-service amounts out, run by `costsplit rules test` and in CI, in the manner
//! of Vector's config tests. Here they are walked and checked like any other table; running
//! them is the allocator's work (`jobs::rules_test`).

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::NaiveDate;
use toml_edit::{TableLike, Value};

use super::walk::{FileCtx, Loc};
use crate::model::{Fact, Tags, UNALLOCATED};
use crate::money::Nanos;

/// A validated test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    /// `file:line` of its `[[test]]` header, for the report.
    pub location: String,
    pub facts: Vec<Fact>,
    /// Pool name -> (service, weight scaled by 1e6), for usage pools.
    pub weights: BTreeMap<String, Vec<(String, u128)>>,
    /// Service -> expected amount over all the case's facts. Every service charged a non-zero
    /// amount must be listed.
    pub expect: BTreeMap<String, Nanos>,
    /// Budget name -> expected allocated amount in its scope over all the case's facts.
    pub expect_budgets: BTreeMap<String, Nanos>,
}

#[derive(Debug)]
pub(super) struct RawCase {
    name: String,
    loc: Loc,
    facts: Vec<(RawFact, Loc)>,
    weights: Vec<RawWeights>,
    expect: Vec<(String, Nanos, Loc)>,
    expect_budgets: Vec<(String, Nanos, Loc)>,
}

/// `weights.<pool>` as written: the pool, where, and (service, weight text, where).
type RawWeights = (String, Loc, Vec<(String, String, Loc)>);

#[derive(Debug)]
struct RawFact {
    fact: Fact,
}

const CASE_KEYS: [&str; 6] = [
    "name",
    "day",
    "facts",
    "weights",
    "expect",
    "expect_budgets",
];
const FACT_KEYS: [&str; 8] = [
    "cost",
    "currency",
    "resource_id",
    "provider_service",
    "charge_category",
    "sub_account",
    "billing_account",
    "tags",
];

/// A cost, count or weight written as a number or a decimal string.
fn decimal_text(value: &Value) -> Option<String> {
    match value {
        Value::Integer(i) => Some(i.value().to_string()),
        Value::Float(f) => Some(f.value().to_string()),
        Value::String(s) => Some(s.value().trim().to_string()),
        _ => None,
    }
}

pub(super) fn walk_case(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
) -> Option<RawCase> {
    ctx.check_keys(table, &CASE_KEYS, "[[test]]");
    let loc = ctx.loc(span.clone());
    let name = match ctx.string(table, "name") {
        Some((name, _)) if !name.trim().is_empty() => name,
        _ => {
            ctx.error(
                span,
                "[[test]] needs a `name`, e.g. name = \"redis splits five ways\"",
            );
            return None;
        }
    };
    let day = match ctx.string(table, "day") {
        None => NaiveDate::from_ymd_opt(2025, 1, 1).expect("a valid day"),
        Some((text, dloc)) => match crate::model::parse_day(&text) {
            Some(day) => day,
            None => {
                ctx.push(&dloc, format!("`day` must be YYYY-MM-DD, not `{text}`"));
                return None;
            }
        },
    };
    let mut facts = Vec::new();
    match table.get("facts").and_then(|i| i.as_array()) {
        Some(array) if !array.is_empty() => {
            for value in array.iter() {
                let floc = ctx.loc(value.span());
                match value.as_inline_table() {
                    Some(t) => {
                        if let Some(fact) = walk_fact(ctx, t, day, &floc) {
                            facts.push((fact, floc));
                        }
                    }
                    None => ctx.push(
                        &floc,
                        "each of `facts` must be an inline table, e.g. { resource_id = \"arn:…\", cost = \"12.50\" }",
                    ),
                }
            }
        }
        _ => {
            ctx.error(
                span.clone(),
                format!("[[test]] `{name}` needs `facts = [ {{ cost = \"1.00\", … }}, … ]`"),
            );
        }
    }
    let weights = walk_weights(ctx, table);
    let expect = walk_expect(ctx, table, span, &name);
    let mut expect_budgets = Vec::new();
    if let Some(inner) = ctx.table(table, "expect_budgets") {
        for (budget, item) in inner.iter() {
            let eloc = ctx.key_loc(inner, budget);
            match item
                .as_value()
                .and_then(decimal_text)
                .and_then(|t| Nanos::parse(&t))
            {
                Some(amount) => expect_budgets.push((budget.to_string(), amount, eloc)),
                None => ctx.push(
                    &eloc,
                    format!("`expect_budgets.{budget}` must be an amount, e.g. \"12.50\""),
                ),
            }
        }
    }
    Some(RawCase {
        name,
        loc,
        facts,
        weights,
        expect,
        expect_budgets,
    })
}

/// `weights = { pool = { service = 10 } }`: the usage weights a case feeds its pools.
fn walk_weights(ctx: &mut FileCtx<'_>, table: &dyn TableLike) -> Vec<RawWeights> {
    let mut weights = Vec::new();
    if let Some(inner) = ctx.table(table, "weights") {
        for (pool, item) in inner.iter() {
            let ploc = ctx.key_loc(inner, pool);
            let Some(members) = item.as_table_like() else {
                ctx.push(
                    &ploc,
                    format!("`weights.{pool}` must be a table of service = weight"),
                );
                continue;
            };
            let mut rows = Vec::new();
            for (service, w) in members.iter() {
                let wloc = ctx.key_loc(members, service);
                match w.as_value().and_then(decimal_text) {
                    Some(text) => rows.push((service.to_string(), text, wloc)),
                    None => ctx.push(
                        &wloc,
                        format!("`weights.{pool}.{service}` must be a number"),
                    ),
                }
            }
            weights.push((pool.to_string(), ploc, rows));
        }
    }
    weights
}

/// `expect = { service = "12.50" }`: the amounts a case expects.
fn walk_expect(
    ctx: &mut FileCtx<'_>,
    table: &dyn TableLike,
    span: Option<Range<usize>>,
    name: &str,
) -> Vec<(String, Nanos, Loc)> {
    let mut expect = Vec::new();
    match ctx.table(table, "expect") {
        Some(inner) => {
            for (service, item) in inner.iter() {
                let eloc = ctx.key_loc(inner, service);
                match item
                    .as_value()
                    .and_then(decimal_text)
                    .and_then(|t| Nanos::parse(&t))
                {
                    Some(amount) => expect.push((service.to_string(), amount, eloc)),
                    None => ctx.push(
                        &eloc,
                        format!("`expect.{service}` must be an amount, e.g. \"12.50\""),
                    ),
                }
            }
        }
        None => ctx.error(
            span,
            format!("[[test]] `{name}` needs `expect = {{ service = \"amount\", … }}`"),
        ),
    }
    expect
}

fn walk_fact(
    ctx: &mut FileCtx<'_>,
    t: &dyn TableLike,
    day: NaiveDate,
    loc: &Loc,
) -> Option<RawFact> {
    ctx.check_keys(t, &FACT_KEYS, "a test fact");
    let text = |ctx: &mut FileCtx<'_>, key: &str, default: &str| {
        ctx.string(t, key)
            .map(|(s, _)| s)
            .unwrap_or_else(|| default.to_string())
    };
    let cost = match t.get("cost").and_then(|i| i.as_value()) {
        Some(v) => match decimal_text(v).and_then(|text| Nanos::parse(&text)) {
            Some(cost) => cost,
            None => {
                ctx.error(v.span(), "`cost` must be an amount, e.g. \"12.50\"");
                return None;
            }
        },
        None => {
            ctx.push(loc, "a test fact needs a `cost`, e.g. cost = \"12.50\"");
            return None;
        }
    };
    let mut tags = Tags::new();
    if let Some(inner) = ctx.table(t, "tags") {
        for (key, item) in inner.iter() {
            match item.as_str() {
                Some(value) => {
                    tags.insert(key.to_string(), value.to_string());
                }
                None => ctx.error(item.span(), format!("tag `{key}` must be a string")),
            }
        }
    }
    let fact = Fact {
        day,
        billing_period: day.format("%Y-%m").to_string().into(),
        billing_account: text(ctx, "billing_account", "test").into(),
        sub_account: text(ctx, "sub_account", "test").into(),
        provider: "test".into(),
        provider_service: text(ctx, "provider_service", "").into(),
        resource_id: text(ctx, "resource_id", "").into(),
        charge_category: text(ctx, "charge_category", "Usage").into(),
        tags: tags.into(),
        currency: text(ctx, "currency", "USD").into(),
        effective: cost,
        billed: cost,
        list: cost,
        contracted: cost,
        line_count: 1,
        estimated: false,
    };
    Some(RawFact { fact })
}

/// Checks the cases' service and pool names against the rules.
pub(super) fn build_cases(
    raw: Vec<RawCase>,
    resolve: &dyn Fn(&str) -> Result<String, String>,
    usage_pools: &[&str],
    budgets: &[&str],
    diags: &mut Vec<super::diagnostic::Diagnostic>,
) -> Vec<TestCase> {
    let mut out = Vec::new();
    for case in raw {
        let mut ok = true;
        let mut error = |loc: &Loc, message: String| {
            diags.push(super::diagnostic::Diagnostic::error(
                &loc.file,
                loc.pos(),
                message,
            ));
        };
        let mut weights: BTreeMap<String, Vec<(String, u128)>> = BTreeMap::new();
        for (pool, ploc, rows) in case.weights {
            if !usage_pools.contains(&pool.as_str()) {
                error(
                    &ploc,
                    format!("`weights.{pool}`: no pool `{pool}` with method = \"usage\""),
                );
                ok = false;
                continue;
            }
            for (service, text, wloc) in rows {
                let weight = super::weights::parse_weight(&text);
                match (resolve(&service), weight) {
                    (Ok(name), Some(w)) => weights.entry(pool.clone()).or_default().push((name, w)),
                    (Err(message), _) => {
                        error(&wloc, format!("`weights.{pool}`: {message}"));
                        ok = false;
                    }
                    (_, None) => {
                        error(
                            &wloc,
                            format!("`weights.{pool}.{service}` must be a non-negative number"),
                        );
                        ok = false;
                    }
                }
            }
        }
        let mut expect = BTreeMap::new();
        for (service, amount, eloc) in case.expect {
            let name = if service == UNALLOCATED {
                Ok(service)
            } else {
                resolve(&service)
            };
            match name {
                Ok(name) => {
                    expect.insert(name, amount);
                }
                Err(message) => {
                    error(&eloc, format!("`expect`: {message}"));
                    ok = false;
                }
            }
        }
        let mut expect_budgets = BTreeMap::new();
        for (budget, amount, eloc) in case.expect_budgets {
            if budgets.contains(&budget.as_str()) {
                expect_budgets.insert(budget, amount);
            } else {
                error(
                    &eloc,
                    format!(
                        "`expect_budgets`: no [[budget]] named `{budget}`; the budgets are: {}",
                        if budgets.is_empty() {
                            "(none)".to_string()
                        } else {
                            budgets.join(", ")
                        }
                    ),
                );
                ok = false;
            }
        }
        if ok {
            out.push(TestCase {
                name: case.name,
                location: case.loc.short(),
                facts: case.facts.into_iter().map(|(f, _)| f.fact).collect(),
                weights,
                expect,
                expect_budgets,
            });
        }
    }
    out
}
