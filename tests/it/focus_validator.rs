//! The FOCUS export as FOCUS readers see it: checked by an independent validator,
//! focus-data-toolkit's `focus-toolkit validate` (PyPI; installed by scripts/test into the
//! venv beside moto), with zero violations, for a month imported from a FOCUS file, from a
//! real CUR 2.0 export and from the demo; and every value kept as it is (a machine-read
//! dataset gets no spreadsheet prefix).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::{costsplit, data, repo_rules};

fn validator() -> PathBuf {
    let path = std::env::var("COSTSPLIT_FOCUS_TOOLKIT").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/focus-toolkit"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "focus-toolkit not found at {}: run the tests with scripts/test, which installs focus-data-toolkit into the test venv (or set COSTSPLIT_FOCUS_TOOLKIT)",
        path.display()
    );
    path
}

fn show(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn run(dir: &Path, args: &[&str]) -> Output {
    run_with(dir, &repo_rules(), args)
}

fn run_with(dir: &Path, rules: &Path, args: &[&str]) -> Output {
    let out = costsplit(dir)
        .store("sqlite://costsplit.db")
        .rules(rules)
        .run(args);
    assert!(out.status.success(), "{args:?}: {}", show(&out));
    out
}

/// Exports `month` as FOCUS from the store in `dir` and has the validator check it: the
/// export, and what the validator said when it found violations.
fn export_and_check(dir: &Path, month: &str) -> (String, Result<(), String>) {
    export_and_check_with(dir, &repo_rules(), month)
}

fn export_and_check_with(dir: &Path, rules: &Path, month: &str) -> (String, Result<(), String>) {
    let file = dir.join(format!("focus-{month}.csv"));
    run_with(
        dir,
        rules,
        &[
            "export",
            "--month",
            month,
            "--format",
            "focus",
            "--out",
            file.to_str().expect("utf-8"),
        ],
    );
    let out = Command::new(validator())
        .arg("validate")
        .arg(&file)
        .output()
        .expect("focus-toolkit runs");
    let verdict = if out.status.success() && show(&out).contains("lint OK") {
        Ok(())
    } else {
        Err(show(&out))
    };
    (std::fs::read_to_string(&file).expect("the export"), verdict)
}

/// [`export_and_check`], with no violation.
fn export_and_validate(dir: &Path, month: &str) -> String {
    export_and_validate_with(dir, &repo_rules(), month)
}

fn export_and_validate_with(dir: &Path, rules: &Path, month: &str) -> String {
    let (focus, verdict) = export_and_check_with(dir, rules, month);
    if let Err(said) = verdict {
        panic!("the FOCUS export of {month} does not validate:\n{said}");
    }
    focus
}

#[test]
fn the_focus_export_validates_for_a_cur_2_export_and_the_demo_and_carries_a_focus_file_as_it_is() {
    // A FOCUS 1.0 file, its one tag value "-" kept as it is.
    let dir = tempfile::tempdir().expect("tempdir");
    let sample = dir.path().join("sample.csv");
    let mut reader = csv::Reader::from_path(data("focus-1.0-sample.csv")).expect("sample");
    let headers = reader.headers().expect("header").clone();
    let tags = headers
        .iter()
        .position(|h| h == "Tags")
        .expect("a Tags column");
    let mut records: Vec<csv::StringRecord> =
        reader.records().map(|r| r.expect("record")).collect();
    let last = records.len() - 1;
    let mut cells: Vec<String> = records[last].iter().map(str::to_string).collect();
    cells[tags] = r#"{"note":"-","service":"=1+1"}"#.to_string();
    records[last] = csv::StringRecord::from(cells);
    let mut writer = csv::Writer::from_path(&sample).expect("write");
    writer.write_record(&headers).expect("write");
    for r in &records {
        writer.write_record(r).expect("write");
    }
    writer.flush().expect("flush");
    run(
        dir.path(),
        &["import", "--allocate", sample.to_str().expect("utf-8")],
    );
    // The sample (FOCUS 1.0) has one credit amortized (EffectiveCost -3.00, BilledCost
    // -2.6137), which FOCUS 1.3 forbids; the export carries the bill as it is, so that one row
    // is the only violation.
    let (focus, verdict) = export_and_check(dir.path(), "2024-09");
    let said = verdict.expect_err("the source's amortized credit is carried");
    assert!(said.contains(": 1 violation(s)"), "{said}");
    assert!(
        said.contains("effective_cost_differs_from_billed") && said.contains("'Credit'"),
        "{said}"
    );
    assert!(
        focus.contains(r#"""note"":""-"""#),
        "the tag value `-` is kept as it is"
    );
    assert!(
        !focus.contains("'-"),
        "no spreadsheet prefix in a FOCUS dataset"
    );
    assert!(
        !focus.contains("'=1+1"),
        "no spreadsheet prefix in a FOCUS dataset"
    );

    // A real CUR 2.0 export (the ha project's April 2026).
    let dir = tempfile::tempdir().expect("tempdir");
    let part = data(crate::exports::PART);
    run(
        dir.path(),
        &["import", "--allocate", part.to_str().expect("utf-8")],
    );
    let focus = export_and_validate(dir.path(), "2026-04");
    let mut reader = csv::Reader::from_reader(focus.as_bytes());
    let headers = reader.headers().expect("header").clone();
    let col = |name: &str| headers.iter().position(|h| h == name).expect(name);
    let (list, billed, category) = (col("ListCost"), col("BilledCost"), col("ServiceCategory"));
    let mut categories = std::collections::BTreeSet::new();
    let mut list_differs = false;
    for record in reader.records() {
        let r = record.expect("row");
        categories.insert(r[category].to_string());
        list_differs |= r[list] != r[billed];
    }
    assert!(categories.contains("Compute"), "{categories:?}");
    assert!(
        list_differs,
        "the CUR's public on-demand cost is carried as ListCost"
    );

    // The demo's March.
    let dir = tempfile::tempdir().expect("tempdir");
    run(dir.path(), &["demo", "--rows", "20000"]);
    let store = format!(
        "sqlite://{}",
        dir.path().join("costsplit-demo.db").display()
    );
    let file = dir.path().join("focus-demo.csv");
    let out = costsplit(dir.path())
        .store(&store)
        .rules(&repo_rules())
        .run(&[
            "export",
            "--month",
            "2025-03",
            "--format",
            "focus",
            "--out",
            &file.display().to_string(),
        ]);
    assert!(out.status.success(), "{}", show(&out));
    let out = Command::new(validator())
        .arg("validate")
        .arg(&file)
        .output()
        .expect("focus-toolkit runs");
    assert!(
        out.status.success(),
        "the demo's FOCUS export:\n{}",
        show(&out)
    );
}

#[test]
fn a_kubernetes_clusters_focus_export_validates_with_an_element_per_dimension() {
    // AWS's worked example (one m5.xlarge, two namespaces, four pods), its idle charged
    // centrally.
    let dir = tempfile::tempdir().expect("tempdir");
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).expect("mkdir");
    std::fs::write(
        rules.join("rules.toml"),
        r#"
[[service]]
name = "alpha"
[[service]]
name = "beta"
[[service]]
name = "platform"

[[cluster]]
name = "example"
map = { "namespace1" = "alpha", "namespace2" = "beta" }
idle = "central"
owner = "platform"
"#,
    )
    .expect("rules");
    let example = data("kubernetes/aws-example.csv");
    run_with(
        dir.path(),
        &rules,
        &["import", "--allocate", example.to_str().expect("utf-8")],
    );
    let focus = export_and_validate_with(dir.path(), &rules, "2026-04");
    assert!(focus.contains(r#"""UsageUnit"":""CPU"""#), "{focus}");
    assert!(focus.contains(r#"""UsageUnit"":""Memory"""#), "{focus}");
    assert!(focus.contains("costsplit/central"), "{focus}");
}
