//! Crash safety with real processes: `costsplit import`, `allocate` and `notify` killed with
//! SIGKILL at many points, on SQLite and PostgreSQL. After a restart and a re-run the store
//! holds exactly what an uninterrupted run stores, and every alert reaches Slack (a stand-in
//! that answers as Slack does), in order; a copy is possible only for a process killed
//! between Slack's answer and the store's update (the documented window), at most one per kill.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use costsplit::demo::generate::{GenSpec, World};
use costsplit::model::{Allocation, Fact};
use costsplit::store::Store;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::support::{day, repo_rules, TestStore, BOTH};

/// The binary on `store` with the repository's rules, its output dropped.
fn costsplit(store: &str, args: &[&str]) -> Command {
    let mut cmd = crate::support::costsplit(Path::new("."))
        .store(store)
        .rules(&repo_rules())
        .command(args);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    cmd
}

/// Where a killed process was in its store write, from the phase markers it logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Phase {
    /// Still reading or computing: no write transaction yet.
    BeforeWrite,
    /// Inside its write transaction.
    Writing,
    /// Between asking for the commit and hearing it done.
    Committing,
    Committed,
}

/// [`run_killed`] with the store's phase markers logged to `log`: whether it was killed, and
/// the last phase it reached.
fn run_killed_logged(mut cmd: Command, after: Duration, log: &Path) -> (bool, Phase) {
    cmd.env("COSTSPLIT_LOG", "warn,costsplit::store::phase=debug")
        .stderr(std::fs::File::create(log).expect("log file"));
    let killed = run_killed(cmd, after);
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let phase = if text.contains("committed") {
        Phase::Committed
    } else if text.contains("committing") {
        Phase::Committing
    } else if text.contains("write began") {
        Phase::Writing
    } else {
        Phase::BeforeWrite
    };
    (killed, phase)
}

