//! `costsplit run` as a user runs it: the real binary on a free port against SQLite and
//! PostgreSQL, driven over its HTTP endpoint and with real signals.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use costsplit::store::Store;
use sqlx::Connection;

use crate::support::{repo_rules, Kind, TestStore};

/// A workspace: the repository's rules, a costsplit.toml, and yesterday's billing imported
/// (so the daemon's allocation window has facts).
struct Workspace {
    dir: tempfile::TempDir,
    store_url: String,
}

impl Workspace {
    fn new(store_url: &str, schedule: &str) -> Workspace {
        let ws = Workspace::empty(store_url, schedule);
        ws.import_yesterday();
        ws
    }

    /// The workspace with nothing imported.
    fn empty(store_url: &str, schedule: &str) -> Workspace {
        let dir = tempfile::tempdir().expect("tempdir");
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).expect("rules dir");
        for entry in std::fs::read_dir(repo_rules()).expect("repo rules") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|e| e == "toml") {
                std::fs::copy(&path, rules.join(path.file_name().expect("name"))).expect("copy");
            }
        }
        std::fs::create_dir(rules.join("weights")).expect("weights dir");
        std::fs::copy(
            repo_rules().join("weights/aurora.csv"),
            rules.join("weights/aurora.csv"),
        )
        .expect("copy weights");
        std::fs::write(
            dir.path().join("costsplit.toml"),
            format!(
                "store_url = \"{store_url}\"\nrules_dir = \"rules\"\n\n[daemon]\npoll_seconds = 1\ngrace_seconds = 5\n{schedule}"
            ),
        )
        .expect("config");
        Workspace {
            dir,
            store_url: store_url.to_string(),
        }
    }

    fn import_yesterday(&self) {
        self.import_day(
            chrono::Utc::now().date_naive().pred_opt().expect("a day"),
            &[
                (
                    "i-1",
                    "120.50",
                    "\"{\"\"service\"\":\"\"checkout-api\"\"}\"",
                ),
                ("i-2", "80.25", "\"{\"\"service\"\":\"\"search-api\"\"}\""),
                ("i-3", "9.99", "NULL"),
            ],
        );
    }

    /// Imports one day of FOCUS line items (resource, cost, tags), replacing its month.
    fn import_day(&self, day: chrono::NaiveDate, rows: &[(&str, &str, &str)]) {
        let ws = self;
        let month = day.format("%Y-%m-01");
        let mut csv = "ChargePeriodStart,BillingPeriodStart,BillingAccountId,BillingCurrency,BilledCost,EffectiveCost,ServiceName,ResourceId,ChargeCategory,Tags\n".to_string();
        for (resource, cost, tags) in rows {
            csv.push_str(&format!(
                "{day}T00:00:00Z,{month},payer,USD,{cost},{cost},Amazon EC2,{resource},Usage,{tags}\n"
            ));
        }
        std::fs::write(ws.dir.path().join("yesterday.csv"), csv).expect("billing file");
        let out = ws
            .command()
            .args(["import", "yesterday.csv"])
            .output()
            .expect("import runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Two `costsplit run` on the workspace's store: the first leads, the second stands by.
    async fn leader_and_standby(&self) -> (Daemon, Daemon) {
        let a = self.start(crate::support::free_port());
        a.wait_for("/readyz", 60, |b| b.contains("role: leader"))
            .await;
        let b = self.start(crate::support::free_port());
        b.wait_for("/readyz", 60, |body| body.contains("role: standby"))
            .await;
        (a, b)
    }

    /// A Prometheus usage source in the rules, at `url`, with a long timeout.
    fn add_source(&self, url: &str) {
        std::fs::write(
            self.dir.path().join("rules/usage.toml"),
            format!(
                "[[source]]\nname = \"msk\"\nkind = \"prometheus\"\nurl = \"{url}\"\ntimeout_seconds = 120\nquery = \"sum by (topic) (kafka_log_log_size)\"\nlabel = \"topic\"\nmap = {{ \"orders\" = \"checkout-api\" }}\n"
            ),
        )
        .expect("usage rules");
    }

    fn command(&self) -> Command {
        let mut cmd = crate::support::costsplit(self.dir.path()).command(&[]);
        cmd.env_remove("COSTSPLIT_SLACK_WEBHOOK_URL")
            .env_remove("COSTSPLIT_SLACK_BOT_TOKEN");
        cmd
    }

    fn start(&self, port: u16) -> Daemon {
        self.start_as(port, self.command())
    }

    /// Starts `costsplit run` through `command` (a command with AWS credentials, say).
    fn start_as(&self, port: u16, mut command: Command) -> Daemon {
        let log = self.dir.path().join(format!("daemon-{port}.log"));
        let child = command
            .arg("run")
            .env("COSTSPLIT_LISTEN", format!("127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("costsplit run starts");
        Daemon {
            child,
            url: format!("http://127.0.0.1:{port}"),
            log,
        }
    }
}

struct Daemon {
    child: Child,
    url: String,
    log: std::path::PathBuf,
}

impl Daemon {
    async fn get(&self, path: &str) -> Option<(u16, String)> {
        let response = reqwest::get(format!("{}{path}", self.url)).await.ok()?;
        let status = response.status().as_u16();
        Some((status, response.text().await.ok()?))
    }

    /// Waits (up to `secs`) until `path` answers 200 with a body that `ok` accepts.
    async fn wait_for(&self, path: &str, secs: u64, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut last = None;
        while Instant::now() < deadline {
            if let Some((200, body)) = self.get(path).await {
                if ok(&body) {
                    return body;
                }
                last = Some(body);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!(
            "{path} never answered as expected within {secs} s; last: {last:?}\nlog:\n{}",
            self.logs()
        );
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
    }

    /// Waits for the process to exit (up to `secs`); its exit code.
    fn wait_exit(&mut self, secs: u64) -> Option<i32> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus that answers its query API after `delay`: a usage source that takes long.
async fn slow_prometheus(delay: Duration) -> wiremock::MockServer {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let slow = MockServer::start().await;
    Mock::given(path("/api/v1/query"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(delay)
                .set_body_json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}})),
        )
        .mount(&slow)
        .await;
    slow
}

/// Ends, from the server's side, the PostgreSQL sessions holding advisory locks in the
/// store's database (a failover or a network drop cutting the leader's lock session): how many.
async fn cut_the_leaders_lock(url: &str) -> i64 {
    let mut admin = sqlx::PgConnection::connect(url).await.expect("connect");
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    admin.close().await.ok();
    cut
}

fn rules_hash(readyz: &str) -> String {
    readyz
        .lines()
        .find_map(|l| l.strip_prefix("rules: "))
        .expect("a rules line")
        .to_string()
}

/// Started on a fresh store, the daemon catches up the daily jobs it never ran (once),
/// answers its endpoints, keeps its rules through a bad edit, and stops on SIGTERM with
/// exit code 0, the store consistent.
async fn the_daemon_runs_its_jobs_and_stops_cleanly(kind: Kind) {
    let t = TestStore::new(kind).await;
    let ws = Workspace::new(&t.store_url(), "");
    let mut daemon = ws.start(crate::support::free_port());
    assert_eq!(
        daemon.wait_for("/healthz", 60, |b| b == "ok\n").await,
        "ok\n"
    );
    let ready = daemon
        .wait_for("/readyz", 30, |b| b.contains("role: leader"))
        .await;
    assert!(ready.contains("store: ok"), "{ready}");
    let hash = rules_hash(&ready);
    // The daily allocate never ran on this store: it is caught up once, at start.
    let metrics = daemon
        .wait_for("/metrics", 60, |b| {
            b.contains("costsplit_job_runs_total{job=\"allocate\"} 1")
                && b.contains("costsplit_job_runs_total{job=\"alerts\"} 1")
        })
        .await;
    assert!(
        metrics.contains("costsplit_job_failures_total{job=\"allocate\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains(&format!("costsplit_rules_info{{hash=\"{hash}\"}} 1")),
        "{metrics}"
    );
    assert!(metrics.contains("costsplit_outbox_depth "), "{metrics}");
    assert!(metrics.contains("costsplit_leader 1"), "{metrics}");
    assert!(
        daemon.logs().contains("catching up a missed run"),
        "{}",
        daemon.logs()
    );

    // A bad edit is refused with its file and line; the old rules stay active.
    std::fs::write(
        ws.dir.path().join("rules/zz-bad.toml"),
        "[[pool]]\nname = \"broken\"\nmethod = \"magic\"\n",
    )
    .expect("bad edit");
    let ready = daemon
        .wait_for("/readyz", 30, |b| b.contains("rules edit refused"))
        .await;
    assert_eq!(rules_hash(&ready), hash, "the last good rules stay");
    assert!(ready.contains("zz-bad.toml:"), "{ready}");
    // SIGHUP reloads at once; still refused, and the process lives on.
    daemon.signal("HUP");
    daemon.wait_for("/healthz", 10, |b| b == "ok\n").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !daemon.logs().contains("SIGHUP: reloading the rules") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        daemon.logs().contains("SIGHUP: reloading the rules"),
        "{}",
        daemon.logs()
    );
    // Fixed, the edit is taken: a new rules hash.
    std::fs::write(
        ws.dir.path().join("rules/zz-bad.toml"),
        "[[service]]\nname = \"new-service\"\n",
    )
    .expect("fixed edit");
    let ready = daemon
        .wait_for("/readyz", 30, |b| !b.contains("rules edit refused"))
        .await;
    let fixed = costsplit::rules::load(&ws.dir.path().join("rules"))
        .rules
        .expect("the fixed rules are valid")
        .hash;
    assert_ne!(fixed, hash);
    assert_eq!(rules_hash(&ready), fixed, "the fixed rules are active");

    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(30), Some(0), "{}", daemon.logs());
    let store = Store::connect(&ws.store_url).await.expect("store");
    let runs = store.job_runs(50).await.expect("job runs");
    let allocate: Vec<_> = runs.iter().filter(|r| r.job == "allocate").collect();
    assert_eq!(
        allocate.len(),
        1,
        "caught up once, not once per missed day: {runs:?}"
    );
    assert!(allocate[0].ok, "{:?}", allocate[0]);
    let yesterday = chrono::Utc::now().date_naive().pred_opt().expect("a day");
    let report = costsplit::jobs::report(&store, (yesterday, yesterday), None)
        .await
        .expect("the daemon allocated yesterday");
    assert!(report.reconciled(), "{:?}", report.reconciliation_lines());
    assert_eq!(report.billed["USD"].format(2), "210.74");
    store.close().await;
}

#[tokio::test]
async fn the_daemon_runs_its_jobs_and_stops_cleanly_on_both_stores() {
    for kind in [Kind::Sqlite, Kind::Postgres] {
        the_daemon_runs_its_jobs_and_stops_cleanly(kind).await;
    }
}

/// The role a replica's /readyz reports.
async fn role(d: &Daemon) -> Option<&'static str> {
    let (_, body) = d.get("/readyz").await?;
    if body.contains("role: leader") {
        Some("leader")
    } else if body.contains("role: standby") {
        Some("standby")
    } else {
        None
    }
}

/// Waits (up to `secs`) until exactly one of `a` and `b` leads; the leader's index.
async fn one_leader(a: &Daemon, b: &Daemon, secs: u64) -> usize {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        match (role(a).await, role(b).await) {
            (Some("leader"), Some("standby")) => return 0,
            (Some("standby"), Some("leader")) => return 1,
            _ => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    panic!(
        "no single leader within {secs} s\n{}\n{}",
        a.logs(),
        b.logs()
    );
}

/// Two replicas on one PostgreSQL store: one leads, the other stands by. When the leader's
/// lock session is cut (a database failover, a network drop) it steps down and one of them
/// leads again; killed with `kill -9`, the leader hands over within a few poll intervals.
#[tokio::test]
async fn two_daemons_on_one_postgres_store_take_turns() {
    let t = TestStore::new(Kind::Postgres).await;
    let ws = Workspace::new(&t.store_url(), "");
    let (a, b) = ws.leader_and_standby().await;
    // Still one leader a few polls later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(one_leader(&a, &b, 5).await, 0);

    // Cut the leader's lock session from the server side.
    let cut = cut_the_leaders_lock(&t.store_url()).await;
    assert_eq!(cut, 1, "one session holds the lead");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !a.logs().contains("lost the lead") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(a.logs().contains("lost the lead"), "{}", a.logs());
    let leader = one_leader(&a, &b, 30).await;

    let (mut gone, survivor) = if leader == 0 { (a, b) } else { (b, a) };
    gone.signal("KILL");
    let _ = gone.wait_exit(10);
    let started = Instant::now();
    survivor
        .wait_for("/readyz", 30, |body| body.contains("role: leader"))
        .await;
    assert!(started.elapsed() < Duration::from_secs(30));
}

/// A job on a one-second schedule that fails (nothing to allocate yet) is recorded with its
/// reason on every tick and tried again at the next one; the daemon goes on.
#[tokio::test]
async fn a_failing_job_is_recorded_and_retried_at_its_next_tick() {
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::empty(
        &t.store_url(),
        "[daemon.schedule]\nallocate = \"* * * * * *\"\n",
    );
    let daemon = ws.start(crate::support::free_port());
    daemon
        .wait_for("/metrics", 60, |b| {
            ["3", "4", "5", "6"].iter().any(|n| {
                b.contains(&format!(
                    "costsplit_job_failures_total{{job=\"allocate\"}} {n}"
                ))
            })
        })
        .await;
    let runs = t.store.job_runs(100).await.expect("job runs");
    let failed: Vec<_> = runs.iter().filter(|r| r.job == "allocate").collect();
    assert!(failed.len() >= 3, "{runs:?}");
    assert!(failed
        .iter()
        .all(|r| !r.ok && r.reason.contains("no billing facts between")));
    // Ticks one second apart, never two runs of one tick.
    let ticks: std::collections::BTreeSet<String> =
        failed.iter().map(|r| r.tick.to_string()).collect();
    assert_eq!(ticks.len(), failed.len(), "{failed:?}");
    assert_eq!(daemon.get("/healthz").await.map(|r| r.0), Some(200));
}

/// SIGTERM while a job waits on a slow system: the job gets its grace period, is then
/// abandoned with nothing of it committed, the run is recorded as such, and the process
/// exits 0 within the grace period, not after the job's own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_job_ends_within_the_grace_period() {
    let slow = slow_prometheus(Duration::from_secs(60)).await;
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::new(&t.store_url(), "");
    std::fs::write(
        ws.dir.path().join("costsplit.toml"),
        format!(
            "store_url = \"{}\"\nrules_dir = \"rules\"\n\n[daemon]\npoll_seconds = 1\ngrace_seconds = 2\n",
            t.store_url()
        ),
    )
    .expect("config");
    ws.add_source(&slow.uri());
    let mut daemon = ws.start(crate::support::free_port());
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        !slow
            .received_requests()
            .await
            .unwrap_or_default()
            .is_empty(),
        "{}",
        daemon.logs()
    );
    let stopped = Instant::now();
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(20), Some(0), "{}", daemon.logs());
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "ended in the grace period"
    );
    let runs = t.store.job_runs(20).await.expect("runs");
    let usage = runs
        .iter()
        .find(|r| r.job == "sync_usage")
        .expect("the run is recorded");
    assert!(!usage.ok);
    assert!(usage.reason.contains("grace period"), "{usage:?}");
    assert_eq!(
        t.store
            .count(costsplit::store::Table::UsageSamples)
            .await
            .expect("count"),
        0
    );
    assert_eq!(
        t.store
            .count(costsplit::store::Table::UsageRuns)
            .await
            .expect("count"),
        0,
        "nothing of the abandoned job was committed"
    );
}

