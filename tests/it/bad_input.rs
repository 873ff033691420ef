//! The bad-input catalogue, tried as a user would, through the binary: every bad billing file
//! gets one `error:` line naming the file, row and column and what to do, exit code 1,
//! nothing committed and no panic; inputs that are odd but valid get their documented
//! behaviour. Regression tests for what an adversarial reading of the release build found.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use costsplit::store::{Store, Table};

const HEADER: &str = "BillingAccountId,SubAccountId,BillingPeriodStart,BillingPeriodEnd,ChargePeriodStart,ChargePeriodEnd,BillingCurrency,BilledCost,EffectiveCost,ChargeCategory,ServiceName,ResourceId,Tags";

/// One FOCUS line for 2025-03 with these fields changed.
fn line(day: &str, currency: &str, cost: &str, tags: &str) -> String {
    let tags = if tags.is_empty() {
        String::new()
    } else {
        format!("\"{}\"", tags.replace('"', "\"\""))
    };
    format!("1,2,2025-03-01T00:00:00Z,2025-04-01T00:00:00Z,{day},2025-03-02T00:00:00Z,{currency},{cost},{cost},Usage,Amazon EC2,i-1,{tags}\n")
}

fn good() -> String {
    line(
        "2025-03-01T00:00:00Z",
        "USD",
        "1.00",
        r#"{"service":"checkout-api"}"#,
    )
}

/// The binary in `dir` on the store `dir/c.db` with the repository's rules.
fn costsplit(dir: &Path, args: &[&str]) -> Output {
    crate::support::costsplit(dir)
        .store(&format!("sqlite://{}", dir.join("c.db").display()))
        .rules(&crate::support::repo_rules())
        .run(args)
}

async fn facts(dir: &Path) -> i64 {
    let store = Store::connect(&format!("sqlite://{}", dir.join("c.db").display()))
        .await
        .expect("store");
    let n = store.count(Table::Facts).await.expect("count");
    store.close().await;
    n
}

