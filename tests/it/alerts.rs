//! Alerts end to end: detection into the outbox, delivery to a real local HTTP server
//! standing in for Slack (wiremock), retries, permanent failures, restarts, and secrets.

use std::time::Duration;

use costsplit::jobs;
use costsplit::model::{Allocation, CostBasis, Method};
use costsplit::money::Nanos;
use costsplit::notify::{self, Secret, SlackSettings};
use costsplit::rules::Rules;
use costsplit::store::{RunRecord, Store};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::slack_standin::SlackStandIn;
use crate::support::{day, rules, Kind, TestStore, BOTH, NOW};

const D: i128 = costsplit::money::NANOS_PER_UNIT;

pub(crate) const RULES: &str = r##"
[[service]]
name = "checkout-api"
team = "payments"
slack_channel = "#payments-cost"
[[service]]
name = "search-api"
team = "search"
[[service]]
name = "auth-api"
team = "identity"
[alerts]
dashboard_url = "https://grafana.example.com/d/costs?var-service={service}"
"##;

/// Stores 21 days of allocations from 2025-03-01: flat with noise, then the services in
/// `jumps` triple on the last day.
pub(crate) async fn seed(store: &Store, jumps: &[&str]) {
    let mut allocations = Vec::new();
    for d in 0..21 {
        for (i, service) in ["checkout-api", "search-api", "auth-api"]
            .iter()
            .enumerate()
        {
            let noise = [0, 7, -5, 3, -8, 4, -2][(d + i) % 7];
            let dollars = if d == 20 && jumps.contains(service) {
                3000
            } else {
                1000 + noise
            };
            allocations.push(Allocation {
                day: day("2025-03-01") + chrono::Duration::days(d as i64),
                service: service.to_string(),
                team: String::new(),
                cost_center: String::new(),
                pool: String::new(),
                provider_service: "Amazon Elastic Compute Cloud".into(),
                method: Method::Direct,
                fallback_used: false,
                ratio_ppb: 1_000_000_000,
                amount: Nanos(i128::from(dollars) * D),
                currency: "USD".into(),
                basis: String::new(),
            });
        }
    }
    let run = RunRecord {
        created_at: NOW.stamp(),
        from: day("2025-03-01"),
        to: day("2025-03-21"),
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

/// One delivery run, now, with no shutdown, as `costsplit notify` runs it.
async fn deliver(
    store: &Store,
    settings: &SlackSettings,
) -> anyhow::Result<costsplit::jobs::DeliverySummary> {
    costsplit::jobs::deliver_alerts(
        store,
        settings,
        costsplit::clock::Clock::System,
        &costsplit::clock::Shutdown::never(),
    )
    .await
}

/// Delivery settings against `server`, with a default webhook and a bot token as asked.
pub(crate) fn settings(server: &MockServer, webhook: bool, bot: bool) -> SlackSettings {
    SlackSettings {
        api_url: server.uri(),
        default_webhook: webhook
            .then(|| Secret::new(format!("{}/services/T000/B000/secret", server.uri()))),
        team_webhooks: Default::default(),
        team_destinations: Default::default(),
        bot_token: bot.then(|| Secret::new("xoxb-test-token")),
        dashboard_url: None,
        max_attempts: 3,
        claim_lease: costsplit::notify::CLAIM_LEASE,
        base_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        feedback_buttons: false,
    }
}

pub(crate) async fn check(store: &Store, rules: &Rules) -> usize {
    let detected = jobs::detect_alerts(store, rules, Some(day("2025-03-21")), None)
        .await
        .expect("check");
    let result = jobs::enqueue_alerts(store, rules, &detected, NOW)
        .await
        .expect("enqueue");
    let alerts = detected.alerts;
    assert_eq!(
        result.inserted + result.already_known,
        alerts.len(),
        "every detected alert is in the outbox, new or already known"
    );
    alerts.len()
}

/// A webhook that answers `429` with `Retry-After: retry_after` once, then as Slack does.
async fn rate_limited_once(retry_after: &str) -> MockServer {
    fails_once(ResponseTemplate::new(429).insert_header("Retry-After", retry_after)).await
}

/// A webhook that answers `first` once, then as Slack does.
async fn fails_once(first: ResponseTemplate) -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(first)
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(SlackStandIn::webhook())
        .mount(&server)
        .await;
    server
}

async fn received_bodies(server: &MockServer) -> Vec<serde_json::Value> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).expect("JSON body"))
        .collect()
}