/// The deployment files agree with each other and with the daemon: the port the compose file
/// publishes is the one the daemon listens on and the image exposes, the rules are mounted
/// where the daemon reads them, Grafana's datasource uid is the dashboards', and every file
/// the compose file mounts exists.
#[test]
fn the_deployment_files_agree_with_the_daemon() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| std::fs::read_to_string(root.join(name)).expect(name);
    let compose = read("docker-compose.yml");
    let dockerfile = read("Dockerfile");
    let value = |text: &str, key: &str| -> String {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key))
            .unwrap_or_else(|| panic!("no `{key}`"))
            .trim()
            .trim_matches('"')
            .to_string()
    };
    let listen = value(&compose, "COSTSPLIT_LISTEN:");
    let port = listen.rsplit(':').next().expect("a port");
    assert!(
        compose.contains(&format!("\"{port}:{port}\"")),
        "published port {port}"
    );
    assert!(
        dockerfile.contains(&format!("EXPOSE {port}")),
        "image exposes {port}"
    );
    assert!(dockerfile.contains(&format!("COSTSPLIT_LISTEN=0.0.0.0:{port}")));
    assert!(dockerfile.contains("CMD [\"run\"]") && compose.contains("command: [\"run\"]"));
    assert!(
        dockerfile.contains("USER costsplit"),
        "the image runs as non-root"
    );
    let rules_dir = value(&compose, "COSTSPLIT_RULES_DIR:");
    assert!(
        compose.contains(&format!("./rules:{rules_dir}:ro")),
        "rules mounted at {rules_dir}"
    );
    for line in compose.lines().map(str::trim) {
        if let Some(mount) = line.strip_prefix("- ./") {
            let local = mount.split(':').next().expect("a local path");
            assert!(
                root.join(local).exists(),
                "compose mounts a missing {local}"
            );
        }
    }
    let datasource = read("dashboards/provisioning/datasource.yml");
    let uid = value(&datasource, "uid:");
    let dashboard: serde_json::Value =
        serde_json::from_str(&read("dashboards/costsplit.json")).expect("dashboard JSON");
    for panel in dashboard["panels"].as_array().expect("panels") {
        assert_eq!(panel["datasource"]["uid"], uid.as_str());
    }
    // The store the compose file points the daemon at is the database it creates.
    let store_url = value(&compose, "COSTSPLIT_STORE_URL:");
    let db = value(&compose, "POSTGRES_DB:");
    assert!(
        store_url.ends_with(&format!("@postgres:5432/{db}")),
        "{store_url}"
    );
}

