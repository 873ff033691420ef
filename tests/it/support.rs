//! Test harness: a fresh store per test on SQLite (temp file) or real PostgreSQL (a database
//! per test on 127.0.0.1:5432, dropped afterwards), paths to test data, and rule loading.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use costsplit::rules::Rules;
use costsplit::store::Store;
use sqlx::{Connection, Executor};

/// Where the PostgreSQL server for tests is; a database is created per test.
pub fn pg_admin_url() -> String {
    std::env::var("COSTSPLIT_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

pub fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

pub fn repo_rules() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

pub const BOTH: [Kind; 2] = [Kind::Sqlite, Kind::Postgres];

/// A store that cleans up after itself.
pub struct TestStore {
    pub store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    pg_database: Option<String>,
}

impl TestStore {
    pub async fn new(kind: Kind) -> TestStore {
        match kind {
            Kind::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let url = format!("sqlite://{}", dir.path().join("costsplit.db").display());
                let store = Store::connect(&url).await.expect("sqlite store opens");
                TestStore {
                    store,
                    url,
                    _dir: Some(dir),
                    pg_database: None,
                }
            }
            Kind::Postgres => {
                static COUNTER: AtomicUsize = AtomicUsize::new(0);
                let name = format!(
                    "costsplit_test_{}_{}_{}",
                    std::process::id(),
                    COUNTER.fetch_add(1, Ordering::SeqCst),
                    chrono::Utc::now().timestamp_micros() % 1_000_000
                );
                let admin = pg_admin_url();
                let mut conn = sqlx::PgConnection::connect(&admin).await.expect(
                    "PostgreSQL on 127.0.0.1:5432 is reachable (set COSTSPLIT_TEST_PG_URL)",
                );
                conn.execute(format!("CREATE DATABASE {name}").as_str())
                    .await
                    .expect("create test database");
                conn.close().await.ok();
                let (base, _) = admin.rsplit_once('/').expect("admin URL has a database");
                let url = format!("{base}/{name}");
                let store = Store::connect(&url).await.expect("postgres store opens");
                TestStore {
                    store,
                    url,
                    _dir: None,
                    pg_database: Some(name),
                }
            }
        }
    }
}

impl TestStore {
    /// The URL, for opening a second connection as a restarted process would.
    pub fn store_url(&self) -> String {
        self.url.clone()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        let Some(name) = self.pg_database.take() else {
            return;
        };
        let admin = pg_admin_url();
        // Drop the database from a fresh runtime on another thread (Drop cannot await).
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin).await.ok()?;
                conn.execute(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)").as_str())
                    .await
                    .ok()?;
                Some(())
            })
        })
        .join();
    }
}

/// Loads rules from text; panics with every diagnostic if they do not validate.
pub fn rules(files: &[(&str, &str)]) -> Rules {
    let loaded = costsplit::rules::load_texts(files);
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "rules do not validate: {errors:#?}");
    loaded.rules.expect("no errors")
}

pub fn day(text: &str) -> chrono::NaiveDate {
    costsplit::model::parse_day(text).expect("valid test day")
}

/// 2026-01-01T00:00:00Z, the time the tests' runs are recorded at.
pub const NOW: costsplit::clock::Clock = costsplit::clock::Clock::Fixed(1_767_225_600);

/// moto's server (`moto_server`, installed by scripts/test into a project-local venv) on a
/// free loopback port; killed when dropped.
pub struct Moto {
    child: std::process::Child,
    pub url: String,
}

