//! Billing files in: the real FOCUS sample, the three file formats, and bad input.

use std::path::PathBuf;

use costsplit::demo::generate::{GenSpec, World};
use costsplit::jobs;
use costsplit::model::CostBasis;
use costsplit::store::Table;

use crate::support::{data, day, rules, Kind, TestStore, BOTH, NOW};

const SAMPLE_RULES: &str = r#"
[settings]
service_tag_keys = ["service", "application"]
"#;

fn cents(report: &costsplit::report::Report, service: &str) -> String {
    report
        .services
        .iter()
        .find(|s| s.service == service)
        .map(|s| s.total().format(2))
        .unwrap_or_else(|| panic!("no row for {service}"))
}

/// Expected figures computed independently (Python `decimal` over the CSV text).
async fn the_focus_sample_imports_as_is_and_reconciles(kind: Kind) {
    let t = TestStore::new(kind).await;
    let summary = jobs::import_files(&t.store, &[data("focus-1.0-sample.csv")], NOW)
        .await
        .expect("imports the sample");
    assert_eq!(summary.line_items, 1000);
    assert_eq!(summary.effective.get("USD").format(2), "14.98");
    assert_eq!(summary.billed.get("USD").format(2), "20.52");
    let rules = rules(&[("sample.toml", SAMPLE_RULES)]);
    let range = (day("2024-09-01"), day("2024-09-30"));
    for (basis, expected) in [
        (
            CostBasis::Effective,
            [
                ("brightpathmatrix", "16.00"),
                ("unallocated", "-1.02"),
                ("powerstudioboost", "0.00"),
            ],
        ),
        (
            CostBasis::Billed,
            [
                ("brightpathmatrix", "15.96"),
                ("unallocated", "0.27"),
                ("powerstudioboost", "0.44"),
            ],
        ),
    ] {
        jobs::allocate_range(&t.store, &rules, basis, range, NOW)
            .await
            .expect("allocates");
        let report = jobs::report(&t.store, range, None).await.expect("report");
        assert!(
            report.reconciled(),
            "{kind:?} {basis}: {:?}",
            report.reconciliation_lines()
        );
        for (service, amount) in expected {
            assert_eq!(
                cents(&report, service),
                amount,
                "{kind:?} {basis} {service}"
            );
        }
        let total: costsplit::money::Nanos = report.services.iter().map(|s| s.total()).sum();
        let billed = report.billed["USD"];
        assert_eq!(total, billed, "{kind:?} {basis}: every nano is allocated");
        assert_eq!(
            billed.format(2),
            if basis == CostBasis::Effective {
                "14.98"
            } else {
                "20.52"
            }
        );
    }
}

#[tokio::test]
async fn the_focus_sample_imports_as_is_and_reconciles_on_both_stores() {
    for kind in BOTH {
        the_focus_sample_imports_as_is_and_reconciles(kind).await;
    }
}

#[test]
fn csv_gzip_and_parquet_of_one_month_give_the_same_facts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = GenSpec::standard(20_000, 3);
    spec.resources = 300;
    let world = World::new(spec);
    let mut facts = Vec::new();
    for name in ["month.csv", "month.csv.gz", "month.parquet"] {
        let path = dir.path().join(name);
        if name.ends_with(".parquet") {
            world.write_parquet(&path).expect("parquet");
        } else {
            world.write_csv(&path).expect("csv");
        }
        let imported = costsplit::ingest::read_files(std::slice::from_ref(&path)).expect(name);
        assert_eq!(imported.line_items, 20_000, "{name}");
        // Read in several slices (as a big file is), the facts are the same.
        let slicing = costsplit::ingest::Slicing {
            rows: 7_000,
            csv_bytes: 300_000,
        };
        let sliced = costsplit::ingest::read_file_in_slices(&path, slicing).expect(name);
        assert_eq!(sliced.line_items, 20_000, "{name}");
        let sliced = costsplit::ingest::aggregate::round_to_nanos(
            costsplit::ingest::aggregate::merge_facts(sliced.facts),
        );
        assert_eq!(sliced, imported.facts, "{name}: slicing changes nothing");
        facts.push(imported.facts);
    }
    assert!(!facts[0].is_empty());
    assert_eq!(facts[0], facts[1], "gzip CSV reads like CSV");
    assert_eq!(facts[0], facts[2], "parquet reads like CSV");
    // The same parquet in 20 row groups: each worker reads its own, all at once.
    let batches = crate::support::read_batches(&dir.path().join("month.parquet"));
    let groups = dir.path().join("month-groups.parquet");
    crate::support::write_batches(&groups, &batches, 1_000);
    let imported = costsplit::ingest::read_files(std::slice::from_ref(&groups)).expect("groups");
    assert_eq!(
        imported.facts, facts[0],
        "row groups read in parallel read like CSV"
    );
}

