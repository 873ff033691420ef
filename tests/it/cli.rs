//! The binary as a user runs it: exit codes, one-line errors, the demo, the CSV report.

use std::path::Path;
use std::process::Output;

/// The binary in `dir` with `env` set.
fn costsplit(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    env.iter()
        .fold(crate::support::costsplit(dir), |bin, (k, v)| bin.env(k, v))
        .run(args)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_demo_runs_on_a_fresh_directory_and_reconciles() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = crate::support::repo_rules();
    let out = costsplit(
        dir.path(),
        &[
            "--rules",
            rules.to_str().expect("utf-8 path"),
            "demo",
            "--rows",
            "20000",
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert!(stdout.contains("unallocated"), "{stdout}");
    let line = stdout
        .lines()
        .find(|l| l.starts_with("reconciliation USD"))
        .expect("a reconciliation line");
    assert!(line.contains("difference 0"), "{line}");
    assert!(dir.path().join("costsplit-demo.db").exists());
    // The two alerts the README shows: the planted month-over-month rise and spike.
    assert!(stdout.contains("alerts for 2025-03-31: 2"), "{stdout}");
    assert!(
        stdout.contains("- Month-over-month change for orders-worker in 2025-03 (team core)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- Cost spike for payments-api on 2025-03-20 (team payments)"),
        "{stdout}"
    );
    // Finance's statement, written beside the store, adds up to the month to the cent.
    let statement =
        std::fs::read_to_string(dir.path().join("costsplit-demo-statement-2025-03.csv"))
            .expect("the demo writes the statement");
    let mut reader = csv::Reader::from_reader(statement.as_bytes());
    let cents: i128 = reader
        .records()
        .map(|r| {
            let r = r.expect("row");
            costsplit::money::Nanos::parse(&r[7]).expect("amount").0 / 10_000_000
        })
        .sum();
    let billed = line
        .split("billed ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(costsplit::money::Nanos::parse)
        .expect("the billed total");
    assert_eq!(cents, (billed.0 + 5_000_000) / 10_000_000, "{statement}");
    assert!(stdout.contains("difference 0.00)"), "{stdout}");
    // And the Slack report one team would get, with its shared costs explained.
    assert!(
        stdout
            .contains("the Slack report team payments would get for March 2025 (#payments-cost):"),
        "{stdout}"
    );
    assert!(stdout.contains("shared-redis (equal: 20.0%)"), "{stdout}");
}

#[test]
fn import_allocate_report_csv_through_the_binary() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let rules = crate::support::repo_rules();
    let env = [
        ("COSTSPLIT_STORE_URL", store.as_str()),
        ("COSTSPLIT_RULES_DIR", rules.to_str().expect("utf-8")),
    ];
    let month = dir.path().join("m.csv");
    let out = costsplit(
        dir.path(),
        &[
            "generate",
            "--rows",
            "5000",
            "--out",
            month.to_str().expect("utf-8"),
        ],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = costsplit(
        dir.path(),
        &["import", month.to_str().expect("utf-8")],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("imported 5000 line items"),
        "{}",
        text(&out.stdout)
    );
    let out = costsplit(dir.path(), &["allocate", "--month", "2025-03"], &env);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = costsplit(
        dir.path(),
        &["report", "--month", "2025-03", "--format", "csv"],
        &env,
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let csv = text(&out.stdout);
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("service,team,currency,direct,shared,total")
    );
    assert!(csv.lines().any(|l| l.starts_with("unallocated,")), "{csv}");
    // The rows add up to the billed total shown by the JSON report.
    let sum: i128 = csv
        .lines()
        .skip(1)
        .map(|l| {
            costsplit::money::Nanos::parse(l.rsplit(',').next().expect("total"))
                .expect("decimal")
                .0
        })
        .sum();
    // …and to the file's own total, summed here from its EffectiveCost column (exact
    // decimals; within a nano-unit per day, the one rounding of each day's facts).
    let mut reader = csv::Reader::from_path(&month).expect("the generated file");
    let headers = reader.headers().expect("header").clone();
    let cost = headers
        .iter()
        .position(|h| h == "EffectiveCost")
        .expect("EffectiveCost");
    let start = headers
        .iter()
        .position(|h| h == "ChargePeriodStart")
        .expect("ChargePeriodStart");
    let picos: i128 = reader
        .records()
        .map(|r| r.expect("row"))
        .filter(|r| r[start].starts_with("2025-03"))
        .map(|r| crate::support::picos(&r[cost]))
        .sum();
    assert!(
        (sum * 1000 - picos).abs() <= 31 * 1000,
        "report {sum} nano-units, file {picos} picos"
    );
    let out = costsplit(
        dir.path(),
        &["report", "--month", "2025-03", "--format", "json"],
        &env,
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["reconciled"], serde_json::Value::Bool(true));

    let out = costsplit(
        dir.path(),
        &["report", "--month", "2025-03", "--service", "nobody"],
        &env,
    );
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn failures_exit_non_zero_with_one_readable_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let env = [("COSTSPLIT_STORE_URL", store.as_str())];
    for args in [
        vec!["import", "missing.csv"],
        vec!["allocate", "--month", "2025-3x"],
        vec!["report", "--month", "2025-03"],
        vec!["--rules", "no-such-dir", "allocate", "--month", "2025-03"],
    ] {
        let out = costsplit(dir.path(), &args, &env);
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.starts_with("error: "), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn rules_check_exits_one_on_errors_and_zero_when_clean() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        "[[pool]]\nname = \"p\"\nmethod = \"fixed\"\npercent = { a = 50 }\nmembres = []\n",
    )
    .expect("write");
    let out = costsplit(dir.path(), &["rules", "check", "."], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("bad.toml:5:1: error: unknown key `membres`"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.toml:4:13: error: pool `p`: unknown service `a`"),
        "{stdout}"
    );
    let rules = crate::support::repo_rules();
    let out = costsplit(
        dir.path(),
        &["rules", "check", rules.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stdout));
}

/// A writer that waits too long for another process's write says so, and commits nothing;
/// it never fails with SQLite's bare "database is locked".
#[test]
fn a_store_held_by_another_writer_gives_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let out = costsplit(dir.path(), &["--store", &store, "migrate"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // Another process's long write: a transaction holding SQLite's write lock.
    let holder = rusqlite::Connection::open(dir.path().join("c.db")).expect("open");
    holder
        .execute_batch("BEGIN IMMEDIATE; INSERT INTO imports (created_at, source, files, periods, line_items, facts, effective_nanos, billed_nanos) VALUES ('x', 'x', 'x', 'x', 0, 0, 0, 0);")
        .expect("hold the write lock");
    let sample = crate::support::data("focus-1.0-sample.csv");
    let out = costsplit(
        dir.path(),
        &["--store", &store, "import", sample.to_str().expect("utf-8")],
        &[("COSTSPLIT_STORE_WAIT_SECONDS", "1")],
    );
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("error: the store is busy: another costsplit process")
            && !stderr.contains("database is locked"),
        "{stderr}"
    );
    holder.execute_batch("ROLLBACK").expect("release");
    let facts: i64 = holder
        .query_row("SELECT count(*) FROM billing_facts", [], |r| r.get(0))
        .expect("count");
    assert_eq!(facts, 0, "nothing was written");
}

/// Facts changed after the last allocate: every report format exits 1 and says why on stderr.
#[test]
fn a_stale_report_says_why_it_exits_1_in_every_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = format!("sqlite://{}", dir.path().join("c.db").display());
    let rules = crate::support::repo_rules();
    let env = [
        ("COSTSPLIT_STORE_URL", store.as_str()),
        ("COSTSPLIT_RULES_DIR", rules.to_str().expect("utf-8")),
    ];
    let sample = crate::support::data("focus-1.0-sample.csv");
    let text_of = std::fs::read_to_string(&sample).expect("sample");
    let half: String = text_of
        .lines()
        .take(500)
        .map(|l| format!("{l}\n"))
        .collect();
    let smaller = dir.path().join("half.csv");
    std::fs::write(&smaller, half).expect("write");
    for args in [
        vec!["import", sample.to_str().expect("utf-8")],
        vec!["allocate", "--month", "2024-09"],
        vec!["import", smaller.to_str().expect("utf-8")],
    ] {
        let out = costsplit(dir.path(), &args, &env);
        assert!(out.status.success(), "{args:?}: {}", text(&out.stderr));
    }
    for format in ["table", "csv", "json"] {
        let out = costsplit(
            dir.path(),
            &["report", "--month", "2024-09", "--format", format],
            &env,
        );
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{format}: {stderr}");
        assert!(
            stderr.contains("error: reconciliation") && stderr.contains("run `costsplit allocate`"),
            "{format}: {stderr}"
        );
    }
}
