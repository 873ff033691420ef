//! Real exports written by others (tests/data/thirdparty, PROVENANCE.md says where each comes
//! from and gives its exact totals, computed with Python `decimal` over the files' text):
//! every file imports, and its totals per day and per tag match those figures.
//!
//! How close "match" is: each line item is read at 1e-11 and each (day, currency) total is
//! rounded to nano-units once, so a day's total is within half a nano-unit (plus half of 1e-11
//! per line) of the exact figure, and a total over several days within one nano-unit per day.

use std::collections::BTreeMap;
use std::path::PathBuf;

use costsplit::ingest::{self, Imported};
use costsplit::model::Fact;

use crate::support::{data, picos};

fn thirdparty(path: &str) -> PathBuf {
    data(&format!("thirdparty/{path}"))
}

const CUR2_CSV: &str = "olaraji-aws-cur2-csv/ha-project-CUR-daily-1-00001.csv";
const CUR2_GZIP: &str = "olaraji-aws-cur2-csv/derived/ha-project-CUR-daily-1-00001.csv.gz";
const CUR2_PARQUET: &str =
    "olaraji-aws-cur2-csv/derived/ha-project-CUR-daily-1-00001.snappy.parquet";
const CUR2_MANIFEST: &str = "olaraji-aws-cur2-csv/ha-project-CUR-daily-1-Manifest.json";
const LEGACY_CUR: &str = "focus-converters-aws-cur-legacy/sample-anonymous-aws-export-dataset.csv";
const AZURE_FOCUS: &str = "cur-anon-azure-focus/sample_focus.csv";

/// Nano-units as picos.
fn picos_of(nanos: i128) -> i128 {
    nanos * 1000
}

/// Asserts `got` (nano-units) is within `days` nano-units of the exact `expected`.
fn close(what: &str, got: i128, expected: &str, days: i128) {
    let diff = (picos_of(got) - picos(expected)).abs();
    assert!(
        diff <= days * 1000,
        "{what}: got {got} nano-units, exact {expected} (off by {diff} picos, allowed {days} nano-units)"
    );
    // And to the cent, the way finance reads it.
    let cents = |p: i128| (p + p.signum() * 5_000_000_000) / 10_000_000_000;
    assert_eq!(
        cents(picos_of(got)),
        cents(picos(expected)),
        "{what} to the cent"
    );
}

fn sum_by(facts: &[Fact], key: impl Fn(&Fact) -> String) -> BTreeMap<String, (i128, i128, i64)> {
    let mut out: BTreeMap<String, (i128, i128, i64)> = BTreeMap::new();
    for f in facts {
        let e = out.entry(key(f)).or_default();
        e.0 += f.effective.0;
        e.1 += f.billed.0;
        e.2 += f.line_count;
    }
    out
}

/// The per-day table PROVENANCE.md gives under the section headed `section` (its first
/// `#### per … day` table): (day, first amount, second amount, rows), every day listed.
fn provenance_days(section: &str) -> Vec<(String, String, String, i64)> {
    let text = std::fs::read_to_string(thirdparty("PROVENANCE.md")).expect("PROVENANCE.md");
    let start = text
        .find(section)
        .unwrap_or_else(|| panic!("PROVENANCE.md has no section `{section}`"));
    let mut lines = text[start..]
        .lines()
        .skip_while(|l| !(l.starts_with("#### per ") && l.contains(" day")));
    assert!(lines.next().is_some(), "{section} has no per-day table");
    let table: Vec<&str> = lines.collect();
    let mut days = Vec::new();
    for line in table {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() < 5 || !cells[1].starts_with("20") {
            if !days.is_empty() {
                break;
            }
            continue;
        }
        days.push((
            cells[1].to_string(),
            cells[2].to_string(),
            cells[3].to_string(),
            cells[4].parse().expect("rows"),
        ));
    }
    assert!(days.len() >= 5, "{section}: {days:?}");
    days
}

/// [`provenance_days`] of `section`, checked to list every day the file has.
fn every_listed_day(
    section: &str,
    by_day: &BTreeMap<String, (i128, i128, i64)>,
) -> Vec<(String, String, String, i64)> {
    let listed = provenance_days(section);
    assert_eq!(
        listed.len(),
        by_day.len(),
        "{section}: every day of the file is listed"
    );
    listed
}

