use chrono::NaiveDate;
use proptest::prelude::*;

use super::engine::*;
use super::*;
use crate::model::Tags;
use crate::model::{Allocation, CostBasis, Fact, UNALLOCATED};
use crate::money::Nanos;
use crate::rules::{load_texts, Rules};

fn rules(text: &str) -> Rules {
    let loaded = load_texts(&[("rules.toml", text)]);
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{errors:#?}");
    loaded.rules.expect("no errors")
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2025, 3, d).expect("valid day")
}

fn fact(d: u32, resource: &str, service: Option<&str>, dollars_nanos: i128) -> Fact {
    let mut tags = Tags::new();
    if let Some(s) = service {
        tags.insert("service".into(), s.into());
    }
    Fact {
        day: day(d),
        billing_period: "2025-03".into(),
        billing_account: "payer".into(),
        sub_account: "acct".into(),
        provider: "AWS".into(),
        provider_service: if resource.contains(":rds:") {
            "Amazon Relational Database Service".into()
        } else {
            "Amazon Elastic Compute Cloud".into()
        },
        resource_id: resource.into(),
        charge_category: "Usage".into(),
        tags: tags.into(),
        currency: "USD".into(),
        effective: Nanos(dollars_nanos),
        billed: Nanos(dollars_nanos),
        // Unlike the costs, so the FOCUS split of each is checked on its own.
        list: Nanos(dollars_nanos * 3 + 1),
        contracted: Nanos(dollars_nanos * 2 - 1),
        line_count: 1,
        estimated: false,
    }
}

const SERVICES: &str = r#"
[[service]]
name = "a"
team = "ta"
[[service]]
name = "b"
team = "tb"
[[service]]
name = "c"
"#;

fn run(rules: &Rules, facts: &[Fact]) -> Vec<Allocation> {
    let allocations = allocate(&Input {
        facts,
        rules,
        usage: &UsageWeights::default(),
        basis: CostBasis::Effective,
    })
    .expect("allocates");
    assert!(conservation_gaps(facts, &allocations, CostBasis::Effective).is_empty());
    allocations
}

fn amounts(allocations: &[Allocation]) -> Vec<(String, String, &'static str, i128)> {
    allocations
        .iter()
        .map(|a| {
            (
                a.service.clone(),
                a.pool.clone(),
                a.method.as_str(),
                a.amount.0,
            )
        })
        .collect()
}

#[test]
fn equal_split_of_an_odd_amount_sums_to_the_pool() {
    let rules = rules(&format!(
        "{SERVICES}\n[[pool]]\nname = \"db\"\nmethod = \"equal\"\nmembers = [\"a\", \"b\", \"c\"]\nmatch = {{ resource_id = \"arn:aws:rds:*\" }}\n"
    ));
    let facts = [
        fact(1, "arn:aws:rds:db1", None, 100),
        fact(1, "i-1", Some("a"), 7),
    ];
    assert_eq!(
        amounts(&run(&rules, &facts)),
        vec![
            ("a".into(), "".into(), "direct", 7),
            ("a".into(), "db".into(), "equal", 34),
            ("b".into(), "db".into(), "equal", 33),
            ("c".into(), "db".into(), "equal", 33),
        ]
    );
}

#[test]
fn fixed_and_proportional_and_unallocated() {
    let rules = rules(&format!(
        r#"{SERVICES}
[[pool]]
name = "kafka"
method = "fixed"
percent = {{ a = 70, b = 30 }}
match = {{ resource_id = "arn:aws:kafka:*" }}
[[pool]]
name = "db"
method = "proportional"
members = ["a", "b"]
match = {{ resource_id = "arn:aws:rds:*" }}
"#
    ));
    let facts = [
        fact(1, "arn:aws:kafka:k1", None, 1000),
        fact(1, "arn:aws:rds:db1", None, 90),
        fact(1, "i-1", Some("a"), 200),
        fact(1, "i-2", Some("b"), 100),
        fact(1, "i-3", None, 5),
    ];
    assert_eq!(
        amounts(&run(&rules, &facts)),
        vec![
            ("a".into(), "".into(), "direct", 200),
            ("a".into(), "db".into(), "proportional", 60),
            ("a".into(), "kafka".into(), "fixed", 700),
            ("b".into(), "".into(), "direct", 100),
            ("b".into(), "db".into(), "proportional", 30),
            ("b".into(), "kafka".into(), "fixed", 300),
            ("unallocated".into(), "".into(), "unallocated", 5),
        ]
    );
}

