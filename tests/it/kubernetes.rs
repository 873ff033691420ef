//! Kubernetes clusters split per service from CUR 2.0 split cost allocation data: AWS's worked
//! example (one m5.xlarge, two namespaces, four pods, $1 an hour) to the cent, the parent
//! instance counted once, the idle policies, and a generated month that reconciles on both
//! stores.

use std::collections::BTreeMap;

use costsplit::allocate::{allocate, Input, UsageWeights};
use costsplit::ingest;
use costsplit::jobs;
use costsplit::model::{split_tags, Allocation, CostBasis, Fact};

use crate::support::{costsplit, data, day, picos, rules, Kind, TestStore, NOW};

const SERVICES: &str = r#"
[[service]]
name = "alpha"
team = "shop"

[[service]]
name = "beta"
team = "shop"

[[service]]
name = "platform"
team = "platform"
"#;

/// The cluster rule of the worked example with one idle policy (TOML lines).
fn cluster(idle: &str) -> String {
    format!(
        r#"
[[cluster]]
name = "example"
by = "namespace"
map = {{ "namespace1" = "alpha", "namespace2" = "beta" }}
{idle}
"#
    )
}

fn allocations(facts: &[Fact], idle: &str) -> Vec<Allocation> {
    let rules = rules(&[
        ("services.toml", SERVICES),
        ("cluster.toml", &cluster(idle)),
    ]);
    allocate(&Input {
        facts,
        rules: &rules,
        usage: &UsageWeights::default(),
        basis: CostBasis::Effective,
    })
    .expect("allocates")
}

/// Per service: the whole month's amount in cents (rounded half up, as AWS prints them).
fn cents(allocations: &[Allocation]) -> BTreeMap<String, i128> {
    let mut nanos: BTreeMap<String, i128> = BTreeMap::new();
    for a in allocations {
        *nanos.entry(a.service.clone()).or_default() += a.amount.0;
    }
    nanos
        .into_iter()
        .map(|(s, n)| (s, (n + 5_000_000).div_euclid(10_000_000)))
        .filter(|(_, c)| *c != 0)
        .collect()
}

fn expect(pairs: &[(&str, i128)]) -> BTreeMap<String, i128> {
    pairs.iter().map(|(s, c)| (s.to_string(), *c)).collect()
}

