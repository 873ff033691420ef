//! The read-only API of `costsplit serve` (and `run`): OpenCost's `/allocation/compute` and
//! `/api/v1/costs`, over a store filled with a generated month, through real HTTP.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{costsplit, free_port, repo_rules};

pub(crate) struct Served {
    child: Child,
    pub(crate) url: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `costsplit serve` on `listen` with `env`, once `/healthz` answers.
pub(crate) async fn serve(dir: &Path, store: &str, listen: &str, env: &[(&str, &str)]) -> Served {
    let mut command = costsplit(dir).store(store).command(&["serve"]);
    command
        .env("COSTSPLIT_LISTEN", listen)
        .env_remove("COSTSPLIT_API_TOKEN")
        .env_remove("COSTSPLIT_API_TOKEN_FILE")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    let port = listen.rsplit(':').next().expect("port");
    let mut served = Served {
        child: command.spawn().expect("serve starts"),
        url: format!("http://127.0.0.1:{port}"),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if reqwest::get(format!("{}/healthz", served.url))
            .await
            .is_ok()
        {
            return served;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let url = std::mem::take(&mut served.url);
    drop(served);
    panic!("costsplit serve did not answer on {url}");
}

pub(crate) async fn get(url: &str, token: Option<&str>) -> (u16, serde_json::Value) {
    let mut request = reqwest::Client::new().get(url);
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let response = request.send().await.expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

/// A generated March 2025, imported and allocated with the repository's rules.
fn filled_store(dir: &Path) -> String {
    let store = format!("sqlite://{}", dir.join("api.db").display());
    let month = dir.join("month.csv");
    let run = |args: &[&str]| {
        let out = costsplit(dir).store(&store).rules(&repo_rules()).run(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    run(&[
        "generate",
        "--rows",
        "20000",
        "--out",
        month.to_str().expect("utf-8"),
    ]);
    run(&["import", "--allocate", month.to_str().expect("utf-8")]);
    store
}

/// The demo's store (`costsplit demo`: February and March 2025 with the repository's rules,
/// a spike and a rise planted) in `dir`.
pub(crate) fn demo_store(dir: &Path) -> String {
    let db = dir.join("demo.db");
    let out = costsplit(dir).rules(&repo_rules()).run(&[
        "demo",
        "--rows",
        "20000",
        "--db",
        db.to_str().expect("utf-8"),
    ]);
    assert!(
        out.status.success(),
        "demo: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    format!("sqlite://{}", db.display())
}

/// Finance's statement of `month` grouped `by`: (team, service, amount in cents) per line.
pub(crate) fn statement_cents(
    dir: &Path,
    store: &str,
    month: &str,
    by: &str,
) -> Vec<(String, String, i64)> {
    let out = costsplit(dir)
        .store(store)
        .rules(&repo_rules())
        .run(&["export", "--month", month, "--by", by]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut reader = csv::Reader::from_reader(out.stdout.as_slice());
    let headers = reader.headers().expect("header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (team, service, amount) = (column("team"), column("service"), column("amount"));
    reader
        .records()
        .map(|r| r.expect("record"))
        .map(|r| {
            (
                r[team].to_string(),
                r[service].to_string(),
                cents(&r[amount]),
            )
        })
        .collect()
}

/// An amount as printed (`1234.5`, `$1,234.50`, `-0.07`) in cents.
pub(crate) fn cents(text: &str) -> i64 {
    let kept: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '.' || *c == '-')
        .collect();
    let (whole, fraction) = kept.split_once('.').unwrap_or((&kept, ""));
    let fraction = format!("{fraction:0<2}");
    let negative = whole.starts_with('-');
    let value = whole.trim_start_matches('-').parse::<i64>().unwrap_or(0) * 100
        + fraction[..2].parse::<i64>().expect("cents");
    if negative {
        -value
    } else {
        value
    }
}

/// Each of `cases` (path under `base`, status, words of the message) is refused with that
/// status and a message that says what to do.
async fn refused(base: &str, cases: &[(&str, u16, &str)]) {
    for (path, status, words) in cases {
        let (got, body) = get(&format!("{base}/{path}"), None).await;
        assert_eq!(got, *status, "{path}: {body}");
        assert!(
            body["message"].as_str().expect("message").contains(words),
            "{path}: {body}"
        );
    }
}

/// A filled store in a temporary folder, served on loopback with `env`.
async fn filled_and_served(env: &[(&str, &str)]) -> (tempfile::TempDir, String, Served) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = filled_store(dir.path());
    let served = serve(
        dir.path(),
        &store,
        &format!("127.0.0.1:{}", free_port()),
        env,
    )
    .await;
    (dir, store, served)
}

#[tokio::test(flavor = "multi_thread")]
async fn opencost_allocation_windows_add_up_to_costsplits_totals() {
    let (dir, store, served) = filled_and_served(&[]).await;
    let (status, body) = get(
        &format!("{}/allocation/compute?window=2025-03-01T00:00:00Z,2025-03-08T00:00:00Z&aggregate=service&step=1d", served.url),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["code"], 200);
    let sets = body["data"].as_array().expect("data");
    assert_eq!(sets.len(), 7);
    assert_eq!(
        sets[0]["checkout-api"]["window"]["start"],
        "2025-03-01T00:00:00Z"
    );
    assert_eq!(sets[6]["checkout-api"]["end"], "2025-03-08T00:00:00Z");
    let mut week: BTreeMap<String, f64> = BTreeMap::new();
    for set in sets {
        for (name, a) in set.as_object().expect("set") {
            let total = a["totalCost"].as_f64().expect("totalCost");
            let parts = a["externalCost"].as_f64().expect("external")
                + a["sharedCost"].as_f64().expect("shared");
            assert!((total - parts).abs() < 2e-5, "{name}: {a}");
            *week.entry(name.clone()).or_default() += total;
        }
    }
    assert!(week.contains_key("__unallocated__"), "{week:?}");

    // costsplit's own week, per service, to the nano-unit: each of the 7 days is within
    // OpenCost's rounding (1e-5) of it.
    let out = costsplit(dir.path())
        .store(&store)
        .rules(&repo_rules())
        .run(&[
            "report",
            "--from",
            "2025-03-01",
            "--to",
            "2025-03-07",
            "--format",
            "csv",
        ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (service, total) = (column("service"), column("total"));
    let mut compared = 0;
    for record in reader.records() {
        let record = record.expect("record");
        let name = if &record[service] == "unallocated" {
            "__unallocated__"
        } else {
            &record[service]
        };
        let expected: f64 = record[total].parse().expect("total");
        let got = week.get(name).copied().unwrap_or_default();
        assert!(
            (got - expected).abs() <= 7.0 * 1e-5,
            "{name}: {got} vs {expected}"
        );
        compared += 1;
    }
    assert_eq!(compared, week.len(), "{week:?}");

    // Teams and pools; unix-second windows.
    for query in [
        "window=2025-03-01T00:00:00Z,2025-03-02T00:00:00Z&aggregate=team",
        "window=1740787200,1740873600&aggregate=pool",
        "window=2025-03-01T00:00:00Z,2025-04-01T00:00:00Z&aggregate=all&step=7d",
    ] {
        let (status, body) = get(&format!("{}/allocation/compute?{query}", served.url), None).await;
        assert_eq!(status, 200, "{query}: {body}");
    }
    // Relative windows are read as OpenCost reads them (ending today); this store's month is
    // long past, so they are past the data: a 404 that says where the data ends.
    for query in ["window=7d&step=1d", "window=lastweek", "window=lastmonth"] {
        let (status, body) = get(&format!("{}/allocation/compute?{query}", served.url), None).await;
        assert_eq!(status, 404, "{query}: {body}");
        assert!(
            body["message"]
                .as_str()
                .expect("message")
                .contains("2025-03-31"),
            "{body}"
        );
    }
    let (_, body) = get(
        &format!(
            "{}/allocation/compute?window=2025-03-01T00:00:00Z,2025-03-02T00:00:00Z&aggregate=pool",
            served.url
        ),
        None,
    )
    .await;
    assert!(body["data"][0].get("direct").is_some(), "{body}");

    // Bad input: one sentence naming the fix, never a 500.
    for (query, status, words) in [
        (
            "window=2025-03-01T06:00:00Z,2025-03-08T00:00:00Z",
            400,
            "midnight",
        ),
        ("window=fortnight", 400, "7d"),
        (
            "window=7d&aggregate=namespace",
            400,
            "service, team, pool or all",
        ),
        ("window=7d&step=90m", 400, "1d"),
        ("aggregate=service", 400, "window"),
        (
            "window=2030-01-01T00:00:00Z,2030-01-08T00:00:00Z",
            404,
            "2025-03-31",
        ),
    ] {
        let (got, body) = get(&format!("{}/allocation/compute?{query}", served.url), None).await;
        assert_eq!(got, status, "{query}: {body}");
        assert!(
            body["message"].as_str().expect("message").contains(words),
            "{query}: {body}"
        );
    }

    // costsplit's own route: exact text amounts per day, service and pool.
    let (status, body) = get(
        &format!(
            "{}/api/v1/costs?from=2025-03-01&to=2025-03-01&service=checkout-api",
            served.url
        ),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let item = &body["items"][0];
    assert_eq!(item["service"], "checkout-api");
    assert_eq!(item["team"], "payments");
    let direct: f64 = item["direct"]
        .as_str()
        .expect("text")
        .parse()
        .expect("number");
    let pools: f64 = item["pools"]
        .as_object()
        .expect("pools")
        .values()
        .map(|v| v.as_str().expect("text").parse::<f64>().expect("number"))
        .sum();
    let total: f64 = item["total"]
        .as_str()
        .expect("text")
        .parse()
        .expect("number");
    assert!((direct + pools - total).abs() < 1e-9, "{item}");
    assert!(
        !item["pools"].as_object().expect("pools").is_empty(),
        "{item}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_wants_its_token_when_one_is_set_and_a_token_elsewhere_than_loopback() {
    let (dir, store, served) = filled_and_served(&[("COSTSPLIT_API_TOKEN", "api-token-321")]).await;
    let url = format!(
        "{}/allocation/compute?window=2025-03-01T00:00:00Z,2025-03-02T00:00:00Z",
        served.url
    );
    let (status, body) = get(&url, None).await;
    assert_eq!(status, 401, "{body}");
    assert!(!body.to_string().contains("api-token-321"));
    assert_eq!(get(&url, Some("wrong")).await.0, 401);
    assert_eq!(get(&url, Some("api-token-321")).await.0, 200);

    // No token on a listener others can reach: refused at start, with what to do.
    let out = costsplit(dir.path())
        .store(&store)
        .env("COSTSPLIT_LISTEN", format!("0.0.0.0:{}", free_port()))
        .command(&["serve"])
        .env_remove("COSTSPLIT_API_TOKEN")
        .env_remove("COSTSPLIT_API_TOKEN_FILE")
        .output()
        .expect("serve runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("COSTSPLIT_API_TOKEN") && stderr.contains("127.0.0.1"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cost_insights_routes_answer_the_plugins_types_and_add_up_to_the_statement() {
    let (dir, store, served) = filled_and_served(&[]).await;
    let base = format!("{}/api/v1/cost-insights", served.url);

    let (status, date) = get(&format!("{base}/last-complete-billing-date"), None).await;
    assert_eq!(status, 200, "{date}");
    assert_eq!(date, "2025-03-31");
    let (_, groups) = get(&format!("{base}/groups"), None).await;
    assert!(
        groups
            .as_array()
            .expect("groups")
            .contains(&serde_json::json!({"id": "payments", "name": "payments"})),
        "{groups}"
    );

    // A team's March: its daily amounts sum to its statement line, to the cent.
    let (status, cost) = get(
        &format!("{base}/groups/payments/daily-cost?intervals=R1/P31D/2025-04-01"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cost}");
    assert_eq!(cost["id"], "payments");
    let days = cost["aggregation"].as_array().expect("aggregation");
    assert_eq!(days.len(), 31);
    assert_eq!(days[0]["date"], "2025-03-01");
    let month: f64 = days
        .iter()
        .map(|d| d["amount"].as_f64().expect("amount"))
        .sum();
    assert!(
        cost["trendline"]["slope"].is_number() && cost["trendline"]["intercept"].is_number(),
        "{cost}"
    );
    assert!(cost["change"]["amount"].is_number(), "{cost}");
    let out = costsplit(dir.path())
        .store(&store)
        .rules(&repo_rules())
        .run(&["export", "--month", "2025-03", "--by", "team"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let csv = String::from_utf8(out.stdout).expect("utf-8");
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let column = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (team, amount) = (column("team"), column("amount"));
    let statement: f64 = reader
        .records()
        .map(|r| r.expect("record"))
        .filter(|r| &r[team] == "payments")
        .map(|r| r[amount].parse::<f64>().expect("amount"))
        .sum();
    assert!(
        (month - statement).abs() < 0.005 + 1e-9,
        "{month} vs {statement}"
    );
    // Grouped by service and by pool; each grouping sums to the whole, day by day.
    for grouping in ["service", "pool"] {
        let parts = cost["groupedCosts"][grouping].as_array().expect(grouping);
        let sum: f64 = parts
            .iter()
            .flat_map(|p| p["aggregation"].as_array().expect("aggregation").iter())
            .map(|d| d["amount"].as_f64().expect("amount"))
            .sum();
        assert!(
            (sum - month).abs() < 31.0 * parts.len() as f64 * 1e-5,
            "{grouping}: {sum} vs {month}"
        );
    }

    // A service's entity: one grouped cost per pool it has a share of, plus its direct cost.
    let (status, cost) = get(
        &format!("{base}/entities/component/default/checkout-api/daily-cost?intervals=R2/P14D/2025-03-29"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{cost}");
    assert_eq!(cost["id"], "component:default/checkout-api");
    assert_eq!(cost["aggregation"].as_array().expect("days").len(), 28);
    let pools: Vec<&str> = cost["groupedCosts"]["pool"]
        .as_array()
        .expect("pools")
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    assert!(pools.contains(&"direct") && pools.len() > 1, "{pools:?}");
    assert!(cost["change"]["ratio"].is_number(), "{cost}");

    refused(
        &base,
        &[
            (
                "groups/nobody/daily-cost?intervals=R2/P30D/2025-04-01",
                404,
                "/api/v1/cost-insights/groups",
            ),
            (
                "groups/payments/daily-cost?intervals=2025-04-01",
                400,
                "R2/P30D",
            ),
            ("groups/payments/daily-cost", 400, "intervals"),
            (
                "entities/component/default/no-such-api/daily-cost?intervals=R2/P30D/2025-04-01",
                404,
                "no-such-api",
            ),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cost_insights_alerts_are_a_teams_detected_alerts() {
    let ts = crate::support::TestStore::new(crate::support::Kind::Sqlite).await;
    crate::alerts::seed(&ts.store, &["checkout-api"]).await;
    let rules = crate::support::rules(&[("alerts.toml", crate::alerts::RULES)]);
    assert_eq!(crate::alerts::check(&ts.store, &rules).await, 1);
    // A budget's alert is its team's action item too.
    let budget = costsplit::store::NewAlert {
        fingerprint: "budget|payments monthly|actual 80%|2025-03".into(),
        kind: costsplit::model::MessageKind::Budget,
        service: String::new(),
        team: "payments".into(),
        period: "2025-03".into(),
        channel: None,
        summary: "Budget `payments monthly` (team payments) for 2025-03: actual spend $2,900.00 passed 80% of the budget ($2,800.00) on 2025-03-24.".into(),
        payload: "{}".into(),
    };
    ts.store
        .enqueue_budget_alerts(
            &[budget],
            &[],
            &["2025-03".into()],
            costsplit::clock::Clock::System.stamp(),
        )
        .await
        .expect("enqueue");
    let dir = tempfile::tempdir().expect("tempdir");
    let served = serve(
        dir.path(),
        &ts.store_url(),
        &format!("127.0.0.1:{}", free_port()),
        &[],
    )
    .await;
    let (status, alerts) = get(
        &format!("{}/api/v1/cost-insights/groups/payments/alerts", served.url),
        None,
    )
    .await;
    assert_eq!(status, 200, "{alerts}");
    let alerts = alerts.as_array().expect("alerts");
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    // Newest first: the budget's, then the spike.
    assert_eq!(
        alerts[0]["subtitle"], "budget alert on team payments (2025-03); pending in Slack",
        "{alerts:?}"
    );
    assert!(
        alerts[1]["title"]
            .as_str()
            .expect("title")
            .contains("checkout-api"),
        "{alerts:?}"
    );
    assert!(
        alerts[1]["subtitle"]
            .as_str()
            .expect("subtitle")
            .contains("spike alert on checkout-api"),
        "{alerts:?}"
    );
    let (_, none) = get(
        &format!("{}/api/v1/cost-insights/groups/search/alerts", served.url),
        None,
    )
    .await;
    assert_eq!(none, serde_json::json!([]));
}

/// Every Cost Insights route on the demo's store answers JSON that validates against schemas
/// written from the plugin's types (checked by the `jsonschema` package in the test venv).
#[tokio::test(flavor = "multi_thread")]
async fn every_cost_insights_route_answers_the_plugins_types_on_the_demo_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = demo_store(dir.path());
    // A usage source's samples, so that a metric exists.
    {
        let s = costsplit::store::Store::connect(&store)
            .await
            .expect("store");
        for d in 1..=31u32 {
            let day = chrono::NaiveDate::from_ymd_opt(2025, 3, d).expect("day");
            let sample = |member: &str, service: &str, value: u32| costsplit::model::UsageSample {
                day,
                source: "orders-db-size".into(),
                member: member.into(),
                service: service.into(),
                value: value.to_string(),
                unit: "bytes".into(),
            };
            let samples = [
                sample("public.orders", "orders-api", 1000 + (d - 1) * 10),
                sample("public.carts", "checkout-api", 500),
            ];
            let run = costsplit::store::UsageRun {
                created_at: costsplit::model::Timestamp::parse("2025-04-01T00:00:00Z")
                    .expect("time"),
                day,
                source: "orders-db-size".into(),
                kind: "postgres".into(),
                status: costsplit::store::UsageStatus::Ok,
                samples: 2,
                message: String::new(),
            };
            s.record_usage(&run, &samples).await.expect("usage");
        }
        s.close().await;
    }
    let served = serve(
        dir.path(),
        &store,
        &format!("127.0.0.1:{}", free_port()),
        &[],
    )
    .await;
    let base = format!("{}/api/v1/cost-insights", served.url);
    let answers = dir.path().join("answers");
    std::fs::create_dir_all(&answers).expect("answers dir");
    let mut fetched = 0;
    let mut fetch = async |kind: &str, path: &str| -> serde_json::Value {
        let (status, body) = get(&format!("{base}/{path}"), None).await;
        assert_eq!(status, 200, "{path}: {body}");
        fetched += 1;
        std::fs::write(
            answers.join(format!("{kind}.{fetched}.json")),
            body.to_string(),
        )
        .expect("write");
        body
    };
    let date = fetch("LastCompleteBillingDate", "last-complete-billing-date").await;
    assert_eq!(date, "2025-03-31");
    let groups = fetch("Groups", "groups").await;
    let team = groups[0]["id"].as_str().expect("a team").to_string();
    let projects = fetch("Projects", &format!("groups/{team}/projects")).await;
    let service = projects[0]["id"].as_str().expect("a service").to_string();
    let iv = "intervals=R2/P30D/2025-04-01";
    fetch("Cost", &format!("groups/{team}/daily-cost?{iv}")).await;
    let project = fetch("Cost", &format!("projects/{service}/daily-cost?{iv}")).await;
    let entity = fetch(
        "Cost",
        &format!("entities/component/default/{service}/daily-cost?{iv}"),
    )
    .await;
    assert_eq!(project["aggregation"], entity["aggregation"]);
    // One grouped cost per pool (and `direct`), adding up to the service's cost day by day.
    let days = entity["aggregation"].as_array().expect("days");
    let pools = entity["groupedCosts"]["pool"].as_array().expect("pools");
    let names: Vec<&str> = pools
        .iter()
        .map(|p| p["id"].as_str().expect("id"))
        .collect();
    let mut unique = names.clone();
    unique.dedup();
    assert_eq!(names, unique, "one entry per pool");
    for (i, day) in days.iter().enumerate() {
        let parts: f64 = pools
            .iter()
            .map(|p| p["aggregation"][i]["amount"].as_f64().expect("amount"))
            .sum();
        let whole = day["amount"].as_f64().expect("amount");
        assert!(
            (parts - whole).abs() <= pools.len() as f64 * 1e-5,
            "{}: {parts} vs {whole}",
            day["date"]
        );
    }
    let products = fetch("Products", "products").await;
    let kinds: Vec<&str> = products
        .as_array()
        .expect("products")
        .iter()
        .map(|p| p["kind"].as_str().expect("kind"))
        .collect();
    // Provider services and shared pools, every one with a key app-config can name.
    assert!(
        kinds.contains(&"amazondynamodb") && kinds.contains(&"sharedaurora"),
        "{kinds:?}"
    );
    assert!(kinds.iter().all(|k| !k.is_empty()), "{kinds:?}");
    let insights = fetch(
        "Entity",
        "product-insights?product=sharedaurora&group=payments&intervals=R2/P1M/2025-04-01",
    )
    .await;
    assert_eq!(insights["id"], "sharedaurora");
    let parts = insights["entities"]["service"]
        .as_array()
        .expect("services");
    assert!(parts.len() >= 2, "{insights}");
    let march: f64 = parts
        .iter()
        .map(|p| p["aggregation"][1].as_f64().expect("amount"))
        .sum();
    let whole = insights["aggregation"][1].as_f64().expect("amount");
    assert!(
        whole > 0.0 && (march - whole).abs() <= parts.len() as f64 * 1e-5,
        "{insights}"
    );
    fetch(
        "Entity",
        &format!("product-insights?product=amazondynamodb&group={team}&intervals=R2/P1M/2025-04-01&project={service}"),
    )
    .await;
    let metric = fetch(
        "MetricData",
        &format!("metrics/orders-db-size/daily-data?{iv}"),
    )
    .await;
    assert_eq!(metric["aggregation"][0]["date"], "2025-03-01");
    assert_eq!(metric["aggregation"][0]["amount"], 1500.0);
    assert_eq!(metric["aggregation"].as_array().expect("days").len(), 31);
    fetch("Alerts", &format!("groups/{team}/alerts")).await;

    let python = std::env::var("COSTSPLIT_PYTHON")
        .unwrap_or_else(|_| format!("{}/.venv/bin/python", env!("CARGO_MANIFEST_DIR")));
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/cost-insights");
    let out = std::process::Command::new(&python)
        .arg(data.join("validate.py"))
        .arg(data.join("schema.json"))
        .arg(&answers)
        .output()
        .unwrap_or_else(|e| panic!("{python}: {e}; run the tests with scripts/test, which installs jsonschema into the test venv (or set COSTSPLIT_PYTHON)"));
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("checked {fetched} answers, 0 errors")),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Unknown names and bad input: a 404 or 400 that says what to do.
    refused(
        &base,
        &[
            (
                "projects/no-such-service/daily-cost?intervals=R2/P30D/2025-04-01",
                404,
                "/projects",
            ),
            (
                "product-insights?product=nothing&group=x&intervals=R2/P1M/2025-04-01",
                404,
                "/products",
            ),
            (
                "product-insights?group=x&intervals=R2/P1M/2025-04-01",
                400,
                "`product`",
            ),
            (
                "metrics/nothing/daily-data?intervals=R2/P30D/2025-04-01",
                404,
                "orders-db-size",
            ),
            (
                "metrics/orders-db-size/daily-data?intervals=R2",
                400,
                "R2/P30D",
            ),
        ],
    )
    .await;
}

/// Answers kept by the API's cache follow the store: an import and allocate while serving
/// changes what the next request gets.
#[tokio::test(flavor = "multi_thread")]
async fn kept_answers_follow_a_new_import() {
    let (dir, store, served) = filled_and_served(&[]).await;
    let paths = [
        "/allocation/compute?window=2025-03-01T00:00:00Z,2025-03-08T00:00:00Z&aggregate=team",
        "/api/v1/cost-insights/groups/payments/daily-cost?intervals=R1/P31D/2025-04-01",
    ];
    let mut before = Vec::new();
    for path in paths {
        let (status, body) = get(&format!("{}{path}", served.url), None).await;
        assert_eq!(status, 200, "{body}");
        before.push(body);
    }
    let page = |url: String| async move {
        reqwest::get(url)
            .await
            .expect("page")
            .text()
            .await
            .expect("html")
    };
    let page_before = page(format!("{}/?month=2025-03", served.url)).await;
    let month = dir.path().join("other.csv");
    for args in [
        vec![
            "generate",
            "--rows",
            "20000",
            "--seed",
            "9",
            "--out",
            month.to_str().expect("utf-8"),
        ],
        vec!["import", "--allocate", month.to_str().expect("utf-8")],
    ] {
        let out = costsplit(dir.path())
            .store(&store)
            .rules(&repo_rules())
            .run(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for (path, old) in paths.iter().zip(&before) {
        let (status, body) = get(&format!("{}{path}", served.url), None).await;
        assert_eq!(status, 200, "{body}");
        assert_ne!(&body, old, "{path} still answers the old data");
    }
    assert_ne!(
        page(format!("{}/?month=2025-03", served.url)).await,
        page_before
    );
}