#[test]
fn usage_weights_fall_back_to_equal_when_a_day_has_none_and_record_it() {
    let rules = rules(&format!(
        r#"{SERVICES}
[[pool]]
name = "db"
method = "usage"
members = ["a", "b"]
usage = {{ weights = {{ a = 3, b = 0 }} }}
match = {{ resource_id = "arn:aws:rds:*" }}
[[pool]]
name = "cache"
method = "proportional"
fallback = "unallocated"
members = ["a", "b"]
match = {{ resource_id = "arn:aws:elasticache:*" }}
"#
    ));
    let facts = [
        fact(1, "arn:aws:rds:db1", None, 99),
        fact(1, "arn:aws:elasticache:c1", None, 10),
    ];
    let allocations = run(&rules, &facts);
    assert_eq!(
        amounts(&allocations),
        vec![
            ("a".into(), "db".into(), "usage", 99),
            ("unallocated".into(), "cache".into(), "unallocated", 10),
        ]
    );
    assert!(allocations[1].fallback_used);
    assert!(!allocations[0].fallback_used);
}

#[test]
fn a_line_two_pools_could_claim_goes_to_the_first_by_priority() {
    let rules = rules(&format!(
        r#"{SERVICES}
[[pool]]
name = "late"
priority = 20
method = "equal"
members = ["a"]
match = {{ provider_service = "Amazon Relational Database Service" }}
[[pool]]
name = "early"
priority = 10
method = "equal"
members = ["b"]
match = {{ resource_id = "arn:aws:rds:*" }}
"#
    ));
    let facts = [fact(1, "arn:aws:rds:db1", None, 50)];
    assert_eq!(
        amounts(&run(&rules, &facts)),
        vec![("b".into(), "early".into(), "equal", 50)]
    );
}

#[test]
fn mixed_currencies_in_one_pool_are_refused() {
    let rules = rules(&format!(
        "{SERVICES}\n[[pool]]\nname = \"db\"\nmethod = \"equal\"\nmembers = [\"a\"]\nmatch = {{ resource_id = \"arn:aws:rds:*\" }}\n"
    ));
    let mut eur = fact(1, "arn:aws:rds:db2", None, 5);
    eur.currency = "EUR".into();
    let facts = [fact(1, "arn:aws:rds:db1", None, 5), eur];
    let err = allocate(&Input {
        facts: &facts,
        rules: &rules,
        usage: &UsageWeights::default(),
        basis: CostBasis::Effective,
    })
    .expect_err("mixed currencies");
    assert!(err.to_string().contains("pool `db`"), "{err}");
}

const PROPTEST_RULES: &str = r#"
[settings]
service_tag_keys = ["service", "app"]
[[service]]
name = "a"
[[service]]
name = "b"
aliases = ["bee"]
[[service]]
name = "c"
[[pool]]
name = "db"
method = "usage"
fallback = "proportional"
members = ["a", "b", "c"]
usage = { weights = { a = 1.5, b = 0.25 } }
match = { resource_id = "arn:aws:rds:*" }
[[pool]]
name = "kafka"
method = "fixed"
percent = { a = 33.34, b = 33.33, c = 33.33 }
match = { resource_id = "arn:aws:kafka:*" }
[[pool]]
name = "cache"
method = "proportional"
members = ["b", "c"]
match = { resource_id = "arn:aws:elasticache:*" }
[[pool]]
name = "tax"
method = "equal"
members = ["a", "b", "c"]
match = { charge_category = "Tax" }
"#;

