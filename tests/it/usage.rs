//! Live usage sources against real systems: PostgreSQL table sizes (the local server, a
//! database per test), Redis key counts (the local server, a key namespace per test),
//! Prometheus (the real server, scraping an exporter the test serves) and CloudWatch (moto,
//! through the CBOR translating proxy), each split of a pool checked to the nano-unit.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, Utc};
use costsplit::jobs;
use costsplit::model::{CostBasis, Fact};
use costsplit::money::Nanos;
use costsplit::rules::Rules;
use costsplit::store::{Store, Table, UsageStatus};
use sqlx::{Connection, Executor};

use crate::support::{day, rules, Kind, TestStore, BOTH, NOW};

const D: i128 = costsplit::money::NANOS_PER_UNIT;

/// A fact of `dollars` on a shared resource, untagged.
fn shared_fact(d: NaiveDate, resource: &str, dollars: i128) -> Fact {
    Fact {
        day: d,
        billing_period: "2025-03".into(),
        billing_account: "payer".into(),
        sub_account: "payer".into(),
        provider: "AWS".into(),
        provider_service: "Amazon RDS".into(),
        resource_id: resource.into(),
        charge_category: "Usage".into(),
        tags: Default::default(),
        currency: "USD".into(),
        effective: Nanos(dollars * D),
        billed: Nanos(dollars * D),
        list: Nanos(dollars * D),
        contracted: Nanos(dollars * D),
        line_count: 1,
        estimated: false,
    }
}

async fn store_facts(store: &Store, facts: &[Fact]) {
    let record = costsplit::store::ImportRecord {
        created_at: NOW.stamp(),
        source: costsplit::model::ImportSource::Files(costsplit::model::BillingSchema::Focus),
        files: vec![],
        scope: costsplit::store::FactScope::Periods(vec![("2025-03".into(), "payer".into())]),
        line_items: facts.len() as i64,
    };
    store
        .replace_facts(&record, facts)
        .await
        .expect("facts stored");
}

/// Allocates a range with the stored usage samples, as `costsplit allocate` does.
async fn allocate(store: &Store, rules: &Rules, range: (NaiveDate, NaiveDate)) {
    jobs::allocate_range(store, rules, CostBasis::Effective, range, NOW)
        .await
        .expect("allocates");
}

/// Measures every source of the rules for one day, now.
async fn sync(store: &Store, rules: &Rules, d: NaiveDate) -> jobs::UsageSyncSummary {
    jobs::sync_usage(store, rules, None, d, None, costsplit::clock::Clock::System)
        .await
        .expect("a sync records failures instead of failing")
}

/// Stored samples of one source and day, as member -> value.
async fn samples(store: &Store, source: &str, d: NaiveDate) -> BTreeMap<String, String> {
    store
        .usage_samples(&[source.to_string()], d, d)
        .await
        .expect("samples")
        .into_iter()
        .map(|s| (s.member, s.value))
        .collect()
}

/// Each service's amount of a pool on a day.
async fn shares(store: &Store, pool: &str, d: NaiveDate) -> BTreeMap<String, (Nanos, String)> {
    store
        .allocations(d, d)
        .await
        .expect("allocations")
        .into_iter()
        .filter(|a| a.pool == pool)
        .map(|a| (a.service, (a.amount, a.basis)))
        .collect()
}

/// `total * part / whole` within one nano-unit, as the largest-remainder split gives it.
fn assert_share(actual: Nanos, total: i128, part: i128, whole: i128, what: &str) {
    let exact = total * part / whole;
    assert!(
        (actual.0 - exact).abs() <= 1,
        "{what}: {actual} is not {total} * {part} / {whole}"
    );
}

fn write_secret(dir: &Path, name: &str, value: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, value).expect("secret file");
    path.display().to_string()
}

/// A database on the local server with two schemas of known relative size.
async fn shared_database() -> TestStore {
    let db = TestStore::new(Kind::Postgres).await;
    fill_schemas(&db.store_url(), &[("orders", 4000), ("payments", 1000)]).await;
    db
}

/// Creates each schema with one table of `rows` rows of 300 bytes, in the database at `url`.
pub(crate) async fn fill_schemas(url: &str, schemas: &[(&str, usize)]) {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    for (schema, rows) in schemas {
        conn.execute(
            format!(
                "CREATE SCHEMA {schema};
                 CREATE TABLE {schema}.items (id bigint primary key, pad text);
                 INSERT INTO {schema}.items SELECT g, repeat('x', 300) FROM generate_series(1, {rows}) g;"
            )
            .as_str(),
        )
        .await
        .expect("fill schema");
    }
    conn.close().await.ok();
}

/// What PostgreSQL itself says a schema's tables take, indexes and TOAST included.
async fn schema_bytes(url: &str, schema: &str) -> i128 {
    let mut conn = sqlx::PgConnection::connect(url).await.expect("connect");
    let bytes: i64 = sqlx::query_scalar(
        "SELECT CAST(SUM(pg_total_relation_size(c.oid)) AS BIGINT) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'",
    )
    .bind(schema)
    .fetch_one(&mut conn)
    .await
    .expect("size");
    conn.close().await.ok();
    i128::from(bytes)
}

pub(crate) const SERVICES: &str = r#"
[[service]]
name = "orders-api"
team = "core"
[[service]]
name = "payments-api"
team = "payments"
[[service]]
name = "auth-api"
team = "identity"
[[service]]
name = "search-api"
team = "search"
"#;

