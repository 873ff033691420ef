//! The whole pipeline run with recognisable secrets (a database password in the store URL,
//! an AWS secret access key, a Slack webhook URL and bot token, each from the environment or
//! the config), debug logging on; then every output is searched for them: each command's
//! stdout and stderr, the daemon's /healthz, /readyz and /metrics, the exported CSV and FOCUS
//! files, and every row of every table of the (PostgreSQL) store.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, Row};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::slack_standin::SlackStandIn;
use crate::support::{costsplit, Kind, Moto, TestStore};

const PG_PASSWORD: &str = "PgSecret-5501";
const AWS_SECRET: &str = "AwsSecret/9f8e7d6c5b4a3210AwsSecret";
const WEBHOOK_SECRET: &str = "WebhookSecret7f3a91";
const BOT_TOKEN: &str = "xoxb-BotTokenSecret-4242";

/// A Slack stand-in that is hostile in one way: its first answers are 500s whose body echoes
/// the request path and headers, secrets included, as a misbehaving proxy might; then it
/// answers as Slack does (the webhook's `ok`, `chat.postMessage`'s full echo).
struct EchoingSlack(std::sync::atomic::AtomicUsize, SlackStandIn);

impl wiremock::Respond for EchoingSlack {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if n < 2 {
            let auth = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            return ResponseTemplate::new(500)
                .set_body_string(format!("upstream error for {} ({auth})", request.url));
        }
        self.1.respond(request)
    }
}

fn run(dir: &Path, env: &[(&str, String)], args: &[&str]) -> Output {
    env.iter()
        .fold(costsplit(dir).aws(AWS_SECRET), |bin, (k, v)| bin.env(k, v))
        .env("COSTSPLIT_LOG", "debug")
        .run(args)
}

