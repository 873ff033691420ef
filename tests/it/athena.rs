//! Issue 28: `sync exports` with `engine = "athena"`, as a user runs it: the real binary and
//! the real AWS SDK's Athena and S3 clients, pointed at moto's server. moto answers Athena's
//! API (query executions that go QUEUED, RUNNING, SUCCEEDED as they are polled; seeded
//! results for the columns question) but runs no SQL, so the proxy in front of it plays the
//! engine's part: when an UNLOAD starts, it writes the facts the query would write where the
//! UNLOAD says (the facts a real Spark cluster computed from the same export,
//! tests/data/engine), and reports the bytes the query scanned. A period whose query the
//! workgroup's scan limit cancels (the proxy stops it in moto, and reports what it scanned)
//! fails alone.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use costsplit::ingest::athena;
use costsplit::store::{Store, Table};

use crate::exports::{april_holds, show, Bucket, BUCKET, PART, PREFIX, SECRET};
use crate::support::{costsplit, data, day, read_batches, Moto};

const RESULTS: &str = "athena-results";
/// The facts of the real CUR 2.0 export's April 2026, as `costsplit engine run` on Spark
/// wrote them (DATE, DECIMAL(38, 11), BIGINT columns, as Athena's UNLOAD writes them).
const FACTS: &str = "engine/ha-cur2-2026-04.facts.parquet";
const PARQUET_COPY: &str =
    "thirdparty/olaraji-aws-cur2-csv/derived/ha-project-CUR-daily-1-00001.snappy.parquet";
/// What the cancelled query had scanned when the workgroup's limit stopped it.
const LIMIT_BYTES: i64 = 12 << 30;

/// What the proxy saw and did.
#[derive(Default)]
struct Seen {
    /// (query id, text) of every UNLOAD started.
    unloads: Vec<(String, String)>,
    /// GetQueryExecution calls per query id.
    polls: BTreeMap<String, usize>,
    /// Bytes scanned to report per query id, and the reason for a cancelled one.
    scanned: BTreeMap<String, (i64, Option<String>)>,
}

struct AthenaProxy {
    url: String,
    seen: Arc<Mutex<Seen>>,
}

#[derive(Clone)]
struct Engine {
    moto: String,
    seen: Arc<Mutex<Seen>>,
    s3: Arc<Bucket>,
    /// Billing periods whose query the workgroup's scan limit cancels.
    cancel: Vec<&'static str>,
    facts: Vec<u8>,
    /// The bytes an UNLOAD of a period scans (the export's part).
    part_bytes: i64,
}

