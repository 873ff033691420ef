//! `costsplit sync exports` as a user runs it: the real binary and the real AWS SDK's S3
//! client, pointed at moto's S3 server holding an export laid out as AWS Data Exports writes
//! it (`metadata/BILLING_PERIOD=…/…-Manifest.json`, parts under `data/BILLING_PERIOD=…/<run>/`),
//! with the real CUR 2.0 export of tests/data/thirdparty as its part.

use std::io::Write;
use std::path::Path;
use std::process::Output;

use costsplit::ingest;
use costsplit::store::{Store, Table};

use crate::support::{costsplit, data, day, Moto};

pub(crate) const BUCKET: &str = "billing";
pub(crate) const PREFIX: &str = "cur/ha";
pub(crate) const PART: &str =
    "thirdparty/olaraji-aws-cur2-csv/derived/ha-project-CUR-daily-1-00001.csv.gz";
pub(crate) const SECRET: &str = "s3-s3cr3t-never-logged";

/// The bucket, written through the real S3 SDK client (signed requests, as AWS writes exports).
pub(crate) struct Bucket {
    client: aws_sdk_s3::Client,
}

impl Bucket {
    pub(crate) async fn create(moto: &Moto) -> Bucket {
        let config = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new("us-east-1"))
            .endpoint_url(&moto.url)
            .force_path_style(true)
            .credentials_provider(aws_sdk_s3::config::Credentials::new(
                "AKIAIOSFODNN7EXAMPLE",
                "writer-secret",
                None,
                None,
                "test",
            ))
            .build();
        let bucket = Bucket {
            client: aws_sdk_s3::Client::from_conf(config),
        };
        bucket
            .client
            .create_bucket()
            .bucket(BUCKET)
            .send()
            .await
            .expect("bucket created");
        bucket
    }

    async fn put(&self, key: &str, body: Vec<u8>) {
        self.put_to(BUCKET, key, body).await
    }

    /// Writes `body` as `key` of another bucket (which it creates first if asked).
    pub(crate) async fn put_to(&self, bucket: &str, key: &str, body: Vec<u8>) {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .body(body.into())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)));
    }

    /// Creates another bucket.
    pub(crate) async fn create_other(&self, bucket: &str) {
        self.client
            .create_bucket()
            .bucket(bucket)
            .send()
            .await
            .expect("bucket created");
    }

    /// One execution of the export for `period`: its parts and the period's manifest.
    pub(crate) async fn export(&self, period: &str, execution: &str, parts: &[Vec<u8>]) {
        let mut keys = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let key = format!(
                "{PREFIX}/data/BILLING_PERIOD={period}/{execution}/ha-{:05}.csv.gz",
                i + 1
            );
            self.put(&key, part.clone()).await;
            keys.push(format!("s3://{BUCKET}/{key}"));
        }
        let manifest = serde_json::json!({
            "executionId": execution,
            "exportArn": "arn:aws:bcm-data-exports:us-east-1:147303435917:export/ha",
            "columns": [],
            "dataFiles": keys,
        });
        self.put(
            &format!("{PREFIX}/metadata/BILLING_PERIOD={period}/ha-Manifest.json"),
            manifest.to_string().into_bytes(),
        )
        .await;
    }
}

struct Workspace {
    dir: tempfile::TempDir,
}

impl Workspace {
    fn new(endpoint: &str) -> Workspace {
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
"#
            ),
        )
        .expect("config");
        Workspace { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn sync(&self) -> Output {
        costsplit(self.path())
            .aws(SECRET)
            .env("COSTSPLIT_LOG", "debug")
            .run(&["sync", "exports"])
    }

    async fn store(&self) -> Store {
        Store::connect(&format!(
            "sqlite://{}",
            self.path().join("costsplit.db").display()
        ))
        .await
        .expect("store")
    }
}

