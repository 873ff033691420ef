//! Cost per unit end to end: a measure pushed to `costsplit serve`'s
//! `POST /api/v1/units/NAME` (its own token), another from a usage source's stored samples,
//! each divided into its scope's allocated cost, in the team digest and `costsplit units`.

use costsplit::model::{Allocation, CostBasis, Method, UsageSample};
use costsplit::money::Nanos;
use costsplit::report::digest::Period;
use costsplit::store::{RunRecord, Store, UsageRun, UsageStatus};

use crate::api::serve;
use crate::support::{costsplit, day, free_port, rules, Kind, TestStore, BOTH, NOW};

const RULES: &str = r##"
[[service]]
name = "checkout-api"
team = "payments"
slack_channel = "#payments-cost"
[[service]]
name = "search-api"
team = "search"

[[source]]
name = "search-queries"
kind = "prometheus"
url = "http://127.0.0.1:9"
query = "sum by (service) (increase(http_requests_total[1d]))"
label = "service"
map = { "search-api" = "search-api" }

[[unit]]
name = "checkout-requests"
service = "checkout-api"
push = true
measure = "requests"
scale = 1000

[[unit]]
name = "search-queries"
service = "search-api"
source = "search-queries"
measure = "queries"
"##;

/// February and March 2025: checkout-api costs 100 a day, then 150 (1.5x); search-api 50.
async fn seed(store: &Store) {
    let mut allocations = Vec::new();
    let mut d = day("2025-02-01");
    while d <= day("2025-03-31") {
        for (service, team, dollars) in [
            (
                "checkout-api",
                "payments",
                if d.format("%m").to_string() == "02" {
                    100
                } else {
                    150
                },
            ),
            ("search-api", "search", 50),
        ] {
            allocations.push(Allocation {
                day: d,
                service: service.into(),
                team: team.into(),
                cost_center: String::new(),
                pool: String::new(),
                provider_service: "Amazon Elastic Compute Cloud".into(),
                method: Method::Direct,
                fallback_used: false,
                ratio_ppb: 1_000_000_000,
                amount: Nanos(i128::from(dollars) * 1_000_000_000),
                currency: "USD".into(),
                basis: String::new(),
            });
        }
        d += chrono::Duration::days(1);
    }
    let run = RunRecord {
        created_at: NOW.stamp(),
        from: day("2025-02-01"),
        to: day("2025-03-31"),
        rules_hash: "test".into(),
        basis: CostBasis::Effective,
        facts: 0,
        billed: Nanos(0),
        facts_mark: None,
    };
    store
        .replace_allocations(&run, &allocations)
        .await
        .expect("seed allocations");
}

async fn post(url: &str, token: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().post(url).json(&body);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or_default())
}