#[test]
fn aws_worked_example_splits_the_instance_once_to_the_cent() {
    let imported =
        ingest::read_files(&[data("kubernetes/aws-example.csv")]).expect("the example imports");
    let facts = &imported.facts;
    assert_eq!(
        imported.line_items, 9,
        "the instance hour and 4 pods x 2 rows"
    );
    assert_eq!(imported.split.instance_days, 1);
    assert_eq!(imported.split.workload_rows, 8);
    assert_eq!(imported.split.orphan_rows, 0);
    // The parent instance is counted once: the facts still sum to its $1.00 exactly.
    let total: i128 = facts.iter().map(|f| f.effective.0).sum();
    assert_eq!(total, 1_000_000_000);
    let billed: i128 = facts.iter().map(|f| f.billed.0).sum();
    assert_eq!(billed, 1_000_000_000);
    // Workloads at their grain (cluster/namespace/workload), the node tag dropped.
    let pod1 = facts
        .iter()
        .find(|f| f.resource_id == "eks/example/namespace1/pod1")
        .expect("pod1's workload fact");
    assert_eq!(
        pod1.tags.get(split_tags::SPLIT).map(String::as_str),
        Some("workload")
    );
    assert_eq!(
        pod1.tags.get(split_tags::NAMESPACE).map(String::as_str),
        Some("namespace1")
    );
    assert!(!pod1.tags.keys().any(|k| k.contains("node")));
    let idle = facts
        .iter()
        .find(|f| f.resource_id == "i-0example")
        .expect("the instance's idle");
    assert_eq!(
        idle.tags.get(split_tags::SPLIT).map(String::as_str),
        Some("idle")
    );
    assert_eq!(
        idle.tags.get(split_tags::CLUSTER).map(String::as_str),
        Some("example")
    );
    // 3 GB of 16 unused, at $1/52 per GB-hour.
    assert_eq!(idle.effective.0, 57_692_308);

    // AWS's split: namespace1 (pods 1 and 3) $0.43, namespace2 (pods 2 and 4) $0.51, and
    // the unused memory $0.06, here charged centrally to the platform team.
    let central = allocations(facts, "idle = \"central\"\nowner = \"platform\"");
    assert_eq!(
        cents(&central),
        expect(&[("alpha", 43), ("beta", 51), ("platform", 6)])
    );
    // AWS hands the unused capacity to the pods by their split ratios: $0.46 and $0.54.
    // Sharing the idle in proportion to each service's split gives the same cents.
    let requests = allocations(facts, "idle = \"requests\"");
    assert_eq!(cents(&requests), expect(&[("alpha", 46), ("beta", 54)]));
    let equal = allocations(facts, "idle = \"equal\"");
    assert_eq!(cents(&equal), expect(&[("alpha", 46), ("beta", 54)]));
    // No policy: the idle stays visible, unallocated under the cluster's idle pool.
    let none = allocations(facts, "");
    assert_eq!(
        cents(&none),
        expect(&[("alpha", 43), ("beta", 51), ("unallocated", 6)])
    );
    let idle_row = none
        .iter()
        .find(|a| a.pool == "example idle")
        .expect("the idle pool's row");
    assert_eq!(idle_row.service, "unallocated");
    for allocations in [&central, &requests, &equal, &none] {
        let sum: i128 = allocations.iter().map(|a| a.amount.0).sum();
        assert_eq!(sum, 1_000_000_000, "conserved to the nano-unit");
    }
    let pod_row = central
        .iter()
        .find(|a| a.service == "alpha" && a.method.as_str() == "split")
        .expect("alpha's row");
    assert_eq!(pod_row.pool, "example");
    assert_eq!(pod_row.basis, "namespace namespace1");
    // Of alpha's $0.43, what pods 1 and 3 requested but did not use (0.9 and 0.5 vCPU, 1 GB):
    // $0.24, a row of its own; beta's pods used more than they requested.
    let requested: BTreeMap<String, i128> = cents(
        &central
            .iter()
            .filter(|a| a.method.as_str() == "requested")
            .cloned()
            .collect::<Vec<_>>(),
    );
    assert_eq!(requested, expect(&[("alpha", 24)]));
    let row = central
        .iter()
        .find(|a| a.method.as_str() == "requested")
        .expect("the requested row");
    assert_eq!(row.basis, "namespace namespace1: requested above usage");
    focus_elements_per_dimension(facts);
}

/// The FOCUS export of the worked example: each origin charge (a workload's part of the
/// instance, or its idle) has allocated charges with one element per resource dimension, and
/// all the elements of an origin charge sum to exactly 1.
fn focus_elements_per_dimension(facts: &[Fact]) {
    let rules = rules(&[
        ("services.toml", SERVICES),
        ("cluster.toml", &cluster("idle = \"requests\"")),
    ]);
    let input = Input {
        facts,
        rules: &rules,
        usage: &UsageWeights::default(),
        basis: CostBasis::Effective,
    };
    let splits = costsplit::allocate::split_charges(&input).expect("splits");
    let csv = costsplit::report::focus::focus_csv(&splits, &Default::default(), "h", true);
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let header = reader.headers().expect("header").clone();
    let column = |name: &str| header.iter().position(|h| h == name).expect(name);
    let (resource, tags, pool, details, cost) = (
        column("ResourceId"),
        column("Tags"),
        column("x_CostsplitPool"),
        column("AllocatedMethodDetails"),
        column("EffectiveCost"),
    );
    // origin (resource, tags, pool) -> (sum of its ratios in ppb, units seen, rows)
    type Origins = BTreeMap<(String, String, String), (i64, Vec<String>, usize)>;
    let mut origins = Origins::new();
    let mut total = 0i128;
    for row in reader.records() {
        let row = row.expect("a row");
        total += picos(&row[cost]);
        if row[pool].is_empty() {
            continue;
        }
        let origin = origins
            .entry((row[resource].into(), row[tags].into(), row[pool].into()))
            .or_default();
        origin.2 += 1;
        let json: serde_json::Value = serde_json::from_str(&row[details]).expect("JSON");
        for element in json["Elements"].as_array().expect("elements") {
            let ratio = element["AllocatedRatio"].to_string();
            origin.0 += i64::try_from(picos(&ratio) / 1_000).expect("ppb");
            origin
                .1
                .push(element["UsageUnit"].as_str().unwrap_or("").to_string());
        }
        assert!(
            !row[tags].contains(split_tags::DIMENSION),
            "an origin charge is of every dimension"
        );
    }
    assert_eq!(total, 1_000_000_000_000, "the instance's $1.00");
    for ((resource, _, pool), (ratio, units, _)) in &origins {
        assert_eq!(*ratio, 1_000_000_000, "{resource} {pool}: ratios sum to 1");
        assert!(units.iter().all(|u| !u.is_empty()), "{units:?}");
    }
    let pod1 = origins
        .iter()
        .find(|((r, t, _), _)| r == "eks/example/namespace1/pod1" && !t.contains("requests"))
        .expect("pod1's charge");
    assert_eq!(pod1.1 .1, vec!["CPU".to_string(), "Memory".to_string()]);
    let idle = origins
        .iter()
        .find(|((r, _, _), _)| r == "i-0example")
        .expect("the idle charge");
    assert_eq!(idle.1 .2, 2, "the idle split between alpha and beta");
    assert!(
        idle.1 .1.iter().all(|u| u == "Memory"),
        "only memory was idle"
    );
}

