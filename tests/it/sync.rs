//! `costsplit sync billing` as a user runs it: the real binary and the real AWS SDK, pointed
//! at moto's server (Cost Explorer, STS) or, for throttling and 5xx, at a wiremock server.

use std::path::Path;
use std::process::Output;

use costsplit::model::Fact;
use costsplit::store::{Store, SyncRun};
use serde_json::{json, Value};
use wiremock::matchers::{header, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{costsplit, day, picos, Moto};

const ACCOUNT: &str = "123456789012";
const SECRET: &str = "s3cr3t-access-key-never-logged";

const RULES: &str = r#"
[settings]
service_tag_keys = ["service"]

[[service]]
name = "web"
team = "shop"

[[service]]
name = "api"
team = "shop"

[[pool]]
name = "shared-rds"
method = "equal"
members = ["web", "api"]
match = { provider_service = "Amazon Relational Database Service" }
"#;

/// A working directory with rules, a SQLite store and a costsplit.toml whose [aws] section
/// is `aws` (the accounts and the endpoint).
struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(aws: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
        std::fs::write(dir.path().join("rules/rules.toml"), RULES).expect("rules");
        std::fs::write(
            dir.path().join("costsplit.toml"),
            format!("store_url = \"sqlite://costsplit.db\"\nrules_dir = \"rules\"\n\n{aws}"),
        )
        .expect("config");
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn run(&self, args: &[&str]) -> Output {
        costsplit(self.path())
            .aws(SECRET)
            .env("COSTSPLIT_LOG", "info")
            .run(args)
    }

    fn sync(&self, from: &str, to: &str) -> Output {
        self.run(&["sync", "billing", "--from", from, "--to", to])
    }

    fn store_url(&self) -> String {
        format!("sqlite://{}", self.path().join("costsplit.db").display())
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        text(&out.stdout),
        text(&out.stderr)
    )
}

fn aws_config(endpoint: &str, extra: &str) -> String {
    format!(
        "[aws]\nendpoint_url = \"{endpoint}\"\ninitial_backoff_ms = 5\n{extra}\n[[aws.accounts]]\nid = \"{ACCOUNT}\"\n"
    )
}

fn money(amount: &str) -> Value {
    json!({ "Amount": amount, "Unit": "USD" })
}

fn group(tag: &str, service: &str, amortized: &str, unblended: &str) -> Value {
    json!({
        "Keys": [format!("service${tag}"), service],
        "Metrics": { "AmortizedCost": money(amortized), "UnblendedCost": money(unblended) }
    })
}

fn result_day(day: &str, estimated: bool, groups: Vec<Value>) -> Value {
    let next = crate::support::day(day) + chrono::Days::new(1);
    json!({
        "TimePeriod": { "Start": day, "End": next.to_string() },
        "Total": {},
        "Groups": groups,
        "Estimated": estimated
    })
}

const EC2: &str = "Amazon Elastic Compute Cloud - Compute";
const RDS: &str = "Amazon Relational Database Service";

/// Two pages: 1 and 2 November, then an estimated 3 November.
pub fn three_days() -> Value {
    json!([
        {
            "ResultsByTime": [
                result_day("2026-11-01", false, vec![
                    group("web", EC2, "10.005", "11"),
                    group("api", EC2, "5.5", "5.5"),
                    group("", RDS, "3.00", "3.00"),
                    group("", "AWS Lambda", "0.333333333333", "0.333333333333"),
                ]),
                result_day("2026-11-02", false, vec![
                    group("web", EC2, "12", "12"),
                    group("", RDS, "3.01", "3.01"),
                ]),
            ],
            "NextPageToken": "page-2",
            "GroupDefinitions": [],
            "DimensionValueAttributes": []
        },
        {
            "ResultsByTime": [
                result_day("2026-11-03", true, vec![
                    group("web", EC2, "20", "20"),
                    group("", RDS, "1.00", "1.00"),
                    group("api", "Tax", "0.70", "0.70"),
                ]),
            ],
            "GroupDefinitions": [],
            "DimensionValueAttributes": []
        }
    ])
}

/// `service -> total nanos` from `report --format json`.
fn report(ws: &Workspace) -> (Value, Vec<(String, i64)>) {
    let out = ws.run(&[
        "report",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", show(&out));
    let value: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let services = value["services"]
        .as_array()
        .expect("services")
        .iter()
        .map(|s| {
            (
                s["service"].as_str().expect("name").to_string(),
                s["total"]["nanos"].as_i64().expect("nanos"),
            )
        })
        .collect();
    (value, services)
}

fn allocate(ws: &Workspace) {
    let out = ws.run(&["allocate", "--from", "2026-11-01", "--to", "2026-11-03"]);
    assert!(out.status.success(), "{}", show(&out));
}

/// What the store holds after the binary ran: the facts of `from..=to` and the sync runs
/// (newest first).
async fn stored(ws: &Workspace, from: &str, to: &str) -> (Vec<Fact>, Vec<SyncRun>) {
    let store = Store::connect(&ws.store_url()).await.expect("store opens");
    let facts = store.facts(day(from), day(to)).await.expect("facts");
    let runs = store.sync_runs(10).await.expect("runs");
    store.close().await;
    (facts, runs)
}

#[tokio::test]
async fn sync_allocate_report_matches_the_seeded_cost_explorer_data() {
    let moto = Moto::start().await;
    moto.seed_cost_and_usage(ACCOUNT, three_days()).await;
    let ws = Workspace::new(&aws_config(&moto.url, ""));

    let out = ws.sync("2026-11-01", "2026-11-03");
    assert!(out.status.success(), "{}", show(&out));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("2 Cost Explorer call(s) this run ($0.02)"),
        "{stdout}"
    );
    assert!(stdout.contains("1 estimated day(s)"), "{stdout}");
    let all = format!("{stdout}{}", text(&out.stderr));
    assert!(!all.contains(SECRET), "the secret key leaked: {all}");

    // The facts, not the calls: the untagged RDS and Lambda cost is there, untagged.
    let (facts, runs) = stored(&ws, "2026-11-01", "2026-11-03").await;
    assert_eq!(facts.len(), 9);
    assert!(facts.iter().all(|f| f.billing_account == ACCOUNT));
    let untagged: Vec<_> = facts.iter().filter(|f| f.tags.is_empty()).collect();
    assert_eq!(untagged.len(), 4);
    assert!(facts
        .iter()
        .all(|f| f.estimated == (f.day == day("2026-11-03"))));
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].calls, 2);
    assert_eq!(runs[0].cost.0, 20_000_000);

    allocate(&ws);
    let (value, totals) = report(&ws);
    // web: 10.005 + 12 + 20 direct, half of 3.00 + 3.01 + 1.00 RDS; api: 5.5 + 0.70 direct,
    // the other half; the untagged Lambda line is unallocated (rounded once, to the nano).
    assert_eq!(
        totals,
        vec![
            ("web".to_string(), 45_510_000_000),
            ("api".to_string(), 9_705_000_000),
            ("unallocated".to_string(), 333_333_333),
        ]
    );
    assert_eq!(value["reconciled"], json!(true));
    assert_eq!(value["estimated_days"], json!(["2026-11-03"]));
    let table = ws.run(&["report", "--from", "2026-11-01", "--to", "2026-11-03"]);
    assert!(
        text(&table.stdout).contains("estimated: 1 day(s) between 2026-11-03 and 2026-11-03"),
        "{}",
        show(&table)
    );

    // The same window again (moto answers the same request the same way): totals unchanged.
    let out = ws.sync("2026-11-01", "2026-11-03");
    assert!(out.status.success(), "{}", show(&out));
    allocate(&ws);
    assert_eq!(report(&ws).1, totals);

    // AWS restates 3 November (no longer estimated, web 25 instead of 20). Only that day is
    // fetched again; its facts are replaced, the other days are kept, allocations follow.
    moto.reset().await;
    moto.seed_cost_and_usage(
        ACCOUNT,
        json!([{
            "ResultsByTime": [result_day("2026-11-03", false, vec![
                group("web", EC2, "25", "25"),
                group("", RDS, "1.00", "1.00"),
                group("api", "Tax", "0.70", "0.70"),
            ])],
            "GroupDefinitions": [],
            "DimensionValueAttributes": []
        }]),
    )
    .await;
    let out = ws.sync("2026-11-03", "2026-11-03");
    assert!(out.status.success(), "{}", show(&out));
    allocate(&ws);
    let (value, totals) = report(&ws);
    assert_eq!(totals[0], ("web".to_string(), 50_510_000_000));
    assert_eq!(value["estimated_days"], json!([]));

    let out = ws.run(&["sync", "runs"]);
    assert!(out.status.success(), "{}", show(&out));
    let listing = text(&out.stdout);
    assert_eq!(
        listing.lines().filter(|l| l.contains(" ok ")).count(),
        3,
        "{listing}"
    );
}