async fn forward(
    moto: &str,
    method: &axum::http::Method,
    uri: &axum::http::Uri,
    headers: &axum::http::HeaderMap,
    body: Vec<u8>,
) -> (u16, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let mut request = reqwest::Client::new().request(
        reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method"),
        format!("{moto}{uri}"),
    );
    for (name, value) in headers {
        if name != "host" && name != "content-length" {
            request = request.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = request.body(body).send().await.expect("moto answers");
    let status = answer.status().as_u16();
    let headers = answer
        .headers()
        .iter()
        .filter(|(n, _)| *n != "content-length" && *n != "transfer-encoding")
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    (
        status,
        headers,
        answer.bytes().await.expect("body").to_vec(),
    )
}

/// The `s3://…` after `TO` and the period of `DATE 'YYYY-MM-01'` in an UNLOAD.
fn unload_target(sql: &str) -> (String, String) {
    let to = sql.rsplit_once(") TO '").expect("UNLOAD … TO").1;
    let to = to
        .split('\'')
        .next()
        .expect("a quoted location")
        .to_string();
    let period = sql.split("DATE '").nth(1).expect("a period filter")[..7].to_string();
    (to, period)
}

async fn play(
    axum::extract::State(engine): axum::extract::State<Engine>,
    method: axum::http::Method,
    uri: axum::http::Uri,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut unload = None;
    if target.ends_with("StartQueryExecution") {
        let sql = json["QueryString"].as_str().unwrap_or_default().to_string();
        if sql.starts_with("UNLOAD") {
            let (to, period) = unload_target(&sql);
            if !engine.cancel.contains(&period.as_str()) {
                // The engine writes its facts where the UNLOAD says, named as Athena names them.
                let (bucket, prefix) = athena::split_s3_uri(&to).expect("an s3 location");
                let key = format!("{prefix}20261203_101500_00042_x7k2p_6f1d9a52-part-0");
                engine.s3.put_to(&bucket, &key, engine.facts.clone()).await;
            }
            unload = Some((sql, period));
        }
    }
    let (status, answer_headers, mut answer) =
        forward(&engine.moto, &method, &uri, &headers, body.to_vec()).await;
    if let Some((sql, period)) = unload {
        let answered: serde_json::Value = serde_json::from_slice(&answer).expect("json");
        let id = answered["QueryExecutionId"]
            .as_str()
            .expect("an id")
            .to_string();
        let cancel = engine.cancel.contains(&period.as_str());
        {
            let mut seen = engine.seen.lock().expect("lock");
            seen.unloads.push((id.clone(), sql));
            let scanned = match cancel {
                true => (
                    LIMIT_BYTES,
                    Some("Query cancelled: bytes scanned limit was exceeded".to_string()),
                ),
                false => (engine.part_bytes, None),
            };
            seen.scanned.insert(id.clone(), scanned);
        }
        if cancel {
            let stop = reqwest::Client::new()
                .post(&engine.moto)
                .header("x-amz-target", "AmazonAthena.StopQueryExecution")
                // moto finds the service by the signature's scope (it checks nothing else).
                .header(
                    "authorization",
                    "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20261203/us-east-1/athena/aws4_request, SignedHeaders=host, Signature=0",
                )
                .header("content-type", "application/x-amz-json-1.1")
                .body(serde_json::json!({ "QueryExecutionId": id }).to_string())
                .send()
                .await
                .expect("moto stops the query");
            assert!(stop.status().is_success(), "{stop:?}");
        }
    }
    if target.ends_with("GetQueryExecution") && status == 200 {
        let id = json["QueryExecutionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut seen = engine.seen.lock().expect("lock");
        *seen.polls.entry(id.clone()).or_default() += 1;
        if let Some((bytes, reason)) = seen.scanned.get(&id) {
            let mut execution: serde_json::Value = serde_json::from_slice(&answer).expect("json");
            execution["QueryExecution"]["Statistics"]["DataScannedInBytes"] = (*bytes).into();
            if let Some(reason) = reason {
                execution["QueryExecution"]["Status"]["StateChangeReason"] = reason.clone().into();
            }
            answer = execution.to_string().into_bytes();
        }
    }
    let mut response = axum::response::Response::builder().status(status);
    for (name, value) in answer_headers {
        response = response.header(name, value);
    }
    response
        .body(axum::body::Body::from(answer))
        .expect("response")
}

impl AthenaProxy {
    async fn start(moto: &Moto, s3: Arc<Bucket>, cancel: Vec<&'static str>) -> AthenaProxy {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let engine = Engine {
            moto: moto.url.clone(),
            seen: Arc::clone(&seen),
            s3,
            cancel,
            facts: std::fs::read(data(FACTS)).expect("the facts fixture"),
            part_bytes: std::fs::metadata(data(PART)).expect("the part").len() as i64,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new().fallback(play).with_state(engine);
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        AthenaProxy {
            url: format!("http://{addr}"),
            seen,
        }
    }
}

/// The Athena type of an arrow column, as Athena's catalog shows a table over that parquet.
fn athena_type(data_type: &arrow_schema::DataType) -> String {
    use arrow_schema::DataType as T;
    match data_type {
        T::Float64 => "double".into(),
        T::Float32 => "real".into(),
        T::Int64 => "bigint".into(),
        T::Int32 => "integer".into(),
        T::Date32 => "date".into(),
        T::Timestamp(_, _) => "timestamp(3)".into(),
        T::Map(_, _) => "map(varchar, varchar)".into(),
        T::Decimal128(p, s) => format!("decimal({p},{s})"),
        _ => "varchar".into(),
    }
}

/// Queues moto's answer to the columns question: the columns of a table over the export's
/// parquet copy, and its partition column, after the header row a SELECT's result starts with.
async fn seed_columns(moto: &Moto) {
    let batches = read_batches(&data(PARQUET_COPY));
    let schema = batches[0].schema();
    let cell = |text: &str| serde_json::json!({ "VarCharValue": text });
    let mut rows = vec![serde_json::json!({ "Data": [cell("column_name"), cell("data_type")] })];
    for field in schema.fields() {
        let kind = athena_type(field.data_type());
        rows.push(serde_json::json!({ "Data": [cell(field.name()), cell(&kind)] }));
    }
    rows.push(serde_json::json!({ "Data": [cell("billing_period"), cell("varchar")] }));
    let column = |name: &str| {
        serde_json::json!({ "CatalogName": "hive", "SchemaName": "", "TableName": "", "Name": name,
            "Label": name, "Type": "varchar", "Precision": 0, "Scale": 0,
            "Nullable": "UNKNOWN", "CaseSensitive": true })
    };
    let response = reqwest::Client::new()
        .post(format!("{}/moto-api/static/athena/query-results", moto.url))
        .json(&serde_json::json!({ "results": [
            { "rows": rows, "column_info": [column("column_name"), column("data_type")] }
        ] }))
        .send()
        .await
        .expect("moto answers");
    assert!(response.status().is_success(), "{response:?}");
}

/// The workgroup the export's queries run in, created through the real Athena client.
async fn create_workgroup(moto: &Moto, name: &str) {
    let config = aws_sdk_athena::config::Builder::new()
        .behavior_version(aws_sdk_athena::config::BehaviorVersion::latest())
        .region(aws_sdk_athena::config::Region::new("us-east-1"))
        .endpoint_url(&moto.url)
        .credentials_provider(aws_sdk_athena::config::Credentials::new(
            "AKIAIOSFODNN7EXAMPLE",
            "admin-secret",
            None,
            None,
            "test",
        ))
        .build();
    aws_sdk_athena::Client::from_conf(config)
        .create_work_group()
        .name(name)
        .send()
        .await
        .expect("workgroup created");
}

/// Query executions advance one state per poll: QUEUED, then RUNNING, then SUCCEEDED.
async fn poll_slowly(moto: &Moto) {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/moto-api/state-manager/set-transition",
            moto.url
        ))
        .json(&serde_json::json!({
            "model_name": "athena::execution",
            "transition": { "progression": "manual", "times": 1 }
        }))
        .send()
        .await
        .expect("moto answers");
    assert!(response.status().is_success(), "{response:?}");
}

fn workspace(endpoint: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rules")).expect("rules dir");
    std::fs::write(dir.path().join("rules/rules.toml"), "").expect("rules");
    std::fs::write(
        dir.path().join("costsplit.toml"),
        format!(
            r#"store_url = "sqlite://costsplit.db"
rules_dir = "rules"

[[exports]]
name = "ha"
bucket = "{BUCKET}"
prefix = "{PREFIX}"
format = "cur2"
account = "147303435917"
endpoint_url = "{endpoint}"
engine = "athena"
workgroup = "finops"
database = "billing"
table = "ha_cur2"
output_location = "s3://{RESULTS}/athena/"
"#
        ),
    )
    .expect("config");
    dir
}

fn sync(dir: &std::path::Path) -> std::process::Output {
    costsplit(dir)
        .aws(SECRET)
        .env("COSTSPLIT_LOG", "debug")
        .run(&["sync", "exports"])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn athena_unloads_each_changed_period_and_a_cancelled_query_fails_its_period_alone() {
    let moto = Moto::start().await;
    let bucket = Arc::new(Bucket::create(&moto).await);
    bucket.create_other(RESULTS).await;
    let part = std::fs::read(data(PART)).expect("the real CUR 2.0 part");
    bucket
        .export("2026-04", "2026-04-16T15:24:15.653Z-e1", &[part])
        .await;
    bucket
        .export(
            "2026-03",
            "2026-04-01T02:00:00.000Z-e0",
            &[b"parts".to_vec()],
        )
        .await;
    create_workgroup(&moto, "finops").await;
    poll_slowly(&moto).await;
    seed_columns(&moto).await;
    let proxy = AthenaProxy::start(&moto, Arc::clone(&bucket), vec!["2026-03"]).await;
    let dir = workspace(&proxy.url);

    let first = sync(dir.path());
    let all = show(&first);
    assert_eq!(first.status.code(), Some(1), "{all}");
    assert!(!all.contains(SECRET), "the secret key leaked:\n{all}");
    let part_bytes = std::fs::metadata(data(PART)).expect("part").len() as i64;
    let (unloads, polls) = {
        let seen = proxy.seen.lock().expect("lock");
        (seen.unloads.clone(), seen.polls.clone())
    };
    assert_eq!(
        unloads.len(),
        2,
        "one UNLOAD per period: {unloads:#?}\n{all}"
    );
    let (march_id, march_sql) = &unloads[0];
    let (april_id, april_sql) = &unloads[1];
    assert!(
        march_sql.contains("billing_period = '2026-03'"),
        "{march_sql}"
    );
    // Only the period's partition is read, the typed columns become the plan's text, and
    // the facts go to a folder of their own under the output location.
    assert!(
        april_sql.contains(
            "FROM \"AwsDataCatalog\".\"billing\".\"ha_cur2\"\n  WHERE billing_period = '2026-04'"
        ),
        "{april_sql}"
    );
    assert!(
        april_sql.contains("JSON_FORMAT(CAST(\"resource_tags\" AS JSON)) AS \"resource_tags\""),
        "{april_sql}"
    );
    assert!(
        april_sql.contains(&format!(
            "TO 's3://{RESULTS}/athena/costsplit-facts/ha/2026-04/"
        )),
        "{april_sql}"
    );
    assert!(
        polls[april_id] >= 2,
        "the query was polled until it ended: {polls:?}"
    );

    // The facts Athena wrote are the period's, exactly the local import's.
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("costsplit.db").display()
    ))
    .await
    .expect("store");
    april_holds(&store, &data(PART), "Athena's facts are the local import's").await;
    let march = store
        .facts(day("2026-03-01"), day("2026-03-31"))
        .await
        .expect("facts");
    assert!(march.is_empty(), "the cancelled period stored nothing");
    let runs = store.sync_runs(10).await.expect("runs");
    let run_of = |from: &str| {
        runs.iter()
            .find(|r| r.from == day(from))
            .unwrap_or_else(|| panic!("no run for {from}: {runs:#?}"))
            .clone()
    };
    let price = athena::parse_price("5.00").expect("price");
    let april = run_of("2026-04-01");
    assert_eq!(april.status.as_str(), "ok", "{april:#?}");
    assert_eq!(april.query_id.as_deref(), Some(april_id.as_str()));
    assert_eq!(april.bytes_scanned, part_bytes);
    assert_eq!(april.cost, athena::scan_cost(part_bytes, price));
    assert!(
        april.message.contains("2026-04 imported by Athena")
            && april.message.contains(&format!("query {april_id}")),
        "{april:#?}"
    );
    let march = run_of("2026-03-01");
    assert_eq!(march.status.as_str(), "failed", "{march:#?}");
    assert_eq!(march.query_id.as_deref(), Some(march_id.as_str()));
    // March, the first period, also carries the columns question (moto scans 0: Athena bills
    // its 10 MB minimum) and pays for what the cancelled query scanned.
    assert_eq!(march.bytes_scanned, LIMIT_BYTES);
    assert_eq!(
        march.cost,
        athena::scan_cost(0, price) + athena::scan_cost(LIMIT_BYTES, price)
    );
    assert!(
        march
            .message
            .contains("was cancelled after scanning 12.0 GB")
            && march.message.contains("bytes scanned limit")
            && march.message.contains("stored facts are unchanged"),
        "{march:#?}"
    );
    assert_eq!(store.count(Table::Imports).await.expect("count"), 1);
    store.close().await;

    // April has not changed: it is not queried (nor paid for) again; March is tried again.
    seed_columns(&moto).await;
    let second = sync(dir.path());
    let all = show(&second);
    assert!(
        all.contains("2026-04 unchanged since it was imported"),
        "{all}"
    );
    let unloads = proxy.seen.lock().expect("lock").unloads.clone();
    assert_eq!(unloads.len(), 3, "{unloads:#?}");
    assert!(unloads[2].1.contains("billing_period = '2026-03'"));

    // The query inside the UNLOAD (which sqlglot's Athena grammar keeps as an opaque command)
    // parses in sqlglot's Trino grammar.
    let python = std::env::var("COSTSPLIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let inner = april_sql
        .strip_prefix("UNLOAD (")
        .and_then(|s| s.rsplit_once(") TO '"))
        .expect("UNLOAD (query) TO")
        .0;
    let file = dir.path().join("unload.sql");
    std::fs::write(&file, inner).expect("write");
    let check = std::process::Command::new(&python)
        .args([
            "-c",
            "import sys, sqlglot; sqlglot.parse_one(open(sys.argv[1]).read(), read='trino', error_level=sqlglot.ErrorLevel.RAISE); print('ok')",
        ])
        .arg(&file)
        .output()
        .expect("python runs");
    assert!(
        check.status.success(),
        "sqlglot could not parse the UNLOAD's query: {}\n{inner}",
        String::from_utf8_lossy(&check.stderr)
    );
}

/// `import --facts s3://…` reads an engine's facts where it wrote them (UNLOAD's files have no
/// extension; Spark's `_SUCCESS` is skipped), refuses an object that is not facts by its S3
/// name, and says that billing exports come through `sync exports`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_facts_reads_an_s3_folder_and_names_what_is_not_facts() {
    let moto = Moto::start().await;
    let bucket = Bucket::create(&moto).await;
    let facts = std::fs::read(data(FACTS)).expect("the facts fixture");
    bucket
        .put_to(
            BUCKET,
            "facts/2026-04/20261203_101500_00042_x7k2p_part-0",
            facts,
        )
        .await;
    bucket
        .put_to(BUCKET, "facts/2026-04/_SUCCESS", Vec::new())
        .await;
    let parquet = std::fs::read(data(PARQUET_COPY)).expect("the export's parquet copy");
    bucket.put_to(BUCKET, "lines/part-0", parquet).await;
    let dir = workspace(&moto.url);
    let import = |args: &[&str]| {
        costsplit(dir.path())
            .aws(SECRET)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .run(args)
    };

    let out = import(&["import", "--facts", "s3://billing/facts/2026-04/"]);
    let all = show(&out);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("imported 1882 line items"), "{all}");
    let store = Store::connect(&format!(
        "sqlite://{}",
        dir.path().join("costsplit.db").display()
    ))
    .await
    .expect("store");
    april_holds(
        &store,
        &data(PART),
        "the facts from S3 are the local import's",
    )
    .await;
    store.close().await;

    let out = import(&["import", "--facts", "s3://billing/lines/"]);
    let all = show(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("s3://billing/lines/part-0") && all.contains("facts file"),
        "{all}"
    );
    assert!(
        !all.contains(".parquet"),
        "a temporary file named instead of the object: {all}"
    );

    let out = import(&["import", "s3://billing/facts/2026-04/"]);
    let all = show(&out);
    assert!(!out.status.success(), "{all}");
    assert!(all.contains("S3 folders are read with --facts"), "{all}");
    assert!(!all.contains(SECRET), "the secret key leaked:\n{all}");
}