/// The scheduler on simulated time: six days of the default schedules run in a moment
/// against a real SQLite store. Jobs fire at their cron ticks, one at a time; allocate fails
/// while the window has no facts, is recorded as failed and runs again at its next tick, then
/// succeeds; the Monday weekly report reaches the outbox.
#[tokio::test(flavor = "multi_thread")]
async fn on_simulated_time_jobs_fire_at_their_ticks_never_overlap_and_failures_are_retried() {
    use chrono::{DateTime, Utc};
    use costsplit::config::{DaemonSettings, Schedules};
    use costsplit::daemon::Timeline;
    let ts = TestStore::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    // Billing for 2025-03-01..03 only.
    let rules_dir = dir.path().join("rules");
    std::fs::create_dir(&rules_dir).expect("mkdir");
    std::fs::write(rules_dir.join("test.toml"), crate::reports::RULES).expect("rules");
    let file = dir.path().join("march.csv");
    std::fs::write(&file, crate::reports::march_csv()).expect("csv");
    costsplit::jobs::import_files(&ts.store, &[file], crate::support::NOW)
        .await
        .expect("import");
    let config = costsplit::config::Config {
        store_url: ts.store_url(),
        rules_dir: rules_dir.clone(),
        cost_basis: costsplit::model::CostBasis::Effective,
        aws: None,
        exports: Vec::new(),
        daemon: DaemonSettings {
            listen: "127.0.0.1:0".into(),
            timezone: "UTC".into(),
            grace_seconds: 5,
            poll_seconds: 5,
            schedule: Schedules {
                notify: "0 0 * * * *".into(),
                ..Schedules::default()
            },
        },
        slack: Default::default(),
        catalog: None,
    };
    let at = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .expect("time")
            .with_timezone(&Utc)
    };
    let start = at("2025-02-27T06:30:00Z");
    let until = at("2025-03-04T23:59:00Z");
    let timeline = Timeline::simulated(start, until, 90);
    let (_trigger, shutdown) = costsplit::clock::Shutdown::channel();
    costsplit::daemon::run_on(config, shutdown, timeline)
        .await
        .expect("the daemon runs to the end of the simulated time");

    let mut runs = ts.store.job_runs(10_000).await.expect("job runs");
    runs.reverse();
    // Never two at once: each run starts after the previous one finished.
    for pair in runs.windows(2) {
        assert!(pair[1].started_at >= pair[0].finished_at, "{pair:?}");
        assert!(
            pair[1].started_at >= pair[1].tick,
            "a run never starts before its tick"
        );
    }
    let of = |job: &str| -> Vec<(String, String)> {
        runs.iter()
            .filter(|r| r.job == job)
            .map(|r| {
                (
                    r.tick.to_string(),
                    if r.ok { "ok" } else { "failed" }.to_string(),
                )
            })
            .collect()
    };
    // Allocate: the missed tick of 02-26 caught up once at start, then every day at 07:00;
    // failing while its window (the month to yesterday) had no facts, retried each tick.
    assert_eq!(
        of("allocate"),
        vec![
            ("2025-02-26T07:00:00Z".to_string(), "failed".to_string()),
            ("2025-02-27T07:00:00Z".into(), "failed".into()),
            ("2025-02-28T07:00:00Z".into(), "failed".into()),
            ("2025-03-01T07:00:00Z".into(), "failed".into()),
            ("2025-03-02T07:00:00Z".into(), "ok".into()),
            ("2025-03-03T07:00:00Z".into(), "ok".into()),
            ("2025-03-04T07:00:00Z".into(), "ok".into()),
        ]
    );
    let failed = runs
        .iter()
        .find(|r| r.job == "allocate" && !r.ok)
        .expect("a failure");
    assert!(failed.reason.contains("no billing facts"), "{failed:?}");
    // Notify every hour, from the first hour after the start (no catch-up for frequent jobs).
    let notify = of("notify");
    assert_eq!(
        notify.first().map(|n| n.0.as_str()),
        Some("2025-02-27T07:00:00Z")
    );
    assert_eq!(notify.len(), 24 * 5 + 17, "{notify:?}");
    assert!(notify.iter().all(|(t, _)| t.ends_with(":00:00Z")));
    // The weekly report: caught up at start (Monday 02-24, nothing allocated then: skipped),
    // then Monday 03-03 08:00 for the week 02-24..03-02, after that morning's allocate.
    let weekly: Vec<&costsplit::store::JobRun> =
        runs.iter().filter(|r| r.job == "report_weekly").collect();
    assert_eq!(weekly.len(), 2, "{weekly:?}");
    assert_eq!(weekly[1].tick.to_string(), "2025-03-03T08:00:00Z");
    assert!(
        weekly[1].reason.contains("team digest(s)"),
        "{:?}",
        weekly[1]
    );
    let reports = ts
        .store
        .list_alerts(Some(costsplit::model::MessageState::Pending))
        .await
        .expect("outbox")
        .into_iter()
        .filter(|r| r.kind == costsplit::model::MessageKind::Report)
        .count();
    assert!(reports >= 2, "the week's digests wait in the outbox");
}