/// Requests double (200,000 a day, then 400,000) while cost grows 1.5x (both a day; March
/// has 30 measured days to February's 28): cost per 1,000 requests falls 25%, in the
/// payments team's monthly digest.
async fn requests_doubling_while_cost_grows_half_shows_minus_25_percent(kind: Kind) {
    let t = TestStore::new(kind).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("rules/r.toml"), RULES).unwrap();
    seed(&t.store).await;
    let listen = format!("127.0.0.1:{}", free_port());
    let served = serve(
        dir.path(),
        &t.store_url(),
        &listen,
        &[
            ("COSTSPLIT_API_PUSH_TOKEN", "push-secret"),
            ("COSTSPLIT_API_TOKEN", "read-secret"),
        ],
    )
    .await;
    let url = format!("{}/api/v1/units/checkout-requests", served.url);
    let days = |from: &str, to: &str, value: u64| -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        let mut d = day(from);
        while d <= day(to) {
            out.push(serde_json::json!({"day": d.to_string(), "value": value.to_string()}));
            d += chrono::Duration::days(1);
        }
        out
    };
    // The read token does not push; a wrong token, an unknown unit, a bad value are refused.
    let body = serde_json::json!({"values": days("2025-02-01", "2025-02-28", 200_000)});
    assert_eq!(post(&url, Some("read-secret"), body.clone()).await.0, 401);
    assert_eq!(post(&url, None, body.clone()).await.0, 401);
    let (status, answer) = post(
        &format!("{}/api/v1/units/checkout-requestz", served.url),
        Some("push-secret"),
        body.clone(),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("push = true"),
        "{answer}"
    );
    let (status, answer) = post(
        &url,
        Some("push-secret"),
        serde_json::json!({"values": [{"day": "2025-02-01", "value": "-3"}]}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["message"].as_str().unwrap().contains("non-negative"),
        "{answer}"
    );
    // February, then March without the 10th; a second push of a day replaces it.
    let (status, answer) = post(&url, Some("push-secret"), body).await;
    assert_eq!(
        (status, answer["stored"].as_u64()),
        (200, Some(28)),
        "{answer}"
    );
    let mut march = days("2025-03-01", "2025-03-31", 400_000);
    march.remove(9);
    march[0]["value"] = serde_json::json!(1);
    assert_eq!(
        post(
            &url,
            Some("push-secret"),
            serde_json::json!({"values": march.clone()})
        )
        .await
        .0,
        200
    );
    march[0]["value"] = serde_json::json!(400_000);
    assert_eq!(
        post(
            &url,
            Some("push-secret"),
            serde_json::json!({"values": march})
        )
        .await
        .0,
        200
    );
    drop(served);

    // search-api's queries come from its source's stored samples: two days measured.
    for (d, value) in [("2025-03-01", "1000"), ("2025-03-02", "3000")] {
        let run = UsageRun {
            created_at: NOW.stamp(),
            day: day(d),
            source: "search-queries".into(),
            kind: "prometheus".into(),
            status: UsageStatus::Ok,
            samples: 1,
            message: String::new(),
        };
        let sample = UsageSample {
            day: day(d),
            source: "search-queries".into(),
            member: "search-api".into(),
            service: "search-api".into(),
            value: value.into(),
            unit: "queries".into(),
        };
        t.store.record_usage(&run, &[sample]).await.expect("usage");
    }

    let r = rules(&[("r.toml", RULES)]);
    let digests = costsplit::jobs::reports::team_digests(
        &t.store,
        &r,
        Period::Month,
        day("2025-04-01"),
        Some("payments"),
    )
    .await
    .expect("digest");
    let lines = &digests[0].units;
    assert_eq!(
        lines,
        &vec!["checkout-requests (service checkout-api): cost +60.7%, requests +114.3%, cost per 1,000 requests -25.0% ($0.50 -> $0.38); 1 day(s) without a unit cost, left out: 2025-03-10 (no requests measured)".to_string()]
    );
    let messages = costsplit::notify::digest::digest_messages(&digests[0], None);
    let text = messages[0].to_string();
    assert!(text.contains("*Cost per unit*"), "{text}");
    assert!(text.contains("cost per 1,000 requests -25.0%"), "{text}");

    let out = costsplit(dir.path())
        .store(&t.store_url())
        .run(&["units", "--month", "2025-03"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("    2025-03-10         $150.00                 - requests  missing: no requests measured"),
        "{stdout}"
    );
    assert!(
        stdout.contains(
            "    2025-03-11         $150.00           400,000 requests  $0.38 per 1,000 requests"
        ),
        "{stdout}"
    );
    // Two days measured: 100 over 4,000 queries; the rest of March has no unit cost.
    assert!(
        stdout.contains("search-queries (service search-api): cost new, queries new, cost per query $0.03; 29 day(s) without a unit cost"),
        "{stdout}"
    );
}

#[tokio::test]
async fn requests_doubling_while_cost_grows_half_shows_minus_25_percent_on_both_stores() {
    for kind in BOTH {
        requests_doubling_while_cost_grows_half_shows_minus_25_percent(kind).await;
    }
}

#[test]
fn a_unit_without_a_measure_or_with_an_unknown_source_is_refused() {
    let loaded = costsplit::rules::load_texts(&[(
        "u.toml",
        r#"
[[service]]
name = "checkout-api"
team = "payments"

[[unit]]
name = "a"
service = "checkout-api"

[[unit]]
name = "b c"
service = "checkout-api"
source = "nope"
"#,
    )]);
    let all: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    let all = all.join("\n");
    assert!(
        all.contains("u.toml:6:1: error: [[unit]] `a` needs where its daily measure comes from"),
        "{all}"
    );
    assert!(
        all.contains("u.toml:11:8: error: a unit's `name` is part of its push URL"),
        "{all}"
    );
}