async fn a_shared_database_is_split_by_live_schema_sizes(kind: Kind) {
    let shared = shared_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let dsn_file = write_secret(dir.path(), "dsn", &shared.store_url());
    let rules = rules(&[
        ("services.toml", SERVICES),
        (
            "usage.toml",
            &format!(
                r#"
[[source]]
name = "orders-db"
kind = "postgres"
dsn_file = "{dsn_file}"
by = "schema"
map = {{ "orders" = "orders-api", "pay*" = "payments-api" }}

[[pool]]
name = "shared-aurora"
method = "usage"
members = ["orders-api", "payments-api"]
usage = {{ source = "orders-db", max_age_days = 1 }}
fallback = "equal"
match = {{ resource_id = "arn:aws:rds:us-east-1:1:cluster:shared" }}
"#
            ),
        ),
    ]);
    let t = TestStore::new(kind).await;
    let days = [day("2025-03-01"), day("2025-03-02"), day("2025-03-03")];
    let facts: Vec<Fact> = days
        .iter()
        .map(|d| shared_fact(*d, "arn:aws:rds:us-east-1:1:cluster:shared", 100))
        .collect();
    store_facts(&t.store, &facts).await;

    let summary = sync(&t.store, &rules, days[0]).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);
    let orders = schema_bytes(&shared.store_url(), "orders").await;
    let payments = schema_bytes(&shared.store_url(), "payments").await;
    assert!(orders > 3 * payments, "4x the rows: {orders} vs {payments}");
    let stored = samples(&t.store, "orders-db", days[0]).await;
    assert_eq!(stored["orders"], orders.to_string());
    assert_eq!(stored["payments"], payments.to_string());
    assert!(
        stored.contains_key("public"),
        "the unmapped schema is recorded too: {stored:?}"
    );
    assert!(
        summary.runs[0].message.contains("map to no service"),
        "{}",
        summary.runs[0].message
    );

    allocate(&t.store, &rules, (days[0], days[2])).await;
    // Days 1 and 2 follow the day-1 sizes (day 2 within max_age_days = 1).
    for d in &days[..2] {
        let s = shares(&t.store, "shared-aurora", *d).await;
        let total = 100 * D;
        assert_share(
            s["orders-api"].0,
            total,
            orders,
            orders + payments,
            "orders",
        );
        assert_eq!(s["orders-api"].0 + s["payments-api"].0, Nanos(total));
        assert_eq!(
            s["orders-api"].1,
            format!(
                "orders-db 2025-03-01: {orders} of {} bytes",
                orders + payments
            )
        );
    }
    // Day 3 has no sample within a day: the pool falls back to equal, and says why.
    let s = shares(&t.store, "shared-aurora", days[2]).await;
    assert_eq!(s["orders-api"].0, Nanos(50 * D));
    assert!(
        s["orders-api"]
            .1
            .contains("no sample of source `orders-db` within 1 day(s) of 2025-03-03"),
        "{}",
        s["orders-api"].1
    );
    let report = jobs::report(&t.store, (days[0], days[2]), None)
        .await
        .expect("report");
    assert!(report.reconciled());
    let table = report.render(costsplit::report::Format::Table, false);
    assert!(
        table.contains("fallback: pool shared-aurora used its fallback on 1 day(s) (no sample of source `orders-db`"),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&report.render(costsplit::report::Format::Json, false)).expect("json");
    let measured = json["shares"]
        .as_array()
        .expect("shares")
        .iter()
        .find(|s| s["service"] == "orders-api" && s["fallback_used"] == false)
        .expect("a measured share");
    assert_eq!(measured["days"], 2);
    assert_eq!(measured["method"], "usage");
    assert!(measured["basis"]
        .as_str()
        .expect("basis")
        .starts_with("orders-db 2025-03-01: "));
}

#[tokio::test]
async fn a_shared_database_is_split_by_live_schema_sizes_on_both_stores() {
    for kind in BOTH {
        a_shared_database_is_split_by_live_schema_sizes(kind).await;
    }
}

/// A key namespace of its own on the local Redis (DB 9), removed afterwards.
struct RedisKeys {
    prefix: String,
    con: redis::aio::MultiplexedConnection,
}

const REDIS_URL: &str = "redis://127.0.0.1:6379/9";

impl RedisKeys {
    async fn new(counts: &[(&str, usize)]) -> RedisKeys {
        let sized: Vec<(&str, usize, usize)> = counts.iter().map(|&(p, n)| (p, n, 64)).collect();
        RedisKeys::with_sizes(&sized).await
    }

    /// (prefix part, keys, bytes of each value).
    async fn with_sizes(counts: &[(&str, usize, usize)]) -> RedisKeys {
        let client = redis::Client::open(REDIS_URL).expect("url");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("Redis on 127.0.0.1:6379 is reachable");
        let prefix = format!(
            "costsplit-test-{}-{}:",
            std::process::id(),
            Utc::now().timestamp_micros()
        );
        for (part, n, size) in counts {
            let mut pipe = redis::pipe();
            for i in 0..*n {
                pipe.set(format!("{prefix}{part}{i}"), "v".repeat(*size))
                    .ignore();
            }
            let () = pipe.query_async(&mut con).await.expect("set keys");
        }
        RedisKeys { prefix, con }
    }

    async fn clean(mut self) {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut self.con)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut self.con).await;
        }
    }
}