/// Starts the command and kills it with SIGKILL the moment its log says its write
/// transaction began (or lets it finish, if it ends first): a kill inside the write, whatever
/// the machine's speed. The phase it was killed in, if it was.
fn run_killed_in_write(mut cmd: Command, log: &Path) -> Option<Phase> {
    cmd.env("COSTSPLIT_LOG", "warn,costsplit::store::phase=debug")
        .stderr(std::fs::File::create(log).expect("log file"));
    let mut child = cmd.spawn().expect("the binary starts");
    let started = std::time::Instant::now();
    loop {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return None;
        }
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("write began") {
            child.kill().expect("SIGKILL");
            let _ = child.wait();
            let text = std::fs::read_to_string(log).unwrap_or_default();
            return Some(if text.contains("committed") {
                Phase::Committed
            } else if text.contains("committing") {
                Phase::Committing
            } else {
                Phase::Writing
            });
        }
        assert!(started.elapsed() < Duration::from_secs(120), "never wrote");
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Starts the command and kills it with SIGKILL after `after` (or lets it finish first).
fn run_killed(mut cmd: Command, after: Duration) -> bool {
    let mut child = cmd.spawn().expect("the binary starts");
    std::thread::sleep(after);
    let finished = matches!(child.try_wait(), Ok(Some(_)));
    if !finished {
        child.kill().expect("SIGKILL");
    }
    let _ = child.wait();
    !finished
}

fn run_ok(mut cmd: Command) {
    let out = cmd
        .stderr(Stdio::piped())
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The month's facts (in a total order: the store returns them by day and key, ties in any
/// order) and allocations.
async fn state(url: &str) -> (Vec<Fact>, Vec<Allocation>) {
    let store = Store::connect(url).await.expect("store");
    let range = (day("2025-03-01"), day("2025-03-31"));
    let mut facts = store.facts(range.0, range.1).await.expect("facts");
    facts.sort_by_cached_key(|f| format!("{f:?}"));
    let allocations = store
        .allocations(range.0, range.1)
        .await
        .expect("allocations");
    store.close().await;
    (facts, allocations)
}

fn month(dir: &Path) -> std::path::PathBuf {
    let file = dir.join("march.csv");
    World::new(GenSpec::standard(60_000, 11))
        .write_csv(&file)
        .expect("write");
    file
}

/// Equal, or a short account of the first difference (not two months of rows).
fn assert_same<T: PartialEq + std::fmt::Debug>(
    what: &str,
    kind: crate::support::Kind,
    got: &[T],
    want: &[T],
) {
    if got == want {
        return;
    }
    let first = got.iter().zip(want).position(|(a, b)| a != b);
    panic!(
        "{kind:?}: {what}: {} rows, {} expected; first difference at {first:?}: {:?} vs {:?}",
        got.len(),
        want.len(),
        first.and_then(|i| got.get(i)),
        first.and_then(|i| want.get(i)),
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_import_and_allocate_then_a_rerun_stores_what_an_uninterrupted_run_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = month(dir.path());
    let file = file.to_str().expect("utf-8");
    for kind in BOTH {
        // The reference: one uninterrupted import and allocate.
        let reference = TestStore::new(kind).await;
        let url = reference.store_url();
        run_ok(costsplit(&url, &["import", file]));
        run_ok(costsplit(&url, &["allocate", "--month", "2025-03"]));
        let expected = state(&url).await;
        assert!(!expected.0.is_empty() && !expected.1.is_empty());

        let ts = TestStore::new(kind).await;
        let url = ts.store_url();
        let mut kills = 0;
        // The phase each kill landed in, per command: some must land inside the write.
        let mut landed: Vec<(&str, Phase)> = Vec::new();
        let log = dir.path().join("phases.log");
        // Kill points spread over start-up, reading, writing and committing.
        for ms in [0u64, 40, 120, 250, 400, 600, 900, 1300, 1800] {
            let (killed, phase) = run_killed_logged(
                costsplit(&url, &["import", file]),
                Duration::from_millis(ms),
                &log,
            );
            kills += usize::from(killed);
            if killed {
                landed.push(("import", phase));
            }
            let (killed, phase) = run_killed_logged(
                costsplit(&url, &["allocate", "--month", "2025-03"]),
                Duration::from_millis(ms / 3),
                &log,
            );
            kills += usize::from(killed);
            if killed {
                landed.push(("allocate", phase));
            }
            // Whatever the kill left, the store holds a whole import or none, and a whole
            // allocation or none (never half of either).
            let (facts, allocations) = state(&url).await;
            assert!(
                facts.is_empty() || facts == expected.0,
                "{kind:?} {ms} ms: a partial import"
            );
            if !allocations.is_empty() {
                let allocated: i128 = allocations.iter().map(|a| a.amount.0).sum();
                let billed: i128 = expected.0.iter().map(|f| f.effective.0).sum();
                assert_eq!(allocated, billed, "{kind:?} {ms} ms: a partial allocation");
            }
        }
        // And kills aimed at the write itself, the moment each command says it began.
        for _ in 0..2 {
            for (command, args) in [
                ("import", &["import", file][..]),
                ("allocate", &["allocate", "--month", "2025-03"]),
            ] {
                if command == "allocate" {
                    // Facts to allocate, whatever the killed import left.
                    run_ok(costsplit(&url, &["import", file]));
                }
                if let Some(phase) = run_killed_in_write(costsplit(&url, args), &log) {
                    kills += 1;
                    landed.push((command, phase));
                }
                let (facts, allocations) = state(&url).await;
                assert!(
                    facts.is_empty() || facts == expected.0,
                    "{kind:?} {command} killed in its write: a partial import"
                );
                if !allocations.is_empty() {
                    let allocated: i128 = allocations.iter().map(|a| a.amount.0).sum();
                    let billed: i128 = expected.0.iter().map(|f| f.effective.0).sum();
                    assert_eq!(allocated, billed, "{kind:?} {command} killed in its write");
                }
            }
        }
        assert!(
            kills >= 4,
            "{kind:?}: the kill points must hit running processes ({kills})"
        );
        for command in ["import", "allocate"] {
            assert!(
                landed
                    .iter()
                    .any(|(c, p)| *c == command && matches!(p, Phase::Writing | Phase::Committing)),
                "{kind:?}: no kill of `{command}` landed during its write or commit: {landed:?}"
            );
        }
        eprintln!("{kind:?}: kills landed in {landed:?}");
        run_ok(costsplit(&url, &["import", file]));
        run_ok(costsplit(&url, &["allocate", "--month", "2025-03"]));
        let (facts, allocations) = state(&url).await;
        assert_same("facts", kind, &facts, &expected.0);
        assert_same("allocations", kind, &allocations, &expected.1);
    }
}

/// Slack answers each post after a pause, so kills land while a post is in flight.
struct SlowOk;

impl wiremock::Respond for SlowOk {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        ResponseTemplate::new(200)
            .set_body_string("ok")
            .set_delay(Duration::from_millis(30))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_during_delivery_loses_no_alert_and_keeps_the_order() {
    for kind in BOTH {
        let ts = TestStore::new(kind).await;
        let url = ts.store_url();
        // Forty alerts in the outbox, as a detection run leaves them.
        let rows: Vec<costsplit::store::NewAlert> = (0..40)
            .map(|i| costsplit::store::NewAlert {
                fingerprint: format!("fp-{i:02}"),
                kind: costsplit::model::MessageKind::Alert(costsplit::alert::AlertKind::Spike),
                service: format!("svc-{i:02}"),
                team: String::new(),
                period: "2025-03-20".into(),
                channel: None,
                summary: format!("alert {i:02}"),
                payload: serde_json::to_string(&costsplit::alert::Alert {
                    kind: costsplit::alert::AlertKind::Spike,
                    service: format!("svc-{i:02}"),
                    team: String::new(),
                    currency: "USD".into(),
                    period: "2025-03-20".into(),
                    anomaly_start: day("2025-03-20"),
                    amount: costsplit::money::Nanos(3_000_000_000_000),
                    baseline: costsplit::money::Nanos(1_000_000_000_000),
                    change_bp: Some(20_000),
                    drivers: Vec::new(),
                    estimated: false,
                })
                .expect("json"),
            })
            .collect();
        ts.store
            .enqueue_reports(
                &rows,
                costsplit::model::Timestamp::parse("2025-03-21T00:00:00Z").expect("time"),
            )
            .await
            .expect("enqueue");
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/services/T000/B000/crash"))
            .respond_with(SlowOk)
            .mount(&server)
            .await;
        let webhook = format!("{}/services/T000/B000/crash", server.uri());
        let notify = || {
            let mut cmd = costsplit(&url, &["notify"]);
            cmd.env("COSTSPLIT_SLACK_WEBHOOK_URL", &webhook);
            cmd
        };
        let mut kills = 0;
        for ms in [60u64, 150, 240, 330, 470, 620] {
            kills += usize::from(run_killed(notify(), Duration::from_millis(ms)));
            // A killed deliverer's claim holds its alert (and, to keep the order, the ones
            // after it) until the lease ends; here it ends at once, as after the lease.
            ts.store
                .execute_for_tests("UPDATE alerts SET claimed_until = ''")
                .await
                .expect("expire claims");
        }
        run_ok(notify());
        let pending = ts
            .store
            .list_alerts(Some(costsplit::model::MessageState::Pending))
            .await
            .expect("outbox");
        assert!(
            pending.is_empty(),
            "{kind:?}: {} still pending",
            pending.len()
        );
        let posted: Vec<String> = server
            .received_requests()
            .await
            .expect("recorded")
            .iter()
            .map(|r| {
                let body: serde_json::Value = serde_json::from_slice(&r.body).expect("json");
                body["blocks"][1]["fields"][0]["text"]
                    .as_str()
                    .expect("service field")
                    .trim_start_matches("*Service*\n")
                    .to_string()
            })
            .collect();
        let mut unique = posted.clone();
        unique.dedup();
        // Every alert, in order; a copy only right after a kill.
        let expected: Vec<String> = (0..40).map(|i| format!("svc-{i:02}")).collect();
        assert_eq!(unique, expected, "{kind:?}");
        assert!(
            posted.len() - unique.len() <= kills,
            "{kind:?}: {} copies for {kills} kills",
            posted.len() - unique.len()
        );
        assert!(
            kills >= 2,
            "{kind:?}: the kills must hit running deliveries ({kills})"
        );
    }
}

/// PostgreSQL drops the connection in the middle of an import (the server terminates every
/// backend of the database while the process runs): the import fails with one readable error
/// line, stores nothing, and the next run stores the month whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_store_connection_fails_the_import_readably_and_the_next_run_succeeds() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = month(dir.path());
    let file = file.to_str().expect("utf-8");
    let reference = TestStore::new(crate::support::Kind::Postgres).await;
    run_ok(costsplit(&reference.store_url(), &["import", file]));
    let expected = state(&reference.store_url()).await.0;

    let ts = TestStore::new(crate::support::Kind::Postgres).await;
    let url = ts.store_url();
    let database = url.rsplit('/').next().expect("a database").to_string();
    // Migrated first, so the cut lands in the import itself.
    run_ok(costsplit(&url, &["migrate"]));
    let mut child = costsplit(&url, &["import", file])
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let mut admin = sqlx::PgConnection::connect(&crate::support::pg_admin_url())
        .await
        .expect("admin");
    let mut cuts = 0u64;
    while child.try_wait().expect("wait").is_none() {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&database)
        .fetch_one(&mut admin)
        .await
        .expect("terminate");
        cuts += n as u64;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    admin.close().await.ok();
    let out = child.wait_with_output().expect("ends");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(cuts > 0, "the connection was cut");
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines.last().is_some_and(|l| l.starts_with("error: ")),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        state(&url).await.0.is_empty(),
        "nothing of the import was stored"
    );
    run_ok(costsplit(&url, &["import", file]));
    assert_same(
        "facts",
        crate::support::Kind::Postgres,
        &state(&url).await.0,
        &expected,
    );
}
