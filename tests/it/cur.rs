//! AWS CUR 2.0 parquet files (fixtures written by tests/data/make_cur_samples.py with
//! pyarrow, so the map column is a real parquet MAP): amortized cost per line item type,
//! tags from the map or the legacy columns, charge categories.

use std::collections::BTreeMap;

use costsplit::ingest;
use costsplit::money::Nanos;

use crate::support::data;

/// service tag -> (effective, billed) nanos.
fn by_service(file: &str) -> (BTreeMap<String, (i64, i64)>, ingest::Imported) {
    let imported = ingest::read_files(&[data(file)]).expect("the CUR file imports");
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
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
        let expected: BTreeMap<String, (i64, i64)> = [
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
    let mut frame = polars::prelude::df!(
        "line_item_usage_start_date" => ["2026-10-05T00:00:00Z"],
        "line_item_currency_code" => ["USD"],
    )
    .expect("frame");
    let file = std::fs::File::create(&path).expect("create");
    polars::prelude::ParquetWriter::new(file)
        .finish(&mut frame)
        .expect("write");
    let err = ingest::read_files(&[path]).expect_err("no cost column");
    let message = err.to_string();
    assert!(
        message.contains("line_item_unblended_cost") && message.contains("AWS CUR 2.0"),
        "{message}"
    );
}