fn redis_rules(prefix: &str, url_file: &str, measure: &str) -> costsplit::rules::Rules {
    rules(&[
        ("services.toml", SERVICES),
        (
            "usage.toml",
            &format!(
                r#"
[[source]]
name = "sessions-cache"
kind = "redis"
url_file = "{url_file}"
measure = "{measure}"
scan_count = 500
map = {{ "{prefix}orders:" = "orders-api", "{prefix}sess:" = "auth-api" }}

[[pool]]
name = "shared-cache"
method = "usage"
usage = {{ source = "sessions-cache" }}
match = {{ resource_id = "arn:aws:elasticache:*" }}
"#
            ),
        ),
    ])
}

#[tokio::test]
async fn a_shared_cache_is_split_by_live_key_counts() {
    // Session values are 30 times larger than order values: counting keys and measuring
    // memory give different splits.
    let mut keys = RedisKeys::with_sizes(&[("orders:", 300, 64), ("sess:", 100, 2000)]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = write_secret(dir.path(), "redis-url", REDIS_URL);
    let t = TestStore::new(Kind::Sqlite).await;
    let d = day("2025-03-01");
    store_facts(
        &t.store,
        &[shared_fact(
            d,
            "arn:aws:elasticache:us-east-1:1:cluster:c",
            40,
        )],
    )
    .await;

    let rules = redis_rules(&keys.prefix, &url_file, "keys");
    let summary = sync(&t.store, &rules, d).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);
    let stored = samples(&t.store, "sessions-cache", d).await;
    assert_eq!(stored[&format!("{}orders:", keys.prefix)], "300");
    assert_eq!(stored[&format!("{}sess:", keys.prefix)], "100");
    allocate(&t.store, &rules, (d, d)).await;
    let s = shares(&t.store, "shared-cache", d).await;
    assert_eq!(s["orders-api"].0, Nanos(30 * D));
    assert_eq!(s["auth-api"].0, Nanos(10 * D));

    // Memory per prefix from sampled MEMORY USAGE, against what Redis itself says of every
    // key: within 5% (the keys of a prefix have one size, so the sample mean is the mean).
    let rules = redis_rules(&keys.prefix, &url_file, "memory");
    let summary = sync(&t.store, &rules, d).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);
    let stored = samples(&t.store, "sessions-cache", d).await;
    for (part, n) in [("orders:", 300), ("sess:", 100)] {
        let mut actual = 0f64;
        for i in 0..n {
            let bytes: i64 = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(format!("{}{part}{i}", keys.prefix))
                .query_async(&mut keys.con)
                .await
                .expect("MEMORY USAGE");
            actual += bytes as f64;
        }
        let measured: f64 = stored[&format!("{}{part}", keys.prefix)]
            .parse()
            .expect("n");
        assert!(
            (measured - actual).abs() <= actual * 0.05,
            "{part}: costsplit measured {measured} bytes, Redis says {actual}"
        );
    }
    let orders: f64 = stored[&format!("{}orders:", keys.prefix)]
        .parse()
        .expect("n");
    let sess: f64 = stored[&format!("{}sess:", keys.prefix)].parse().expect("n");
    assert!(
        orders / sess < 1.0,
        "not the 3:1 of counting keys: {orders} / {sess}"
    );
    keys.clean().await;
}

/// A source that is down fails alone: the other source is measured, the failure is recorded
/// with a reason that holds no secret, the earlier samples stay, and the pool of the failed
/// source falls back only once its samples are too old.
#[tokio::test]
async fn a_source_that_is_down_fails_alone_without_leaking_its_password() {
    let keys = RedisKeys::new(&[("orders:", 30), ("sess:", 10)]).await;
    let shared = shared_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let url_file = write_secret(dir.path(), "redis-url", REDIS_URL);
    let dsn_file = write_secret(dir.path(), "dsn", &shared.store_url());
    let text = |redis_url_file: &str| {
        format!(
            r#"
[[source]]
name = "orders-db"
kind = "postgres"
dsn_file = "{dsn_file}"
map = {{ "orders" = "orders-api", "payments" = "payments-api" }}

[[source]]
name = "sessions-cache"
kind = "redis"
url_file = "{redis_url_file}"
timeout_seconds = 5
map = {{ "{p}orders:" = "orders-api", "{p}sess:" = "auth-api" }}
"#,
            p = keys.prefix
        )
    };
    let t = TestStore::new(Kind::Sqlite).await;
    let d1 = day("2025-03-01");
    let good = rules(&[
        ("services.toml", SERVICES),
        ("usage.toml", &text(&url_file)),
    ]);
    let summary = sync(&t.store, &good, d1).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);

    // The cache moves behind a password on a port nothing listens on.
    let port = crate::support::free_port();
    let secret = "hunter2-very-secret";
    let bad_file = write_secret(
        dir.path(),
        "bad-redis-url",
        &format!("redis://:{secret}@127.0.0.1:{port}/0"),
    );
    let bad = rules(&[
        ("services.toml", SERVICES),
        ("usage.toml", &text(&bad_file)),
    ]);
    let summary = sync(&t.store, &bad, d1).await;
    let by_source: BTreeMap<&str, _> = summary
        .runs
        .iter()
        .map(|r| (r.source.as_str(), r))
        .collect();
    assert_eq!(by_source["orders-db"].status, UsageStatus::Ok);
    let failed = by_source["sessions-cache"];
    assert_eq!(failed.status, UsageStatus::Failed);
    assert!(
        failed.message.contains("cannot connect"),
        "{}",
        failed.message
    );
    assert!(!failed.message.contains(secret), "{}", failed.message);
    // Its earlier samples of that day are kept, and nothing anywhere holds the password.
    assert_eq!(samples(&t.store, "sessions-cache", d1).await.len(), 2);
    for run in t.store.usage_runs(10).await.expect("runs") {
        assert!(!run.message.contains(secret));
    }
    assert_eq!(t.store.count(Table::UsageRuns).await.expect("count"), 4);
    keys.clean().await;
}