#[test]
fn a_namespace_without_a_map_entry_is_unallocated_under_its_cluster() {
    let imported =
        ingest::read_files(&[data("kubernetes/aws-example.csv")]).expect("the example imports");
    let rules = rules(&[
        ("services.toml", SERVICES),
        (
            "cluster.toml",
            r#"
[[cluster]]
name = "example"
map = { "namespace1" = "alpha" }
idle = "central"
owner = "platform"
"#,
        ),
    ]);
    let allocations = allocate(&Input {
        facts: &imported.facts,
        rules: &rules,
        usage: &UsageWeights::default(),
        basis: CostBasis::Effective,
    })
    .expect("allocates");
    let unmapped = allocations
        .iter()
        .find(|a| a.service == "unallocated")
        .expect("namespace2 is unallocated");
    assert_eq!(unmapped.pool, "example");
    assert_eq!(
        unmapped.basis,
        "namespace namespace2 of cluster example names no service"
    );
    assert_eq!(
        cents(&allocations),
        expect(&[("alpha", 43), ("platform", 6), ("unallocated", 51)])
    );
}

/// What a generated export says, computed from its CSV text with exact decimals (picos):
/// per day, the amortized total; per cluster, its instances' amortized cost.
#[derive(Default)]
struct Expected {
    by_day: BTreeMap<String, i128>,
    instances: BTreeMap<String, i128>,
    lines: i64,
}

fn expected_from_csv(path: &std::path::Path) -> Expected {
    let mut reader = csv::Reader::from_path(path).expect("csv");
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (c_day, c_type, c_res, c_unblended, c_sp, c_ri) = (
        col("line_item_usage_start_date"),
        col("line_item_line_item_type"),
        col("line_item_resource_id"),
        col("line_item_unblended_cost"),
        col("savings_plan_savings_plan_effective_cost"),
        col("reservation_effective_cost"),
    );
    let mut e = Expected::default();
    for record in reader.records() {
        let r = record.expect("row");
        e.lines += 1;
        let amortized = match &r[c_type] {
            "SavingsPlanCoveredUsage" => picos(&r[c_sp]),
            "DiscountedUsage" => picos(&r[c_ri]),
            "SavingsPlanNegation" => 0,
            _ => picos(&r[c_unblended]),
        };
        *e.by_day.entry(r[c_day][..10].to_string()).or_default() += amortized;
        for cluster in ["prod", "batch", "staging"] {
            if r[c_res].starts_with(&format!("i-0{cluster}")) {
                *e.instances.entry(cluster.to_string()).or_default() += amortized;
            }
        }
    }
    e
}

fn generated_rules(dir: &std::path::Path, services: &[String]) -> costsplit::rules::Rules {
    let mut toml = String::from("[[service]]\nname = \"platform\"\nteam = \"platform\"\n");
    for s in services {
        toml.push_str(&format!(
            "[[service]]\nname = \"{s}\"\nteam = \"team-{s}\"\n"
        ));
    }
    toml.push_str(
        r#"
[[cluster]]
name = "eks-prod"
cluster = "prod"
by = "namespace"
idle = "central"
owner = "platform"

[[cluster]]
name = "eks-batch"
cluster = "batch"
by = "label:app"
map = { "checkout-*" = "checkout", "payments-*" = "payments", "search-*" = "search", "orders-*" = "orders" }
idle = "requests"

[[cluster]]
name = "eks-staging"
cluster = "staging"
by = "workload"
idle = "equal"

[[pool]]
name = "cluster-overhead"
method = "equal"
members = ["platform"]
match = { tags = { cluster = "prod" } }
"#,
    );
    let rules_dir = dir.join("rules");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("gen.toml"), toml).expect("write rules");
    costsplit::rules::load_or_error(&rules_dir).expect("rules validate")
}

