//! AWS CUR 2.0 parquet files (fixtures written by tests/data/make_cur_samples.py with
//! pyarrow, so the map column is a real parquet MAP): amortized cost per line item type,
//! tags from the map or the legacy columns, charge categories.

use std::collections::BTreeMap;

use costsplit::ingest;
use costsplit::money::Nanos;

use crate::support::data;

/// service tag -> (effective, billed) nanos.
fn by_service(file: &str) -> (BTreeMap<String, (i128, i128)>, ingest::Imported) {
    by_service_of(data(file))
}

fn by_service_of(path: std::path::PathBuf) -> (BTreeMap<String, (i128, i128)>, ingest::Imported) {
    let imported = ingest::read_files(&[path]).expect("the CUR file imports");
    let mut totals: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for f in &imported.facts {
        let entry = totals
            .entry(f.tags.get("service").cloned().unwrap_or_default())
            .or_default();
        entry.0 += f.effective.0;
        entry.1 += f.billed.0;
    }
    (totals, imported)
}

#[test]
fn cur2_amortizes_per_line_item_type_and_reads_the_tag_map() {
    for file in ["cur2-sample.parquet", "cur-legacy-sample.parquet"] {
        let (totals, imported) = by_service(file);
        assert_eq!(imported.line_items, 9, "{file}");
        let expected: BTreeMap<String, (i128, i128)> = [
            // 10 usage + 5 savings-plan effective + 0 negation - 2 credit; billed 10 + 8 - 8 - 2
            ("web", (13_000_000_000, 8_000_000_000)),
            // 6.25 reservation effective + 1.50 unused RI; billed 0 + 4 RI fee
            ("api", (7_750_000_000, 4_000_000_000)),
            // the upfront fee (0 amortized), 2.00 unused commitment, 1.234567891 tax
            ("", (3_234_567_891, 125_234_567_891)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(totals, expected, "{file}");

        let f = &imported.facts;
        assert!(f.iter().all(|f| f.billing_account == "111122223333"
            && f.sub_account == "444455556666"
            && f.provider == "AWS"
            && f.billing_period == "2026-10"
            && f.currency == "USD"));
        let tax: Nanos = f
            .iter()
            .filter(|f| f.charge_category == "Tax")
            .map(|f| f.billed)
            .sum();
        assert_eq!(tax.0, 1_234_567_891);
        let web = f
            .iter()
            .find(|f| f.resource_id == "i-web" && f.charge_category == "Usage")
            .expect("the web usage line");
        assert_eq!(web.tags.get("team").map(String::as_str), Some("shop"));
        assert_eq!(web.provider_service, "AmazonEC2");
        assert!(f.iter().any(|f| f.charge_category == "Purchase"));
        assert!(f.iter().any(|f| f.charge_category == "Credit"));
    }
}

#[test]
fn a_cur_file_without_a_cost_column_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cur.parquet");
    crate::support::parquet_file(
        &path,
        vec![
            (
                "line_item_usage_start_date",
                crate::support::strings(&["2026-10-05T00:00:00Z"]),
            ),
            ("line_item_currency_code", crate::support::strings(&["USD"])),
        ],
        1 << 20,
    );
    let err = ingest::read_files(&[path]).expect_err("no cost column");
    let message = err.to_string();
    assert!(
        message.contains("line_item_unblended_cost") && message.contains("AWS CUR 2.0"),
        "{message}"
    );
}

/// The 9 line items of `make_cur_samples.py` as a CUR 2.0 CSV (map columns as JSON text) and
/// as a legacy CUR CSV (`category/Name` headers, `resourceTags/user:KEY` columns): the same
/// amortized and billed totals as the parquet files.
#[test]
fn cur_csv_and_legacy_cur_csv_amortize_like_parquet() {
    const RI: &str = "arn:aws:ec2:us-east-1:111122223333:reserved-instances/abc";
    // type, product code, resource, unblended, service tag, team tag,
    // RI effective, RI unused upfront, RI unused recurring, RI arn, SP effective,
    // SP commitment, SP used
    #[rustfmt::skip]
    let lines: [[&str; 13]; 9] = [
        ["Usage", "AmazonEC2", "i-web", "10.0", "web", "shop", "", "", "", "", "", "", ""],
        ["DiscountedUsage", "AmazonRDS", "db-api", "0.0", "api", "", "6.25", "", "", RI, "", "", ""],
        ["RIFee", "AmazonRDS", "", "4.0", "api", "", "", "1.0", "0.5", RI, "", "", ""],
        ["Fee", "AmazonRDS", "", "100.0", "", "", "", "", "", RI, "", "", ""],
        ["SavingsPlanCoveredUsage", "AmazonEC2", "i-web2", "8.0", "web", "", "", "", "", "", "5.0", "", ""],
        ["SavingsPlanNegation", "AmazonEC2", "i-web2", "-8.0", "web", "", "", "", "", "", "", "", ""],
        ["SavingsPlanRecurringFee", "ComputeSavingsPlans", "", "2.4E1", "", "", "", "", "", "", "", "24.0", "22.0"],
        ["Tax", "AmazonEC2", "", "1.234567891", "", "", "", "", "", "", "", "", ""],
        ["Credit", "AmazonEC2", "i-web", "-2.0", "web", "", "", "", "", "", "", "", ""],
    ];
    let snake = [
        "line_item_line_item_type",
        "line_item_product_code",
        "line_item_resource_id",
        "line_item_unblended_cost",
        "resource_tags",
        "reservation_effective_cost",
        "reservation_unused_amortized_upfront_fee_for_billing_period",
        "reservation_unused_recurring_fee",
        "reservation_reservation_a_r_n",
        "savings_plan_savings_plan_effective_cost",
        "savings_plan_total_commitment_to_date",
        "savings_plan_used_commitment",
        "bill_payer_account_id",
        "line_item_usage_account_id",
        "line_item_usage_start_date",
        "bill_billing_period_start_date",
        "line_item_currency_code",
    ];
    let legacy = [
        "lineItem/LineItemType",
        "lineItem/ProductCode",
        "lineItem/ResourceId",
        "lineItem/UnblendedCost",
        "resourceTags/user:service",
        "resourceTags/user:team",
        "reservation/EffectiveCost",
        "reservation/UnusedAmortizedUpfrontFeeForBillingPeriod",
        "reservation/UnusedRecurringFee",
        "reservation/ReservationARN",
        "savingsPlan/SavingsPlanEffectiveCost",
        "savingsPlan/TotalCommitmentToDate",
        "savingsPlan/UsedCommitment",
        "bill/PayerAccountId",
        "lineItem/UsageAccountId",
        "lineItem/UsageStartDate",
        "bill/BillingPeriodStartDate",
        "lineItem/CurrencyCode",
    ];
    let common = [
        "111122223333",
        "444455556666",
        "2026-10-05T00:00:00.000Z",
        "2026-10-01T00:00:00.000Z",
        "USD",
    ];
    let mut cur2 = csv::Writer::from_writer(Vec::new());
    cur2.write_record(snake).expect("write");
    let mut old = csv::Writer::from_writer(Vec::new());
    old.write_record(legacy).expect("write");
    for l in &lines {
        let mut tags = serde_json::Map::new();
        if !l[4].is_empty() {
            tags.insert("user_service".into(), l[4].into());
        }
        if !l[5].is_empty() {
            tags.insert("user_team".into(), l[5].into());
        }
        let tags = serde_json::Value::Object(tags).to_string();
        let mut row: Vec<&str> = vec![l[0], l[1], l[2], l[3], &tags];
        row.extend(&l[6..]);
        row.extend(common);
        cur2.write_record(&row).expect("write");
        let mut row: Vec<&str> = l[..4].to_vec();
        row.extend(&l[4..]);
        row.extend(common);
        old.write_record(&row).expect("write");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let cur2_path = dir.path().join("cur2.csv");
    std::fs::write(&cur2_path, cur2.into_inner().expect("csv")).expect("write");
    let legacy_path = dir.path().join("legacy.csv");
    std::fs::write(&legacy_path, old.into_inner().expect("csv")).expect("write");
    let (parquet, _) = by_service("cur2-sample.parquet");
    for path in [cur2_path, legacy_path] {
        let (totals, imported) = by_service_of(path.clone());
        assert_eq!(totals, parquet, "{}", path.display());
        assert_eq!(imported.line_items, 9);
        let web = imported
            .facts
            .iter()
            .find(|f| f.resource_id == "i-web" && f.charge_category == "Usage")
            .expect("the web usage line");
        assert_eq!(web.tags.get("team").map(String::as_str), Some("shop"));
    }
}