fn import(path: &str) -> Imported {
    ingest::read_files(&[thirdparty(path)]).unwrap_or_else(|e| panic!("{path} imports: {e}"))
}

fn tag(name: &'static str) -> impl Fn(&Fact) -> String {
    move |f| {
        f.tags
            .get(name)
            .cloned()
            .unwrap_or_else(|| "<untagged>".into())
    }
}

#[test]
fn azure_focus_1_0_export_matches_its_exact_totals() {
    let imported = import(AZURE_FOCUS);
    assert_eq!(imported.line_items, 1000);
    assert_eq!(
        imported.periods.iter().cloned().collect::<Vec<_>>(),
        [(
            "2024-06".to_string(),
            "/providers/Microsoft.Billing/billingAccounts/8611537".to_string()
        )]
    );
    let days = 19;
    let all = sum_by(&imported.facts, |_| String::new());
    close("effective", all[""].0, "205.49855381591416599989999", days);
    close("billed", all[""].1, "193.80768904891416699989999", days);
    // Every day PROVENANCE lists, each to within a nano-unit, with its rows.
    let by_day = sum_by(&imported.facts, |f| f.day.to_string());
    let listed = every_listed_day("### A.1", &by_day);
    for (day, effective, billed, rows) in &listed {
        close(&format!("effective {day}"), by_day[day].0, effective, 1);
        close(&format!("billed {day}"), by_day[day].1, billed, 1);
        assert_eq!(by_day[day].2, *rows, "{day} rows");
    }
    let env = sum_by(&imported.facts, tag("env"));
    for (value, effective, billed, rows) in [
        (
            "<untagged>",
            "109.73716354817989299999999",
            "98.05129878117989399999999",
            243,
        ),
        (
            "prod",
            "79.8829212562247379999",
            "79.8779212562247379999",
            739,
        ),
        ("dev", "14.399970159", "14.399970159", 2),
        ("trey", "1.4077212922", "1.4077212922", 4),
        ("Dev", "0.070777560309535", "0.070777560309535", 12),
    ] {
        close(
            &format!("env={value} effective"),
            env[value].0,
            effective,
            days,
        );
        close(&format!("env={value} billed"), env[value].1, billed, days);
        assert_eq!(env[value].2, rows, "env={value} rows");
    }
    let cost_center = sum_by(&imported.facts, tag("CostCenter"));
    close(
        "CostCenter=SubACM",
        cost_center["SubACM"].0,
        "107.331086165966476",
        days,
    );
    close(
        "CostCenter=1234",
        cost_center["1234"].0,
        "79.3168193903398349999",
        days,
    );
    // The key with a leading space is its own key, not `org`.
    assert!(imported.facts.iter().any(|f| f.tags.contains_key(" org")));
}

#[test]
fn cur_2_0_csv_export_matches_its_exact_totals() {
    let imported = import(CUR2_CSV);
    assert_eq!(imported.line_items, 1882);
    assert_eq!(
        imported.periods.iter().cloned().collect::<Vec<_>>(),
        [("2026-04".to_string(), "147303435917".to_string())]
    );
    let f = &imported.facts;
    assert!(f.iter().all(|f| f.provider == "AWS" && f.currency == "USD"));
    let days = 16;
    let all = sum_by(f, |_| String::new());
    close("unblended", all[""].1, "-0.0000000676", days);
    // No savings plans or reservations: effective is unblended.
    assert_eq!(all[""].0, all[""].1);
    let by_category = sum_by(f, |f| f.charge_category.to_string());
    close("Usage", by_category["Usage"].1, "47.68169383220", days);
    close("Credit", by_category["Credit"].1, "-47.68169389980", days);
    assert_eq!(by_category["Credit"].2, 358);
    assert_eq!(by_category["Tax"].2, 13);
    // User tags lose CUR's `user_` prefix, as in Cost Explorer and FOCUS.
    let project = sum_by(f, tag("project"));
    close(
        "project=ha-web-portal",
        project["ha-web-portal"].1,
        "19.52166684110",
        days,
    );
    close(
        "project untagged",
        project["<untagged>"].1,
        "-19.52166690870",
        days,
    );
    assert_eq!(project["ha-web-portal"].2, 460);
    let workload = sum_by(f, tag("workload"));
    close(
        "workload=web-tier",
        workload["web-tier"].1,
        "7.75286500080",
        days,
    );
    close(
        "workload=data-tier",
        workload["data-tier"].1,
        "3.6179999920",
        days,
    );
    close(
        "workload=storage-tier",
        workload["storage-tier"].1,
        "0.00019155840",
        days,
    );
    close(
        "workload untagged",
        workload["<untagged>"].1,
        "-11.37105661880",
        days,
    );
    let by_day = sum_by(f, |f| f.day.to_string());
    for (day, unblended, _, rows) in &every_listed_day("### B.1", &by_day) {
        close(day, by_day[day].1, unblended, 1);
        assert_eq!(by_day[day].2, *rows, "{day} rows");
    }
    // Services are named as Cost Explorer names them (the `product` map's product name).
    assert!(
        f.iter().any(|f| f.provider_service == "AWS CloudTrail"),
        "{:?}",
        f[0]
    );
}