#[tokio::test]
async fn a_generated_month_with_split_cost_data_reconciles_on_both_stores_in_both_formats() {
    use costsplit::demo::split_cost::{SplitMonth, SplitSpec};
    let dir = tempfile::tempdir().expect("tempdir");
    let services: Vec<String> = ["checkout", "payments", "search", "orders"]
        .map(String::from)
        .to_vec();
    let month = SplitMonth::new(SplitSpec {
        rows: 40_000,
        seed: 7,
        month: day("2026-04-01"),
        services: services.clone(),
    });
    let csv = dir.path().join("split.csv.gz");
    let plain = dir.path().join("split.csv");
    let parquet = dir.path().join("split.parquet");
    let lines = month.write_csv(&plain).expect("csv");
    assert_eq!(month.write_csv(&csv).expect("gzip csv"), lines);
    assert_eq!(month.write_parquet(&parquet).expect("parquet"), lines);
    let expected = expected_from_csv(&plain);
    assert_eq!(expected.lines, lines as i64);
    let rules = generated_rules(dir.path(), &services);

    let mut per_service: Vec<BTreeMap<String, i128>> = Vec::new();
    for (kind, file) in [
        (Kind::Sqlite, &plain),
        (Kind::Postgres, &plain),
        (Kind::Sqlite, &csv),
        (Kind::Sqlite, &parquet),
    ] {
        let t = TestStore::new(kind).await;
        let imported = jobs::import_files(&t.store, std::slice::from_ref(file), NOW)
            .await
            .expect("import");
        assert_eq!(imported.line_items, lines as i64, "{kind:?} {file:?}");
        let days: Vec<&String> = expected.by_day.keys().collect();
        let range = (day(days[0]), day(days[days.len() - 1]));
        let facts = t.store.facts(range.0, range.1).await.expect("facts");
        // The parent instances are counted once: each day's facts are the day's line items
        // (amortized), rounded once, to the nano-unit.
        let mut by_day: BTreeMap<String, i128> = BTreeMap::new();
        for f in &facts {
            *by_day.entry(f.day.to_string()).or_default() += f.effective.0;
        }
        for (d, picos) in &expected.by_day {
            let want = (picos + 500).div_euclid(1000);
            assert!(
                (by_day[d] - want).abs() <= 1,
                "{kind:?} {file:?} {d}: facts {} vs lines {want}",
                by_day[d]
            );
        }
        // Each cluster's workloads plus its idle are its instances' cost (the facts are
        // rounded one by one, so within a nano-unit per fact).
        for (cluster, picos) in &expected.instances {
            let of_cluster: Vec<&Fact> = facts
                .iter()
                .filter(|f| f.tags.get(split_tags::CLUSTER) == Some(cluster))
                .collect();
            let sum: i128 = of_cluster.iter().map(|f| f.effective.0).sum();
            let want = picos / 1000;
            assert!(
                (sum - want).abs() <= of_cluster.len() as i128,
                "{kind:?} {file:?} cluster {cluster}: {sum} vs {want}"
            );
            let idle: i128 = of_cluster
                .iter()
                .filter(|f| f.tags.get(split_tags::SPLIT).map(String::as_str) == Some("idle"))
                .map(|f| f.effective.0)
                .sum();
            assert!(idle > 0 && idle < sum, "{cluster}: idle {idle} of {sum}");
        }
        // Pod ids churn daily; facts stay at the workload grain.
        let workloads: std::collections::BTreeSet<&str> = facts
            .iter()
            .filter(|f| f.resource_id.starts_with("eks/"))
            .map(|f| f.resource_id.as_str())
            .collect();
        assert!(workloads.len() <= 3 * services.len() + 6, "{workloads:?}");

        let summary = jobs::allocate_range(&t.store, &rules, CostBasis::Effective, range, NOW)
            .await
            .expect("allocate");
        assert_eq!(summary.allocated, summary.billed);
        let report = jobs::report(&t.store, range, None).await.expect("report");
        assert!(report.reconciled());
        let totals: BTreeMap<String, i128> = report
            .services
            .iter()
            .map(|s| (s.service.clone(), s.total().0))
            .collect();
        // kube-system in prod has no service: unallocated, under eks-prod.
        assert!(
            totals.get("unallocated").is_some_and(|n| *n > 0),
            "{totals:?}"
        );
        for s in &services {
            assert!(totals.get(s).is_some_and(|n| *n > 0), "{s}: {totals:?}");
        }
        per_service.push(totals);
        // The digest tells each team what its pods requested but did not use.
        let digests = jobs::reports::team_digests(
            &t.store,
            &rules,
            costsplit::report::digest::Period::Month,
            day("2026-05-04"),
            Some("team-checkout"),
        )
        .await
        .expect("digests");
        let line = &digests[0].services[0];
        assert_eq!(line.service, "checkout");
        assert!(
            line.requested_unused.0 > 0 && line.requested_unused < line.total,
            "{line:?}"
        );
        let text = costsplit::report::digest::plain_text(&digests[0]).join("\n");
        assert!(text.contains("requests above usage $"), "{text}");
        // The cluster's pools with their method and ratio, on the team's line and on the
        // owner's, who pays the idle capacity centrally.
        assert!(text.contains("eks-prod (split: "), "{text}");
        let platform = jobs::reports::team_digests(
            &t.store,
            &rules,
            costsplit::report::digest::Period::Month,
            day("2026-05-04"),
            Some("platform"),
        )
        .await
        .expect("digests");
        let text = costsplit::report::digest::plain_text(&platform[0]).join("\n");
        assert!(text.contains("eks-prod idle (central: 100"), "{text}");
    }
    // The same money per service whichever store and format it came through.
    for other in &per_service[1..] {
        assert_eq!(other, &per_service[0]);
    }
}

