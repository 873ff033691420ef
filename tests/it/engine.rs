//! Issue 28: the line items summed into daily facts by a real Spark cluster (pyspark from
//! PyPI: a standalone master and two workers on 127.0.0.1, started here and stopped after),
//! with the SQL `costsplit engine` generates; the facts equal the local import's to the
//! nano-unit, and so do the allocations made from them, on SQLite and PostgreSQL. The Trino
//! text (Athena's) is parsed by sqlglot's Trino grammar.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use costsplit::ingest;

use crate::support::{costsplit, data, day, free_port, repo_rules, TestStore, BOTH};

const CUR2_CSV: &str = "thirdparty/olaraji-aws-cur2-csv/ha-project-CUR-daily-1-00001.csv";
const CUR2_PARQUET: &str =
    "thirdparty/olaraji-aws-cur2-csv/derived/ha-project-CUR-daily-1-00001.snappy.parquet";
const AZURE_FOCUS: &str = "thirdparty/cur-anon-azure-focus/sample_focus.csv";
const LEGACY_CSV: &str =
    "thirdparty/focus-converters-aws-cur-legacy/sample-anonymous-aws-export-dataset.csv";

/// The legacy CUR at `input` with two tag columns added (`resourceTags/user:team`,
/// `resourceTags/aws:createdBy`): set, empty, padded and `NULL` values by turns.
fn with_tag_columns(input: &Path, dir: &Path) -> PathBuf {
    let out = dir.join("legacy-tagged.csv");
    let mut reader = csv::Reader::from_path(input).expect("the legacy CUR reads");
    let mut writer = csv::Writer::from_path(&out).expect("write");
    let mut header = reader.headers().expect("header").clone();
    header.push_field("resourceTags/user:team");
    header.push_field("resourceTags/aws:createdBy");
    writer.write_record(&header).expect("write");
    let teams = ["web", "", " api ", "NULL", "data"];
    let creators = ["", "AssumedRole:ci", "IAMUser:ana"];
    for (i, record) in reader.records().enumerate() {
        let mut record = record.expect("a legacy CUR row");
        record.push_field(teams[i % teams.len()]);
        record.push_field(creators[i % creators.len()]);
        writer.write_record(&record).expect("write");
    }
    writer.flush().expect("write");
    out
}

/// The CUR 2.0 CSV at `input` with the `resource_tags` of its row `row` (1 the first after the
/// header) cut off mid-object: text that is not a JSON object of tags.
fn with_broken_tags(input: &Path, dir: &Path, row: usize) -> PathBuf {
    let out = dir.join("broken-tags.csv");
    let mut reader = csv::Reader::from_path(input).expect("the CUR 2.0 CSV reads");
    let mut writer = csv::Writer::from_path(&out).expect("write");
    let header = reader.headers().expect("header").clone();
    let tags = header
        .iter()
        .position(|h| h == "resource_tags")
        .expect("a resource_tags column");
    writer.write_record(&header).expect("write");
    for (i, record) in reader.records().enumerate() {
        let record = record.expect("a CUR 2.0 row");
        let cells = record.iter().enumerate().map(|(c, cell)| match c {
            c if c == tags && i + 1 == row => r#"{"user_project": "ha-web"#,
            _ => cell,
        });
        writer.write_record(cells).expect("write");
    }
    writer.flush().expect("write");
    out
}

/// Spark's folder (pyspark's package folder), installed by scripts/test.
fn spark_home() -> PathBuf {
    let home = std::env::var("COSTSPLIT_SPARK_HOME").unwrap_or_default();
    assert!(
        Path::new(&home).join("bin/spark-class").exists(),
        "no Spark at COSTSPLIT_SPARK_HOME=`{home}`: run the tests with scripts/test, which installs pyspark into its venv and sets it"
    );
    PathBuf::from(home)
}

/// A standalone Spark master and two one-core workers on loopback; stopped when dropped.
struct SparkCluster {
    children: Vec<Child>,
    master: String,
    _dir: tempfile::TempDir,
}