#[tokio::test]
async fn prometheus_errors_and_timeouts_fail_the_source_with_a_reason() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    // What Prometheus answers to a query it cannot parse.
    Mock::given(path("/api/v1/query"))
        .respond_with(ResponseTemplate::new(400).set_body_json(serde_json::json!({
            "status": "error", "errorType": "bad_data",
            "error": "invalid parameter \"query\": 1:5: parse error: unexpected <by>"
        })))
        .mount(&server)
        .await;
    let slow = MockServer::start().await;
    Mock::given(path("/api/v1/query"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(std::time::Duration::from_secs(5))
                .set_body_json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}})),
        )
        .mount(&slow)
        .await;
    let rules = rules(&[
        ("services.toml", SERVICES),
        (
            "usage.toml",
            &format!(
                r#"
[[source]]
name = "bad-query"
kind = "prometheus"
url = "{}"
query = "sum by by (topic) (x)"
label = "topic"
map = {{ "orders" = "orders-api" }}

[[source]]
name = "slow"
kind = "prometheus"
url = "{}"
timeout_seconds = 1
query = "sum by (topic) (kafka_log_log_size)"
label = "topic"
map = {{ "orders" = "orders-api" }}
"#,
                server.uri(),
                slow.uri()
            ),
        ),
    ]);
    let t = TestStore::new(Kind::Sqlite).await;
    let summary = sync(&t.store, &rules, day("2025-03-01")).await;
    assert_eq!(summary.failed(), 2);
    assert!(
        summary.runs[0].message.contains("bad_data"),
        "{}",
        summary.runs[0].message
    );
    assert!(
        summary.runs[1].message.contains("no answer within 1 s"),
        "{}",
        summary.runs[1].message
    );
}