#[tokio::test]
async fn the_call_cap_stops_the_run_and_commits_nothing() {
    let moto = Moto::start().await;
    moto.seed_cost_and_usage(ACCOUNT, three_days()).await;
    let ws = Workspace::new(&aws_config(&moto.url, "max_calls_per_run = 1"));

    let out = ws.sync("2026-11-01", "2026-11-03");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("max_calls_per_run = 1"), "{stderr}");
    assert!(
        stderr.contains("days 2026-11-01..2026-11-03 were not synced"),
        "{stderr}"
    );
    let (facts, runs) = stored(&ws, "2026-11-01", "2026-11-03").await;
    assert!(facts.is_empty());
    assert_eq!(runs[0].status.as_str(), "capped");
    assert_eq!(runs[0].calls, 1);
}

#[tokio::test]
async fn accounts_sync_one_after_another_with_an_assumed_role() {
    let moto = Moto::start().await;
    let member = "222233334444";
    let one_day = |tag: &str, amount: &str| {
        json!([{
            "ResultsByTime": [result_day("2026-11-01", false, vec![group(tag, EC2, amount, amount)])],
            "GroupDefinitions": [],
            "DimensionValueAttributes": []
        }])
    };
    moto.seed_cost_and_usage(ACCOUNT, one_day("web", "1.25"))
        .await;
    moto.seed_cost_and_usage(member, one_day("api", "2.50"))
        .await;
    let ws = Workspace::new(&format!(
        "{}\n[[aws.accounts]]\nid = \"{member}\"\nrole_arn = \"arn:aws:iam::{member}:role/costsplit-read\"\n",
        aws_config(&moto.url, "")
    ));

    let out = ws.sync("2026-11-01", "2026-11-01");
    assert!(out.status.success(), "{}", show(&out));
    let (facts, _) = stored(&ws, "2026-11-01", "2026-11-01").await;
    let seen: Vec<(String, String, i128)> = facts
        .iter()
        .map(|f| {
            (
                f.billing_account.to_string(),
                f.tags.get("service").cloned().unwrap_or_default(),
                f.effective.0,
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (ACCOUNT.to_string(), "web".to_string(), 1_250_000_000),
            (member.to_string(), "api".to_string(), 2_500_000_000),
        ]
    );
}

fn ce_page() -> Value {
    json!({
        "ResultsByTime": [result_day("2026-11-01", false, vec![group("web", EC2, "4.2", "4.2")])],
        "GroupDefinitions": [],
        "DimensionValueAttributes": []
    })
}

fn throttled() -> ResponseTemplate {
    ResponseTemplate::new(400)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_string(
            json!({"__type": "LimitExceededException", "message": "Rate exceeded"}).to_string(),
        )
}

fn ok_page() -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("content-type", "application/x-amz-json-1.1")
        .set_body_string(ce_page().to_string())
}