async fn a_jump_is_posted_once_and_a_second_check_posts_nothing(kind: Kind) {
    let t = TestStore::new(kind).await;
    let rules = rules(&[("r.toml", RULES)]);
    seed(&t.store, &["search-api"]).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/secret"))
        .respond_with(SlackStandIn::webhook())
        .mount(&server)
        .await;
    let s = settings(&server, true, false);
    assert_eq!(check(&t.store, &rules).await, 1);
    let summary = deliver(&t.store, &s).await.expect("deliver");
    assert_eq!((summary.sent, summary.still_pending), (1, 0));
    // Again: the same anomaly is already in the outbox, so nothing new is sent.
    assert_eq!(check(&t.store, &rules).await, 1);
    deliver(&t.store, &s).await.expect("deliver");
    let bodies = received_bodies(&server).await;
    assert_eq!(bodies.len(), 1, "{kind:?}: delivered exactly once");
    let body = &bodies[0];
    let header = body["blocks"][0]["text"]["text"].as_str().expect("header");
    assert!(header.starts_with("Cost spike: search-api +$"), "{header}");
    assert!(
        body["text"]
            .as_str()
            .expect("fallback")
            .contains("search-api on 2025-03-21 (team search)"),
        "{body}"
    );
    let fields = body["blocks"][1]["fields"].to_string();
    assert!(
        fields.contains("$3,000.00") && fields.contains("2025-03-21"),
        "{fields}"
    );
    assert!(body["blocks"].as_array().expect("blocks").len() <= 50);
}

#[tokio::test]
async fn a_jump_is_posted_once_and_a_second_check_posts_nothing_on_both_stores() {
    for kind in BOTH {
        a_jump_is_posted_once_and_a_second_check_posts_nothing(kind).await;
    }
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_honoured_then_delivered() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["search-api"]).await;
    check(&t.store, &rules(&[("r.toml", RULES)])).await;
    let server = rate_limited_once("1").await;
    let started = std::time::Instant::now();
    let summary = deliver(&t.store, &settings(&server, true, false))
        .await
        .expect("deliver");
    assert_eq!(summary.sent, 1);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    assert_eq!(received_bodies(&server).await.len(), 2);
}

/// Shutdown during a long `Retry-After` wait ends the delivery at once: the alert stays
/// pending (its claim released, its attempt counted) and goes out on the next run.
#[tokio::test]
async fn shutdown_during_a_retry_after_wait_leaves_the_alert_pending() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["search-api"]).await;
    check(&t.store, &rules(&[("r.toml", RULES)])).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let (trigger, shutdown) = costsplit::clock::Shutdown::channel();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.trigger();
    });
    let started = std::time::Instant::now();
    let summary = costsplit::jobs::deliver_alerts(
        &t.store,
        &settings(&server, true, false),
        costsplit::clock::Clock::System,
        &shutdown,
    )
    .await
    .expect("deliver");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "did not wait 120 s"
    );
    assert_eq!(summary.sent, 0);
    assert!(
        summary
            .stopped
            .as_deref()
            .is_some_and(|s| s.starts_with("shutting down")),
        "{summary:?}"
    );
    let pending = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Pending))
        .await
        .expect("list");
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].attempts, 1);
    assert_eq!(received_bodies(&server).await.len(), 1);
}

