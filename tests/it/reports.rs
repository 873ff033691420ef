//! The three reporting surfaces as their users meet them: finance's statement CSV (golden
//! files, quoting, formula neutralising, reconciliation to the cent with credits and
//! refunds, identical on SQLite and PostgreSQL, byte-identical on re-export), the per-team
//! Slack digests (limits with 1 and 200 services, delivered through the outbox to a real
//! HTTP server), and the platform team's tools (a dry run that changes one pool's method,
//! `explain` adding up, rule test cases).

use std::path::{Path, PathBuf};

use costsplit::jobs::{self, reports};
use costsplit::model::CostBasis;
use costsplit::money::Nanos;
use costsplit::notify::digest::digest_messages;
use costsplit::report::digest::{Digest, Period, PoolShare, ServiceLine};
use costsplit::report::statement::GroupBy;
use costsplit::rules::Rules;
use costsplit::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer};

use crate::support::{day, rules, TestStore, BOTH, NOW};

pub const RULES: &str = r##"
[settings]
service_tag_keys = ["service"]
undeclared_services = "direct"

[[service]]
name = "checkout-api"
team = "payments"
cost_center = "cc-1001"
slack_channel = "#payments-cost"

[[service]]
name = "payments-api"
team = "payments"
cost_center = "cc-1001"
slack_channel = "#payments-cost"

[[service]]
name = "search-api"
team = "search"
cost_center = "cc-2002"

[[pool]]
name = "shared-redis"
method = "equal"
members = ["checkout-api", "payments-api", "search-api"]
match = { resource_id = "arn:aws:elasticache:*:cluster:shared-redis-*" }

[[pool]]
name = "tax"
priority = 20
method = "proportional"
members = ["checkout-api", "payments-api", "search-api"]
match = { charge_category = "Tax" }
"##;

const HEADER: &str = "BillingAccountId,SubAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,BillingCurrency,BilledCost,EffectiveCost,ListCost,ChargeCategory,ChargeClass,ServiceProviderName,ServiceName,ResourceId,Tags";

/// March 2025, three days: direct cost, a shared Redis split three ways ($33.34 a day does not
/// divide by three), tax split by direct cost, a credit, an untagged refund, and two
/// services whose names a spreadsheet would misread: one with a comma and quotes, one that
/// is a formula.
pub fn march_csv() -> String {
    let mut out = String::from(HEADER);
    out.push('\n');
    let mut row = |d: u32,
                   cost: &str,
                   category: &str,
                   service: &str,
                   resource: &str,
                   tags: &str| {
        let tags = if tags.is_empty() {
            String::new()
        } else {
            format!("\"{}\"", tags.replace('"', "\"\""))
        };
        out.push_str(&format!(
            "111111111111,222222222222,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,2025-03-{d:02}T00:00:00Z,2025-03-{:02}T00:00:00Z,USD,{cost},{cost},{cost},{category},,AWS,{service},{resource},{tags}\n",
            d + 1
        ));
    };
    for d in 1..=3 {
        row(
            d,
            "100.10",
            "Usage",
            "Amazon Elastic Compute Cloud",
            "i-checkout",
            r#"{"service":"checkout-api"}"#,
        );
        row(
            d,
            "40.05",
            "Usage",
            "Amazon Elastic Compute Cloud",
            "i-payments",
            r#"{"service":"payments-api"}"#,
        );
        row(
            d,
            "12.34",
            "Usage",
            "Amazon Simple Storage Service",
            "bucket-search",
            r#"{"service":"search-api"}"#,
        );
        row(
            d,
            "33.34",
            "Usage",
            "Amazon ElastiCache",
            "arn:aws:elasticache:us-east-1:111111111111:cluster:shared-redis-1",
            "",
        );
        row(d, "7.77", "Tax", "Tax", "", "");
        row(
            d,
            "1.01",
            "Usage",
            "Amazon Simple Storage Service",
            "bucket-acme",
            r#"{"service":"acme, \"the\" shop"}"#,
        );
        row(
            d,
            "2.02",
            "Usage",
            "AWS Lambda",
            "fn-evil",
            r#"{"service":"=HYPERLINK(\"http://x.example\",\"click\")"}"#,
        );
    }
    row(
        2,
        "-10.00",
        "Credit",
        "Amazon Elastic Compute Cloud",
        "i-checkout",
        r#"{"service":"checkout-api"}"#,
    );
    row(
        3,
        "-5.55",
        "Adjustment",
        "Amazon Elastic Compute Cloud",
        "",
        "",
    );
    out
}

/// The month's billed total, added up by hand from `march_csv`: 3 × (100.10 + 40.05 + 12.34 +
/// 33.34 + 7.77 + 1.01 + 2.02) − 10.00 − 5.55.
pub const MARCH_TOTAL_CENTS: i128 = 3 * (10010 + 4005 + 1234 + 3334 + 777 + 101 + 202) - 1000 - 555;

