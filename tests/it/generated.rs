//! A generated month (100k line items, shared pools with per-resource usage weights, credits,
//! refunds, tax and untagged rows) end to end, checked against totals this test computes
//! itself from the CSV text with exact decimals.

use std::collections::{BTreeMap, HashMap};

use costsplit::demo::generate::{GenSpec, World};
use costsplit::jobs;
use costsplit::model::CostBasis;

use crate::support::{day, picos, Kind, TestStore, BOTH, NOW};

/// What the CSV says, computed without costsplit's importer or allocator.
#[derive(Default)]
struct Expected {
    total: i128,
    direct: BTreeMap<String, i128>,
    unallocated: i128,
    /// (day, resource) -> amount, for the shared resources.
    shared: BTreeMap<(String, String), i128>,
    tax_by_day: BTreeMap<String, i128>,
    credits: i128,
}

fn expected_from_csv(path: &std::path::Path, shared_ids: &[String]) -> Expected {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (c_cost, c_day, c_res, c_cat, c_tags) = (
        col("EffectiveCost"),
        col("ChargePeriodStart"),
        col("ResourceId"),
        col("ChargeCategory"),
        col("Tags"),
    );
    let mut e = Expected::default();
    for record in reader.records() {
        let r = record.expect("row");
        // The test's own decimal parser, not the importer's; the generator writes 9 decimals,
        // so picos are whole nano-units.
        let picos = picos(&r[c_cost]);
        assert_eq!(picos % 1000, 0, "a generated cost has 9 decimals");
        let amount = picos / 1000;
        let day = r[c_day][..10].to_string();
        e.total += amount;
        if &r[c_cat] == "Credit" {
            e.credits += amount;
        }
        if &r[c_cat] == "Tax" {
            *e.tax_by_day.entry(day).or_default() += amount;
            continue;
        }
        if shared_ids.iter().any(|s| s == &r[c_res]) {
            *e.shared.entry((day, r[c_res].to_string())).or_default() += amount;
            continue;
        }
        let tags: HashMap<String, String> = if r[c_tags].is_empty() {
            HashMap::new()
        } else {
            serde_json::from_str(&r[c_tags]).expect("tags")
        };
        match tags.get("service").map(|s| s.trim().to_lowercase()) {
            Some(service) if !service.is_empty() => *e.direct.entry(service).or_default() += amount,
            _ => e.unallocated += amount,
        }
    }
    e
}

async fn a_generated_month_allocates_exactly(
    kind: Kind,
    dir: &std::path::Path,
    csv: &std::path::Path,
    world: &World,
    services: &[String],
) {
    let mut toml = String::from("[settings]\nservice_tag_keys = [\"service\"]\n");
    for s in services {
        toml.push_str(&format!(
            "[[service]]\nname = \"{s}\"\nteam = \"team-{}\"\n",
            &s[..1]
        ));
    }
    toml.push_str(
        "[[pool]]\nname = \"shared-data\"\nmethod = \"usage\"\nusage = { file = \"weights.csv\" }\nmatch = { tags = { shared = \"true\" } }\n\
         [[pool]]\nname = \"tax\"\nmethod = \"equal\"\npriority = 5\nmembers = [\"checkout-api\", \"payments-api\", \"search-api\"]\nmatch = { charge_category = \"Tax\" }\n",
    );
    let rules_dir = dir.join(format!("rules-{kind:?}"));
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("gen.toml"), toml).expect("write rules");
    world
        .write_weights(&rules_dir.join("weights.csv"))
        .expect("weights");
    let rules = costsplit::rules::load_or_error(&rules_dir).expect("rules validate");

    let t = TestStore::new(kind).await;
    let imported = jobs::import_files(&t.store, &[csv.to_path_buf()], NOW)
        .await
        .expect("import");
    assert_eq!(imported.line_items, 100_000);
    let range = (day("2025-03-01"), day("2025-03-31"));
    let summary = jobs::allocate_range(&t.store, &rules, CostBasis::Effective, range, NOW)
        .await
        .expect("allocate");
    assert_eq!(summary.allocated, summary.billed);

    let expected = expected_from_csv(csv, &world.shared_resource_ids());
    assert!(
        expected.credits < 0 && !expected.tax_by_day.is_empty() && expected.unallocated != 0,
        "the month has credits, tax and untagged cost"
    );
    let report = jobs::report(&t.store, range, None).await.expect("report");
    assert!(report.reconciled());
    assert_eq!(
        report.billed["USD"].0, expected.total,
        "{kind:?}: billed total to the nano"
    );

    let by_service: BTreeMap<&str, &costsplit::store::ServiceTotal> = report
        .services
        .iter()
        .map(|s| (s.service.as_str(), s))
        .collect();
    assert_eq!(
        by_service["unallocated"].total().0,
        expected.unallocated,
        "{kind:?}: untagged cost is unallocated"
    );
    for (service, amount) in &expected.direct {
        assert_eq!(
            by_service[service.as_str()].direct.0,
            *amount,
            "{kind:?}: direct cost of {service}"
        );
    }

    // Shared: each (day, resource) split by that resource's weights, exactly as a rational;
    // the store's integers may differ from it by less than one nano per split.
    let weights = read_weights(&rules_dir.join("weights.csv"));
    let mut shared_expected: BTreeMap<String, f64> = BTreeMap::new();
    let mut splits = 0usize;
    for ((day, resource), amount) in &expected.shared {
        let w = &weights[resource];
        let sum: f64 = w.values().sum();
        for (service, weight) in w {
            *shared_expected.entry(service.clone()).or_default() += *amount as f64 * weight / sum;
        }
        splits += 1;
        let _ = day;
    }
    for (day, amount) in &expected.tax_by_day {
        for service in ["checkout-api", "payments-api", "search-api"] {
            *shared_expected.entry(service.to_string()).or_default() += *amount as f64 / 3.0;
        }
        splits += 1;
        let _ = day;
    }
    for (service, want) in &shared_expected {
        let got = by_service[service.as_str()].shared.0 as f64;
        assert!(
            (got - want).abs() <= splits as f64 + 1.0,
            "{kind:?}: shared cost of {service}: got {got}, want {want}"
        );
    }
}

fn read_weights(path: &std::path::Path) -> HashMap<String, BTreeMap<String, f64>> {
    let mut out: HashMap<String, BTreeMap<String, f64>> = HashMap::new();
    for r in csv::Reader::from_path(path).expect("weights").records() {
        let r = r.expect("row");
        *out.entry(r[0].to_string())
            .or_default()
            .entry(r[1].to_string())
            .or_default() += r[2].parse::<f64>().expect("weight");
    }
    out
}

#[tokio::test]
async fn a_generated_month_of_100k_rows_allocates_exactly_on_both_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = GenSpec::standard(100_000, 42);
    let services = spec.services.clone();
    let world = World::new(spec);
    let csv = dir.path().join("month.csv");
    world.write_csv(&csv).expect("generate");
    for kind in BOTH {
        a_generated_month_allocates_exactly(kind, dir.path(), &csv, &world, &services).await;
    }
}