async fn cost_explorer_stand_in() -> MockServer {
    MockServer::start().await
}

fn ce_request() -> wiremock::MockBuilder {
    Mock::given(method("POST")).and(header(
        "x-amz-target",
        "AWSInsightsIndexService.GetCostAndUsage",
    ))
}

#[tokio::test]
async fn throttling_and_5xx_are_retried_with_backoff() {
    let server = cost_explorer_stand_in().await;
    ce_request()
        .respond_with(throttled())
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&server)
        .await;
    ce_request()
        .respond_with(ResponseTemplate::new(503).set_body_string("Service Unavailable"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    ce_request()
        .respond_with(ok_page())
        .with_priority(3)
        .mount(&server)
        .await;
    let ws = Workspace::new(&aws_config(&server.uri(), "max_attempts = 5"));

    let out = ws.sync("2026-11-01", "2026-11-01");
    assert!(out.status.success(), "{}", show(&out));
    let requests = server.received_requests().await.expect("recorded");
    assert_eq!(requests.len(), 4, "two throttled, one 503, then the page");
    let (facts, _) = stored(&ws, "2026-11-01", "2026-11-01").await;
    assert_eq!(facts.len(), 1);
    assert_eq!(facts[0].effective.0, 4_200_000_000);
}

#[tokio::test]
async fn a_sync_that_gives_up_keeps_what_was_stored_and_names_the_missing_days() {
    let server = cost_explorer_stand_in().await;
    ce_request()
        .respond_with(ok_page())
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let ws = Workspace::new(&aws_config(&server.uri(), "max_attempts = 3"));
    let out = ws.sync("2026-11-01", "2026-11-01");
    assert!(out.status.success(), "{}", show(&out));

    server.reset().await;
    ce_request().respond_with(throttled()).mount(&server).await;
    let out = ws.sync("2026-11-01", "2026-11-01");
    assert_eq!(out.status.code(), Some(1), "{}", show(&out));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("LimitExceededException"), "{stderr}");
    assert!(
        stderr.contains("days 2026-11-01..2026-11-01 were not synced"),
        "{stderr}"
    );
    assert_eq!(
        server.received_requests().await.expect("recorded").len(),
        3,
        "max_attempts bounds the retries"
    );
    let (facts, runs) = stored(&ws, "2026-11-01", "2026-11-01").await;
    assert_eq!(facts.len(), 1, "the earlier sync's facts are untouched");
    assert_eq!(facts[0].effective.0, 4_200_000_000);
    assert_eq!(runs[0].status.as_str(), "failed");
}