/// Imports `content` as `name` after a good import of another file; expects one error line
/// with every `fragment`, exit code 1, and the store as the good import left it.
async fn refused(name: &str, content: &[u8], fragments: &[&str]) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("good.csv"), format!("{HEADER}\n{}", good())).expect("write");
    let out = costsplit(dir.path(), &["import", "good.csv"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = facts(dir.path()).await;
    std::fs::write(dir.path().join(name), content).expect("write");
    let out = costsplit(dir.path(), &["import", name]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "{name}: one line: {stderr}");
    assert!(
        lines[0].starts_with(&format!("error: {name}")),
        "{name}: {stderr}"
    );
    for f in fragments {
        assert!(lines[0].contains(f), "{name}: `{f}` in {stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(facts(dir.path()).await, before, "{name}: nothing committed");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_billing_files_are_refused_with_where_and_what_and_commit_nothing() {
    let csv = |lines: &[String]| format!("{HEADER}\n{}", lines.concat()).into_bytes();
    refused(
        "garbage-time.csv",
        &csv(&[good(), line("2025-03-01Tgarbage", "USD", "1", "")]),
        &[":3:", "ChargePeriodStart", "unknown date format"],
    )
    .await;
    refused(
        "day-9999.csv",
        &csv(&[line("9999-03-01T00:00:00Z", "USD", "1", "")]),
        &[
            ":2:",
            "ChargePeriodStart",
            "9999-03-01",
            "billing period 2025-03",
        ],
    )
    .await;
    refused(
        "currency.csv",
        &csv(&[line("2025-03-01T00:00:00Z", "NOTACURRENCY!!", "1", "")]),
        &[":2:", "BillingCurrency", "ISO 4217"],
    )
    .await;
    refused(
        "tag-list.csv",
        &csv(&[line(
            "2025-03-01T00:00:00Z",
            "USD",
            "1",
            r#"{"service":["a","b"]}"#,
        )]),
        &[":2:", "Tags", "tag `service` has a list or object"],
    )
    .await;
    refused(
        "text-cost.csv",
        &csv(&[line("2025-03-01T00:00:00Z", "USD", "twelve", "")]),
        &[":2:", "BilledCost", "`twelve` is not a number"],
    )
    .await;
    refused(
        "semicolons.csv",
        format!("{}\n1;2\n", HEADER.replace(',', ";")).as_bytes(),
        &["semicolon-separated", "export as CSV with commas"],
    )
    .await;
    refused("empty.csv", b"", &["no line items"]).await;
    refused(
        "header-only.csv",
        format!("{HEADER}\n").as_bytes(),
        &["no line items"],
    )
    .await;
    let parquet = std::fs::read(crate::support::data("cur2-sample.parquet")).expect("parquet");
    refused(
        "truncated.parquet",
        &parquet[..parquet.len() / 2],
        &["parquet"],
    )
    .await;
    // Found by the parquet fuzz target: polars panics on this file's metadata.
    let damaged =
        std::fs::read(crate::support::data("fuzz/parquet/corrupt-thrift-bool")).expect("input");
    refused(
        "damaged.parquet",
        &damaged,
        &["the parquet file is damaged", "export it again"],
    )
    .await;
    refused(
        "not-utf8.csv",
        &[HEADER.as_bytes(), b"\n1,2,\xff\xfe\n"].concat(),
        &[":2:"],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn odd_but_valid_billing_gets_its_documented_behaviour() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A number or boolean tag value is kept as its text; a tag value `unallocated` is read
    // as no owner, so it lands on the unallocated line by method, not as a service; a day of
    // only credits allocates negative; two currencies stay apart; a lowercase currency code
    // is that currency.
    let lines = [
        line("2025-03-01T00:00:00Z", "USD", "2.00", r#"{"service":42}"#),
        line(
            "2025-03-01T00:00:00Z",
            "USD",
            "3.00",
            r#"{"service":"unallocated"}"#,
        ),
        line(
            "2025-03-02T00:00:00Z",
            "USD",
            "-4.00",
            r#"{"service":"checkout-api"}"#,
        ),
        line(
            "2025-03-01T00:00:00Z",
            "EUR",
            "5.00",
            r#"{"service":"checkout-api"}"#,
        ),
        // A lowercase code is the same currency.
        line(
            "2025-03-01T00:00:00Z",
            "eur",
            "1.50",
            r#"{"service":"checkout-api"}"#,
        ),
    ];
    std::fs::write(
        dir.path().join("odd.csv"),
        format!("{HEADER}\n{}", lines.concat()),
    )
    .expect("write");
    for args in [
        &["import", "odd.csv"][..],
        &["allocate", "--month", "2025-03"],
    ] {
        let out = costsplit(dir.path(), args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = costsplit(dir.path(), &["export", "--month", "2025-03", "--detail"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(csv.contains(",,,42,,direct,"), "{csv}");
    assert!(
        csv.contains(",,,unallocated,,unallocated,3.000000,3.00,USD,"),
        "{csv}"
    );
    assert!(!csv.contains("unallocated,,direct"), "{csv}");
    assert!(
        csv.contains("checkout-api,,direct,1.000000,6.50,EUR"),
        "usd and USD are one currency: {csv}"
    );
    assert!(!csv.contains(",eur,"), "{csv}");
    assert!(csv.contains("-4.00,USD"), "{csv}");
}

#[test]
fn a_service_named_unallocated_is_a_rules_error() {
    let loaded =
        costsplit::rules::load_texts(&[("s.toml", "[[service]]\nname = \"Unallocated\"\n")]);
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].starts_with("s.toml:2:"), "{errors:?}");
    assert!(
        errors[0].contains("give the service another name"),
        "{errors:?}"
    );
}

#[test]
fn a_rules_file_that_is_not_utf8_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("bad.toml"),
        b"[[service]]\nname = \"\xff\"\n",
    )
    .expect("write");
    let out = crate::support::costsplit(dir.path()).run(&["rules", "check", "."]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("bad.toml"), "{all}");
    assert!(!all.contains("panicked"), "{all}");
}

/// `costsplit export | head -1` and a closed stderr: Rust ignores SIGPIPE, so a print to a
/// closed pipe panicked (exit 101). Now the process ends as other Unix tools do.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_output_pipe_ends_the_process_without_a_panic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let lines: Vec<String> = (1..=28)
        .map(|d| {
            line(
                &format!("2025-03-{d:02}T00:00:00Z"),
                "USD",
                "1",
                r#"{"service":"checkout-api"}"#,
            )
        })
        .collect();
    std::fs::write(
        dir.path().join("m.csv"),
        format!("{HEADER}\n{}", lines.concat()),
    )
    .expect("write");
    for args in [
        &["import", "m.csv"][..],
        &["allocate", "--month", "2025-03"],
    ] {
        assert!(costsplit(dir.path(), args).status.success());
    }
    for (args, close_stdout) in [
        (&["export", "--month", "2025-03", "--detail"][..], true),
        (&["report", "--month", "1999-01"][..], false),
    ] {
        let mut child = crate::support::costsplit(dir.path())
            .store(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .rules(&crate::support::repo_rules())
            .command(args)
            .stdout(if close_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(if close_stdout {
                Stdio::null()
            } else {
                Stdio::piped()
            })
            .spawn()
            .expect("spawn");
        // Close the reading end before the process writes.
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().expect("wait");
        assert_ne!(status.code(), Some(101), "{args:?} panicked");
        assert_ne!(status.code(), Some(0), "{args:?}: its output went nowhere");
    }
}

/// A file larger than the memory the process may use: a 100 MB CSV imported under a 64 MB
/// limit on the process's data (RLIMIT_DATA: heap and private mappings), as a container
/// limit would give. Memory follows the facts, not the file, so it imports whole.
#[tokio::test(flavor = "multi_thread")]
async fn a_file_larger_than_the_memory_limit_imports_in_flat_memory() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(file, "{HEADER}").expect("write");
    // Many line items, few facts: 31 days x 10 resources.
    let mut rows = 0u64;
    while file.get_ref().metadata().expect("size").len() < 100 << 20 {
        for i in 0..10_000u64 {
            let day = 1 + (rows + i) % 31;
            let line = line(
                &format!("2025-03-{day:02}T00:00:00Z"),
                "USD",
                "0.01",
                r#"{"service":"checkout-api"}"#,
            )
            .replace(",i-1,", &format!(",i-{},", i % 10));
            file.write_all(line.as_bytes()).expect("write");
        }
        rows += 10_000;
        file.flush().expect("flush");
    }
    drop(file);
    let limited = |megabytes: u64| {
        let mut command = crate::support::costsplit(dir.path())
            .store(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .env("COSTSPLIT_IMPORT_CSV_CHUNK_MB", "1")
            .command(&["import", "big.csv"]);
        command.stdout(Stdio::piped()).stderr(Stdio::piped());
        limit_data(&mut command, megabytes);
        command.output()
    };
    let size = std::fs::metadata(&path).expect("size").len();
    let out = limited(64).expect("the binary runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{size} bytes under 64 MB: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!("imported {rows} line items as 310 daily facts")),
        "{stdout}"
    );
    assert!(size > 64 << 20);
    assert_eq!(facts(dir.path()).await, 310);
}

/// A month with more distinct facts than memory allows (here 200,000 resources under a
/// 48 MB `COSTSPLIT_MEMORY_LIMIT`): the binary stops before memory runs out with an error
/// that says what it was doing and what to do, never the OOM killer, and commits nothing.
/// The same file imports without the limit.
#[tokio::test(flavor = "multi_thread")]
async fn a_month_too_big_for_memory_stops_with_a_clear_error_and_commits_nothing() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("resources.csv");
    let mut file = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    writeln!(file, "{HEADER}").expect("write");
    for i in 0..200_000u64 {
        let line = line(
            "2025-03-01T00:00:00Z",
            "USD",
            "0.01",
            r#"{"service":"checkout-api"}"#,
        )
        .replace(",i-1,", &format!(",vol-{i:08},"));
        file.write_all(line.as_bytes()).expect("write");
    }
    drop(file);
    let run = |limit: Option<&str>| {
        let mut command = crate::support::costsplit(dir.path())
            .store(&format!("sqlite://{}", dir.path().join("c.db").display()))
            .rules(&crate::support::repo_rules());
        if let Some(limit) = limit {
            command = command.env("COSTSPLIT_MEMORY_LIMIT", limit);
        }
        command.run(&["import", "--allocate", "resources.csv"])
    };
    let out = run(Some("48MB"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: costsplit stopped before memory ran out: ")
            && stderr.contains("over its limit of 48 MB (COSTSPLIT_MEMORY_LIMIT)")
            && stderr.contains(" while ")
            && stderr.contains("Nothing partial was committed")
            && stderr.contains("When one machine is not enough"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(facts(dir.path()).await, 0);
    // A limit that is not a size is refused before anything runs.
    let out = run(Some("lots"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("COSTSPLIT_MEMORY_LIMIT `lots`"), "{stderr}");
    // Without the limit (the default: 90% of the memory available) it imports.
    let out = run(None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(facts(dir.path()).await, 200_000);
}

/// Under a memory limit too small for the async runtime's threads (4 MB of data), the binary
/// says so in one line and exits 1 at once, instead of hanging.
#[test]
fn a_memory_limit_too_small_to_start_fails_with_one_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut command = crate::support::costsplit(dir.path()).command(&["rules", "check", "rules"]);
    limit_data(&mut command, 4);
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > std::time::Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the binary hangs under a 4 MB data limit");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: cannot start worker threads"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// Limits the data (heap and private mappings: RLIMIT_DATA) the command's process may use to
/// `megabytes`, as a container's memory limit would.
fn limit_data(command: &mut Command, megabytes: u64) {
    use std::os::unix::process::CommandExt;
    let limit = libc::rlimit {
        rlim_cur: megabytes << 20,
        rlim_max: megabytes << 20,
    };
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        command.pre_exec(move || {
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
}