#[tokio::test]
async fn a_server_error_is_retried_and_then_delivered() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["search-api"]).await;
    check(&t.store, &rules(&[("r.toml", RULES)])).await;
    let server = fails_once(ResponseTemplate::new(500).set_body_string("oops")).await;
    let summary = deliver(&t.store, &settings(&server, true, false))
        .await
        .expect("deliver");
    assert_eq!(summary.sent, 1);
    let sent = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Sent))
        .await
        .expect("list");
    assert_eq!(sent[0].attempts, 2);
}

#[tokio::test]
async fn channel_not_found_is_permanent_and_recorded() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["checkout-api"]).await;
    check(&t.store, &rules(&[("r.toml", RULES)])).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": false, "error": "channel_not_found"})),
        )
        .mount(&server)
        .await;
    let s = settings(&server, false, true);
    let summary = deliver(&t.store, &s).await.expect("deliver");
    assert_eq!((summary.sent, summary.failed), (0, 1));
    let failed = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Failed))
        .await
        .expect("list");
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("chat.postMessage: channel_not_found")
    );
    deliver(&t.store, &s).await.expect("deliver again");
    let requests = server.received_requests().await.unwrap_or_default();
    assert_eq!(requests.len(), 1, "a permanent failure is not retried");
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).expect("json");
    assert_eq!(body["channel"], "#payments-cost");
    let auth = requests[0]
        .headers
        .get("authorization")
        .and_then(|v| v.to_str().ok());
    assert_eq!(auth, Some("Bearer xoxb-test-token"));
}

/// The regression from issue 10: a `chat.postMessage` success echoes the whole message (kilobytes),
/// and reading only its first 200 characters recorded every delivered alert as failed.
async fn post_message_alerts_are_recorded_sent_once_despite_slacks_full_echo(kind: Kind) {
    let t = TestStore::new(kind).await;
    let rules = rules(&[("r.toml", RULES)]);
    seed(&t.store, &["checkout-api", "search-api"]).await;
    assert_eq!(check(&t.store, &rules).await, 2);
    let server = MockServer::start().await;
    let slack = SlackStandIn::new("xoxb-test-token", &["#payments-cost"]);
    Mock::given(method("POST"))
        .respond_with(slack.clone())
        .mount(&server)
        .await;
    // checkout-api has a channel (bot token); search-api has none (webhook).
    let s = settings(&server, true, true);
    let summary = deliver(&t.store, &s).await.expect("deliver");
    assert_eq!(
        (summary.sent, summary.failed),
        (2, 0),
        "{kind:?}: {summary:?}"
    );
    // Far past the 200 characters the notifier used to read before parsing.
    assert!(
        slack.largest_answer() > 1_000,
        "the echo is full-size: {} bytes",
        slack.largest_answer()
    );
    let sent = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Sent))
        .await
        .expect("list");
    assert_eq!(sent.len(), 2, "{kind:?}: {sent:?}");
    assert!(sent.iter().all(|a| a.attempts == 1), "{sent:?}");
    assert!(t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Failed))
        .await
        .expect("list")
        .is_empty());
    deliver(&t.store, &s).await.expect("deliver again");
    assert_eq!(received_bodies(&server).await.len(), 2, "each posted once");
}

#[tokio::test]
async fn post_message_alerts_are_recorded_sent_once_despite_slacks_full_echo_on_both_stores() {
    for kind in BOTH {
        post_message_alerts_are_recorded_sent_once_despite_slacks_full_echo(kind).await;
    }
}