#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_any_output_log_file_endpoint_or_table() {
    let ts = TestStore::new(Kind::Postgres).await;
    // The same database, with a password in the URL (the local server trusts loopback, so
    // the password is carried but never needed).
    let url = ts
        .store_url()
        .replacen("postgres@", &format!("postgres:{PG_PASSWORD}@"), 1);
    let moto = Moto::start().await;
    moto.seed_cost_and_usage("123456789012", crate::sync::three_days())
        .await;
    let slack = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path_regex(".*"))
        .respond_with(EchoingSlack(
            Default::default(),
            SlackStandIn::new(BOT_TOKEN, &["#payments-cost"]),
        ))
        .mount(&slack)
        .await;

    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("rules dir");
    std::fs::write(rules.join("test.toml"), crate::reports::RULES).expect("rules");
    // A usage source whose DSN carries the database password too.
    std::fs::write(
        rules.join("usage.toml"),
        "[[source]]\nname = \"shop-db\"\nkind = \"postgres\"\ndsn_env = \"SHOP_DB_DSN\"\nmap = { \"public\" = \"checkout-api\" }\n",
    )
    .expect("usage rules");
    let port = crate::support::free_port();
    std::fs::write(
        dir.path().join("costsplit.toml"),
        format!(
            "store_url = \"{url}\"\nrules_dir = \"rules\"\n\n[aws]\nendpoint_url = \"{}\"\ninitial_backoff_ms = 5\n[[aws.accounts]]\nid = \"123456789012\"\n\n[daemon]\nlisten = \"127.0.0.1:{port}\"\npoll_seconds = 1\n",
            moto.url
        ),
    )
    .expect("config");
    std::fs::write(dir.path().join("march.csv"), crate::reports::march_csv()).expect("csv");
    let webhook = format!("{}/services/T000/B000/{WEBHOOK_SECRET}", slack.uri());
    let env = vec![
        ("COSTSPLIT_SLACK_WEBHOOK_URL", webhook.clone()),
        ("COSTSPLIT_SLACK_BOT_TOKEN", BOT_TOKEN.to_string()),
        ("COSTSPLIT_SLACK_API_URL", slack.uri()),
        ("SHOP_DB_DSN", url.clone()),
    ];

    let mut outputs = Vec::new();
    for args in [
        &["migrate"][..],
        &["import", "march.csv"],
        &["allocate", "--month", "2025-03"],
        &["alerts", "check", "--date", "2025-03-03"],
        &[
            "report",
            "slack",
            "--period",
            "month",
            "--today",
            "2025-04-02",
        ],
        &["notify"],
        &["notify"],
        &["notify"],
        &["report", "--month", "2025-03", "--format", "json"],
        &[
            "export",
            "--month",
            "2025-03",
            "--detail",
            "--out",
            "statement.csv",
        ],
        &[
            "export",
            "--month",
            "2025-03",
            "--format",
            "focus",
            "--out",
            "focus.csv",
        ],
        &[
            "sync",
            "billing",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-03",
        ],
        &["alerts", "list"],
        &["sync", "runs"],
        &["sync", "usage", "--day", "2025-03-03"],
        &["sync", "usage-runs"],
    ] {
        let out = run(dir.path(), &env, args);
        // A command that failed early never ran the code whose output is searched: each must
        // have done its work (a `notify` may stop while Slack fails, and exits 1 then).
        let may_fail = args == ["notify"];
        assert!(
            out.status.success() || (may_fail && out.status.code() == Some(1)),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        outputs.push((format!("{args:?}"), out));
    }
    // A store that refuses the connection: the error names the store without its password.
    let bad = format!("postgres://postgres:{PG_PASSWORD}@127.0.0.1:1/nowhere");
    let out = run(dir.path(), &env, &["--store", &bad, "migrate"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("***"),
        "{:?}",
        out
    );
    outputs.push(("bad store".into(), out));
    // The reports reached Slack (by webhook and by bot token) after its two echoing failures.
    let requests = slack.received_requests().await.expect("recorded");
    assert!(
        requests.len() >= 5,
        "{} requests: {outputs:#?}",
        requests.len()
    );
    assert!(requests
        .iter()
        .any(|r| r.url.path().ends_with("chat.postMessage")));

    // The daemon, briefly: its endpoints and logs.
    let mut daemon = costsplit(dir.path()).aws(AWS_SECRET).command(&["run"]);
    daemon
        .env("COSTSPLIT_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &env {
        daemon.env(k, v);
    }
    let child = daemon.spawn().expect("the daemon starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut bodies = Vec::new();
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await {
            if r.status().is_success() {
                break;
            }
        }
        assert!(Instant::now() < deadline, "the daemon did not get ready");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Let it run its catch-up jobs (syncs, allocate, notify) once.
    tokio::time::sleep(Duration::from_secs(3)).await;
    for endpoint in ["healthz", "readyz", "metrics"] {
        let body = client
            .get(format!("{base}/{endpoint}"))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("body");
        bodies.push((endpoint.to_string(), body));
    }
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let out = child.wait_with_output().expect("the daemon stops");
    outputs.push(("daemon".into(), out));

    let mut haystack: Vec<(String, String)> = Vec::new();
    for (what, out) in &outputs {
        haystack.push((
            format!("{what} stdout"),
            String::from_utf8_lossy(&out.stdout).into(),
        ));
        haystack.push((
            format!("{what} stderr"),
            String::from_utf8_lossy(&out.stderr).into(),
        ));
    }
    haystack.extend(bodies);
    for file in ["statement.csv", "focus.csv"] {
        let text = std::fs::read_to_string(dir.path().join(file)).expect("exported");
        assert!(!text.is_empty());
        haystack.push((file.to_string(), text));
    }
    // Every row of every table, as JSON.
    let mut conn = sqlx::PgConnection::connect(&ts.store_url())
        .await
        .expect("connect");
    let tables: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("tables")
    .iter()
    .map(|r| r.get(0))
    .collect();
    assert!(tables.len() >= 8, "{tables:?}");
    for table in tables {
        let rows = sqlx::query(&format!("SELECT row_to_json(t)::text FROM \"{table}\" t"))
            .fetch_all(&mut conn)
            .await
            .expect("rows");
        let text: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        haystack.push((format!("table {table}"), text.join("\n")));
    }
    conn.close().await.ok();

    let logs: usize = haystack.iter().map(|(_, t)| t.len()).sum();
    assert!(logs > 10_000, "debug logging ran ({logs} bytes)");
    // Each secret as it is, percent-encoded (as in a URL) and base64-encoded (as in a Basic
    // Authorization header).
    let mut forms = Vec::new();
    for secret in [PG_PASSWORD, AWS_SECRET, WEBHOOK_SECRET, BOT_TOKEN] {
        forms.push(secret.to_string());
        forms.push(percent_encoded(secret));
        forms.push(base64(secret.as_bytes()));
    }
    forms.sort();
    forms.dedup();
    for (what, text) in &haystack {
        for secret in &forms {
            assert!(
                !text.contains(secret.as_str()),
                "`{secret}` leaked into {what}:\n{text}"
            );
        }
    }
}

/// `text` with every byte but unreserved URL characters as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Standard base64 with padding, as HTTP Basic authentication writes it.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn the_encodings_searched_for_are_right() {
    assert_eq!(
        base64(b"scraper:pr0m-s3cret"),
        "c2NyYXBlcjpwcjBtLXMzY3JldA=="
    );
    assert_eq!(base64(b"ab"), "YWI=");
    assert_eq!(percent_encoded("a/b c"), "a%2Fb%20c");
}