const HEADER: &str = "ChargePeriodStart,BillingPeriodStart,BillingAccountId,BillingCurrency,BilledCost,EffectiveCost,ServiceName,ResourceId,ChargeCategory,Tags";

fn good_row(cost: &str) -> String {
    format!("2025-03-01T05:00:00Z,2025-03-01T00:00:00Z,payer,USD,{cost},{cost},Amazon EC2,i-1,Usage,\"{{\"\"service\"\":\"\"a\"\"}}\"")
}

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, text).expect("write fixture");
    path
}

/// Each bad file names the file, row and column (or what is missing) and commits nothing.
#[tokio::test]
async fn bad_billing_files_name_row_and_column_and_commit_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = write(
        &dir,
        "good.csv",
        &format!("{HEADER}\n{}\n", good_row("1.5")),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing-column.csv",
            "ChargePeriodStart,BillingCurrency,BilledCost\n2025-03-01,USD,1\n".to_string(),
            "missing-column.csv:1: missing required column `EffectiveCost`",
        ),
        (
            "non-numeric.csv",
            format!(
                "{HEADER}\n{}\n{}\n{}\n",
                good_row("1"),
                good_row("2"),
                good_row("12.5x")
            ),
            "non-numeric.csv:4: column `BilledCost`: `12.5x` is not a number",
        ),
        (
            "too-large.csv",
            format!("{HEADER}\n{}\n{}\n", good_row("1"), good_row("99999999999999999999")),
            "too-large.csv:3: column `BilledCost`: `99999999999999999999` is larger than one line item may be (at most 10^15 units of a currency)",
        ),
        (
            "bad-date.csv",
            format!(
                "{HEADER}\n{}\n03/01/2025 05:00,2025-03-01,payer,USD,1,1,EC2,i-1,Usage,NULL\n",
                good_row("1")
            ),
            "bad-date.csv:3: column `ChargePeriodStart`: unknown date format `03/01/2025 05:00`",
        ),
        (
            "bad-tags.csv",
            format!("{HEADER}\n2025-03-01,2025-03-01,payer,USD,1,1,EC2,i-1,Usage,{{service:a}}\n"),
            "bad-tags.csv:2: column `Tags`: not a JSON object of tags",
        ),
        (
            "empty.csv",
            String::new(),
            "empty.csv: the file has no line items",
        ),
        (
            "header-only.csv",
            format!("{HEADER}\n"),
            "header-only.csv: the file has no line items",
        ),
        (
            "notes.txt",
            "hello".to_string(),
            "notes.txt: unknown file type",
        ),
    ];
    // What was there before: the same billing period and account, which a batch that got
    // through would replace.
    let prior = write(
        &dir,
        "prior.csv",
        &format!("{HEADER}\n{}\n{}\n", good_row("7.25"), good_row("0.5")),
    );
    for kind in BOTH {
        let t = TestStore::new(kind).await;
        jobs::import_files(&t.store, std::slice::from_ref(&prior), NOW)
            .await
            .expect("the prior import");
        let range = (day("2025-03-01"), day("2025-03-31"));
        let before = t.store.facts(range.0, range.1).await.expect("facts");
        assert!(!before.is_empty());
        for (name, text, expected) in &cases {
            let bad = write(&dir, name, text);
            // A good file first in the same batch: the whole batch is refused.
            let err = jobs::import_files(&t.store, &[good.clone(), bad], NOW)
                .await
                .expect_err(name);
            let message = format!("{err:#}");
            assert!(
                message.contains(expected),
                "{kind:?} {name}: got `{message}`, want `{expected}`"
            );
            assert!(!message.contains('\n'), "one line: {message}");
        }
        assert_eq!(
            t.store.facts(range.0, range.1).await.expect("facts"),
            before,
            "{kind:?}: nothing committed, what was there kept"
        );
        assert_eq!(t.store.count(Table::Imports).await.expect("count"), 1);
    }
}