fn arb_fact() -> impl Strategy<Value = Fact> {
    (
        1u32..=3,
        prop::sample::select(vec![
            "arn:aws:rds:db1",
            "arn:aws:kafka:k1",
            "arn:aws:elasticache:c1",
            "i-1",
            "i-2",
            "",
        ]),
        prop::option::of(prop::sample::select(vec!["a", "B ", "bee", "c", "zzz", ""])),
        prop::sample::select(vec!["Usage", "Tax", "Credit"]),
        -2_000_000_000i128..10_000_000_000,
    )
        .prop_map(|(d, resource, service, category, amount)| {
            let mut f = fact(d, resource, service, amount);
            f.charge_category = category.into();
            f
        })
}

proptest! {
    #[test]
    fn random_facts_never_break_conservation_or_flip_signs(facts in prop::collection::vec(arb_fact(), 0..60)) {
        let rules = rules(PROPTEST_RULES);
        let allocations = run(&rules, &facts);
        // A pool whose line items that day are all non-negative gives nobody a negative share.
        for a in allocations.iter().filter(|a| !a.pool.is_empty()) {
            let all_positive = facts.iter().filter(|f| f.day == a.day).all(|f| f.effective.0 >= 0);
            if all_positive {
                prop_assert!(a.amount.0 >= 0, "negative share {a:?}");
            }
        }
        let unallocated: i128 = allocations.iter().filter(|a| a.service == UNALLOCATED).map(|a| a.amount.0).sum();
        let untagged_unpooled: i128 = facts
            .iter()
            .filter(|f| {
                let untagged = f.tags.get("service").is_none_or(|s| s.trim().is_empty());
                let pooled = f.resource_id.starts_with("arn:aws:") || f.charge_category == "Tax";
                untagged && !pooled
            })
            .map(|f| f.effective.0)
            .sum();
        prop_assert_eq!(unallocated, untagged_unpooled);
    }
}

/// One generated pool: its method, members (indices into `GEN_SERVICES`), weights or
/// percents, fallback, and which resources it matches.
#[derive(Debug, Clone)]
struct GenPool {
    method: u8,
    members: Vec<usize>,
    weights: Vec<u32>,
    fallback: u8,
    resource: u8,
    priority: i64,
}

const GEN_SERVICES: [&str; 5] = ["a", "b", "c", "d", "e"];
const GEN_RESOURCES: [&str; 3] = ["arn:aws:rds:", "arn:aws:kafka:", "arn:aws:elasticache:"];

fn arb_pool() -> impl Strategy<Value = GenPool> {
    (
        0u8..4,
        prop::sample::subsequence((0..GEN_SERVICES.len()).collect::<Vec<_>>(), 1..=5),
        prop::collection::vec(0u32..5, 5),
        0u8..3,
        0u8..3,
        0i64..3,
    )
        .prop_map(
            |(method, members, weights, fallback, resource, priority)| GenPool {
                method,
                members,
                weights,
                fallback,
                resource,
                priority,
            },
        )
}

/// The TOML of a generated rule set (every pool valid by construction).
fn gen_rules_text(pools: &[GenPool]) -> String {
    let mut text = String::new();
    for s in GEN_SERVICES {
        text.push_str(&format!("[[service]]\nname = \"{s}\"\n"));
    }
    for (i, p) in pools.iter().enumerate() {
        let members: Vec<&str> = p.members.iter().map(|&m| GEN_SERVICES[m]).collect();
        let fallback = ["equal", "proportional", "unallocated"][p.fallback as usize];
        text.push_str(&format!(
            "[[pool]]\nname = \"p{i}\"\npriority = {}\nmatch = {{ resource_id = \"{}*\" }}\n",
            p.priority, GEN_RESOURCES[p.resource as usize]
        ));
        match p.method {
            0 => text.push_str(&format!("method = \"equal\"\nmembers = {members:?}\n")),
            1 => {
                // Percents that add up to exactly 100: weights scaled, the rest to the first.
                let total: u32 = p.members.iter().map(|&m| p.weights[m] + 1).sum();
                let mut parts: Vec<u32> = p
                    .members
                    .iter()
                    .map(|&m| (p.weights[m] + 1) * 100 / total)
                    .collect();
                parts[0] += 100 - parts.iter().sum::<u32>();
                let table: Vec<String> = members
                    .iter()
                    .zip(&parts)
                    .map(|(m, p)| format!("{m} = {p}"))
                    .collect();
                text.push_str(&format!(
                    "method = \"fixed\"\npercent = {{ {} }}\n",
                    table.join(", ")
                ));
            }
            2 => text.push_str(&format!(
                "method = \"proportional\"\nmembers = {members:?}\nfallback = \"{fallback}\"\n"
            )),
            _ => {
                // Usage weights, zeros included: an all-zero day falls back.
                let table: Vec<String> = members
                    .iter()
                    .zip(&p.members)
                    .map(|(m, &i)| format!("{m} = {}", p.weights[i]))
                    .collect();
                text.push_str(&format!(
                    "method = \"usage\"\nmembers = {members:?}\nfallback = \"{fallback}\"\nusage = {{ weights = {{ {} }} }}\n",
                    table.join(", ")
                ));
            }
        }
    }
    text
}