pub async fn seeded(store: &Store, dir: &Path) -> Rules {
    let file = dir.join("march.csv");
    std::fs::write(&file, march_csv()).expect("write");
    jobs::import_files(store, &[file], NOW)
        .await
        .expect("import");
    let rules = rules(&[("test.toml", RULES)]);
    jobs::allocate_range(
        store,
        &rules,
        CostBasis::Effective,
        (day("2025-03-01"), day("2025-03-31")),
        NOW,
    )
    .await
    .expect("allocate");
    rules
}

fn golden(name: &str) -> PathBuf {
    crate::support::data(&format!("golden/{name}"))
}

/// Compares with the golden file (`COSTSPLIT_BLESS=1` rewrites it).
fn assert_golden(name: &str, actual: &str) {
    let path = golden(name);
    if std::env::var_os("COSTSPLIT_BLESS").is_some() {
        // CI checks the golden files; it never rewrites them.
        assert!(
            std::env::var_os("CI").is_none(),
            "COSTSPLIT_BLESS is set under CI: golden files are rewritten by a person, never by CI"
        );
        std::fs::write(&path, actual).expect("bless");
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} is missing; run with COSTSPLIT_BLESS=1", path.display()));
    assert_eq!(actual, expected, "{name} differs from its golden file");
}

fn cents(text: &str) -> i128 {
    let n = Nanos::parse(text).unwrap_or_else(|| panic!("`{text}` is a plain number"));
    n.0 / 10_000_000
}

#[tokio::test]
async fn statements_match_their_golden_files_on_both_backends_and_sum_to_the_bill() {
    for kind in BOTH {
        let ts = TestStore::new(kind).await;
        let dir = tempfile::tempdir().expect("tempdir");
        seeded(&ts.store, dir.path()).await;
        for (name, by, detail) in [
            ("statement-service.csv", GroupBy::Service, false),
            ("statement-service-detail.csv", GroupBy::Service, true),
            ("statement-team.csv", GroupBy::Team, false),
            ("statement-cost-center.csv", GroupBy::CostCenter, false),
        ] {
            let s = reports::statement(&ts.store, "2025-03", by, detail, None, 7)
                .await
                .expect("statement");
            assert!(s.reconciled(), "{name}");
            let csv = s.csv();
            assert_golden(name, &csv);
            // Amounts are plain numbers that add up to the bill to the cent.
            let mut reader = csv::Reader::from_reader(csv.as_bytes());
            let headers = reader.headers().expect("header").clone();
            let amount = headers.iter().position(|h| h == "amount").expect("amount");
            let total: i128 = reader
                .records()
                .map(|r| cents(&r.expect("row")[amount]))
                .sum();
            assert_eq!(total, MARCH_TOTAL_CENTS, "{name}");
        }
        let s = reports::statement(&ts.store, "2025-03", GroupBy::Service, false, None, 7)
            .await
            .expect("statement");
        assert_golden("statement-summary.csv", &s.summary_csv());
        let summary = s.summary_csv();
        assert!(summary.contains(",0.00,"), "difference 0.00: {summary}");
    }
}