/// The daily allocate covers the restatement window only, unless a month it touches holds
/// allocations made with other rules or no longer adding up to its facts: then from the
/// first of that month, so no month is left half on old rules.
#[tokio::test]
async fn the_daily_allocate_window_widens_to_the_month_only_when_its_allocations_are_stale() {
    use costsplit::model::CostBasis;
    let ts = TestStore::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = crate::reports::seeded(&ts.store, dir.path()).await;
    let day = crate::support::day;
    let window = (day("2025-03-02"), day("2025-03-03"));
    let got = costsplit::jobs::allocation_window(&ts.store, &rules, CostBasis::Effective, window)
        .await
        .expect("window");
    assert_eq!(got, window, "fresh allocations: just the window");
    let other = crate::support::rules(&[(
        "test.toml",
        &crate::reports::RULES.replace("method = \"equal\"", "method = \"proportional\""),
    )]);
    let got = costsplit::jobs::allocation_window(&ts.store, &other, CostBasis::Effective, window)
        .await
        .expect("window");
    assert_eq!(
        got,
        (day("2025-03-01"), day("2025-03-03")),
        "new rules: the whole month"
    );
    let got = costsplit::jobs::allocation_window(&ts.store, &rules, CostBasis::Billed, window)
        .await
        .expect("window");
    assert_eq!(
        got.0,
        day("2025-03-01"),
        "another cost basis: the whole month"
    );
    // Facts changed since (a re-import with one more line): the month again.
    let file = dir.path().join("more.csv");
    let mut csv = crate::reports::march_csv();
    csv.push_str("111111111111,222222222222,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,2025-03-01T00:00:00Z,2025-03-02T00:00:00Z,USD,1.00,1.00,1.00,Usage,,AWS,Amazon EC2,i-new,\n");
    std::fs::write(&file, csv).expect("write");
    costsplit::jobs::import_files(&ts.store, &[file], crate::support::NOW)
        .await
        .expect("import");
    let got = costsplit::jobs::allocation_window(&ts.store, &rules, CostBasis::Effective, window)
        .await
        .expect("window");
    assert_eq!(got.0, day("2025-03-01"), "changed facts: the whole month");
}