/// i64 nano-units end at 9.2e9 currency units: a month of 15.5e9 IDR (about US$1M) wrapped
/// to a negative total, and a 1e12 KRW line item saturated. Both are now exact end to end.
async fn amounts_past_i64_nano_units_import_allocate_and_report_exactly(kind: Kind) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = format!("{HEADER}\n");
    // 31 days of 500,000,000.123456789 IDR on a shared database, plus one 1e12 KRW line
    // item (about US$700M) on another account.
    for d in 1..=31 {
        text.push_str(&format!(
            "2025-03-{d:02}T00:00:00Z,2025-03-01,payer-id,IDR,500000000.123456789,500000000.123456789,Amazon RDS,arn:aws:rds:db-1,Usage,NULL\n"
        ));
    }
    text.push_str("2025-03-15T00:00:00Z,2025-03-01,payer-kr,KRW,1000000000000,1000000000000,Amazon EC2,i-kr,Usage,\"{\"\"service\"\":\"\"b\"\"}\"\n");
    let file = write(&dir, "large-currencies.csv", &text);
    let t = TestStore::new(kind).await;
    let summary = jobs::import_files(&t.store, &[file], NOW)
        .await
        .expect("imports");
    assert_eq!(summary.line_items, 32);
    let rules = rules(&[(
        "r.toml",
        "[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\n[[service]]\nname = \"c\"\n[[pool]]\nname = \"db\"\nmethod = \"equal\"\nmembers = [\"a\", \"b\", \"c\"]\nmatch = { resource_id = \"arn:aws:rds:*\" }\n",
    )]);
    let range = (day("2025-03-01"), day("2025-03-31"));
    jobs::allocate_range(&t.store, &rules, CostBasis::Effective, range, NOW)
        .await
        .expect("allocates");
    let report = jobs::report(&t.store, range, None).await.expect("report");
    assert!(
        report.reconciled(),
        "{kind:?}: {:?}",
        report.reconciliation_lines()
    );
    assert_eq!(report.billed["IDR"].to_string(), "15500000003.827160459");
    assert_eq!(report.billed["KRW"].to_string(), "1000000000000.000000000");
    let idr = |service: &str| {
        report
            .services
            .iter()
            .find(|s| s.service == service && s.currency == "IDR")
            .map(|s| s.total().to_string())
            .unwrap_or_else(|| panic!("no IDR row for {service}"))
    };
    // Each day's 500000000.123456789 split 3 ways leaves 2 nano-units: a and b get one each.
    assert_eq!(idr("a"), "5166666667.942386830");
    assert_eq!(idr("b"), "5166666667.942386830");
    assert_eq!(idr("c"), "5166666667.942386799");
    let krw = report
        .services
        .iter()
        .find(|s| s.service == "b" && s.currency == "KRW")
        .expect("b in KRW");
    assert_eq!(krw.total().format(2), "1000000000000.00");
    let table = report.render(costsplit::report::Format::Table, false);
    assert!(table.contains("15500000003.827160459"), "{table}");
}