#[test]
fn the_idle_policies_are_rules_test_cases_and_a_switch_shows_in_the_dry_run() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let example = crate::support::repo_rules()
        .parent()
        .expect("the repository")
        .join("examples/kubernetes/rules");
    let tested = costsplit(d).run(&["rules", "test", example.to_str().expect("utf-8")]);
    let out = String::from_utf8_lossy(&tested.stdout).to_string()
        + &String::from_utf8_lossy(&tested.stderr);
    assert!(tested.status.success(), "{out}");
    assert!(
        out.contains("4 passed") || out.matches("ok").count() >= 4,
        "{out}"
    );

    // The worked example charged centrally, then a dry run of the same month with the
    // idle capacity shared by requests shows who gains and who loses.
    let store = format!("sqlite://{}", d.join("k.db").display());
    let write_rules = |name: &str, idle: &str| {
        let rules = d.join(name);
        std::fs::create_dir_all(&rules).expect("mkdir");
        std::fs::write(rules.join("services.toml"), SERVICES).expect("write");
        std::fs::write(rules.join("cluster.toml"), cluster(idle)).expect("write");
        rules
    };
    let central = write_rules("central", "idle = \"central\"\nowner = \"platform\"");
    let requests = write_rules("requests", "idle = \"requests\"");
    let example_csv = data("kubernetes/aws-example.csv");
    let ok = |out: std::process::Output| {
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{text}");
        text
    };
    ok(costsplit(d)
        .store(&store)
        .run(&["import", example_csv.to_str().expect("utf-8")]));
    ok(costsplit(d)
        .store(&store)
        .rules(&central)
        .run(&["allocate", "--month", "2026-04"]));
    let dry = ok(costsplit(d).store(&store).rules(&requests).run(&[
        "allocate",
        "--month",
        "2026-04",
        "--dry-run",
    ]));
    assert!(dry.contains("platform") && dry.contains("alpha"), "{dry}");
}

#[test]
fn the_bundled_small_month_counts_each_instance_once() {
    // tests/data/kubernetes/split-month.csv.gz: `costsplit generate --split-cost --rows 3000
    // --seed 42 --services 3` (one day of three clusters).
    let file = data("kubernetes/split-month.csv.gz");
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = dir.path().join("split-month.csv");
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(&file).expect("open")),
        &mut text,
    )
    .expect("gunzip");
    std::fs::write(&plain, text).expect("write");
    let expected = expected_from_csv(&plain);
    let imported = ingest::read_files(&[file]).expect("imports");
    assert_eq!(imported.line_items, expected.lines);
    assert_eq!(imported.split.orphan_rows, 0);
    assert!(imported.split.instance_days > 0);
    let total: i128 = imported.facts.iter().map(|f| f.effective.0).sum();
    let want: i128 = expected.by_day.values().sum::<i128>();
    assert_eq!(total, (want + 500).div_euclid(1000), "to the nano-unit");
}