/// Each service's amount of `pool` on `day`, as stored.
async fn pool_shares(
    store_url: &str,
    pool: &str,
    day: chrono::NaiveDate,
) -> std::collections::BTreeMap<String, String> {
    let store = Store::connect(store_url).await.expect("store");
    let shares = store
        .allocations(day, day)
        .await
        .expect("allocations")
        .into_iter()
        .filter(|a| a.pool == pool)
        .map(|a| (a.service, a.amount.format(2)))
        .collect();
    store.close().await;
    shares
}

/// A platform team refreshes the Aurora weight CSV while the daemon runs: the daemon sees the
/// edit (it is part of the rules), shows the new rules hash, and its next allocate uses the
/// new weights instead of overwriting them with the old ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weight_file_edit_reaches_the_running_daemon_and_its_next_allocate() {
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::empty(
        &t.store_url(),
        "[daemon.schedule]\nallocate = \"* * * * * *\"\n",
    );
    let yesterday = chrono::Utc::now().date_naive().pred_opt().expect("a day");
    ws.import_day(
        yesterday,
        &[(
            "arn:aws:rds:us-east-1:1:db:shared-aurora-1",
            "100.00",
            "NULL",
        )],
    );
    let daemon = ws.start(crate::support::free_port());
    let ready = daemon
        .wait_for("/readyz", 60, |b| b.contains("role: leader"))
        .await;
    let before = rules_hash(&ready);
    // 420 of 1,000 weight units: $42.00 of $100.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pool_shares(&ws.store_url, "shared-aurora", yesterday)
        .await
        .get("checkout-api")
        .map(String::as_str)
        != Some("42.00")
    {
        assert!(Instant::now() < deadline, "{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    std::fs::write(
        ws.dir.path().join("rules/weights/aurora.csv"),
        "service,weight\ncheckout-api,100\npayments-api,100\norders-worker,100\ncatalog-api,700\n",
    )
    .expect("the weekly weight refresh");
    let ready = daemon
        .wait_for("/readyz", 30, |b| rules_hash(b) != before)
        .await;
    let after = rules_hash(&ready);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let shares = pool_shares(&ws.store_url, "shared-aurora", yesterday).await;
        if shares.get("checkout-api").map(String::as_str) == Some("10.00")
            && shares.get("catalog-api").map(String::as_str) == Some("70.00")
        {
            break;
        }
        assert!(Instant::now() < deadline, "{shares:?}\n{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let store = Store::connect(&ws.store_url).await.expect("store");
    let provenance = store
        .allocation_provenance(yesterday, yesterday)
        .await
        .expect("provenance");
    assert_eq!(
        provenance,
        vec![costsplit::model::Provenance {
            basis: costsplit::model::CostBasis::Effective,
            rules_hash: after
        }]
    );
    store.close().await;
}

/// The daemon allocates what reaches the store outside its restatement window: a month its
/// own S3 sync imports (a backfill), and the same month again when AWS rewrites it; `/readyz`
/// and `/metrics` say which months wait until the allocate job runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_synced_from_s3_outside_the_window_is_allocated_by_the_daemon() {
    use crate::exports::{first_rows, Bucket, BUCKET, PART, PREFIX};
    let moto = crate::support::Moto::start().await;
    let bucket = Bucket::create(&moto).await;
    let part = std::fs::read(crate::support::data(PART)).expect("the real CUR 2.0 part");
    bucket
        .export("2026-04", "2026-04-16T15:24:15.653Z-e1", &[part])
        .await;
    let t = TestStore::new(Kind::Sqlite).await;
    // Yesterday has facts, so the restatement window allocates; April is months before it.
    let ws = Workspace::new(
        &t.store_url(),
        &format!(
            "[daemon.schedule]\nsync_exports = \"*/2 * * * * *\"\nallocate = \"*/2 * * * * *\"\n\n[[exports]]\nname = \"ha\"\nbucket = \"{BUCKET}\"\nprefix = \"{PREFIX}\"\nformat = \"cur2\"\naccount = \"147303435917\"\nendpoint_url = \"{}\"\n",
            moto.url
        ),
    );
    let mut command = crate::support::costsplit(ws.dir.path())
        .aws("daemon-s3-secret")
        .command(&[]);
    command
        .env_remove("COSTSPLIT_SLACK_WEBHOOK_URL")
        .env_remove("COSTSPLIT_SLACK_BOT_TOKEN");
    let daemon = ws.start_as(crate::support::free_port(), command);
    let april = (
        crate::support::day("2026-04-01"),
        crate::support::day("2026-04-30"),
    );
    // Waits until April's allocations reconcile to `expected` (its facts' USD total).
    let reconciled = |expected: String, what: &'static str| {
        let url = ws.store_url.clone();
        let daemon = &daemon;
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            loop {
                let store = Store::connect(&url).await.expect("store");
                let report = costsplit::jobs::report(&store, april, None).await;
                store.close().await;
                if report.is_ok_and(|r| {
                    r.reconciled()
                        && r.billed.get("USD").map(|n| n.format(2)) == Some(expected.clone())
                }) {
                    return;
                }
                assert!(Instant::now() < deadline, "{what}:\n{}", daemon.logs());
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        }
    };
    let facts_total = |bytes: &[u8]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("part.csv.gz");
        std::fs::write(&file, bytes).expect("write");
        let imported = costsplit::ingest::read_files(&[file]).expect("reads");
        let total: costsplit::money::Nanos = imported.facts.iter().map(|f| f.effective).sum();
        total.format(2)
    };
    let first_total = facts_total(&std::fs::read(crate::support::data(PART)).expect("part"));
    reconciled(first_total.clone(), "April never allocated").await;
    let ready = daemon
        .wait_for("/readyz", 30, |b| b.contains("stale months: none"))
        .await;
    assert!(ready.contains("role: leader"), "{ready}");
    let metrics = daemon
        .wait_for("/metrics", 10, |b| b.contains("costsplit_stale_months 0"))
        .await;
    assert!(
        metrics.contains("# TYPE costsplit_stale_months gauge"),
        "{metrics}"
    );
    let store = Store::connect(&ws.store_url).await.expect("store");
    let runs = store.job_runs(200).await.expect("runs");
    store.close().await;
    assert!(
        runs.iter().any(|r| r.job == "allocate"
            && r.reason
                .contains("also allocated 2026-04 (never allocated)")),
        "{runs:?}"
    );

    // AWS rewrites the closed month (a refund, a credit): synced, then allocated again.
    let rewritten = first_rows(1000);
    let second_total = facts_total(&rewritten);
    assert_ne!(first_total, second_total);
    bucket
        .export("2026-04", "2026-04-17T03:00:00.000Z-e2", &[rewritten])
        .await;
    reconciled(second_total, "the rewrite was never allocated").await;
}