#[tokio::test]
async fn post_message_ratelimited_is_retried_and_ok_false_is_failed_with_slacks_error() {
    let t = TestStore::new(Kind::Sqlite).await;
    // search-api posts to a channel the bot is not in.
    let with_channels = RULES.replace(
        "name = \"search-api\"\nteam = \"search\"",
        "name = \"search-api\"\nteam = \"search\"\nslack_channel = \"#archived\"",
    );
    let rules = rules(&[("r.toml", &with_channels)]);
    seed(&t.store, &["checkout-api", "search-api"]).await;
    assert_eq!(check(&t.store, &rules).await, 2);
    let server = MockServer::start().await;
    let slack = SlackStandIn::with_rate_limit("xoxb-test-token", &["#payments-cost"], 1);
    Mock::given(method("POST"))
        .respond_with(slack.clone())
        .mount(&server)
        .await;
    let started = std::time::Instant::now();
    let summary = deliver(&t.store, &settings(&server, false, true))
        .await
        .expect("deliver");
    assert_eq!((summary.sent, summary.failed), (1, 1), "{summary:?}");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "waited for Retry-After"
    );
    let sent = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Sent))
        .await
        .expect("list");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].service, "checkout-api");
    let failed = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Failed))
        .await
        .expect("list");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].service, "search-api");
    // Whichever alert met the rate limit was tried again: three calls for two alerts.
    assert_eq!(sent[0].attempts + failed[0].attempts, 3);
    // The stand-in answers as Slack does for an archived channel.
    assert_eq!(
        failed[0].last_error.as_deref(),
        Some("chat.postMessage: is_archived")
    );
    assert!(slack.largest_answer() > 1_000);
    assert_eq!(received_bodies(&server).await.len(), 3);
}

#[tokio::test]
async fn slack_down_keeps_alerts_pending_and_a_restarted_process_sends_them_in_order_once() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["search-api", "auth-api", "checkout-api"]).await;
    assert_eq!(check(&t.store, &rules(&[("r.toml", RULES)])).await, 3);
    // The first alert is delivered, then Slack goes down for the rest of the run.
    let up_then_down = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(SlackStandIn::webhook())
        .up_to_n_times(1)
        .mount(&up_then_down)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&up_then_down)
        .await;
    let summary = deliver(&t.store, &settings(&up_then_down, true, false))
        .await
        .expect("deliver");
    assert_eq!((summary.sent, summary.still_pending), (1, 2));
    assert!(summary.stopped.is_some());
    let pending = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Pending))
        .await
        .expect("list");
    assert!(
        pending[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("HTTP 503"),
        "{pending:?}"
    );

    // A new process (a new connection to the same store), with Slack back, after the backoff.
    let url = t.store_url();
    let restarted = Store::connect(&url).await.expect("reopen");
    let back = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(SlackStandIn::webhook())
        .mount(&back)
        .await;
    let later = costsplit::clock::Clock::Fixed(
        (chrono::Utc::now() + chrono::Duration::minutes(10)).timestamp(),
    );
    let summary = costsplit::jobs::deliver_alerts(
        &restarted,
        &settings(&back, true, false),
        later,
        &costsplit::clock::Shutdown::never(),
    )
    .await
    .expect("deliver");
    assert_eq!(summary.sent, 2);
    let first = received_bodies(&up_then_down).await;
    let rest = received_bodies(&back).await;
    let services = |bodies: &[serde_json::Value]| -> Vec<String> {
        bodies
            .iter()
            .filter_map(|b| {
                b["blocks"][1]["fields"][0]["text"]
                    .as_str()
                    .map(|s| s.replace("*Service*\n", ""))
            })
            .collect()
    };
    let delivered: Vec<String> = services(&first[..1])
        .into_iter()
        .chain(services(&rest))
        .collect();
    assert_eq!(
        delivered.len(),
        3,
        "each alert delivered once: {delivered:?}"
    );
    let mut unique = delivered.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 3);
    let outbox = restarted.list_alerts(None).await.expect("list");
    let order: Vec<String> = outbox.iter().map(|r| r.service.clone()).collect();
    assert_eq!(delivered, order, "delivered in the order detected");
}