fn arb_gen_fact() -> impl Strategy<Value = Fact> {
    (
        1u32..=3,
        prop::sample::select(vec![
            "arn:aws:rds:db1",
            "arn:aws:kafka:k1",
            "arn:aws:elasticache:c1",
            "i-1",
            "",
        ]),
        prop::option::of(prop::sample::select(vec!["a", "b", "c", "d", "e", "x"])),
        -3_000_000_000i128..10_000_000_000,
    )
        .prop_map(|(d, resource, service, amount)| fact(d, resource, service, amount))
}

proptest! {
    /// Generated rule sets (methods, members, weights with zeros, fallbacks, overlapping
    /// pools by priority) with random facts: every day adds up to the bill, a pool of
    /// non-negative line items gives nobody a negative share, and the result is the same
    /// on every run.
    #[test]
    fn generated_rules_and_facts_never_break_conservation(
        pools in prop::collection::vec(arb_pool(), 0..5),
        facts in prop::collection::vec(arb_gen_fact(), 0..50),
    ) {
        let text = gen_rules_text(&pools);
        let loaded = load_texts(&[("gen.toml", &text)]);
        let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
        prop_assert!(errors.is_empty(), "{errors:#?}\n{text}");
        let rules = loaded.rules.expect("no errors");
        let allocations = run(&rules, &facts);
        prop_assert!(conservation_gaps(&facts, &allocations, CostBasis::Effective).is_empty());
        let again = run(&rules, &facts);
        prop_assert_eq!(&allocations, &again);
        for a in allocations.iter().filter(|a| !a.pool.is_empty()) {
            let day_facts_non_negative = facts
                .iter()
                .filter(|f| f.day == a.day && !f.resource_id.is_empty() && !f.resource_id.starts_with("i-"))
                .all(|f| f.effective.0 >= 0);
            if day_facts_non_negative {
                prop_assert!(a.amount.0 >= 0, "negative share {a:?}\n{text}");
            }
        }
        // The FOCUS split of the same input adds up, per fact, to the fact.
        let usage = UsageWeights::default();
        let splits = split_charges(&Input {
            facts: &facts,
            rules: &rules,
            usage: &usage,
            basis: CostBasis::Effective,
        })
        .expect("split");
        for s in &splits {
            let sum: Nanos = s.parts.iter().map(|p| p.amount).sum();
            prop_assert_eq!(sum, s.fact.effective);
            let other: Nanos = s.parts.iter().map(|p| p.other_amount).sum();
            prop_assert_eq!(other, s.fact.billed);
            let list: Nanos = s.parts.iter().map(|p| p.list).sum();
            prop_assert_eq!(list, s.fact.list);
            let contracted: Nanos = s.parts.iter().map(|p| p.contracted).sum();
            prop_assert_eq!(contracted, s.fact.contracted);
            if s.pool.is_some() && s.fact.effective.0 != 0 {
                let ratios: i64 = s.parts.iter().map(|p| p.ratio_ppb).sum();
                prop_assert_eq!(ratios, 1_000_000_000);
            }
        }
    }
}