/// Two `costsplit run` on one SQLite file: one leads (a lock on a file beside the database)
/// and runs the jobs, the other says it stands by and runs none, so the catch-up runs once;
/// when the leader dies the other takes over.
#[tokio::test]
async fn two_daemons_on_one_sqlite_file_have_one_leader() {
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::new(&t.store_url(), "");
    let (a, b) = ws.leader_and_standby().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while !b
        .logs()
        .contains("standby: another process leads this store")
    {
        assert!(Instant::now() < deadline, "{}", b.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    a.wait_for("/metrics", 60, |m| {
        m.contains("costsplit_job_runs_total{job=\"alerts\"} 1")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(one_leader(&a, &b, 5).await, 0);
    let runs = t.store.job_runs(100).await.expect("runs");
    let allocates = runs.iter().filter(|r| r.job == "allocate").count();
    assert_eq!(
        allocates, 1,
        "the catch-up ran once, by the leader: {runs:?}"
    );
    assert!(!b.logs().contains("catching up"), "{}", b.logs());

    let (mut gone, survivor) = (a, b);
    gone.signal("KILL");
    let _ = gone.wait_exit(10);
    survivor
        .wait_for("/readyz", 30, |body| body.contains("role: leader"))
        .await;
}

/// Every schedule names a time that never comes: the daemon says so once (log and
/// `/readyz`) and idles, instead of spinning and logging thousands of lines a second.
#[tokio::test]
async fn with_no_tick_to_come_the_daemon_idles_and_says_so_once() {
    let never = "0 0 0 30 2 *";
    let schedule: String = [
        "sync_catalog",
        "sync_billing",
        "sync_exports",
        "sync_usage",
        "allocate",
        "alerts",
        "report_weekly",
        "report_monthly",
        "notify",
    ]
    .iter()
    .map(|job| format!("{job} = \"{never}\"\n"))
    .collect();
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::empty(&t.store_url(), &format!("[daemon.schedule]\n{schedule}"));
    let daemon = ws.start(crate::support::free_port());
    let ready = daemon
        .wait_for("/readyz", 60, |b| {
            b.contains("schedule: no job has a tick to come")
        })
        .await;
    assert!(ready.contains("role: leader"), "{ready}");
    let cpu = |pid: u32| -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<&str> = stat
            .rsplit(") ")
            .next()
            .expect("fields")
            .split(' ')
            .collect();
        let ticks: f64 =
            fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
        ticks / 100.0
    };
    let before = cpu(daemon.child.id());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let used = cpu(daemon.child.id()) - before;
    assert!(used < 1.0, "{used} s of CPU in 3 s: a busy loop");
    let logs = daemon.logs();
    assert_eq!(
        logs.matches("no job has a tick to come").count(),
        1,
        "{logs}"
    );
    assert!(!logs.contains("lost the lead"), "{logs}");
    assert!(logs.lines().count() < 40, "{logs}");
}

/// `rules check` says when each daemon job runs, reading weekdays as crontab does.
#[test]
fn rules_check_says_when_each_job_runs_with_crontab_weekdays() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("rules")).expect("rules");
    std::fs::write(
        dir.path().join("rules/r.toml"),
        "[[service]]\nname = \"a\"\n",
    )
    .expect("rules");
    let (code, stdout) = crate::support::rules_check_with(
        dir.path(),
        "[daemon.schedule]\nreport_weekly = \"0 0 8 * * 1\"\nalerts = \"0 15 7 * * 1-5\"\n",
    );
    assert_eq!(code, Some(0), "{stdout}");
    let weekly = stdout
        .lines()
        .find(|l| l.starts_with("schedule: report_weekly"))
        .expect("a report_weekly line");
    assert!(
        weekly.contains("\"0 0 8 * * 1\": next Mon "),
        "1 is Monday: {weekly}"
    );
    let alerts = stdout
        .lines()
        .find(|l| l.starts_with("schedule: alerts"))
        .expect("an alerts line");
    assert!(
        !alerts.contains("next Sat") && !alerts.contains("next Sun"),
        "1-5 is Monday to Friday: {alerts}"
    );
    // Weekday 8 does not exist: refused with the job and the fix.
    let (code, stdout) = crate::support::rules_check_with(
        dir.path(),
        "[daemon.schedule]\nreport_weekly = \"0 0 8 * * 8\"\n",
    );
    assert_eq!(code, Some(1), "{stdout}");
    assert!(
        stdout.contains("report_weekly = \"0 0 8 * * 8\": weekday `8` does not exist"),
        "{stdout}"
    );
}

/// The store stops answering without closing anything (a network partition): the
/// endpoints answer at once (`store: unreachable`), every store call of the loop is bounded,
/// and the leader says so and steps down instead of holding the lead on a connection that
/// no longer answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partitioned_store_is_reported_and_the_leader_steps_down() {
    let t = TestStore::new(Kind::Postgres).await;
    let url = t.store_url();
    let (_, database) = url.rsplit_once('/').expect("a database");
    let proxy =
        crate::support::FreezableProxy::start("127.0.0.1:5432".parse().expect("addr")).await;
    let via_proxy = format!("postgres://postgres@127.0.0.1:{}/{database}", proxy.port);
    let ws = Workspace::new(&via_proxy, "");
    let daemon = ws.start(crate::support::free_port());
    daemon
        .wait_for("/readyz", 60, |b| {
            b.contains("role: leader") && b.contains("store: ok")
        })
        .await;
    proxy.freeze();
    let asked = Instant::now();
    let (status, body) = daemon.get("/readyz").await.expect("readyz answers");
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "{:?}",
        asked.elapsed()
    );
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("store: unreachable"), "{body}");
    let asked = Instant::now();
    assert!(daemon.get("/metrics").await.is_some());
    assert!(
        asked.elapsed() < Duration::from_secs(5),
        "/metrics took {:?}",
        asked.elapsed()
    );
    // The leader says it lost the lead and stands by (the endpoint answers 503 meanwhile:
    // the store is unreachable).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, body) = daemon.get("/readyz").await.expect("readyz");
        if body.contains("role: standby") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the leader never stepped down: {body}\n{}",
            daemon.logs()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(daemon.logs().contains("lost the lead"), "{}", daemon.logs());
}