#[test]
fn legacy_cur_csv_export_matches_its_exact_totals() {
    let imported = import(LEGACY_CUR);
    assert_eq!(imported.line_items, 1281);
    assert_eq!(
        imported.periods.iter().cloned().collect::<Vec<_>>(),
        [("2023-11".to_string(), "123412340534".to_string())]
    );
    let f = &imported.facts;
    let days = 14;
    let all = sum_by(f, |_| String::new());
    close("unblended", all[""].1, "1.68230869740", days);
    let tax = sum_by(f, |f| f.charge_category.to_string());
    close("Tax", tax["Tax"].1, "0.08", 1);
    assert_eq!(tax["Tax"].2, 12);
    let by_day = sum_by(f, |f| f.day.to_string());
    for (day, unblended, _, rows) in &every_listed_day("### B.2", &by_day) {
        close(day, by_day[day].1, unblended, 1);
        assert_eq!(by_day[day].2, *rows, "{day} rows");
    }
    assert!(
        f.iter().all(|f| f.tags.is_empty()),
        "the export has no tag columns"
    );
    let s3 = sum_by(f, |f| f.provider_service.to_string());
    close(
        "Amazon Simple Storage Service",
        s3["Amazon Simple Storage Service"].1,
        "1.44056535650",
        days,
    );
}

/// The same export as CSV, gzip CSV, parquet and a FOCUS file written from it here gives the
/// same facts.
#[test]
fn one_export_in_every_format_gives_identical_facts() {
    let csv = import(CUR2_CSV).facts;
    assert_eq!(import(CUR2_GZIP).facts, csv, "gzip CSV");
    assert_eq!(import(CUR2_PARQUET).facts, csv, "parquet");
    let dir = tempfile::tempdir().expect("tempdir");
    let focus = dir.path().join("focus.csv");
    write_as_focus(&thirdparty(CUR2_CSV), &focus);
    let from_focus = ingest::read_files(&[focus]).expect("the FOCUS copy imports");
    assert_eq!(from_focus.facts, csv, "FOCUS");
}

