//! `costsplit run` as a user runs it: the real binary on a free port against SQLite and
//! PostgreSQL, driven over its HTTP endpoint and with real signals.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use costsplit::store::Store;
use sqlx::Connection;

use crate::support::{repo_rules, Kind, TestStore};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

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
        let ws = self;
        let yesterday = chrono::Utc::now().date_naive().pred_opt().expect("a day");
        let month = yesterday.format("%Y-%m-01");
        let mut csv = "ChargePeriodStart,BillingPeriodStart,BillingAccountId,BillingCurrency,BilledCost,EffectiveCost,ServiceName,ResourceId,ChargeCategory,Tags\n".to_string();
        for (resource, cost, tags) in [
            (
                "i-1",
                "120.50",
                "\"{\"\"service\"\":\"\"checkout-api\"\"}\"",
            ),
            ("i-2", "80.25", "\"{\"\"service\"\":\"\"search-api\"\"}\""),
            ("i-3", "9.99", "NULL"),
        ] {
            csv.push_str(&format!(
                "{yesterday}T00:00:00Z,{month},payer,USD,{cost},{cost},Amazon EC2,{resource},Usage,{tags}\n"
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

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_costsplit"));
        cmd.current_dir(self.dir.path())
            .env_remove("COSTSPLIT_STORE_URL")
            .env_remove("COSTSPLIT_RULES_DIR")
            .env_remove("COSTSPLIT_CONFIG")
            .env_remove("COSTSPLIT_SLACK_WEBHOOK_URL")
            .env_remove("COSTSPLIT_SLACK_BOT_TOKEN");
        cmd
    }

    fn start(&self, port: u16) -> Daemon {
        let log = self.dir.path().join(format!("daemon-{port}.log"));
        let child = self
            .command()
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
    let mut daemon = ws.start(free_port());
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
    assert_ne!(rules_hash(&ready), hash, "the fixed rules are active");

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
    assert_eq!(allocate[0].outcome, "ok", "{:?}", allocate[0]);
    let yesterday = chrono::Utc::now().date_naive().pred_opt().expect("a day");
    let report = costsplit::jobs::report(&store, (yesterday, yesterday))
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
    let a = ws.start(free_port());
    a.wait_for("/readyz", 60, |b| b.contains("role: leader"))
        .await;
    let b = ws.start(free_port());
    b.wait_for("/readyz", 60, |body| body.contains("role: standby"))
        .await;
    // Still one leader a few polls later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(one_leader(&a, &b, 5).await, 0);

    // Cut the leader's lock session from the server side.
    let mut admin = sqlx::PgConnection::connect(&t.store_url())
        .await
        .expect("connect");
    let cut: i64 = sqlx::query_scalar(
        "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_locks
         WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&mut admin)
    .await
    .expect("terminate");
    assert_eq!(cut, 1, "one session holds the lead");
    admin.close().await.ok();
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
    let daemon = ws.start(free_port());
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
        .all(|r| r.outcome == "failed" && r.reason.contains("no billing facts between")));
    // Ticks one second apart, never two runs of one tick.
    let ticks: std::collections::BTreeSet<&str> = failed.iter().map(|r| r.tick.as_str()).collect();
    assert_eq!(ticks.len(), failed.len(), "{failed:?}");
    assert_eq!(daemon.get("/healthz").await.map(|r| r.0), Some(200));
}

/// SIGTERM while a job waits on a slow system: the job gets its grace period, is then
/// abandoned with nothing of it committed, the run is recorded as such, and the process
/// exits 0 within the grace period, not after the job's own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_job_ends_within_the_grace_period() {
    use wiremock::matchers::path;
    use wiremock::{Mock, MockServer, ResponseTemplate};
    let slow = MockServer::start().await;
    Mock::given(path("/api/v1/query"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_delay(Duration::from_secs(60))
                .set_body_json(serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": []}})),
        )
        .mount(&slow)
        .await;
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
    std::fs::write(
        ws.dir.path().join("rules/usage.toml"),
        format!(
            "[[source]]\nname = \"msk\"\nkind = \"prometheus\"\nurl = \"{}\"\ntimeout_seconds = 120\nquery = \"sum by (topic) (kafka_log_log_size)\"\nlabel = \"topic\"\nmap = {{ \"orders\" = \"checkout-api\" }}\n",
            slow.uri()
        ),
    )
    .expect("usage rules");
    let mut daemon = ws.start(free_port());
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
    assert_eq!(usage.outcome, "failed");
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
    use costsplit::daemon::{schedule::Schedules, DaemonSettings, Timeline};
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
            .map(|r| (r.tick.clone(), r.outcome.clone()))
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
        .find(|r| r.job == "allocate" && r.outcome == "failed")
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
    assert_eq!(weekly[1].tick, "2025-03-03T08:00:00Z");
    assert!(
        weekly[1].reason.contains("team digest(s)"),
        "{:?}",
        weekly[1]
    );
    let reports = ts
        .store
        .list_alerts(Some("pending"))
        .await
        .expect("outbox")
        .into_iter()
        .filter(|r| r.kind == "report")
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