/// Debian's real Prometheus on a free loopback port, scraping `targets` every second, with
/// its data in a temporary folder; killed when dropped.
pub struct Prometheus {
    child: std::process::Child,
    pub url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    pub async fn start(target: &str) -> Prometheus {
        let bin = std::env::var("COSTSPLIT_PROMETHEUS").unwrap_or_else(|_| "prometheus".into());
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: kafka\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .expect("config");
        let port = crate::support::free_port();
        let child = std::process::Command::new(&bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start `{bin}` ({e}): run the tests with scripts/test, which installs Debian's prometheus package (or set COSTSPLIT_PROMETHEUS)")
            });
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// Waits (up to 60 s) until `query` returns `series` series.
    pub async fn wait_for(&self, query: &str, series: usize) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            let answer = client
                .get(format!("{}/api/v1/query", self.url))
                .query(&[("query", query)])
                .send()
                .await;
            if let Ok(answer) = answer {
                if let Ok(json) = answer.json::<serde_json::Value>().await {
                    if json["data"]["result"]
                        .as_array()
                        .is_some_and(|r| r.len() == series)
                    {
                        return;
                    }
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "Prometheus at {} did not return {series} series for `{query}` within 60 s",
            self.url
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An exporter that serves `text` at /metrics, as a JMX exporter on an MSK broker does.
async fn serve_metrics(text: &'static str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app =
        axum::Router::new().route("/metrics", axum::routing::get(move || async move { text }));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr.to_string()
}

/// Kafka log sizes per topic and partition, named as the JMX exporter's Kafka rules name them.
const KAFKA_METRICS: &str = "# HELP kafka_log_log_size Size of the log in bytes\n# TYPE kafka_log_log_size gauge\nkafka_log_log_size{topic=\"orders\",partition=\"0\"} 3000\nkafka_log_log_size{topic=\"orders\",partition=\"1\"} 1500\nkafka_log_log_size{topic=\"clicks\",partition=\"0\"} 1500\nkafka_log_log_size{topic=\"__consumer_offsets\",partition=\"0\"} 200\n";

#[tokio::test]
async fn a_kafka_cluster_is_split_by_partition_sizes_from_a_real_prometheus() {
    let target = serve_metrics(KAFKA_METRICS).await;
    let prometheus = Prometheus::start(&target).await;
    let query = "sum by (topic) (kafka_log_log_size)";
    prometheus.wait_for(query, 3).await;
    let rules = rules(&[
        ("services.toml", SERVICES),
        (
            "usage.toml",
            &format!(
                r#"
[[source]]
name = "msk-topics"
kind = "prometheus"
url = "{}"
query = "{query}"
label = "topic"
unit = "bytes"
map = {{ "orders" = "orders-api", "click*" = "search-api" }}

[[pool]]
name = "shared-msk"
method = "usage"
usage = {{ source = "msk-topics" }}
match = {{ resource_id = "arn:aws:kafka:*" }}
"#,
                prometheus.url
            ),
        ),
    ]);
    let t = TestStore::new(Kind::Sqlite).await;
    let today = Utc::now().date_naive();
    store_facts(
        &t.store,
        &[shared_fact(
            today,
            "arn:aws:kafka:us-east-1:1:cluster/msk/x",
            60,
        )],
    )
    .await;
    let summary = sync(&t.store, &rules, today).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);
    let stored = samples(&t.store, "msk-topics", today).await;
    assert_eq!(
        stored.get("orders").map(String::as_str),
        Some("4500"),
        "{stored:?} {:?}",
        summary.runs
    );
    assert_eq!(stored["clicks"], "1500");
    assert_eq!(
        stored["__consumer_offsets"], "200",
        "unmapped, but recorded"
    );
    allocate(&t.store, &rules, (today, today)).await;
    let s = shares(&t.store, "shared-msk", today).await;
    assert_eq!(s["orders-api"].0, Nanos(45 * D));
    assert_eq!(s["search-api"].0, Nanos(15 * D));
    assert_eq!(
        s["search-api"].1,
        format!("msk-topics {today}: 1500 of 6000 bytes")
    );
}

/// CloudWatch datapoints written through the real SDK (CBOR) and the proxy into moto.
async fn put_kafka_bytes(endpoint: &str, points: &[(&str, &str, f64)]) {
    use aws_sdk_cloudwatch::types::{Dimension, MetricDatum};
    let config = aws_sdk_cloudwatch::config::Builder::new()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "writer-secret",
            None,
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_cloudwatch::Client::from_conf(config);
    let data: Vec<MetricDatum> = points
        .iter()
        .map(|(topic, at, value)| {
            let at = chrono::DateTime::parse_from_rfc3339(at).expect("time");
            MetricDatum::builder()
                .metric_name("BytesInPerSec")
                .dimensions(Dimension::builder().name("Topic").value(*topic).build())
                .dimensions(
                    Dimension::builder()
                        .name("Cluster Name")
                        .value("prod-msk")
                        .build(),
                )
                .timestamp(aws_sdk_cloudwatch::primitives::DateTime::from_secs(
                    at.timestamp(),
                ))
                .value(*value)
                .build()
        })
        .collect();
    client
        .put_metric_data()
        .namespace("AWS/Kafka")
        .set_metric_data(Some(data))
        .send()
        .await
        .expect("PutMetricData through the proxy");
}

fn run(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = crate::support::costsplit(dir)
        .aws("cw-s3cr3t-never-logged")
        .run(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The issue's end-to-end case, run as a user runs it: one import, one `sync usage`, one
/// `allocate`: a shared Aurora split by live PostgreSQL schema sizes, a shared ElastiCache
/// by live Redis key counts and an MSK cluster by CloudWatch bytes per topic (through moto),
/// every pool to the nano-unit and the month conserved to the cent. (Multi-threaded: the
/// binary is waited for on one thread while the CBOR proxy answers it on another.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_shared_clusters_split_by_live_usage_in_one_allocate_run() {
    let moto = crate::support::Moto::start().await;
    let proxy = crate::cbor_proxy::CborProxy::start(&moto.url).await;
    put_kafka_bytes(
        &proxy.url,
        &[
            ("orders-events", "2025-03-01T01:00:00Z", 1000.0),
            ("orders-events", "2025-03-01T13:00:00Z", 2000.0),
            ("search-clicks", "2025-03-01T02:00:00Z", 1000.0),
            ("orders-events", "2025-02-28T13:00:00Z", 99999.0),
        ],
    )
    .await;
    let keys = RedisKeys::new(&[("orders:", 20), ("sess:", 60)]).await;
    let shared = shared_database().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ws = dir.path();
    let dsn_file = write_secret(ws, "dsn", &shared.store_url());
    let url_file = write_secret(ws, "redis-url", REDIS_URL);
    std::fs::create_dir(ws.join("rules")).expect("rules dir");
    std::fs::write(ws.join("rules/services.toml"), SERVICES).expect("rules");
    std::fs::write(
        ws.join("rules/shared.toml"),
        format!(
            r#"
[[source]]
name = "aurora"
kind = "postgres"
dsn_file = "{dsn_file}"
map = {{ "orders" = "orders-api", "payments" = "payments-api" }}

[[source]]
name = "cache"
kind = "redis"
url_file = "{url_file}"
map = {{ "{p}orders:" = "orders-api", "{p}sess:" = "auth-api" }}

[[source]]
name = "msk-bytes"
kind = "cloudwatch"
namespace = "AWS/Kafka"
metric = "BytesInPerSec"
dimension = "Topic"
dimensions = {{ "Cluster Name" = "prod-msk" }}
statistic = "Sum"
period_seconds = 3600
map = {{ "orders-*" = "orders-api", "search-clicks" = "search-api" }}

[[pool]]
name = "shared-aurora"
method = "usage"
usage = {{ source = "aurora" }}
match = {{ resource_id = "arn:aws:rds:*" }}

[[pool]]
name = "shared-cache"
method = "usage"
usage = {{ source = "cache" }}
match = {{ resource_id = "arn:aws:elasticache:*" }}

[[pool]]
name = "shared-msk"
method = "usage"
usage = {{ source = "msk-bytes" }}
match = {{ resource_id = "arn:aws:kafka:*" }}
"#,
            p = keys.prefix
        ),
    )
    .expect("rules");
    std::fs::write(
        ws.join("costsplit.toml"),
        format!(
            "store_url = \"sqlite://costsplit.db\"\nrules_dir = \"rules\"\n\n[aws]\nendpoint_url = \"{}\"\nregion = \"us-east-1\"\n",
            proxy.url
        ),
    )
    .expect("config");
    let header = "ChargePeriodStart,BillingPeriodStart,BillingAccountId,BillingCurrency,BilledCost,EffectiveCost,ServiceName,ResourceId,ChargeCategory,Tags";
    let line = |resource: &str, cost: &str, tags: &str| {
        format!(
            "2025-03-01T00:00:00Z,2025-03-01,payer,USD,{cost},{cost},AWS,{resource},Usage,{tags}\n"
        )
    };
    let mut csv = format!("{header}\n");
    csv.push_str(&line(
        "arn:aws:rds:us-east-1:1:cluster:shared",
        "100.00",
        "NULL",
    ));
    csv.push_str(&line(
        "arn:aws:elasticache:us-east-1:1:cluster:c",
        "40.00",
        "NULL",
    ));
    csv.push_str(&line(
        "arn:aws:kafka:us-east-1:1:cluster/prod-msk/x",
        "60.00",
        "NULL",
    ));
    csv.push_str(&line(
        "i-1",
        "10.25",
        "\"{\"\"service\"\":\"\"orders-api\"\"}\"",
    ));
    csv.push_str(&line("i-2", "5.55", "NULL"));
    std::fs::write(ws.join("march.csv"), csv).expect("csv");

    let (code, out) = run(ws, &["import", "march.csv"]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = run(ws, &["sync", "usage", "--day", "2025-03-01"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("source msk-bytes (cloudwatch): 2 sample(s) for 2025-03-01"),
        "{out}"
    );
    assert!(!out.contains("cw-s3cr3t-never-logged"), "{out}");
    let (code, out) = run(ws, &["allocate", "--month", "2025-03"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("(0 with a fallback)"), "{out}");
    let (code, out) = run(ws, &["report", "--month", "2025-03", "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(json["reconciled"], true);
    assert_eq!(json["billed"]["USD"]["amount"], "215.800000000");
    let share = |service: &str, pool: &str| -> i128 {
        json["shares"]
            .as_array()
            .expect("shares")
            .iter()
            .filter(|s| s["service"] == service && s["pool"] == pool)
            .map(|s| {
                Nanos::parse(s["amount"].as_str().expect("amount"))
                    .expect("exact")
                    .0
            })
            .sum()
    };
    // MSK: 3000 of 4000 bytes on the day (the day before is not counted).
    assert_eq!(share("orders-api", "shared-msk"), 45 * D);
    assert_eq!(share("search-api", "shared-msk"), 15 * D);
    // ElastiCache: 20 of 80 keys.
    assert_eq!(share("orders-api", "shared-cache"), 10 * D);
    assert_eq!(share("auth-api", "shared-cache"), 30 * D);
    // Aurora: by the schemas' bytes, as PostgreSQL reports them.
    let orders = schema_bytes(&shared.store_url(), "orders").await;
    let payments = schema_bytes(&shared.store_url(), "payments").await;
    let aurora_orders = share("orders-api", "shared-aurora");
    assert_share(
        Nanos(aurora_orders),
        100 * D,
        orders,
        orders + payments,
        "aurora",
    );
    assert_eq!(
        aurora_orders + share("payments-api", "shared-aurora"),
        100 * D
    );
    let total = |service: &str| -> String {
        json["services"]
            .as_array()
            .expect("services")
            .iter()
            .find(|s| s["service"] == service)
            .map(|s| s["total"]["amount"].as_str().expect("amount").to_string())
            .unwrap_or_default()
    };
    assert_eq!(total("unallocated"), "5.550000000");
    let sum: i128 = [
        "orders-api",
        "payments-api",
        "auth-api",
        "search-api",
        "unallocated",
    ]
    .iter()
    .map(|s| Nanos::parse(&total(s)).expect("exact").0)
    .sum();
    assert_eq!(sum, 215_800_000_000, "every nano-unit is allocated");
    keys.clean().await;
}

/// A usage source returning garbage: an exporter whose series are NaN, negative, +Inf and 1e33
/// (scraped by the real Prometheus) gives samples only for the sound members, each bad one
/// named in the run's notes, and the pool, missing members' measurements (a missing value is
/// not a zero), falls back to its fallback split saying why; an answer that is not
/// Prometheus' JSON (a proxy's error page: a fault a real Prometheus does not produce)
/// fails the source with a reason and stores nothing for it.
#[tokio::test]
async fn a_usage_source_returning_garbage_keeps_only_sound_values_and_says_which() {
    const GARBAGE: &str = "# TYPE kafka_log_log_size gauge\nkafka_log_log_size{topic=\"orders\"} 3000\nkafka_log_log_size{topic=\"clicks\"} NaN\nkafka_log_log_size{topic=\"payments\"} -5\nkafka_log_log_size{topic=\"auth\"} +Inf\nkafka_log_log_size{topic=\"huge\"} 1e33\n";
    let target = serve_metrics(GARBAGE).await;
    let prometheus = Prometheus::start(&target).await;
    let query = "sum by (topic) (kafka_log_log_size)";
    prometheus.wait_for(query, 5).await;
    // The proxy's error page echoes the request's headers, Basic credentials included.
    let proxy = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::path("/api/v1/query"))
        .respond_with(|request: &wiremock::Request| {
            let authorization = request
                .headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none")
                .to_string();
            wiremock::ResponseTemplate::new(200).set_body_string(format!(
                "<html><body>502 Bad Gateway<pre>Authorization: {authorization}</pre></body></html>"
            ))
        })
        .mount(&proxy)
        .await;
    let secrets = tempfile::tempdir().expect("tempdir");
    let proxy_url_file = secrets.path().join("prometheus-url");
    std::fs::write(
        &proxy_url_file,
        proxy
            .uri()
            .replacen("http://", "http://scraper:pr0m-s3cret@", 1),
    )
    .expect("url file");
    let rules = rules(&[
        ("services.toml", SERVICES),
        (
            "usage.toml",
            &format!(
                r#"
[[source]]
name = "msk-topics"
kind = "prometheus"
url = "{}"
query = "{query}"
label = "topic"
map = {{ "orders" = "orders-api", "clicks" = "search-api", "payments" = "payments-api", "auth" = "auth-api", "huge" = "auth-api" }}

[[source]]
name = "behind-a-proxy"
kind = "prometheus"
url_file = "{}"
query = "{query}"
label = "topic"
map = {{ "orders" = "orders-api" }}

[[pool]]
name = "shared-msk"
method = "usage"
usage = {{ source = "msk-topics" }}
match = {{ resource_id = "arn:aws:kafka:*" }}
"#,
                prometheus.url,
                proxy_url_file.display()
            ),
        ),
    ]);
    let t = TestStore::new(Kind::Sqlite).await;
    let today = Utc::now().date_naive();
    store_facts(
        &t.store,
        &[shared_fact(
            today,
            "arn:aws:kafka:us-east-1:1:cluster/msk/x",
            60,
        )],
    )
    .await;
    let summary = sync(&t.store, &rules, today).await;
    let run = |name: &str| {
        summary
            .runs
            .iter()
            .find(|r| r.source == name)
            .unwrap_or_else(|| panic!("a run of {name}: {:?}", summary.runs))
    };
    let sound = run("msk-topics");
    assert_eq!(sound.status, UsageStatus::Ok, "{sound:?}");
    // NaN, negative, infinite, and past what a weight can carry (read back as 0 before).
    for member in ["clicks", "payments", "auth", "huge"] {
        assert!(
            sound.message.contains(&format!("`{member}`")),
            "{member} named: {}",
            sound.message
        );
    }
    let stored = samples(&t.store, "msk-topics", today).await;
    assert_eq!(stored.keys().collect::<Vec<_>>(), ["orders"], "{stored:?}");
    let proxied = run("behind-a-proxy");
    assert_eq!(proxied.status, UsageStatus::Failed, "{proxied:?}");
    assert!(
        proxied
            .message
            .contains("that are not its API's JSON; check the url"),
        "{}",
        proxied.message
    );
    let requests = proxy.received_requests().await.unwrap_or_default();
    assert!(
        requests
            .iter()
            .any(|r| r.headers.get("authorization").is_some()),
        "the credentials were sent, so the page echoed them"
    );
    for secret in ["pr0m-s3cret", "c2NyYXBlcjpwcjBtLXMzY3JldA=="] {
        assert!(!proxied.message.contains(secret), "{}", proxied.message);
    }
    assert!(samples(&t.store, "behind-a-proxy", today).await.is_empty());
    allocate(&t.store, &rules, (today, today)).await;
    let s = shares(&t.store, "shared-msk", today).await;
    for service in ["orders-api", "search-api", "payments-api", "auth-api"] {
        assert_eq!(s[service].0, Nanos(15 * D), "{s:?}");
        assert!(
            s[service].1.starts_with("fallback: ")
                && s[service]
                    .1
                    .contains("has no value for auth-api, payments-api, search-api"),
            "{}",
            s[service].1
        );
    }
}

/// Credentials a usage source refuses or cannot even parse, through the binary with debug
/// logs: a wrong Redis password (the server answers AUTH with an error), a malformed Redis
/// URL and a malformed PostgreSQL DSN, each with a password in it. Every source fails alone
/// with a reason, and no password appears in any output or run record.
#[tokio::test(flavor = "multi_thread")]
async fn wrong_or_malformed_credentials_fail_the_source_without_showing_the_password() {
    const SECRETS: [&str; 3] = ["WRONGPASS-7731", "BadUrlPass-8842", "PgBadPass-9953"];
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).expect("rules dir");
    let secret = |name: &str, value: &str| write_secret(dir.path(), name, value);
    let wrong = secret(
        "wrong",
        &format!("redis://:{}@127.0.0.1:6379/9", SECRETS[0]),
    );
    let malformed = secret(
        "malformed",
        &format!("redis://:{}@127.0.0.1:notaport/9", SECRETS[1]),
    );
    let dsn = secret(
        "dsn",
        &format!("postgres://app:{}@127.0.0.1:5432:5432/db", SECRETS[2]),
    );
    std::fs::write(rules.join("services.toml"), SERVICES).expect("services");
    std::fs::write(
        rules.join("usage.toml"),
        format!(
            r#"
[[source]]
name = "wrong-password"
kind = "redis"
url_file = "{wrong}"
map = {{ "orders:" = "orders-api" }}

[[source]]
name = "malformed-url"
kind = "redis"
url_file = "{malformed}"
map = {{ "orders:" = "orders-api" }}

[[source]]
name = "malformed-dsn"
kind = "postgres"
dsn_file = "{dsn}"
map = {{ "orders" = "orders-api" }}
"#
        ),
    )
    .expect("usage rules");
    let store = format!("sqlite://{}", dir.path().join("costsplit.db").display());
    let out = crate::support::costsplit(dir.path())
        .store(&store)
        .env("COSTSPLIT_LOG", "debug")
        .run(&["--rules", "rules", "sync", "usage", "--day", "2025-03-01"]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    let t = Store::connect(&store).await.expect("store");
    let runs = t.usage_runs(10).await.expect("runs");
    t.close().await;
    assert_eq!(runs.len(), 3, "{runs:?}");
    assert!(
        runs.iter()
            .all(|r| r.status == UsageStatus::Failed && !r.message.is_empty()),
        "{runs:?}"
    );
    let recorded: String = runs.iter().map(|r| format!("{}\n", r.message)).collect();
    for secret in SECRETS {
        assert!(!all.contains(secret), "`{secret}` in the output:\n{all}");
        assert!(
            !recorded.contains(secret),
            "`{secret}` in a run record:\n{recorded}"
        );
    }
}

/// A cluster's requests and usage as kube-state-metrics and cAdvisor name them: checkout
/// requests 1 vCPU and 4 GiB but uses 8 GiB; payments requests 0.5 vCPU and 1 GiB.
const KUBE_METRICS: &str = "# TYPE kube_pod_container_resource_requests gauge\n\
kube_pod_container_resource_requests{namespace=\"shop\",pod=\"checkout-1\",container=\"app\",resource=\"cpu\",unit=\"core\"} 1\n\
kube_pod_container_resource_requests{namespace=\"shop\",pod=\"checkout-1\",container=\"app\",resource=\"memory\",unit=\"byte\"} 4294967296\n\
kube_pod_container_resource_requests{namespace=\"pay\",pod=\"pay-1\",container=\"app\",resource=\"cpu\",unit=\"core\"} 0.5\n\
kube_pod_container_resource_requests{namespace=\"pay\",pod=\"pay-1\",container=\"app\",resource=\"memory\",unit=\"byte\"} 1073741824\n\
kube_pod_container_resource_requests{namespace=\"kube-system\",pod=\"coredns-1\",container=\"coredns\",resource=\"cpu\",unit=\"core\"} 0.1\n\
kube_pod_container_resource_requests{namespace=\"kube-system\",pod=\"coredns-1\",container=\"coredns\",resource=\"memory\",unit=\"byte\"} 67108864\n\
# TYPE container_memory_working_set_bytes gauge\n\
container_memory_working_set_bytes{namespace=\"shop\",pod=\"checkout-1\",container=\"app\"} 8589934592\n\
# TYPE container_cpu_usage_seconds_total counter\n\
container_cpu_usage_seconds_total{namespace=\"shop\",pod=\"checkout-1\",container=\"app\"} 100\n";

#[tokio::test]
async fn a_cluster_without_split_data_is_split_by_requests_from_a_real_prometheus() {
    let target = serve_metrics(KUBE_METRICS).await;
    let prometheus = Prometheus::start(&target).await;
    let source = |name: &str, basis: &str| {
        format!(
            r#"
[[source]]
name = "{name}"
kind = "kubernetes"
url = "{}"
by = "namespace"
basis = "{basis}"
window = "1m"
step = "1s"
map = {{ "shop" = "orders-api", "pay" = "search-api" }}
"#,
            prometheus.url
        )
    };
    let rules_text = format!(
        r#"{}{}
[[pool]]
name = "k8s-nodes"
method = "usage"
usage = {{ source = "k8s-requests" }}
match = {{ resource_id = "i-0node*" }}
"#,
        source("k8s-requests", "requests"),
        source("k8s-max", "max"),
    );
    let rules = rules(&[("services.toml", SERVICES), ("usage.toml", &rules_text)]);
    let q = match &rules.source("k8s-requests").expect("the source").kind {
        costsplit::rules::SourceKind::Kubernetes { query, .. } => query.clone(),
        other => panic!("{other:?}"),
    };
    prometheus
        .wait_for(
            &costsplit::ingest::usage::kubernetes::daily_query(&q, "memory", false),
            3,
        )
        .await;
    let t = TestStore::new(Kind::Sqlite).await;
    let today = Utc::now().date_naive();
    // Two nodes of the cluster, $18.50 in all that day.
    store_facts(
        &t.store,
        &[
            shared_fact(today, "i-0node1", 10),
            Fact {
                effective: Nanos(8 * D + D / 2),
                billed: Nanos(8 * D + D / 2),
                ..shared_fact(today, "i-0node2", 8)
            },
        ],
    )
    .await;
    let summary = sync(&t.store, &rules, today).await;
    assert_eq!(summary.failed(), 0, "{:?}", summary.runs);
    // vCPU-equivalents: 9 per vCPU + 1 per GiB.
    let requests = samples(&t.store, "k8s-requests", today).await;
    assert_eq!(requests["shop"], "13", "{requests:?}");
    assert_eq!(requests["pay"], "5.5");
    assert_eq!(requests["kube-system"], "0.9625", "unmapped, but recorded");
    // The larger of requests and usage: checkout's 8 GiB in use count.
    let max = samples(&t.store, "k8s-max", today).await;
    assert_eq!(max["shop"], "17", "{max:?}");
    assert_eq!(max["pay"], "5.5");

    allocate(&t.store, &rules, (today, today)).await;
    let s = shares(&t.store, "k8s-nodes", today).await;
    assert_eq!(
        s["orders-api"].0,
        Nanos(13 * D),
        "conserved to the nano-unit"
    );
    assert_eq!(s["search-api"].0, Nanos(5 * D + D / 2));
    assert_eq!(
        s["orders-api"].1,
        format!("k8s-requests {today}: 13 of 18.5 requested vCPU-equivalents")
    );
}