#[test]
fn a_missing_aws_section_says_what_to_add() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = costsplit(dir.path()).run(&["sync", "billing"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("[[aws.accounts]]"),
        "{}",
        show(&out)
    );
}

/// A real Cost Explorer answer (tests/data/thirdparty/cloudtoolbox-ce-daily-service: DAILY,
/// grouped by SERVICE, 86 days, 945 groups, April still estimated, Tax on the 1st of each
/// month), replayed through moto. The account has no commitments, so the answer carries only
/// `UnblendedCost`; its `AmortizedCost` is that same amount (copied here, as Cost Explorer
/// would answer for such an account). Amounts carry up to 10 decimals: each day's total is
/// rounded to nano-units once, so it is within half a nano-unit of the exact sum of the
/// answer's text, and the whole within a nano-unit per day of PROVENANCE.md's figures.
#[tokio::test]
async fn a_real_daily_cost_explorer_answer_is_stored_within_a_nano_per_day() {
    let text = std::fs::read_to_string(crate::support::data(
        "thirdparty/cloudtoolbox-ce-daily-service/CostData.response.json",
    ))
    .expect("the answer");
    let mut answer: Value = serde_json::from_str(&text).expect("JSON");
    // The exact total of each day, in 1e-12 units, from the answer's own text.
    let mut exact: std::collections::BTreeMap<chrono::NaiveDate, i128> = Default::default();
    for result in answer["ResultsByTime"].as_array_mut().expect("results") {
        let start = day(result["TimePeriod"]["Start"].as_str().expect("start"));
        for group in result["Groups"].as_array_mut().expect("groups") {
            let unblended = group["Metrics"]["UnblendedCost"].clone();
            *exact.entry(start).or_default() +=
                picos(unblended["Amount"].as_str().expect("amount"));
            group["Metrics"]["AmortizedCost"] = unblended;
        }
    }
    let moto = Moto::start().await;
    moto.seed_cost_and_usage(ACCOUNT, json!([answer])).await;
    let ws = Workspace::new(&aws_config(
        &moto.url,
        "group_by = [\"DIMENSION:SERVICE\"]\nmax_calls_per_run = 1",
    ));
    let out = ws.sync("2024-02-01", "2024-04-26");
    assert!(out.status.success(), "{}", show(&out));
    let (facts, runs) = stored(&ws, "2024-02-01", "2024-04-26").await;
    assert_eq!(runs[0].calls, 1, "one request: {runs:?}");
    assert_eq!(exact.len(), 86);
    for (d, exact) in &exact {
        let stored: i128 = facts
            .iter()
            .filter(|f| f.day == *d)
            .map(|f| f.billed.0)
            .sum();
        let off = (stored * 1000 - exact).abs();
        assert!(
            off <= 500,
            "{d}: stored {stored} nano-units, exact {exact} picos"
        );
    }
    let total = |from: &str, to: &str| -> i128 {
        facts
            .iter()
            .filter(|f| f.day >= day(from) && f.day <= day(to))
            .map(|f| f.billed.0 * 1000)
            .sum()
    };
    for (from, to, figure, days) in [
        ("2024-02-01", "2024-04-26", "67.2540521894", 86),
        ("2024-02-01", "2024-02-29", "16.4910808573", 29),
        ("2024-03-01", "2024-03-31", "4.9254159439", 31),
        ("2024-04-01", "2024-04-26", "45.8375553882", 26),
    ] {
        let off = (total(from, to) - picos(figure)).abs();
        assert!(
            off <= days * 500,
            "{from}..{to}: {} picos from {figure}",
            off
        );
    }
    let estimated: std::collections::BTreeSet<_> = facts
        .iter()
        .filter(|f| f.estimated)
        .map(|f| f.day)
        .collect();
    assert_eq!(estimated.len(), 26, "every April day is estimated");
    let tax: Vec<(chrono::NaiveDate, i128)> = facts
        .iter()
        .filter(|f| f.charge_category == "Tax")
        .map(|f| (f.day, f.billed.0))
        .collect();
    assert_eq!(
        tax,
        [
            (day("2024-02-01"), 3_300_000_000),
            (day("2024-03-01"), 990_000_000),
            (day("2024-04-01"), 9_170_000_000)
        ]
    );
    assert!(facts
        .iter()
        .all(|f| f.tags.is_empty() && f.billing_account == ACCOUNT));
}