#[tokio::test]
async fn amounts_past_i64_nano_units_import_allocate_and_report_exactly_on_both_stores() {
    for kind in BOTH {
        amounts_past_i64_nano_units_import_allocate_and_report_exactly(kind).await;
    }
}

#[tokio::test]
async fn mixed_currencies_in_one_pool_are_refused_and_nothing_is_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = write(
        &dir,
        "two-currencies.csv",
        &format!(
            "{HEADER}\n2025-03-01,2025-03-01,payer,USD,1,1,Amazon RDS,arn:aws:rds:db-1,Usage,NULL\n2025-03-01,2025-03-01,payer-eu,EUR,2,2,Amazon RDS,arn:aws:rds:db-2,Usage,NULL\n"
        ),
    );
    let t = TestStore::new(Kind::Sqlite).await;
    jobs::import_files(&t.store, &[file], NOW)
        .await
        .expect("two currencies in one file are fine");
    let rules = rules(&[(
        "r.toml",
        "[[service]]\nname = \"a\"\n[[pool]]\nname = \"db\"\nmethod = \"equal\"\nmembers = [\"a\"]\nmatch = { resource_id = \"arn:aws:rds:*\" }\n",
    )]);
    let err = jobs::allocate_range(
        &t.store,
        &rules,
        CostBasis::Effective,
        (day("2025-03-01"), day("2025-03-31")),
        NOW,
    )
    .await
    .expect_err("one pool, two currencies");
    assert!(
        format!("{err:#}").contains(
            "pool `db` has line items in more than one currency on 2025-03-01 (EUR, USD)"
        ),
        "{err:#}"
    );
    assert_eq!(t.store.count(Table::Allocations).await.expect("count"), 0);
}

#[test]
fn a_parquet_file_with_a_bad_date_names_the_file_and_column() {
    use crate::support::{floats, strings};
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad-date.parquet");
    let date = "03/01/2025 05:00";
    crate::support::parquet_file(
        &path,
        vec![
            ("ChargePeriodStart", strings(&[date, date])),
            ("BillingCurrency", strings(&["USD", "USD"])),
            ("BilledCost", floats(&[1.0, 2.0])),
            ("EffectiveCost", floats(&[1.0, 2.0])),
        ],
        1 << 20,
    );
    let err = costsplit::ingest::read_files(&[path]).expect_err("bad date");
    let message = err.to_string();
    assert!(
        message.contains(
            "bad-date.parquet:1: column `ChargePeriodStart`: unknown date format `03/01/2025 05:00`"
        ),
        "{message}"
    );
}

/// Chunks are parsed in parallel; the error still names the file's first bad row, by its line,
/// in plain and in gzip CSV.
#[test]
fn the_first_bad_row_is_named_by_its_line_whatever_the_chunks() {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut text = format!("{HEADER}\n");
    for i in 0..3_000 {
        let cost = match i {
            2_000 => "1.2.3".to_string(),
            2_500 => "oops".to_string(),
            _ => "0.5".to_string(),
        };
        text.push_str(&good_row(&cost));
        text.push('\n');
    }
    let plain = write(&dir, "bad-late.csv", &text);
    let gzip = dir.path().join("bad-late.csv.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gzip).expect("create"),
        flate2::Compression::fast(),
    );
    encoder.write_all(text.as_bytes()).expect("gzip");
    encoder.finish().expect("gzip");
    for path in [plain, gzip] {
        for csv_bytes in [1_000, 20_000, 16 << 20] {
            let slicing = costsplit::ingest::Slicing {
                rows: 1_000,
                csv_bytes,
            };
            let err = costsplit::ingest::read_file_in_slices(&path, slicing)
                .err()
                .expect("a bad row");
            // Header is line 1, row i is line i + 2.
            assert!(
                err.to_string()
                    .contains(":2002: column `BilledCost`: `1.2.3` is not a number"),
                "{} with {csv_bytes}-byte chunks: {err}",
                path.display()
            );
        }
    }
}