impl SparkCluster {
    async fn start() -> SparkCluster {
        let home = spark_home();
        let dir = tempfile::tempdir().expect("tempdir");
        let (port, ui) = (free_port(), free_port());
        let class = |args: &[String], log: &str| {
            Command::new(home.join("bin/spark-class"))
                .args(args)
                .env("SPARK_HOME", &home)
                .env("SPARK_LOCAL_IP", "127.0.0.1")
                .env("SPARK_LOG_DIR", dir.path())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.path().join(log)).expect("log file"))
                .spawn()
                .expect("spark-class starts")
        };
        let mut children = vec![class(
            &[
                "org.apache.spark.deploy.master.Master".into(),
                "--host".into(),
                "127.0.0.1".into(),
                "--port".into(),
                port.to_string(),
                "--webui-port".into(),
                ui.to_string(),
            ],
            "master.log",
        )];
        let master = format!("spark://127.0.0.1:{port}");
        for n in 0..2 {
            let work = dir.path().join(format!("worker-{n}"));
            children.push(class(
                &[
                    "org.apache.spark.deploy.worker.Worker".into(),
                    "--host".into(),
                    "127.0.0.1".into(),
                    "--cores".into(),
                    "1".into(),
                    "--memory".into(),
                    "1G".into(),
                    "--webui-port".into(),
                    free_port().to_string(),
                    "--work-dir".into(),
                    work.display().to_string(),
                    master.clone(),
                ],
                &format!("worker-{n}.log"),
            ));
        }
        let cluster = SparkCluster {
            children,
            master,
            _dir: dir,
        };
        // Ready when the master counts both workers alive.
        let started = Instant::now();
        loop {
            let answer = match reqwest::get(format!("http://127.0.0.1:{ui}/json/")).await {
                Ok(response) => response.json::<serde_json::Value>().await.ok(),
                Err(_) => None,
            };
            let alive = answer.and_then(|v| v["aliveworkers"].as_u64());
            if alive == Some(2) {
                return cluster;
            }
            assert!(
                started.elapsed() < Duration::from_secs(180),
                "the Spark master on 127.0.0.1:{ui} did not see two workers within 3 minutes (alive: {alive:?})"
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

impl Drop for SparkCluster {
    fn drop(&mut self) {
        for child in self.children.iter_mut().rev() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `costsplit generate KIND --rows ROWS` into `dir/name`.
fn generate(dir: &Path, kind: &str, rows: usize, name: &str) -> PathBuf {
    let out = dir.join(name);
    let output = costsplit(dir).run(&[
        "generate",
        kind,
        "--rows",
        &rows.to_string(),
        "--out",
        &out.display().to_string(),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

/// `costsplit engine run` of `input` (an export of `format`) on `cluster`, into `out`.
fn engine_run(
    cluster: &SparkCluster,
    dir: &Path,
    format: &str,
    input: &Path,
    out: &Path,
) -> std::process::Output {
    costsplit(dir).env("SPARK_LOCAL_IP", "127.0.0.1").run(&[
        "engine",
        "run",
        "--format",
        format,
        "--spark-master",
        &cluster.master,
        "--spark-home",
        &spark_home().display().to_string(),
        "--output",
        &out.display().to_string(),
        &input.display().to_string(),
    ])
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spark_cluster_sums_cur_2_0_and_focus_exports_to_the_local_import_s_facts_and_allocations_on_both_stores(
) {
    let cluster = SparkCluster::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    // A generated CUR 2.0 month as parquet: float costs, timestamps, savings-plan lines.
    let generated = generate(dir.path(), "--cur2", 20_000, "generated-cur2.parquet");
    // The real export as CSV and as parquet (maps, timestamps), the generated month, and a
    // real FOCUS export (Azure's: a BOM, 24-decimal amounts, minutes without seconds), each
    // through the cluster and against the local import of the same file.
    for (name, format, input) in [
        ("csv", "cur2", data(CUR2_CSV)),
        ("parquet", "cur2", data(CUR2_PARQUET)),
        ("generated", "cur2", generated.clone()),
        ("focus", "focus", data(AZURE_FOCUS)),
        // A real legacy CUR CSV with a column per tag added, and a legacy CUR's parquet
        // (snake_case, `resource_tags_user_*` columns).
        (
            "legacy-csv",
            "legacy-cur",
            with_tag_columns(&data(LEGACY_CSV), dir.path()),
        ),
        (
            "legacy-parquet",
            "legacy-cur",
            data("cur-legacy-sample.parquet"),
        ),
    ] {
        let local = ingest::read_files(std::slice::from_ref(&input)).expect("the export imports");
        let out = dir.path().join(format!("facts-{name}"));
        let output =
            tokio::task::block_in_place(|| engine_run(&cluster, dir.path(), format, &input, &out));
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: engine run failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(stdout.contains("costsplit import --facts"), "{stdout}");
        let engine = ingest::read_files(std::slice::from_ref(&out)).expect("the facts import");
        assert_eq!(engine.facts.len(), local.facts.len(), "{name}: facts");
        for (e, l) in engine.facts.iter().zip(&local.facts) {
            assert_eq!(e, l, "{name}: a fact differs");
        }
        assert_eq!(engine.periods, local.periods, "{name}: periods");
        assert_eq!(engine.line_items, local.line_items, "{name}: line items");
    }
    // Spark's metastore stays out of the user's folder.
    assert!(!dir.path().join("metastore_db").exists() && !dir.path().join("derby.log").exists());
    // Split cost allocation data is the local import's alone: the query fails, saying so,
    // and writes nothing.
    let split = generate(dir.path(), "--split-cost", 3_000, "split.csv");
    let out = dir.path().join("facts-split");
    let output =
        tokio::task::block_in_place(|| engine_run(&cluster, dir.path(), "cur2", &split, &out));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("split cost allocation data") && stderr.contains("costsplit import"),
        "{stderr}"
    );
    // Tags that are not a JSON object: the local import refuses the file naming the row and
    // column, and the engine's query fails too, naming the column, instead of reading them as
    // no tags (whose cost would go unallocated).
    let broken = with_broken_tags(&data(CUR2_CSV), dir.path(), 7);
    let local = ingest::read_files(std::slice::from_ref(&broken))
        .expect_err("the local import refuses it")
        .to_string();
    assert!(local.contains("resource_tags"), "{local}");
    let out = dir.path().join("facts-broken");
    let output =
        tokio::task::block_in_place(|| engine_run(&cluster, dir.path(), "cur2", &broken, &out));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("a resource_tags value is not a JSON object of tags"),
        "{stderr}"
    );
    // What Spark leaves of a failed job holds no facts file.
    let written = std::fs::read_dir(&out).into_iter().flatten().flatten();
    assert!(
        !written
            .map(|e| e.path())
            .any(|p| p.extension().is_some_and(|x| x == "parquet")),
        "a failed engine run writes no facts"
    );
    // Stored and allocated from the engine's facts and from the export: the same, per store.
    let facts_dir = dir.path().join("facts-csv");
    for kind in BOTH {
        let (from_engine, from_export) = (TestStore::new(kind).await, TestStore::new(kind).await);
        let facts = facts_dir.display().to_string();
        let export = data(CUR2_CSV).display().to_string();
        for (store, args) in [
            (
                &from_engine,
                vec!["import", "--facts", "--allocate", facts.as_str()],
            ),
            (&from_export, vec!["import", "--allocate", export.as_str()]),
        ] {
            let output = costsplit(dir.path())
                .store(&store.store_url())
                .rules(&repo_rules())
                .run(&args);
            assert!(
                output.status.success(),
                "{kind:?} {args:?}: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let (from, to) = (day("2026-03-01"), day("2026-05-31"));
        let engine_facts = from_engine.store.facts(from, to).await.expect("facts");
        assert!(!engine_facts.is_empty());
        assert_eq!(
            engine_facts,
            from_export.store.facts(from, to).await.expect("facts"),
            "{kind:?}"
        );
        let engine_allocations = from_engine.store.allocations(from, to).await.expect("rows");
        assert!(!engine_allocations.is_empty());
        assert_eq!(
            engine_allocations,
            from_export.store.allocations(from, to).await.expect("rows"),
            "{kind:?}: allocations"
        );
    }
}

/// The Trino text (Athena's) cannot run here; it is generated from the same plan as the Spark
/// text and parsed by sqlglot's Trino grammar (both texts, each by its own dialect).
#[test]
fn the_generated_trino_and_spark_sql_parse_in_their_dialects() {
    let python = std::env::var("COSTSPLIT_PYTHON").unwrap_or_else(|_| "python3".into());
    let dir = tempfile::tempdir().expect("tempdir");
    for (format, dialect) in [
        ("cur2", "trino"),
        ("cur2", "spark"),
        ("focus", "trino"),
        ("focus", "spark"),
        ("legacy-cur", "trino"),
        ("legacy-cur", "spark"),
    ] {
        let output = costsplit(dir.path()).run(&[
            "engine",
            "sql",
            "--format",
            format,
            "--dialect",
            dialect,
            "--period",
            "2026-04",
        ]);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let sql = String::from_utf8(output.stdout).expect("utf-8");
        assert!(
            sql.contains("DECIMAL(38, 11)") && !sql.contains("DOUBLE"),
            "{sql}"
        );
        assert!(sql.contains("DATE '2026-04-01'"), "{sql}");
        let file = dir.path().join(format!("{format}-{dialect}.sql"));
        std::fs::write(&file, &sql).expect("write");
        let check = Command::new(&python)
            .args([
                "-c",
                "import sys, sqlglot; e = sqlglot.parse_one(open(sys.argv[1]).read(), read=sys.argv[2]); print(len(e.expressions))",
            ])
            .arg(&file)
            .arg(dialect)
            .output()
            .expect("python runs (scripts/test installs sqlglot into its venv)");
        assert!(
            check.status.success(),
            "{format} {dialect}: sqlglot does not parse the generated SQL: {}\n{sql}",
            String::from_utf8_lossy(&check.stderr)
        );
        // The day, the period, the eight keys, four sums and the line count.
        assert_eq!(
            String::from_utf8_lossy(&check.stdout).trim(),
            "15",
            "{dialect}"
        );
    }
}

/// `import --facts` refuses a billing export (or any file that is not a facts file), naming
/// the first missing column, and stores nothing.
#[tokio::test]
async fn import_facts_refuses_a_file_that_is_not_a_facts_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = TestStore::new(crate::support::Kind::Sqlite).await;
    for (file, says) in [
        (
            data(CUR2_PARQUET),
            "missing required column `day`; a costsplit facts file",
        ),
        (data(CUR2_CSV), "not a facts file: facts files are parquet"),
    ] {
        let output = costsplit(dir.path()).store(&store.store_url()).run(&[
            "import",
            "--facts",
            &file.display().to_string(),
        ]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains(says), "{stderr}");
    }
    let (from, to) = (day("2026-01-01"), day("2026-12-31"));
    assert!(store.store.facts(from, to).await.expect("facts").is_empty());
}