/// On PostgreSQL the leader's lock session is cut while it runs a long job (a usage source
/// that takes 40 s): it notices within a poll, abandons the job (nothing of it committed)
/// and stands by, so the new leader's run of that job is the only one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_loses_its_lock_during_a_job_abandons_it() {
    let slow = slow_prometheus(Duration::from_secs(40)).await;
    let t = TestStore::new(Kind::Postgres).await;
    let ws = Workspace::new(&t.store_url(), "");
    ws.add_source(&slow.uri());
    let a = ws.start(crate::support::free_port());
    let deadline = Instant::now() + Duration::from_secs(60);
    while slow
        .received_requests()
        .await
        .unwrap_or_default()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "{}", a.logs());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let b = ws.start(crate::support::free_port());
    b.wait_for("/readyz", 60, |body| body.contains("role: standby"))
        .await;
    let cut = cut_the_leaders_lock(&t.store_url()).await;
    assert_eq!(cut, 1, "one session holds the lead");
    let cut_at = Instant::now();
    let deadline = cut_at + Duration::from_secs(20);
    while !a.logs().contains("lost the lead during the job") {
        assert!(Instant::now() < deadline, "{}", a.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        cut_at.elapsed() < Duration::from_secs(15),
        "noticed within a few polls"
    );
    // The abandoned run is recorded as such; the new leader's run goes on alone.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = t.store.job_runs(50).await.expect("runs");
        if runs
            .iter()
            .any(|r| r.job == "sync_usage" && !r.ok && r.reason.contains("lost the lead"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "{runs:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        t.store
            .count(costsplit::store::Table::UsageRuns)
            .await
            .expect("count"),
        0,
        "nothing of the abandoned job was committed"
    );
}

/// SIGTERM while the daemon reads a large export part on a worker thread: the job gets its
/// grace period, is abandoned (nothing committed), and the process exits within the grace
/// period and a second, not when the read would have ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_long_read_exits_within_grace_and_a_second() {
    use crate::exports::{Bucket, BUCKET, PREFIX};
    let moto = crate::support::Moto::start().await;
    let bucket = Bucket::create(&moto).await;
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::empty(&t.store_url(), "");
    let part = ws.dir.path().join("big.csv.gz");
    let out = ws
        .command()
        .args(["generate", "--rows", "1500000", "--out"])
        .arg(&part)
        .output()
        .expect("generate runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    bucket
        .export(
            "2025-03",
            "2025-04-01T00:00:00.000Z-big",
            &[std::fs::read(&part).expect("part")],
        )
        .await;
    std::fs::write(
        ws.dir.path().join("costsplit.toml"),
        format!(
            "store_url = \"{}\"\nrules_dir = \"rules\"\n\n[daemon]\npoll_seconds = 1\ngrace_seconds = 1\n\n[daemon.schedule]\nsync_exports = \"*/2 * * * * *\"\n\n[[exports]]\nname = \"big\"\nbucket = \"{BUCKET}\"\nprefix = \"{PREFIX}\"\nformat = \"cur2\"\nendpoint_url = \"{}\"\n",
            t.store_url(),
            moto.url
        ),
    )
    .expect("config");
    let mut command = crate::support::costsplit(ws.dir.path())
        .aws("daemon-grace-secret")
        .command(&[]);
    command.env_remove("COSTSPLIT_SLACK_WEBHOOK_URL");
    let mut daemon = ws.start_as(crate::support::free_port(), command);
    let deadline = Instant::now() + Duration::from_secs(120);
    while !daemon.logs().contains("downloaded; reading the parts") {
        assert!(Instant::now() < deadline, "{}", daemon.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stopped = Instant::now();
    daemon.signal("TERM");
    assert_eq!(daemon.wait_exit(30), Some(0), "{}", daemon.logs());
    let took = stopped.elapsed();
    assert!(
        !daemon.logs().contains("export sync"),
        "the read was still running when SIGTERM came: make the part larger\n{}",
        daemon.logs()
    );
    assert!(
        took < Duration::from_millis(2500),
        "exited {took:?} after SIGTERM with a 1 s grace period\n{}",
        daemon.logs()
    );
    assert_eq!(
        t.store
            .count(costsplit::store::Table::Facts)
            .await
            .expect("count"),
        0,
        "nothing of the abandoned read was committed"
    );
}

/// A daemon whose services come from Backstage's catalog API, started before any snapshot
/// exists: its sync_catalog job runs at start without valid rules, writes the snapshot, and
/// the rules watch then loads the rules with the catalog's services in them.
#[tokio::test(flavor = "multi_thread")]
async fn the_daemon_fetches_the_catalog_before_its_first_rules_load() {
    use wiremock::matchers::{method, path};
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/catalog/entities/by-query"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "items": [
                {"apiVersion": "backstage.io/v1alpha1", "kind": "Component",
                 "metadata": {"name": "billing-api", "namespace": "default"},
                 "spec": {"type": "service", "lifecycle": "production", "owner": "group:default/billing"}},
                {"apiVersion": "backstage.io/v1alpha1", "kind": "Group",
                 "metadata": {"name": "billing", "namespace": "default",
                              "annotations": {"costsplit.io/cost-center": "cc-2001"}},
                 "spec": {"type": "team", "children": []}}
            ],
            "totalItems": 2,
            "pageInfo": {}
        })))
        .mount(&server)
        .await;
    let t = TestStore::new(Kind::Sqlite).await;
    let ws = Workspace::empty(&t.store_url(), "");
    let config = ws.dir.path().join("costsplit.toml");
    let mut text = std::fs::read_to_string(&config).expect("config");
    text.push_str(&format!(
        "\n[catalog]\nsnapshot = \"catalog.json\"\n\n[catalog.backstage]\nurl = \"{}\"\n",
        server.uri()
    ));
    std::fs::write(&config, text).expect("config");
    let daemon = ws.start(crate::support::free_port());
    let ready = daemon
        .wait_for("/readyz", 60, |b| b.contains("role: leader"))
        .await;
    assert!(ready.contains("rules: "), "{ready}");
    assert!(ws.dir.path().join("catalog.json").exists());
    let logs = daemon.logs();
    assert!(logs.contains("catalog: 1 service(s)"), "{logs}");
    assert!(logs.contains("rules loaded"), "{logs}");
}