pub(crate) fn show(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Asserts April 2026 in the store holds exactly the facts of `file` (in any order).
pub(crate) async fn april_holds(store: &Store, file: &Path, what: &str) {
    let expected = ingest::read_files(&[file.to_path_buf()]).expect("the file imports");
    let april = store
        .facts(day("2026-04-01"), day("2026-04-30"))
        .await
        .expect("facts");
    let sorted = |facts: &[costsplit::model::Fact]| {
        let mut all: Vec<String> = facts.iter().map(|f| format!("{f:?}")).collect();
        all.sort();
        all
    };
    assert_eq!(sorted(&april), sorted(&expected.facts), "{what}");
}

/// The first `rows` line items of the real export, gzipped: a rewrite of the period.
pub(crate) fn first_rows(rows: usize) -> Vec<u8> {
    let text = std::fs::read_to_string(data(
        "thirdparty/olaraji-aws-cur2-csv/ha-project-CUR-daily-1-00001.csv",
    ))
    .expect("the export");
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record(reader.headers().expect("header"))
        .expect("write");
    for record in reader.records().take(rows) {
        writer
            .write_record(&record.expect("record"))
            .expect("write");
    }
    let csv = writer.into_inner().expect("csv");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&csv).expect("gzip");
    gz.finish().expect("gzip")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_export_is_imported_skipped_while_unchanged_and_reimported_when_rewritten() {
    let moto = Moto::start().await;
    let bucket = Bucket::create(&moto).await;
    let part = std::fs::read(data(PART)).expect("the real CUR 2.0 part");
    bucket
        .export("2026-04", "2026-04-16T15:24:15.653Z-e1", &[part])
        .await;
    // Another period whose part is not what its name says: it fails alone.
    bucket
        .export(
            "2026-03",
            "2026-04-01T02:00:00.000Z-e0",
            &[b"not gzip".to_vec()],
        )
        .await;
    let ws = Workspace::new(&moto.url);

    let first = ws.sync();
    let all = show(&first);
    assert_eq!(first.status.code(), Some(1), "{all}");
    assert!(
        all.contains("2026-04 imported: 1882 line items from 1 part(s)"),
        "{all}"
    );
    assert!(
        all.contains("error: export ha: 2026-03:")
            && all.contains("s3://billing/cur/ha/data/BILLING_PERIOD=2026-03/2026-04-01T02:00:00.000Z-e0/ha-00001.csv.gz")
            && all.contains("stored facts are unchanged"),
        "{all}"
    );
    assert!(!all.contains(SECRET), "the secret key leaked:\n{all}");
    let store = ws.store().await;
    april_holds(&store, &data(PART), "the period holds exactly the export").await;
    let march = store
        .facts(day("2026-03-01"), day("2026-03-31"))
        .await
        .expect("facts");
    assert!(march.is_empty(), "the failed period stored nothing");
    assert_eq!(store.count(Table::Imports).await.expect("count"), 1);
    store.close().await;

    // Nothing changed: nothing is downloaded or imported again.
    let second = ws.sync();
    let all = show(&second);
    assert!(
        all.contains("2026-04 unchanged since it was imported"),
        "{all}"
    );
    let store = ws.store().await;
    assert_eq!(
        store.count(Table::Imports).await.expect("count"),
        1,
        "{all}"
    );
    store.close().await;

    // AWS rewrites the period (a new execution, a new manifest): imported again, replacing
    // the period instead of adding to it.
    let rewritten = first_rows(1000);
    bucket
        .export(
            "2026-04",
            "2026-04-17T03:00:00.000Z-e2",
            std::slice::from_ref(&rewritten),
        )
        .await;
    let third = ws.sync();
    let all = show(&third);
    assert!(
        all.contains("2026-04 imported: 1000 line items from 1 part(s)"),
        "{all}"
    );
    let local = tempfile::tempdir().expect("tempdir");
    let file = local.path().join("rewritten.csv.gz");
    std::fs::write(&file, &rewritten).expect("write");
    let store = ws.store().await;
    april_holds(&store, &file, "the rewrite replaced the period").await;
    let runs = store.sync_runs(20).await.expect("runs");
    assert_eq!(runs.len(), 6, "two periods per sync: {runs:#?}");
    assert!(runs
        .iter()
        .all(|r| r.source == costsplit::model::ImportSource::S3Export && r.account == "ha"));
    store.close().await;

    // AWS rewrites it again, but one of the two parts is broken: the period fails and keeps
    // the facts of the last good export, whole.
    bucket
        .export(
            "2026-04",
            "2026-04-18T03:00:00.000Z-e3",
            &[first_rows(500), b"\x1f\x8b not really gzip".to_vec()],
        )
        .await;
    let fourth = ws.sync();
    let all = show(&fourth);
    assert_eq!(fourth.status.code(), Some(1), "{all}");
    assert!(
        all.contains("2026-04:") && all.contains("stored facts are unchanged"),
        "{all}"
    );
    let store = ws.store().await;
    april_holds(
        &store,
        &file,
        "the broken rewrite kept the last good export",
    )
    .await;
    store.close().await;
}

/// A manifest that lists one part 2,000 times is refused before anything is downloaded,
/// naming the part once; the period's stored facts stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_listing_a_part_twice_is_refused_before_any_download() {
    let moto = Moto::start().await;
    let bucket = Bucket::create(&moto).await;
    let part = std::fs::read(data(PART)).expect("the real CUR 2.0 part");
    let key = format!("{PREFIX}/data/BILLING_PERIOD=2026-04/e1/ha-00001.csv.gz");
    bucket.put(&key, part).await;
    let uri = format!("s3://{BUCKET}/{key}");
    let manifest = serde_json::json!({
        "executionId": "e1",
        "columns": [],
        "dataFiles": vec![uri.clone(); 2000],
    });
    bucket
        .put(
            &format!("{PREFIX}/metadata/BILLING_PERIOD=2026-04/ha-Manifest.json"),
            manifest.to_string().into_bytes(),
        )
        .await;
    let ws = Workspace::new(&moto.url);
    let out = ws.sync();
    let all = show(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        all.contains("more than once (1999 repeated entries)"),
        "{all}"
    );
    let store = ws.store().await;
    let runs = store.sync_runs(10).await.expect("runs");
    let april = runs
        .iter()
        .find(|r| r.from == day("2026-04-01"))
        .expect("a run for April");
    assert!(april.calls <= 3, "no part was downloaded: {april:?}");
    assert_eq!(
        april.message.matches("ha-00001.csv.gz").count(),
        1,
        "{april:?}"
    );
    assert_eq!(store.count(Table::Facts).await.expect("count"), 0);
    store.close().await;
}