/// Writes a CUR 2.0 CSV without commitments as FOCUS, column by column, independently of
/// the importer: ChargeCategory from the line item type, ServiceName from the product map,
/// Tags from `resource_tags` with the `user_` prefix removed.
fn write_as_focus(cur: &std::path::Path, out: &std::path::Path) {
    let mut reader = csv::Reader::from_path(cur).expect("open");
    let header = reader.headers().expect("header").clone();
    let at = |name: &str| header.iter().position(|h| h == name).expect(name);
    let mut writer = csv::Writer::from_path(out).expect("create");
    writer
        .write_record([
            "ChargePeriodStart",
            "BillingPeriodStart",
            "BillingCurrency",
            "EffectiveCost",
            "BilledCost",
            "BillingAccountId",
            "SubAccountId",
            "ProviderName",
            "ServiceName",
            "ResourceId",
            "ChargeCategory",
            "Tags",
            "ListCost",
            "ContractedCost",
        ])
        .expect("write");
    for record in reader.records() {
        let r = record.expect("record");
        let product: serde_json::Value = serde_json::from_str(&r[at("product")]).expect("json");
        let tags: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&r[at("resource_tags")]).expect("json");
        let tags: serde_json::Map<String, serde_json::Value> = tags
            .into_iter()
            .map(|(k, v)| (k.trim_start_matches("user_").to_string(), v))
            .collect();
        let category = match &r[at("line_item_line_item_type")] {
            "Usage" => "Usage",
            "Credit" => "Credit",
            "Tax" => "Tax",
            other => panic!("unexpected line item type {other}"),
        };
        let cost = &r[at("line_item_unblended_cost")];
        // FOCUS's list cost: the public on-demand cost of usage; a credit's or a tax's own.
        let on_demand = &r[at("pricing_public_on_demand_cost")];
        let list = if category == "Usage" && !on_demand.is_empty() {
            on_demand
        } else {
            cost
        };
        writer
            .write_record([
                &r[at("line_item_usage_start_date")],
                &r[at("bill_billing_period_start_date")],
                &r[at("line_item_currency_code")],
                cost,
                cost,
                &r[at("bill_payer_account_id")],
                &r[at("line_item_usage_account_id")],
                "AWS",
                product["product_name"]
                    .as_str()
                    .unwrap_or(&r[at("line_item_product_code")]),
                &r[at("line_item_resource_id")],
                category,
                &serde_json::Value::Object(tags).to_string(),
                list,
                cost,
            ])
            .expect("write");
    }
    writer.flush().expect("flush");
}

#[test]
fn a_manifest_or_an_export_folder_is_one_batch() {
    let csv = import(CUR2_CSV);
    // The manifest names the part `…-00001.csv.gz`; the folder keeps it unpacked.
    let by_manifest = import(CUR2_MANIFEST);
    assert_eq!(by_manifest.facts, csv.facts);
    assert_eq!(by_manifest.files.len(), 1);
    // A folder with a manifest reads what the manifest lists (not the derived copies).
    let by_folder = import("olaraji-aws-cur2-csv");
    assert_eq!(by_folder.facts, csv.facts);
    assert_eq!(by_folder.files, by_manifest.files);

    // A part the manifest lists but the folder lacks stops the import: never half a month.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(thirdparty(CUR2_CSV), dir.path().join("x-00001.csv")).expect("copy");
    std::fs::write(
        dir.path().join("x-Manifest.json"),
        r#"{"dataFiles":["s3://b/p/x/data/BILLING_PERIOD=2026-04/e/x-00001.csv.gz","s3://b/p/x/data/BILLING_PERIOD=2026-04/e/x-00002.csv.gz"]}"#,
    )
    .expect("manifest");
    let error = ingest::read_files(&[dir.path().to_path_buf()])
        .expect_err("a missing part")
        .to_string();
    assert!(
        error.contains("x-00002.csv.gz") && error.contains("2 part(s)"),
        "{error}"
    );
    // The same file twice in one batch would count it twice.
    let file = thirdparty(CUR2_CSV);
    let error = ingest::read_files(&[file.clone(), file])
        .expect_err("a file given twice")
        .to_string();
    assert!(error.contains("given twice"), "{error}");
    // So would a copy of it under another name.
    let copy = dir.path().join("renamed-part.csv");
    std::fs::copy(thirdparty(CUR2_CSV), &copy).expect("copy");
    let error = ingest::read_files(&[thirdparty(CUR2_CSV), copy])
        .expect_err("the same data twice")
        .to_string();
    assert!(error.contains("holds the same data as"), "{error}");
}

#[test]
fn exports_that_are_not_billing_line_items_say_what_to_export_instead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let azure = dir.path().join("azure-actual.csv");
    std::fs::write(
        &azure,
        "InvoiceSectionName,AccountName,Date,MeterCategory,CostInBillingCurrency,BillingCurrency\nx,y,06/01/2024,Storage,1.5,USD\n",
    )
    .expect("write");
    let error = ingest::read_files(&[azure])
        .expect_err("refused")
        .to_string();
    assert!(
        error.contains("Azure cost details export") && error.contains("FOCUS"),
        "{error}"
    );
}