impl Moto {
    pub async fn start() -> Moto {
        let bin = std::env::var("COSTSPLIT_MOTO_SERVER")
            .unwrap_or_else(|_| format!("{}/.venv/bin/moto_server", env!("CARGO_MANIFEST_DIR")));
        assert!(
            Path::new(&bin).exists(),
            "moto_server not found at {bin}: run the tests with scripts/test, which installs moto into a venv (or set COSTSPLIT_MOTO_SERVER)"
        );
        let port = free_port();
        let child = std::process::Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = reqwest::Client::new();
        for _ in 0..300 {
            if let Ok(response) = client.get(format!("{}/moto-api/", moto.url)).send().await {
                if response.status().is_success() {
                    return moto;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("moto_server did not answer on {} within 30 s", moto.url);
    }

    /// Queues Cost Explorer `GetCostAndUsage` answers for an account; moto hands them out in
    /// order, one per distinct request body.
    pub async fn seed_cost_and_usage(&self, account: &str, results: serde_json::Value) {
        let response = reqwest::Client::new()
            .post(format!(
                "{}/moto-api/static/ce/cost-and-usage-results",
                self.url
            ))
            .json(&serde_json::json!({ "account_id": account, "results": results }))
            .send()
            .await
            .expect("moto answers");
        assert!(
            response.status().is_success(),
            "seeding failed: {response:?}"
        );
    }

    /// Forgets every seeded answer and cached response.
    pub async fn reset(&self) {
        reqwest::Client::new()
            .post(format!("{}/moto-api/reset", self.url))
            .send()
            .await
            .expect("moto answers");
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An exact decimal (`-1.3333E-6`, `205.498553815914165999`) in units of 1e-12, parsed here
/// on its own (not with the importer's parser), rounded half away from zero.
pub fn picos(text: &str) -> i128 {
    let (mantissa, exponent) = match text.split_once(['E', 'e']) {
        Some((m, e)) => (m, e.parse::<i32>().expect("exponent")),
        None => (text, 0),
    };
    let negative = mantissa.starts_with('-');
    let digits = mantissa.trim_start_matches(['-', '+']);
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let all: Vec<u32> = format!("{int}{frac}")
        .chars()
        .map(|c| c.to_digit(10).expect("a digit"))
        .collect();
    // value = all * 10^(exponent - frac.len()); in picos: shift by 12.
    let shift = exponent - frac.len() as i32 + 12;
    let mut value: i128 = 0;
    let mut round_up = false;
    for (i, d) in all.iter().enumerate() {
        let position = all.len() as i32 - 1 - i as i32 + shift; // power of ten of this digit
        if position >= 0 {
            value += i128::from(*d) * 10i128.pow(position as u32);
        } else if position == -1 {
            round_up = *d >= 5;
        }
    }
    value += i128::from(round_up);
    if negative {
        -value
    } else {
        value
    }
}

/// The costsplit binary as a user runs it, the one way the tests run it (as zero2prod's
/// `spawn_app` is the one way its tests start the app): in `dir`, with none of the caller's
/// costsplit settings; `store`, `rules`, `aws` and `env` add what a test gives it.
pub struct Costsplit(std::process::Command);

/// [`Costsplit`] in `dir`.
pub fn costsplit(dir: &Path) -> Costsplit {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_costsplit"));
    cmd.current_dir(dir)
        .env_remove("COSTSPLIT_STORE_URL")
        .env_remove("COSTSPLIT_RULES_DIR")
        .env_remove("COSTSPLIT_CONFIG");
    Costsplit(cmd)
}

impl Costsplit {
    /// The store it uses (`COSTSPLIT_STORE_URL`).
    pub fn store(self, url: &str) -> Costsplit {
        self.env("COSTSPLIT_STORE_URL", url)
    }

    /// The rules directory it uses (`COSTSPLIT_RULES_DIR`).
    pub fn rules(self, dir: &Path) -> Costsplit {
        self.env("COSTSPLIT_RULES_DIR", dir)
    }

    pub fn env(mut self, key: &str, value: impl AsRef<std::ffi::OsStr>) -> Costsplit {
        self.0.env(key, value);
        self
    }

    /// As a user with AWS credentials runs it: the given secret access key, no AWS config or
    /// credential files, no instance metadata, none of the caller's AWS endpoint settings.
    pub fn aws(mut self, secret: &str) -> Costsplit {
        let dir = self
            .0
            .get_current_dir()
            .expect("the binary runs in a folder")
            .to_path_buf();
        self.0
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env("AWS_ACCESS_KEY_ID", "AKIAIOSFODNN7EXAMPLE")
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .env("AWS_CONFIG_FILE", dir.join("no-aws-config"))
            .env(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.join("no-aws-credentials"),
            )
            .env("AWS_EC2_METADATA_DISABLED", "true");
        self
    }

    /// Runs it with `args` to its end.
    pub fn run(self, args: &[&str]) -> std::process::Output {
        self.command(args).output().expect("the binary runs")
    }

    /// The command with `args`, to spawn, wait for or kill.
    pub fn command(mut self, args: &[&str]) -> std::process::Command {
        self.0.args(args);
        self.0
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A TCP proxy on loopback in front of a server (PostgreSQL, say) that can be frozen: it
/// then stops passing bytes either way without closing anything, as a network partition
/// does. Stops when dropped.
pub struct FreezableProxy {
    pub port: u16,
    frozen: std::sync::Arc<std::sync::atomic::AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl FreezableProxy {
    pub async fn start(upstream: std::net::SocketAddr) -> FreezableProxy {
        use std::sync::atomic::Ordering;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let frozen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = frozen.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    continue;
                };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                for (mut from, mut to) in [
                    (
                        Box::new(cr) as Box<dyn tokio::io::AsyncRead + Unpin + Send>,
                        Box::new(sw) as Box<dyn tokio::io::AsyncWrite + Unpin + Send>,
                    ),
                    (Box::new(sr), Box::new(cw)),
                ] {
                    let flag = flag.clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match from.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            while flag.load(Ordering::SeqCst) {
                                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                            }
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            }
        });
        FreezableProxy { port, frozen, task }
    }

    /// From now on nothing passes, and nothing is closed.
    pub fn freeze(&self) {
        self.frozen.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for FreezableProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An HTTP proxy on loopback that passes every request to `upstream` (moto) as it is and
/// keeps what was asked: moto answers its seeded results whatever the request says, so a
/// test reads the requests here to see that costsplit asks for the right thing.
pub struct RecordingProxy {
    pub url: String,
    requests: std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
}

impl RecordingProxy {
    pub async fn start(upstream: &str) -> RecordingProxy {
        use axum::body::{Body, Bytes};
        use axum::extract::State;
        use axum::http::{HeaderMap, Method, Uri};
        type Shared = (
            String,
            std::sync::Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>,
        );
        async fn pass(
            State((upstream, requests)): State<Shared>,
            method: Method,
            uri: Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            let target = headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
            requests.lock().expect("lock").push((target, json));
            let mut request = reqwest::Client::new().request(
                reqwest::Method::from_bytes(method.as_str().as_bytes()).expect("method"),
                format!("{upstream}{uri}"),
            );
            for (name, value) in &headers {
                if name != "host" && name != "content-length" {
                    request = request.header(name.as_str(), value.as_bytes());
                }
            }
            let answer = request
                .body(body.to_vec())
                .send()
                .await
                .expect("upstream answers");
            let mut response = axum::response::Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                if name != "content-length" && name != "transfer-encoding" {
                    response = response.header(name.as_str(), value.as_bytes());
                }
            }
            let bytes = answer.bytes().await.expect("upstream body");
            response.body(Body::from(bytes)).expect("response")
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let requests = std::sync::Arc::default();
        let app = axum::Router::new()
            .fallback(pass)
            .with_state((upstream.to_string(), std::sync::Arc::clone(&requests)));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        RecordingProxy {
            url: format!("http://{addr}"),
            requests,
        }
    }

    /// The JSON bodies of the requests whose `X-Amz-Target` ends with `operation`.
    pub fn bodies(&self, operation: &str) -> Vec<serde_json::Value> {
        self.requests
            .lock()
            .expect("lock")
            .iter()
            .filter(|(target, _)| target.ends_with(operation))
            .map(|(_, body)| body.clone())
            .collect()
    }
}

/// `costsplit --rules rules rules check` in `dir`, with `config` as its costsplit.toml (none
/// when empty): the exit code and what it printed.
pub fn rules_check_with(dir: &Path, config: &str) -> (Option<i32>, String) {
    let file = dir.join("costsplit.toml");
    if config.is_empty() {
        let _ = std::fs::remove_file(&file);
    } else {
        std::fs::write(&file, config).expect("config");
    }
    let out = costsplit(dir).run(&["--rules", "rules", "rules", "check"]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// A text column for a parquet test file.
pub fn strings(values: &[&str]) -> arrow_array::ArrayRef {
    std::sync::Arc::new(arrow_array::StringArray::from(values.to_vec()))
}

/// A float64 column for a parquet test file.
pub fn floats(values: &[f64]) -> arrow_array::ArrayRef {
    std::sync::Arc::new(arrow_array::Float64Array::from(values.to_vec()))
}

/// Writes `columns` as a parquet file (arrow-rs), in row groups of at most `row_group` rows.
pub fn parquet_file(path: &Path, columns: Vec<(&str, arrow_array::ArrayRef)>, row_group: usize) {
    let batch = arrow_array::RecordBatch::try_from_iter(columns).expect("a batch");
    write_batches(path, &[batch], row_group);
}

/// Writes `batches` as one parquet file, in row groups of at most `row_group` rows.
pub fn write_batches(path: &Path, batches: &[arrow_array::RecordBatch], row_group: usize) {
    let properties = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let file = std::fs::File::create(path).expect("create");
    let mut writer =
        parquet::arrow::ArrowWriter::try_new(file, batches[0].schema(), Some(properties))
            .expect("a writer");
    for batch in batches {
        writer.write(batch).expect("write");
    }
    writer.close().expect("close");
}

/// The record batches of a parquet file.
pub fn read_batches(path: &Path) -> Vec<arrow_array::RecordBatch> {
    let file = std::fs::File::open(path).expect("open");
    parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("a parquet file")
        .build()
        .expect("a reader")
        .collect::<Result<_, _>>()
        .expect("batches")
}