/// The two real MONTHLY answers in tests/data/thirdparty (a full cloudscape response by
/// SERVICE, and the AWS CLI documentation's SERVICE + TAG example), replayed through moto as if
/// Cost Explorer had answered costsplit's DAILY request with them: refused by name, nothing
/// stored, instead of a month's cost landing on one day.
#[tokio::test]
async fn a_monthly_cost_explorer_answer_is_refused_not_stored_as_a_day() {
    for (file, window, group_by) in [
        (
            "thirdparty/cloudscape-ce-monthly-service/popover-drilldown-sample-data.json",
            ("2023-04-01", "2023-09-30"),
            "group_by = [\"DIMENSION:SERVICE\"]",
        ),
        (
            "thirdparty/awscli-ce-example/get-cost-and-usage.output.json",
            ("2017-09-01", "2017-09-30"),
            "group_by = [\"DIMENSION:SERVICE\", \"TAG:Environment\"]",
        ),
    ] {
        let text = std::fs::read_to_string(crate::support::data(file)).expect("the answer");
        let mut answer: Value = serde_json::from_str(&text).expect("JSON");
        for result in answer["ResultsByTime"].as_array_mut().expect("results") {
            for group in result["Groups"].as_array_mut().expect("groups") {
                let unblended = group["Metrics"]["UnblendedCost"].clone();
                group["Metrics"]["AmortizedCost"] = unblended;
            }
        }
        let moto = Moto::start().await;
        moto.seed_cost_and_usage(ACCOUNT, json!([answer])).await;
        let ws = Workspace::new(&aws_config(&moto.url, group_by));
        let out = ws.sync(window.0, window.1);
        let all = show(&out);
        assert_eq!(out.status.code(), Some(1), "{file}: {all}");
        assert!(
            all.contains("not one day; costsplit asks for DAILY granularity"),
            "{file}: {all}"
        );
        let (facts, _) = stored(&ws, window.0, window.1).await;
        assert!(facts.is_empty(), "{file}: nothing stored");
    }
}

/// moto answers its seeded results whatever the request asks, so the request itself is read
/// here, through a recording proxy in front of moto: daily granularity, the window with its
/// exclusive end, both metrics, the service tag and the service dimension, and every page
/// asked with the token of the one before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cost_explorer_request_asks_for_the_window_metrics_and_groups() {
    let moto = Moto::start().await;
    moto.seed_cost_and_usage(ACCOUNT, three_days()).await;
    let proxy = crate::support::RecordingProxy::start(&moto.url).await;
    let ws = Workspace::new(&aws_config(&proxy.url, ""));
    let out = ws.sync("2026-11-01", "2026-11-03");
    assert!(out.status.success(), "{}", show(&out));
    let requests = proxy.bodies("GetCostAndUsage");
    assert_eq!(requests.len(), 2, "two pages: {requests:#?}");
    for (i, body) in requests.iter().enumerate() {
        assert_eq!(body["Granularity"], "DAILY", "{body}");
        assert_eq!(
            body["TimePeriod"],
            json!({"Start": "2026-11-01", "End": "2026-11-04"}),
            "the end is exclusive: {body}"
        );
        let metrics: Vec<&str> = body["Metrics"]
            .as_array()
            .expect("metrics")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(metrics, ["AmortizedCost", "UnblendedCost"], "{body}");
        assert_eq!(
            body["GroupBy"],
            json!([{"Type": "TAG", "Key": "service"}, {"Type": "DIMENSION", "Key": "SERVICE"}]),
            "{body}"
        );
        if i == 0 {
            assert!(body.get("NextPageToken").is_none(), "{body}");
        } else {
            assert_eq!(body["NextPageToken"], "page-2", "{body}");
        }
    }
}