#[tokio::test]
async fn a_restated_day_resolves_its_alert_instead_of_sending_it() {
    let t = TestStore::new(Kind::Sqlite).await;
    let rules = rules(&[("r.toml", RULES)]);
    seed(&t.store, &["search-api"]).await;
    assert_eq!(check(&t.store, &rules).await, 1);
    // The provider restates the day: the jump disappears.
    seed(&t.store, &[]).await;
    assert_eq!(check(&t.store, &rules).await, 0);
    let resolved = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Resolved))
        .await
        .expect("list");
    assert_eq!(resolved.len(), 1);
    assert!(t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Pending))
        .await
        .expect("pending")
        .is_empty());
}

#[test]
fn block_kit_stays_within_slack_limits() {
    let alert = costsplit::alert::Alert {
        kind: costsplit::alert::AlertKind::Spike,
        service: "x".repeat(400),
        team: "t".into(),
        currency: "USD".into(),
        anomaly_start: day("2025-03-01"),
        period: "2025-03-01".into(),
        amount: Nanos(3 * D),
        baseline: Nanos(D),
        change_bp: Some(20_000),
        drivers: (0..5)
            .map(|i| (format!("{}{i}", "y".repeat(900)), Nanos(D)))
            .collect(),
        estimated: true,
    };
    let message = notify::slack::message(&alert, Some("https://dash/{service}"));
    let blocks = message["blocks"].as_array().expect("blocks");
    assert!(blocks.len() <= 50);
    assert!(
        blocks[0]["text"]["text"]
            .as_str()
            .expect("header")
            .chars()
            .count()
            <= 150
    );
    fn texts<'a>(value: &'a serde_json::Value, out: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map {
                    match v.as_str() {
                        Some(text) if k == "text" => out.push(text),
                        _ => texts(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| texts(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    texts(&message, &mut all);
    assert!(all.len() > 5);
    for text in all {
        assert!(
            text.chars().count() <= 3000,
            "{} chars",
            text.chars().count()
        );
    }
    assert!(message["text"].as_str().expect("fallback").chars().count() <= 3000);
    assert!(message.to_string().contains("estimated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_the_process_logs_contains_the_webhook_url_or_the_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), RULES).expect("rules");
    let url = format!("sqlite://{}", dir.path().join("c.db").display());
    let store = Store::connect(&url).await.expect("store");
    seed(&store, &["search-api", "checkout-api"]).await;
    check(&store, &rules(&[("r.toml", RULES)])).await;
    store.close().await;

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/TSECRET/BSECRET/hooksecretvalue"))
        .respond_with(ResponseTemplate::new(500).set_body_string("boom"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/services/TSECRET/BSECRET/hooksecretvalue"))
        .respond_with(SlackStandIn::webhook())
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/chat.postMessage"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"ok": false, "error": "invalid_auth"})),
        )
        .mount(&server)
        .await;
    let webhook = format!("{}/services/TSECRET/BSECRET/hooksecretvalue", server.uri());
    let api = server.uri();
    let rules_dir = dir.path().to_path_buf();
    let run = move |args: &[&str]| {
        crate::support::costsplit(&rules_dir)
            .store(&url)
            .rules(&rules_dir)
            .env("COSTSPLIT_LOG", "trace")
            .env("COSTSPLIT_SLACK_WEBHOOK_URL", &webhook)
            .env("COSTSPLIT_SLACK_BOT_TOKEN", "xoxb-tokensecretvalue")
            .env("COSTSPLIT_SLACK_API_URL", &api)
            .run(args)
    };
    let outputs =
        tokio::task::spawn_blocking(move || vec![run(&["notify"]), run(&["alerts", "list"])])
            .await
            .expect("commands");
    let mut everything = String::new();
    for out in &outputs {
        everything.push_str(&String::from_utf8_lossy(&out.stdout));
        everything.push_str(&String::from_utf8_lossy(&out.stderr));
    }
    assert!(
        everything.contains("delivered 1 alert(s), 1 failed permanently"),
        "{everything}"
    );
    assert!(
        everything.contains("chat.postMessage: invalid_auth"),
        "{everything}"
    );
    for secret in ["hooksecretvalue", "TSECRET", "tokensecretvalue"] {
        assert!(
            !everything.contains(secret),
            "`{secret}` leaked into the output:\n{everything}"
        );
    }
    assert_eq!(received_bodies(&server).await.len(), 3);
}

/// Two `costsplit notify` started together (a scheduled run overlapping a person's): each
/// alert reaches Slack once. Slack answers slowly, so the two deliverers surely overlap.
async fn two_deliverers_at_once_send_each_alert_once(kind: Kind) {
    let t = TestStore::new(kind).await;
    seed(&t.store, &["search-api", "auth-api", "checkout-api"]).await;
    assert_eq!(check(&t.store, &rules(&[("r.toml", RULES)])).await, 3);
    let url = t.store_url();
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.toml"), RULES).expect("rules");
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_string("ok")
                .set_delay(Duration::from_millis(300)),
        )
        .mount(&server)
        .await;
    let webhook = format!("{}/services/T000/B000/secret", server.uri());
    let rules_dir = dir.path().to_path_buf();
    let outputs = tokio::task::spawn_blocking(move || {
        let children: Vec<_> = (0..2)
            .map(|_| {
                crate::support::costsplit(&rules_dir)
                    .store(&url)
                    .rules(&rules_dir)
                    .env("COSTSPLIT_SLACK_WEBHOOK_URL", &webhook)
                    .command(&["notify"])
                    .env_remove("COSTSPLIT_SLACK_BOT_TOKEN")
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .expect("starts")
            })
            .collect();
        children
            .into_iter()
            .map(|c| c.wait_with_output().expect("runs"))
            .collect::<Vec<_>>()
    })
    .await
    .expect("task");
    for out in &outputs {
        assert!(
            out.status.success(),
            "{kind:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut services: Vec<String> = received_bodies(&server)
        .await
        .iter()
        .filter_map(|b| {
            b["blocks"][1]["fields"][0]["text"]
                .as_str()
                .map(String::from)
        })
        .collect();
    services.sort();
    assert_eq!(
        services,
        [
            "*Service*\nauth-api",
            "*Service*\ncheckout-api",
            "*Service*\nsearch-api"
        ],
        "{kind:?}: each alert posted once"
    );
    let sent = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Sent))
        .await
        .expect("list");
    assert_eq!(sent.len(), 3, "{kind:?}");
    assert!(sent.iter().all(|a| a.attempts == 1), "{sent:?}");
    // They really ran at once: one met the other's claim and left the rest to it, or both
    // sent some (a deliverer that started after the other ended would send none, defer none).
    let stdout: Vec<String> = outputs
        .iter()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .collect();
    let delivered = |text: &str| -> usize {
        text.split_once("delivered ")
            .and_then(|(_, rest)| rest.split(' ').next())
            .and_then(|n| n.parse().ok())
            .expect("a delivered line")
    };
    let deferred = stdout
        .iter()
        .any(|t| t.contains("is being sent by another process"));
    assert!(
        deferred || stdout.iter().all(|t| delivered(t) > 0),
        "{kind:?}: the deliverers did not overlap: {stdout:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_deliverers_at_once_send_each_alert_once_on_both_stores() {
    for kind in BOTH {
        two_deliverers_at_once_send_each_alert_once(kind).await;
    }
}

/// A deliverer killed mid-send leaves its claim: nobody else sends that alert until the claim
/// expires, then the next deliverer does.
async fn a_dead_deliverers_claim_expires(kind: Kind) {
    let t = TestStore::new(kind).await;
    seed(&t.store, &["search-api"]).await;
    assert_eq!(check(&t.store, &rules(&[("r.toml", RULES)])).await, 1);
    let claimed = t
        .store
        .claim_next_alert(
            0,
            costsplit::model::Timestamp::parse("2026-01-01T00:00:00Z").expect("time"),
            costsplit::model::Timestamp::parse("2026-01-01T00:30:00Z").expect("time"),
        )
        .await
        .expect("claim")
        .expect("the pending alert");
    assert_eq!(claimed.service, "search-api");
    let while_claimed = t
        .store
        .claim_next_alert(
            0,
            costsplit::model::Timestamp::parse("2026-01-01T00:10:00Z").expect("time"),
            costsplit::model::Timestamp::parse("2026-01-01T00:40:00Z").expect("time"),
        )
        .await
        .expect("claim");
    assert_eq!(
        while_claimed, None,
        "{kind:?}: claimed alerts are not handed out twice"
    );
    let after_expiry = t
        .store
        .claim_next_alert(
            0,
            costsplit::model::Timestamp::parse("2026-01-01T00:31:00Z").expect("time"),
            costsplit::model::Timestamp::parse("2026-01-01T01:01:00Z").expect("time"),
        )
        .await
        .expect("claim");
    assert_eq!(after_expiry.map(|r| r.id), Some(claimed.id), "{kind:?}");
}

#[tokio::test]
async fn a_dead_deliverers_claim_expires_on_both_stores() {
    for kind in BOTH {
        a_dead_deliverers_claim_expires(kind).await;
    }
}

/// Two teams named in Hangul fold to one webhook variable (`COSTSPLIT_SLACK_WEBHOOK_URL___`):
/// `rules check` and delivery refuse until costsplit.toml routes each team by its exact name,
/// and then each team's alert reaches its own webhook and no other.
#[tokio::test]
async fn teams_whose_names_fold_to_one_variable_are_refused_until_routed() {
    use costsplit::notify::routes::{SlackConfig, TeamRoute};
    const KOREAN: &str = r##"
[[service]]
name = "checkout-api"
team = "결제"
[[service]]
name = "search-api"
team = "검색"
"##;
    let t = TestStore::new(Kind::Sqlite).await;
    let rules = rules(&[("r.toml", KOREAN)]);
    seed(&t.store, &["checkout-api", "search-api"]).await;
    assert_eq!(check(&t.store, &rules).await, 2);
    let server = MockServer::start().await;
    for hook in [
        "/services/T1/B1/shared",
        "/services/T1/B1/payments",
        "/services/T1/B1/search",
    ] {
        Mock::given(method("POST"))
            .and(path(hook))
            .respond_with(SlackStandIn::webhook())
            .mount(&server)
            .await;
    }
    let uri = server.uri();
    let env = move |k: &str| match k {
        "COSTSPLIT_SLACK_WEBHOOK_URL___" => Some(format!("{uri}/services/T1/B1/shared")),
        "SLACK_KR_PAYMENTS" => Some(format!("{uri}/services/T1/B1/payments")),
        "SLACK_KR_SEARCH" => Some(format!("{uri}/services/T1/B1/search")),
        _ => None,
    };
    let err = SlackSettings::for_rules(&env, &rules, &SlackConfig::default())
        .expect_err("two teams on one variable");
    let message = format!("{err:#}");
    assert!(
        message.contains("teams `검색` and `결제` would all read the webhook variable COSTSPLIT_SLACK_WEBHOOK_URL___"),
        "{message}"
    );
    assert!(
        !message.contains(&server.uri()),
        "no webhook URL in the message: {message}"
    );

    // Through the binary: rules check says the same and exits 1; routed, it passes.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/r.toml"), KOREAN).expect("rules");
    let (code, stdout) = crate::support::rules_check_with(dir.path(), "");
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("costsplit.toml: error: teams `검색` and `결제`"),
        "{stdout}"
    );
    let (code, stdout) = crate::support::rules_check_with(
        dir.path(),
        "[slack.teams.\"결제\"]\nwebhook_env = \"SLACK_KR_PAYMENTS\"\n[slack.teams.\"검색\"]\nwebhook_env = \"SLACK_KR_SEARCH\"\n",
    );
    assert_eq!(code, Some(0), "{stdout}");

    // Routed: each alert reaches its own team's webhook.
    let mut routes = SlackConfig::default();
    for (team, variable) in [("결제", "SLACK_KR_PAYMENTS"), ("검색", "SLACK_KR_SEARCH")] {
        routes.teams.insert(
            team.to_string(),
            TeamRoute {
                webhook_env: Some(variable.to_string()),
                ..TeamRoute::default()
            },
        );
    }
    let mut s = SlackSettings::for_rules(&env, &rules, &routes).expect("routed");
    s.base_backoff = Duration::from_millis(10);
    let summary = deliver(&t.store, &s).await.expect("deliver");
    assert_eq!((summary.sent, summary.still_pending), (2, 0), "{summary:?}");
    let requests = server.received_requests().await.unwrap_or_default();
    let mut by_hook: Vec<(String, String)> = requests
        .iter()
        .map(|r| {
            let body: serde_json::Value = serde_json::from_slice(&r.body).expect("JSON");
            (
                r.url.path().to_string(),
                body["text"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    by_hook.sort();
    assert_eq!(by_hook.len(), 2, "{by_hook:?}");
    assert_eq!(by_hook[0].0, "/services/T1/B1/payments");
    assert!(by_hook[0].1.contains("checkout-api"), "{by_hook:?}");
    assert_eq!(by_hook[1].0, "/services/T1/B1/search");
    assert!(by_hook[1].1.contains("search-api"), "{by_hook:?}");
}

/// A deliverer waiting out a `Retry-After` longer than its claim's lease keeps renewing the
/// claim: a second deliverer started meanwhile leaves the alert to it, and Slack gets the
/// alert once. (A dead deliverer's claim, not renewed, runs out after one lease.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_deliverer_renews_its_claim_through_a_long_wait() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["search-api"]).await;
    check(&t.store, &rules(&[("r.toml", RULES)])).await;
    let server = rate_limited_once("3").await;
    let mut s = settings(&server, true, false);
    s.claim_lease = Duration::from_secs(1);
    let first = {
        let (store, s) = (t.store.clone(), s.clone());
        tokio::spawn(async move { deliver(&store, &s).await })
    };
    // Past the first lease, while the first deliverer still waits for Retry-After.
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let second = deliver(&t.store, &s).await.expect("deliver");
    assert_eq!(second.sent, 0, "{second:?}");
    assert!(
        second.deferred.is_some(),
        "the live claim is respected: {second:?}"
    );
    let first = first.await.expect("task").expect("deliver");
    assert_eq!(first.sent, 1, "{first:?}");
    assert_eq!(
        received_bodies(&server).await.len(),
        2,
        "a 429, then the one delivery"
    );
}

/// A webhook whose channel was archived answers 410 `channel_is_archived` (the stand-in
/// answers as Slack does): the alert fails for good with that reason, and is not retried.
#[tokio::test]
async fn an_archived_channel_is_a_permanent_failure_with_slacks_reason() {
    let t = TestStore::new(Kind::Sqlite).await;
    seed(&t.store, &["search-api"]).await;
    check(&t.store, &rules(&[("r.toml", RULES)])).await;
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(SlackStandIn::webhook())
        .mount(&server)
        .await;
    let mut s = settings(&server, false, false);
    s.default_webhook = Some(Secret::new(format!(
        "{}/services/T000/archived/secret",
        server.uri()
    )));
    let summary = deliver(&t.store, &s).await.expect("deliver");
    assert_eq!((summary.sent, summary.failed), (0, 1), "{summary:?}");
    let failed = t
        .store
        .list_alerts(Some(costsplit::model::MessageState::Failed))
        .await
        .expect("list");
    assert!(
        failed[0]
            .last_error
            .as_deref()
            .unwrap_or_default()
            .contains("410")
            && failed[0]
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("channel_is_archived"),
        "{}",
        failed[0].last_error.as_deref().unwrap_or_default()
    );
    deliver(&t.store, &s).await.expect("deliver again");
    assert_eq!(
        server.received_requests().await.unwrap_or_default().len(),
        1
    );
}
