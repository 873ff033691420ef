//! Entry points for the fuzz targets in `fuzz/` (cargo fuzz) and for the regression test that
//! replays their saved inputs (`tests/data/fuzz/`). Each takes arbitrary bytes and must return
//! (an error is fine); a panic, hang or abort is a bug. Not an API.

use std::io::Write as _;

use aws_sdk_costexplorer::types::{DateInterval, Group, MetricValue, ResultByTime};

use crate::ingest::cost_explorer::{to_raw_facts, GroupKey, Query};
use crate::notify::slack::Answer;

/// The rules parser and validator on one file's text.
pub fn rules(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let loaded = crate::rules::load_texts(&[("fuzz.toml", text)]);
    if let Some(rules) = loaded.rules {
        let _ = crate::jobs::reports::rules_test(&rules);
    }
}

fn import(name: &str, bytes: &[u8]) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let path = dir.path().join(name);
    let written = std::fs::File::create(&path).and_then(|mut f| f.write_all(bytes));
    if written.is_ok() {
        let _ = crate::ingest::read_files(&[path]);
    }
}

/// The FOCUS CSV reader on one row under a fixed header.
pub fn focus_row(data: &[u8]) {
    let mut file = b"BillingAccountId,SubAccountId,BillingPeriodStart,ChargePeriodStart,BillingCurrency,BilledCost,EffectiveCost,ChargeCategory,ServiceName,ResourceId,Tags\n".to_vec();
    file.extend_from_slice(data);
    import("fuzz.csv", &file);
}

/// The CUR 2.0 CSV reader on one row under a fixed header.
pub fn cur_row(data: &[u8]) {
    let mut file = b"bill_billing_period_start_date,bill_payer_account_id,line_item_usage_account_id,line_item_usage_start_date,line_item_line_item_type,line_item_product_code,line_item_resource_id,line_item_currency_code,line_item_unblended_cost,line_item_net_unblended_cost,resource_tags\n".to_vec();
    file.extend_from_slice(data);
    import("fuzz.csv", &file);
}

/// The parquet reader on a whole (small) file. A panic the importer catches (a third-party
/// decoder on damaged bytes) is a handled error here too: libFuzzer's hook, which aborts on
/// every panic, is replaced by one that aborts only on the others.
pub fn parquet(data: &[u8]) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        let outer = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !crate::ingest::in_guarded_read() {
                outer(info);
            }
        }));
    });
    import("fuzz.parquet", data);
}

/// Slack's answer classification, for a webhook and for `chat.postMessage`.
pub fn slack_answer(data: &[u8]) {
    let (status, body) = match data.split_first() {
        Some((&s, rest)) => (
            [200u16, 201, 400, 403, 404, 429, 500, 503][usize::from(s % 8)],
            rest,
        ),
        None => (200, data),
    };
    let answer = Answer {
        status,
        retry_after: None,
        body: Ok(String::from_utf8_lossy(body).into_owned()),
    };
    let _ = answer.webhook_outcome();
    let _ = answer.post_message_outcome();
}

/// The Cost Explorer answer reader: a JSON `ResultsByTime` array (as the API returns it)
/// mapped onto the SDK's types, then to facts.
pub fn cost_explorer(data: &[u8]) {
    let Ok(serde_json::Value::Array(results)) = serde_json::from_slice(data) else {
        return;
    };
    let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_string();
    let money = |v: &serde_json::Value| {
        MetricValue::builder()
            .amount(text(&v["Amount"]))
            .unit(text(&v["Unit"]))
            .build()
    };
    let mut parsed = Vec::new();
    for r in &results {
        let mut b = ResultByTime::builder().estimated(r["Estimated"].as_bool().unwrap_or(false));
        if let Ok(period) = DateInterval::builder()
            .start(text(&r["TimePeriod"]["Start"]))
            .end(text(&r["TimePeriod"]["End"]))
            .build()
        {
            b = b.time_period(period);
        }
        for g in r["Groups"].as_array().into_iter().flatten() {
            let mut group = Group::builder();
            for k in g["Keys"].as_array().into_iter().flatten() {
                group = group.keys(text(k));
            }
            for (name, value) in g["Metrics"].as_object().into_iter().flatten() {
                group = group.metrics(name, money(value));
            }
            b = b.groups(group.build());
        }
        for (name, value) in r["Total"].as_object().into_iter().flatten() {
            b = b.total(name, money(value));
        }
        parsed.push(b.build());
    }
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).expect("a day");
    let query = Query {
        account: "111111111111".to_string(),
        from: day(1),
        to: day(30),
        group_by: vec![GroupKey::Tag("service".to_string()), GroupKey::Service],
        effective_metric: "AmortizedCost".to_string(),
        billed_metric: "UnblendedCost".to_string(),
    };
    let _ = to_raw_facts(&query, &parsed);
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every entry point by the name of its fuzz target.
pub const TARGETS: [(&str, Target); 6] = [
    ("rules", rules),
    ("focus_row", focus_row),
    ("cur_row", cur_row),
    ("parquet", parquet),
    ("slack_answer", slack_answer),
    ("cost_explorer", cost_explorer),
];