/// A one-column-per-field FOCUS parquet file with these costs (billed = effective).
fn focus_parquet(dir: &std::path::Path, name: &str, costs: arrow_array::ArrayRef) -> PathBuf {
    use crate::support::strings;
    let rows = costs.len();
    let path = dir.join(name);
    crate::support::parquet_file(
        &path,
        vec![
            (
                "ChargePeriodStart",
                strings(&vec!["2025-03-01T00:00:00Z"; rows]),
            ),
            ("BillingCurrency", strings(&vec!["KRW"; rows])),
            ("ServiceName", strings(&vec!["Amazon RDS"; rows])),
            ("EffectiveCost", costs.clone()),
            ("BilledCost", costs),
        ],
        1 << 20,
    );
    path
}

#[test]
fn parquet_costs_are_read_strictly_and_large_ones_exactly() {
    use crate::support::{floats, strings};
    let dir = tempfile::tempdir().expect("tempdir");
    // 100,000,000 KRW (about US$70k) and a text column with more digits than a float holds.
    let large = focus_parquet(dir.path(), "large.parquet", floats(&[100_000_000.0, 1.5]));
    let imported = costsplit::ingest::read_files(&[large]).expect("imports");
    let billed: i128 = imported.facts.iter().map(|f| f.billed.0).sum();
    assert_eq!(billed, 100_000_001_500_000_000);
    let text = focus_parquet(
        dir.path(),
        "text.parquet",
        strings(&["92233720.123456789", "0.000000001"]),
    );
    let imported = costsplit::ingest::read_files(&[text]).expect("imports");
    let billed: i128 = imported.facts.iter().map(|f| f.billed.0).sum();
    assert_eq!(billed, 92_233_720_123_456_790);
    // 1e12 KRW in one line item (past i64 nano-units), as a float and as text.
    let huge = focus_parquet(dir.path(), "huge.parquet", floats(&[1.0e12, 0.5]));
    let imported = costsplit::ingest::read_files(&[huge]).expect("imports");
    let billed: i128 = imported.facts.iter().map(|f| f.billed.0).sum();
    assert_eq!(billed, 1_000_000_000_000_500_000_000);

    // Refused with the file, the row and the column, never read as zero.
    for (name, costs, shown) in [
        (
            "nan.parquet",
            floats(&[1.0, f64::NAN]),
            "`NaN` is not a number",
        ),
        (
            "inf.parquet",
            floats(&[1.0, f64::INFINITY]),
            "`inf` is not a number",
        ),
        (
            "words.parquet",
            strings(&["1.0", "ten"]),
            "`ten` is not a number",
        ),
        (
            "too-large.parquet",
            floats(&[1.0, 1.0e20]),
            "`100000000000000000000` is larger than one line item may be",
        ),
    ] {
        let path = focus_parquet(dir.path(), name, costs);
        let error = costsplit::ingest::read_files(&[path])
            .expect_err("a cost that is not a number")
            .to_string();
        assert!(
            error.contains(&format!("{name}:2: column `EffectiveCost`: {shown}")),
            "{error}"
        );
    }
}

/// Decimal cost columns (`decimal(38,9)`, `decimal(18,9)`: the money type of BigQuery and
/// warehouse exports) are read exactly, with no float anywhere.
#[test]
fn decimal_parquet_costs_import_exactly() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (precision, name) in [(38, "d38.parquet"), (18, "d18.parquet")] {
        // 123456789.123456789 and -0.000000001 at scale 9.
        let costs: arrow_array::ArrayRef = std::sync::Arc::new(
            arrow_array::Decimal128Array::from(vec![123_456_789_123_456_789i128, -1])
                .with_precision_and_scale(precision, 9)
                .expect("decimal"),
        );
        let path = focus_parquet(dir.path(), name, costs);
        let imported = costsplit::ingest::read_files(&[path]).expect("imports");
        let billed: i128 = imported.facts.iter().map(|f| f.billed.0).sum();
        assert_eq!(billed, 123_456_789_123_456_788, "{name}");
    }
}