#[tokio::test]
async fn spreadsheet_formulas_in_tag_values_come_out_as_text() {
    let ts = TestStore::new(crate::support::Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    seeded(&ts.store, dir.path()).await;
    let statement = reports::statement(&ts.store, "2025-03", GroupBy::Service, true, None, 7)
        .await
        .expect("statement")
        .csv();
    let report = jobs::report(&ts.store, (day("2025-03-01"), day("2025-03-31")), None)
        .await
        .expect("report")
        .render(costsplit::report::Format::Csv, false);
    for csv in [statement, report] {
        let mut reader = csv::Reader::from_reader(csv.as_bytes());
        let mut seen = false;
        for record in reader.records() {
            let record = record.expect("row");
            for cell in record.iter() {
                if cell.contains("hyperlink") {
                    assert!(cell.starts_with("'="), "a live formula: {cell}");
                    seen = true;
                }
                // Negative amounts stay numbers.
                if cell.starts_with('-') {
                    assert!(Nanos::parse(cell).is_some(), "{cell}");
                }
            }
        }
        assert!(seen, "{csv}");
        assert!(csv.contains("\"acme, \"\"the\"\" shop\""), "{csv}");
    }
}

/// The binary in `dir` on `store` with `rules`.
fn costsplit_bin(dir: &Path, store: &str, rules: &Path, args: &[&str]) -> std::process::Output {
    crate::support::costsplit(dir)
        .store(store)
        .rules(rules)
        .run(args)
}

#[tokio::test(flavor = "multi_thread")]
async fn export_through_the_binary_is_byte_identical_until_the_rules_change() {
    let ts = TestStore::new(crate::support::Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    seeded(&ts.store, dir.path()).await;
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("test.toml"), RULES).expect("rules");
    let store = ts.store_url();
    let run = |args: &[&str]| {
        let out = costsplit_bin(dir.path(), &store, &rules_dir, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    };
    let first = dir.path().join("first.csv");
    run(&[
        "export",
        "--month",
        "2025-03",
        "--out",
        first.to_str().expect("utf-8"),
    ]);
    let second = run(&["export", "--month", "2025-03"]).stdout;
    assert_eq!(std::fs::read(&first).expect("read"), second);
    // Re-allocating with other rules changes the hash column and the amounts.
    std::fs::write(
        rules_dir.join("test.toml"),
        RULES.replace("method = \"equal\"", "method = \"proportional\""),
    )
    .expect("rules");
    run(&["allocate", "--month", "2025-03"]);
    let third = run(&["export", "--month", "2025-03"]).stdout;
    // Every line names the new rules, and the Redis pool's split moved money between the
    // services (proportional instead of equal) without changing the month's total.
    let lines = |csv: &[u8]| -> std::collections::BTreeMap<String, (i128, String)> {
        let mut reader = csv::Reader::from_reader(csv);
        let headers = reader.headers().expect("header").clone();
        let at = |name: &str| headers.iter().position(|h| h == name).expect(name);
        let (service, amount, hash) = (at("service"), at("amount"), at("rules_hash"));
        reader
            .records()
            .map(|r| {
                let r = r.expect("row");
                (
                    r[service].to_string(),
                    (cents(&r[amount]), r[hash].to_string()),
                )
            })
            .collect()
    };
    let (before, after) = (lines(&second), lines(&third));
    let new_hash = costsplit::rules::load(&rules_dir)
        .rules
        .expect("the new rules are valid")
        .hash;
    assert!(before.values().all(|(_, h)| *h != new_hash), "{before:?}");
    assert!(after.values().all(|(_, h)| *h == new_hash), "{after:?}");
    let moved: Vec<(&String, i128)> = after
        .iter()
        .map(|(s, (cents, _))| (s, cents - before[s].0))
        .filter(|(_, change)| *change != 0)
        .collect();
    assert!(moved.len() >= 2, "the Redis split moved money: {moved:?}");
    assert_eq!(moved.iter().map(|(_, c)| c).sum::<i128>(), 0, "{moved:?}");
    // A missing month says what to do.
    let out = costsplit_bin(
        dir.path(),
        &store,
        &rules_dir,
        &["export", "--month", "2025-07"],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("costsplit allocate --month 2025-07"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_dry_run_that_changes_one_pools_method_shows_the_per_service_difference() {
    let ts = TestStore::new(crate::support::Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let stored_rules = seeded(&ts.store, dir.path()).await;
    let candidate = rules(&[(
        "test.toml",
        &RULES.replace("method = \"equal\"", "method = \"proportional\""),
    )]);
    assert_ne!(candidate.hash, stored_rules.hash);
    let before = ts
        .store
        .count(costsplit::store::Table::Allocations)
        .await
        .expect("count");
    let diff = reports::dry_run(
        &ts.store,
        &candidate,
        CostBasis::Effective,
        (day("2025-03-01"), day("2025-03-31")),
    )
    .await
    .expect("dry run");
    // Nothing stored.
    assert_eq!(
        ts.store
            .count(costsplit::store::Table::Allocations)
            .await
            .expect("count"),
        before
    );
    // Redis ($100.02) was a third each; by direct cost checkout-api (the largest) pays more.
    let changed: Vec<&str> = diff.changed.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(changed[0], "checkout-api", "{}", diff.table());
    assert!(changed.contains(&"search-api"));
    for c in &diff.changed {
        assert!(c.pools.iter().any(|(p, _, _)| p == "shared-redis"), "{c:?}");
    }
    assert!(
        diff.net().values().all(|n| n.0 == 0),
        "a re-split moves money, never adds it"
    );
    let table = diff.table();
    assert!(table.contains("checkout-api +$"), "{table}");
    assert!(table.contains("shared-redis: $33.34 -> $"), "{table}");
    // The stored rules are unchanged: a dry run with them shows nothing.
    let same = reports::dry_run(
        &ts.store,
        &stored_rules,
        CostBasis::Effective,
        (day("2025-03-01"), day("2025-03-31")),
    )
    .await
    .expect("dry run");
    assert!(same.changed.is_empty(), "{}", same.table());
}

#[tokio::test]
async fn explain_adds_up_to_the_services_total() {
    let ts = TestStore::new(crate::support::Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = seeded(&ts.store, dir.path()).await;
    let report = jobs::report(&ts.store, (day("2025-03-01"), day("2025-03-31")), None)
        .await
        .expect("report");
    for service in ["checkout-api", "payments-api", "search-api"] {
        let e = reports::explain(&ts.store, Some(&rules), service, "2025-03")
            .await
            .expect("explain");
        assert_eq!(e.len(), 1);
        let e = &e[0];
        let total = report
            .services
            .iter()
            .find(|s| s.service == service)
            .expect("in the report")
            .total();
        assert_eq!(e.total, total, "{service}");
        assert_eq!(e.direct_total() + e.shared_total(), total, "{service}");
        let redis = e
            .pools
            .iter()
            .find(|p| p.pool == "shared-redis")
            .expect("redis");
        assert_eq!(redis.pool_total, Nanos(100_020_000_000), "3 × $33.34");
        assert_eq!(redis.days, 3);
        let text = e.text();
        assert!(text.contains("shared-redis (equal)"), "{text}");
        assert!(text.contains("check: direct"), "{text}");
    }
    let direct = &reports::explain(&ts.store, Some(&rules), "checkout-api", "2025-03")
        .await
        .expect("explain")[0]
        .direct;
    assert_eq!(
        direct,
        &vec![(
            "Amazon Elastic Compute Cloud".to_string(),
            Nanos(290_300_000_000)
        )],
        "3 × 100.10 − 10.00"
    );
    let err = reports::explain(&ts.store, Some(&rules), "nobody", "2025-03")
        .await
        .expect_err("no such service");
    assert!(err.to_string().contains("has no cost in 2025-03"), "{err}");
}

fn line(service: &str, dollars: i128, previous: i128, pools: usize) -> ServiceLine {
    let d = costsplit::money::NANOS_PER_UNIT;
    ServiceLine {
        service: service.to_string(),
        currency: "USD".into(),
        total: Nanos(dollars * d + 123_456_789),
        previous: Nanos(previous * d),
        daily: (0..7).map(|i| Nanos(i * d)).collect(),
        shared: (0..pools)
            .map(|i| PoolShare {
                pool: format!("pool-{i}-with-a-rather-long-name-for-a-shared-cluster"),
                method: "usage".into(),
                ratio_ppb: 312_345_678,
                unit: "bytes".into(),
                amount: Nanos(1_234_567 * d),
            })
            .collect(),
        requested_unused: Nanos::ZERO,
    }
}

fn digest(services: Vec<ServiceLine>) -> Digest {
    Digest {
        team: "payments".into(),
        channel: "#payments-cost".into(),
        period: Period::Week,
        label: "week 2025-03-10 to 2025-03-16".into(),
        from: day("2025-03-10"),
        to: day("2025-03-16"),
        below_floor: 3,
        below_floor_total: [("USD".to_string(), Nanos(2_500_000_000))].into(),
        movers: services
            .iter()
            .take(3)
            .map(|s| (s.service.clone(), s.currency.clone(), s.change()))
            .collect(),
        totals: [("USD".to_string(), (Nanos(1), Nanos(0)))].into(),
        services,
        estimated: true,
        budgets: Vec::new(),
        units: Vec::new(),
    }
}

/// Every message within Block Kit's limits; every service in exactly one message, whole.
fn assert_within_limits(messages: &[serde_json::Value], services: &[ServiceLine]) {
    let mut seen = Vec::new();
    for m in messages {
        let blocks = m["blocks"].as_array().expect("blocks");
        assert!(blocks.len() <= 50, "{} blocks", blocks.len());
        for b in blocks {
            if b["type"] == "header" {
                assert!(b["text"]["text"].as_str().expect("header").chars().count() <= 150);
            }
            if let Some(text) = b["text"]["text"].as_str() {
                assert!(
                    text.chars().count() <= 3000,
                    "{} chars",
                    text.chars().count()
                );
                let name = text.strip_prefix('*').and_then(|t| t.split('*').next());
                if let Some(name) = name.filter(|n| *n != "Team total") {
                    seen.push(name.to_string());
                    // The total is written whole.
                    assert!(text.contains(".12  ("), "{text}");
                }
            }
        }
    }
    let mut expected: Vec<String> = services.iter().map(|s| s.service.clone()).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
}

#[test]
fn a_digest_of_one_service_is_one_message_and_of_200_services_stays_within_slacks_limits() {
    let one = digest(vec![line("checkout-api", 412, 400, 2)]);
    let messages = digest_messages(&one, Some("https://grafana.example.com/d/x?team={team}"));
    assert_eq!(messages.len(), 1);
    assert_within_limits(&messages, &one.services);
    let text = messages[0].to_string();
    assert!(
        text.contains("(usage: 31.2% of bytes) $1,234,567.00"),
        "{text}"
    );
    assert!(text.contains("(+$12.12 +3.0% vs previous)"), "{text}");
    assert!(
        text.contains("3 smaller service(s), $2.50 together"),
        "{text}"
    );
    assert!(text.contains("estimated"), "{text}");

    // 200 services, each sharing 60 pools: more than one section can hold.
    let many: Vec<ServiceLine> = (0..200)
        .map(|i| line(&format!("svc-{i:03}"), 1000 + i, 900, 60))
        .collect();
    let big = digest(many);
    let messages = digest_messages(&big, None);
    assert_eq!(messages.len(), 5, "40 services a message");
    assert_within_limits(&messages, &big.services);
    assert!(messages[0].to_string().contains("more pool(s)"));
    assert!(messages[4]["blocks"][0]["text"]["text"]
        .as_str()
        .expect("header")
        .ends_with("(5/5)"));
}

#[tokio::test]
async fn a_team_gets_its_weekly_digest_in_slack_once_with_its_shared_costs() {
    let ts = TestStore::new(crate::support::Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = seeded(&ts.store, dir.path()).await;
    // The week of 2025-03-03 to 2025-03-09 has only our days 3 (Monday); the month is March.
    let digests = reports::team_digests(&ts.store, &rules, Period::Month, day("2025-04-02"), None)
        .await
        .expect("digests");
    let teams: Vec<&str> = digests.iter().map(|d| d.team.as_str()).collect();
    assert_eq!(teams, vec!["", "payments", "search"]);
    let payments = &digests[1];
    assert_eq!(payments.channel, "#payments-cost");
    assert_eq!(payments.label, "March 2025");
    let checkout = payments
        .services
        .iter()
        .find(|s| s.service == "checkout-api")
        .expect("checkout");
    let redis = checkout
        .shared
        .iter()
        .find(|p| p.pool == "shared-redis")
        .expect("redis");
    assert_eq!(redis.method, "equal");
    assert_eq!(
        redis.amount,
        Nanos(33_340_000_002),
        "a third of $100.02, the odd nano-units to the first member"
    );

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/secret"))
        .respond_with(crate::slack_standin::SlackStandIn::webhook())
        .mount(&server)
        .await;
    let settings = costsplit::notify::SlackSettings {
        api_url: server.uri(),
        default_webhook: Some(costsplit::notify::Secret::new(format!(
            "{}/services/T000/B000/secret",
            server.uri()
        ))),
        team_webhooks: Default::default(),
        team_destinations: Default::default(),
        bot_token: None,
        dashboard_url: None,
        max_attempts: 3,
        claim_lease: costsplit::notify::CLAIM_LEASE,
        base_backoff: std::time::Duration::from_millis(10),
        max_backoff: std::time::Duration::from_millis(50),
        feedback_buttons: false,
    };
    let only = reports::team_digests(
        &ts.store,
        &rules,
        Period::Month,
        day("2025-04-02"),
        Some("payments"),
    )
    .await
    .expect("digests");
    for _ in 0..2 {
        reports::enqueue_digests(&ts.store, &rules, &only, NOW)
            .await
            .expect("enqueue");
    }
    let deliver = || async {
        jobs::deliver_alerts(
            &ts.store,
            &settings,
            NOW,
            &costsplit::clock::Shutdown::never(),
        )
        .await
        .expect("deliver")
    };
    let summary = deliver().await;
    assert_eq!(summary.sent, 1, "one message, sent once: {summary:?}");
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 1);
    let body = String::from_utf8_lossy(&requests[0].body).into_owned();
    assert!(body.contains("payments cost, March 2025"), "{body}");
    assert!(
        body.contains("shared-redis (equal: 33.3%) $33.34"),
        "{body}"
    );
    assert!(body.contains("checkout-api"), "{body}");
    // Re-enqueueing after delivery does not send it again.
    reports::enqueue_digests(&ts.store, &rules, &only, NOW)
        .await
        .expect("enqueue");
    let again = deliver().await;
    assert_eq!(again.sent, 0);
}

#[test]
fn rule_test_cases_pass_fail_and_point_at_their_file_and_line() {
    let passing = format!(
        "{RULES}\n{}",
        r#"
[[test]]
name = "redis splits three ways, the odd cent to the first member"
facts = [
  { resource_id = "arn:aws:elasticache:us-east-1:1:cluster:shared-redis-9", cost = "1.00" },
  { tags = { service = "checkout-api" }, cost = "5", provider_service = "Amazon EC2" },
]
expect = { checkout-api = "5.333333334", payments-api = "0.333333333", search-api = "0.333333333" }
"#
    );
    let r = rules(&[("test.toml", &passing)]);
    let outcomes = reports::rules_test(&r);
    assert_eq!(outcomes.len(), 1);
    assert!(
        outcomes[0].failures.is_empty(),
        "{:?}",
        outcomes[0].failures
    );

    let failing = format!(
        "{RULES}\n{}",
        r#"
[[test]]
name = "untagged cost is unallocated"
facts = [ { cost = "2.00", provider_service = "Amazon EC2" } ]
expect = { checkout-api = "2.00" }
"#
    );
    let r = rules(&[("test.toml", &failing)]);
    let outcomes = reports::rules_test(&r);
    let line = RULES.lines().count() + 3;
    assert_eq!(outcomes[0].location, format!("test.toml:{line}"));
    assert_eq!(
        outcomes[0].failures,
        vec![
            "checkout-api: expected 2.000000000, got 0.000000000".to_string(),
            "unallocated: got 2.000000000, which `expect` does not list (a fact no pool or tag claimed)".to_string(),
        ]
    );

    // A case naming a service the rules do not declare is a rules error with file:line.
    let loaded = costsplit::rules::load_texts(&[(
        "test.toml",
        &format!("{RULES}\n[[test]]\nname = \"x\"\nfacts = [ {{ cost = 1 }} ]\nexpect = {{ nobody = 1 }}\n"),
    )]);
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].starts_with(&format!("test.toml:{}", RULES.lines().count() + 5)),
        "{errors:?}"
    );
    assert!(errors[0].contains("unknown service `nobody`"), "{errors:?}");
}

#[test]
fn the_example_rules_carry_test_cases_that_pass() {
    let rules = crate::support::repo_rules();
    let out = crate::support::costsplit(std::path::Path::new(".")).run(&[
        "rules",
        "test",
        &rules.display().to_string(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("0 failed"), "{stdout}");
    assert!(!stdout.contains(" 0 case(s)"), "{stdout}");
}

#[tokio::test]
async fn the_focus_export_splits_each_shared_charge_into_parts_that_sum_to_it() {
    for kind in BOTH {
        let ts = TestStore::new(kind).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = seeded(&ts.store, dir.path()).await;
        let focus = reports::focus_export(&ts.store, &rules, "2025-03")
            .await
            .expect("focus");
        let mut reader = csv::Reader::from_reader(focus.as_bytes());
        let headers = reader.headers().expect("header").clone();
        let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
        let category = col("ChargeCategory");
        let (cost, billed, method, details, resource, service, pool, tags, charge_start, origin) = (
            col("EffectiveCost"),
            col("BilledCost"),
            col("AllocatedMethodId"),
            col("AllocatedMethodDetails"),
            col("AllocatedResourceId"),
            col("x_CostsplitService"),
            col("x_CostsplitPool"),
            col("AllocatedTags"),
            col("ChargePeriodStart"),
            col("ResourceId"),
        );
        type Origin = (String, String, String, String);
        let mut by_origin: std::collections::BTreeMap<Origin, (i128, i128)> = Default::default();
        let mut by_service: std::collections::BTreeMap<String, i128> = Default::default();
        let mut total = 0i128;
        for record in reader.records() {
            let r = record.expect("row");
            let amount = Nanos::parse(&r[cost]).expect("cost").0;
            assert_eq!(
                &r[billed], &r[cost],
                "the fixture's billed and effective agree"
            );
            total += amount;
            *by_service.entry(r[service].to_string()).or_default() += amount;
            if r[pool].is_empty() {
                assert!(r[method].is_empty() && r[details].is_empty() && r[tags].is_empty());
                continue;
            }
            let d: serde_json::Value = serde_json::from_str(&r[details]).expect("JSON details");
            let ratio = d["Elements"][0]["AllocatedRatio"]
                .as_f64()
                .expect("a number");
            assert!(r[method].starts_with("costsplit/"), "{}", &r[method]);
            assert_eq!(&r[resource], &r[service]);
            let t: serde_json::Value = serde_json::from_str(&r[tags]).expect("JSON tags");
            assert_eq!(t["costsplit/service"], r[service].to_string());
            let e = by_origin
                .entry((
                    r[charge_start].to_string(),
                    r[origin].to_string(),
                    r[category].to_string(),
                    r[pool].to_string(),
                ))
                .or_default();
            e.0 += amount;
            e.1 += (ratio * 1e9).round() as i128;
        }
        assert_eq!(
            total,
            MARCH_TOTAL_CENTS * 10_000_000,
            "the month, to the nano-unit"
        );
        // Redis: three origin charges of $33.34, each split in three parts summing to it.
        let redis: Vec<_> = by_origin
            .iter()
            .filter(|((_, _, _, p), _)| p == "shared-redis")
            .collect();
        assert_eq!(redis.len(), 3);
        for (_, (amount, ratio)) in &redis {
            assert_eq!(*amount, 33_340_000_000);
            assert_eq!(
                *ratio, 1_000_000_000,
                "the ratios of an origin charge sum to 1"
            );
        }
        // Every origin charge of every pool: its parts add up to the origin facts exactly,
        // and their ratios to 1 per fact.
        let mut facts: std::collections::BTreeMap<(String, String, String), (i128, i128)> =
            Default::default();
        for f in ts
            .store
            .facts(day("2025-03-01"), day("2025-03-31"))
            .await
            .expect("facts")
        {
            let e = facts
                .entry((
                    format!("{}T00:00:00Z", f.day),
                    f.resource_id.to_string(),
                    f.charge_category.to_string(),
                ))
                .or_default();
            e.0 += f.effective.0;
            e.1 += 1;
        }
        assert!(by_origin.len() > redis.len(), "the tax pool's origins too");
        for ((start, resource_id, category, pool), (amount, ratio)) in &by_origin {
            let key = (start.clone(), resource_id.clone(), category.clone());
            let (expected, count) = facts[&key];
            assert_eq!(*amount, expected, "{pool}: {key:?}");
            if expected != 0 {
                assert_eq!(*ratio, 1_000_000_000 * count, "{pool}: {key:?}");
            }
        }
        // Per service the FOCUS rows are exactly the stored allocations.
        let report = jobs::report(&ts.store, (day("2025-03-01"), day("2025-03-31")), None)
            .await
            .expect("report");
        // A machine-read dataset keeps every value as it is: no spreadsheet prefix.
        assert!(
            by_service.keys().any(|k| k.starts_with("=hyperlink")),
            "{:?}",
            by_service.keys()
        );
        for s in &report.services {
            assert_eq!(
                by_service
                    .get(s.service.as_str())
                    .copied()
                    .unwrap_or_default(),
                s.total().0,
                "{}",
                s.service
            );
        }
        // Other tools can read it: costsplit's own FOCUS reader imports it to the same total.
        let file = dir.path().join("focus-out.csv");
        std::fs::write(&file, &focus).expect("write");
        let other = TestStore::new(crate::support::Kind::Sqlite).await;
        let summary = jobs::import_files(&other.store, &[file], NOW)
            .await
            .expect("re-import");
        assert_eq!(
            summary.effective.get("USD").0,
            MARCH_TOTAL_CENTS * 10_000_000
        );
        // Other rules than the month's are refused, with what to do.
        let candidate = crate::support::rules(&[(
            "test.toml",
            &RULES.replace("method = \"equal\"", "method = \"proportional\""),
        )]);
        let err = reports::focus_export(&ts.store, &candidate, "2025-03")
            .await
            .expect_err("other rules");
        assert!(
            err.to_string()
                .contains("costsplit allocate --month 2025-03"),
            "{err}"
        );
    }
}

/// `import --allocate` allocates the facts it just read in memory: the same allocations as
/// `import` then `allocate` of the stored month, on both stores, also when the store holds
/// another account's facts for that month (read back and kept), and the month's statement
/// reconciles.
#[tokio::test(flavor = "multi_thread")]
async fn import_with_allocate_stores_what_import_then_allocate_stores_on_both_stores() {
    let dir = tempfile::tempdir().expect("tempdir");
    let march = dir.path().join("march.csv");
    std::fs::write(&march, march_csv()).expect("write");
    // Another account's month: one line, its own service.
    let other = dir.path().join("other.csv");
    std::fs::write(
        &other,
        format!("{HEADER}\n999999999999,999999999999,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,2025-03-02T00:00:00Z,2025-03-03T00:00:00Z,USD,5.55,5.55,5.55,Usage,,AWS,Amazon S3,bucket-x,\"{{\"\"service\"\":\"\"search-api\"\"}}\"\n"),
    )
    .expect("write");
    let rules = rules(&[("test.toml", RULES)]);
    let month = (day("2025-03-01"), day("2025-03-31"));
    for kind in BOTH {
        for with_other in [false, true] {
            let two_steps = TestStore::new(kind).await;
            let one_step = TestStore::new(kind).await;
            if with_other {
                for t in [&two_steps, &one_step] {
                    jobs::import_files(&t.store, std::slice::from_ref(&other), NOW)
                        .await
                        .expect("import other");
                }
            }
            let plain = jobs::import_files(&two_steps.store, std::slice::from_ref(&march), NOW)
                .await
                .expect("import");
            let allocated =
                jobs::allocate_range(&two_steps.store, &rules, CostBasis::Effective, month, NOW)
                    .await
                    .expect("allocate");
            let (imported, in_memory) = jobs::import_and_allocate(
                &one_step.store,
                std::slice::from_ref(&march),
                &rules,
                CostBasis::Effective,
                NOW,
            )
            .await
            .expect("import --allocate");
            let case = format!("{kind:?}, another account: {with_other}");
            assert_eq!(in_memory.allocated, allocated.allocated, "{case}");
            assert_eq!(in_memory.facts, allocated.facts, "{case}");
            assert_eq!(imported.facts, plain.facts, "{case}: the file's facts only");
            assert_eq!(imported.billed, plain.billed, "{case}");
            let stored = |t: &TestStore| {
                let store = t.store.clone();
                async move {
                    (
                        store.facts(month.0, month.1).await.expect("facts"),
                        store
                            .allocations(month.0, month.1)
                            .await
                            .expect("allocations"),
                    )
                }
            };
            let (facts_a, allocations_a) = stored(&two_steps).await;
            let (facts_b, allocations_b) = stored(&one_step).await;
            let key = |f: &costsplit::model::Fact| format!("{f:?}");
            let mut facts_a: Vec<String> = facts_a.iter().map(key).collect();
            let mut facts_b: Vec<String> = facts_b.iter().map(key).collect();
            facts_a.sort();
            facts_b.sort();
            assert_eq!(facts_a, facts_b, "{case}");
            assert_eq!(allocations_a, allocations_b, "{case}");
            let total: i128 = allocations_b.iter().map(|a| a.amount.0).sum();
            let expected =
                MARCH_TOTAL_CENTS * 10_000_000 + if with_other { 5_550_000_000 } else { 0 };
            assert_eq!(total, expected, "{case}");
            // Nothing is stale: the daemon's window stays the restatement window.
            let window = jobs::allocation_window(
                &one_step.store,
                &rules,
                CostBasis::Effective,
                (day("2025-03-29"), day("2025-03-31")),
            )
            .await
            .expect("window");
            assert_eq!(window.0, day("2025-03-29"), "{case}");
        }
    }
}

/// A month billed in three currencies, through the binary: the import and allocate summaries
/// give one figure per currency (never a sum across them), the statement is in whole yen and
/// in fils, each currency summing to its invoice in that unit, and a statement asked on
/// another cost basis than the month's allocation is refused.
#[tokio::test(flavor = "multi_thread")]
async fn a_multi_currency_month_is_stated_in_each_currencys_units_through_the_binary() {
    let ts = TestStore::new(crate::support::Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir_all(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("test.toml"), RULES).expect("rules");
    let mut csv = String::from(HEADER);
    csv.push('\n');
    // (currency, cost, service tag) per day: JPY thirds of 7,611.83 (the invoice says 7,612),
    // KWD with three decimals, USD.
    for d in 1..=3 {
        for (currency, cost, service) in [
            ("JPY", "845.759", "checkout-api"),
            ("JPY", "845.759", "payments-api"),
            ("JPY", "845.759", "search-api"),
            ("KWD", "1.1115", "checkout-api"),
            ("KWD", "2.2225", "search-api"),
            ("USD", "10.005", "checkout-api"),
        ] {
            csv.push_str(&format!(
                "111111111111,222222222222,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,2025-03-{d:02}T00:00:00Z,2025-03-{:02}T00:00:00Z,{currency},{cost},{cost},{cost},Usage,,AWS,Amazon EC2,i-{service},\"{{\"\"service\"\":\"\"{service}\"\"}}\"\n",
                d + 1
            ));
        }
    }
    let file = dir.path().join("march.csv");
    std::fs::write(&file, csv).expect("write");
    let store = ts.store_url();
    let run = |args: &[&str]| costsplit_bin(dir.path(), &store, &rules_dir, args);
    let out = run(&["import", "--allocate", file.to_str().expect("utf-8")]);
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("effective JPY 7612, KWD 10.002, USD 30.02 billed"),
        "one figure per currency, in its own unit: {stdout}"
    );
    assert!(
        stdout.contains("allocated JPY 7611.831000000, KWD 10.002000000, USD 30.015000000 == billed JPY 7611.831000000"),
        "{stdout}"
    );
    let out = run(&["export", "--month", "2025-03"]);
    let statement = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(statement.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (amount, currency) = (col("amount"), col("currency"));
    let mut jpy = Vec::new();
    let mut kwd = Vec::new();
    for record in reader.records() {
        let r = record.expect("row");
        match &r[currency] {
            "JPY" => jpy.push(r[amount].to_string()),
            "KWD" => kwd.push(r[amount].to_string()),
            _ => {}
        }
    }
    assert!(jpy.iter().all(|a| !a.contains('.')), "whole yen: {jpy:?}");
    let yen: i64 = jpy.iter().map(|a| a.parse::<i64>().expect("yen")).sum();
    assert_eq!(yen, 7612, "the invoice's yen: {jpy:?}");
    assert!(
        kwd.iter()
            .all(|a| a.split_once('.').is_some_and(|(_, f)| f.len() == 3)),
        "fils: {kwd:?}"
    );
    let out = run(&["export", "--month", "2025-03", "--summary"]);
    let summary = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        summary.contains("2025-03,JPY,effective,7612,7612,0,"),
        "{summary}"
    );
    assert!(
        summary.contains("2025-03,KWD,effective,10.002,10.002,0.000,"),
        "{summary}"
    );
    assert!(
        summary.contains("2025-03,USD,effective,30.02,30.02,0.00,"),
        "{summary}"
    );
    // The month is allocated on the effective basis; a billed statement is refused.
    let out = run(&["--basis", "billed", "export", "--month", "2025-03"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("allocated on the effective cost basis, not billed")
            && stderr.contains("costsplit --basis billed allocate --month 2025-03"),
        "{stderr}"
    );
}
