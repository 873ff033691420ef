//! Budgets and month-end forecasts end to end, on SQLite and PostgreSQL: stored facts split
//! by the rules (a shared database's share included), forecast, alerted once through the
//! outbox, delivered to a Slack stand-in, and shown by `costsplit forecast`.

use chrono::Datelike;
use costsplit::jobs;
use costsplit::model::{CostBasis, Fact, MessageKind, MessageState, Tags};
use costsplit::money::Nanos;
use costsplit::rules::Rules;
use costsplit::store::{FactScope, ImportRecord, Store};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::support::{costsplit, day, rules, Kind, TestStore, BOTH, NOW};

const D: f64 = 1e9;

fn rules_text(budget: &str) -> String {
    format!(
        r##"
[[service]]
name = "checkout-api"
team = "payments"
cost_center = "cc-100"
slack_channel = "#payments-cost"
[[service]]
name = "search-api"
team = "search"
cost_center = "cc-200"

[[pool]]
name = "orders-db"
match = {{ resource_id = "arn:aws:rds:us-east-1:1:db:orders" }}
members = ["checkout-api", "search-api"]
method = "equal"

[[budget]]
name = "payments monthly"
team = "payments"
amount = "{budget}"

[[budget]]
name = "search"
service = "search-api"
amount = 20000
thresholds = [ {{ actual_percent = 50 }} ]

[[test]]
name = "the team's budget counts its share of the database"
facts = [
  {{ cost = "100", tags = {{ service = "checkout-api" }} }},
  {{ cost = "40", resource_id = "arn:aws:rds:us-east-1:1:db:orders" }},
]
expect = {{ checkout-api = "120", search-api = "20" }}
expect_budgets = {{ "payments monthly" = "120", search = "20" }}
"##
    )
}

fn fact(
    d: chrono::NaiveDate,
    service: Option<&str>,
    resource: &str,
    category: &str,
    dollars: f64,
) -> Fact {
    let mut tags = Tags::new();
    if let Some(s) = service {
        tags.insert("service".into(), s.into());
    }
    let amount = Nanos((dollars * D).round() as i128);
    Fact {
        day: d,
        billing_period: d.format("%Y-%m").to_string().into(),
        billing_account: "payer".into(),
        sub_account: "acct-1".into(),
        provider: "AWS".into(),
        provider_service: "Amazon Elastic Compute Cloud".into(),
        resource_id: resource.into(),
        charge_category: category.into(),
        tags: tags.into(),
        currency: "USD".into(),
        effective: amount,
        billed: amount,
        list: amount,
        contracted: amount,
        line_count: 1,
        estimated: false,
    }
}

/// checkout-api's own cost on a March day: 600 a day before March, then 3% more each day.
fn checkout(d: chrono::NaiveDate) -> f64 {
    if d < day("2025-03-01") {
        600.0
    } else {
        600.0 * 1.03f64.powi(d.day() as i32 - 1)
    }
}

/// January to March 2025: checkout-api ramps in March, search-api is flat at 400, the shared
/// database costs 200 a day (100 to each), and, with `fee`, a $10,000 support fee on March 1st
/// tagged to checkout-api.
async fn seed(store: &Store, r: &Rules, fee: bool) {
    for month in ["2025-01", "2025-02", "2025-03"] {
        let (first, last) = costsplit::model::month_bounds(month).unwrap();
        let mut facts = Vec::new();
        let mut d = first;
        while d <= last {
            facts.push(fact(
                d,
                Some("checkout-api"),
                "i-checkout",
                "Usage",
                checkout(d),
            ));
            facts.push(fact(d, Some("search-api"), "i-search", "Usage", 400.0));
            facts.push(fact(
                d,
                None,
                "arn:aws:rds:us-east-1:1:db:orders",
                "Usage",
                200.0,
            ));
            d += chrono::Duration::days(1);
        }
        if fee && month == "2025-03" {
            facts.push(fact(first, Some("checkout-api"), "", "Purchase", 10_000.0));
        }
        let record = ImportRecord {
            created_at: NOW.stamp(),
            source: costsplit::model::ImportSource::Files(costsplit::model::BillingSchema::Focus),
            files: vec!["test.csv".into()],
            scope: FactScope::Periods(vec![(month.into(), "payer".into())]),
            line_items: facts.len() as i64,
        };
        costsplit::store::sort_facts(&mut facts);
        store.replace_facts(&record, &facts).await.expect("facts");
    }
    jobs::allocate_range(
        store,
        r,
        CostBasis::Effective,
        (day("2025-01-01"), day("2025-03-31")),
        NOW,
    )
    .await
    .expect("allocate");
}

/// The team's March cost through `last` day: its own cost, its database share and the fee.
fn payments_through(last: u32, fee: bool) -> f64 {
    (1..=last)
        .map(|d| checkout(chrono::NaiveDate::from_ymd_opt(2025, 3, d).unwrap()) + 100.0)
        .sum::<f64>()
        + if fee { 10_000.0 } else { 0.0 }
}

/// A budget the ramp passes on the 24th.
fn budget_passed_on_the_24th() -> String {
    let (before, on) = (payments_through(23, true), payments_through(24, true));
    assert!(before < on);
    format!("{:.2}", (before + on) / 2.0)
}

async fn a_ramp_passing_its_budget_on_the_24th_alerts_by_the_17th_once(kind: Kind) {
    let t = TestStore::new(kind).await;
    let r = rules(&[("r.toml", &rules_text(&budget_passed_on_the_24th()))]);
    seed(&t.store, &r, true).await;
    let mut first_forecast = None;
    let mut actual_day = None;
    for d in 1..=31 {
        let today = chrono::NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
        let (alerts, _) = jobs::check_budgets(&t.store, &r, today, 3, NOW)
            .await
            .expect("check budgets");
        for a in alerts.iter().filter(|a| a.budget == "payments monthly") {
            if a.threshold == "forecast 100%" && first_forecast.is_none() {
                first_forecast = Some(d);
            }
            if a.threshold == "actual 100%" && actual_day.is_none() {
                actual_day = Some(d);
                assert_eq!(a.passed_on, day("2025-03-24"));
            }
        }
    }
    let first = first_forecast.expect("the forecast alert fired");
    assert!(first <= 17, "the forecast alert fired on day {first}");
    println!("{kind:?}: the forecast alert first fired on day {first}");
    assert_eq!(actual_day, Some(24));
    let rows = t.store.list_alerts(None).await.expect("list");
    let budget_rows: Vec<_> = rows
        .iter()
        .filter(|r| r.kind == MessageKind::Budget && r.summary.contains("payments monthly"))
        .collect();
    let forecast_rows: Vec<_> = budget_rows
        .iter()
        .filter(|r| r.fingerprint == "budget|payments monthly|forecast 100%|2025-03")
        .collect();
    assert_eq!(forecast_rows.len(), 1, "{budget_rows:#?}");
    assert_eq!(forecast_rows[0].state, MessageState::Pending);
    assert_eq!(forecast_rows[0].team, "payments");
    for threshold in ["actual 80%", "actual 100%"] {
        let fp = format!("budget|payments monthly|{threshold}|2025-03");
        assert_eq!(
            budget_rows.iter().filter(|r| r.fingerprint == fp).count(),
            1,
            "{threshold}"
        );
    }
    // search-api's 50% of 20,000 (400 a day and its 100 share): passed on the 20th.
    let search: Vec<_> = rows
        .iter()
        .filter(|r| r.fingerprint == "budget|search|actual 50%|2025-03")
        .collect();
    assert_eq!(search.len(), 1);
    assert!(
        search[0].summary.contains("on 2025-03-20"),
        "{}",
        search[0].summary
    );
    assert_eq!(
        rows.iter()
            .filter(|r| r.fingerprint == "budget|search|actual 50%|2025-03")
            .filter_map(|r| r.channel.clone())
            .count(),
        0,
        "search-api has no channel: its team's route"
    );

    // Delivered to Slack's stand-in, in order, once.
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/services/T000/B000/secret"))
        .respond_with(ResponseTemplate::new(200).set_body_string("ok"))
        .mount(&server)
        .await;
    let settings = crate::alerts::settings(&server, true, false);
    let summary = jobs::deliver_alerts(
        &t.store,
        &settings,
        costsplit::clock::Clock::System,
        &costsplit::clock::Shutdown::never(),
    )
    .await
    .expect("deliver");
    assert_eq!(summary.sent, rows.len(), "{summary:?}");
    let bodies: Vec<serde_json::Value> = server
        .received_requests()
        .await
        .unwrap()
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    let forecast = bodies
        .iter()
        .find(|b| {
            b["blocks"][0]["text"]["text"].as_str().is_some_and(|t| {
                t.starts_with("Budget payments monthly: forecast passes 100% on 2025-03-")
            })
        })
        .expect("the forecast alert's message");
    let text = forecast["text"].as_str().unwrap();
    assert!(text.contains("(team payments)"), "{text}");
    assert!(text.contains("month-end forecast $"), "{text}");
}

#[tokio::test]
async fn a_ramp_passing_its_budget_on_the_24th_alerts_by_the_17th_once_on_both_stores() {
    for kind in BOTH {
        a_ramp_passing_its_budget_on_the_24th_alerts_by_the_17th_once(kind).await;
    }
}

/// A check that first runs after the spend passed the budget (a daemon catching up, or a
/// first `alerts check`) sends the actual alerts and no forecast alert for the amount the
/// spend already passed; a forecast alert sent (or pending) from before stays as it was.
#[tokio::test]
async fn a_check_after_the_spend_passed_the_budget_sends_no_forecast_alert_for_it() {
    for kind in BOTH {
        let t = TestStore::new(kind).await;
        let r = rules(&[("r.toml", &rules_text(&budget_passed_on_the_24th()))]);
        seed(&t.store, &r, true).await;
        let fingerprints = |rows: &[costsplit::store::OutboxRow]| -> Vec<String> {
            let mut f: Vec<String> = rows
                .iter()
                .filter(|r| r.fingerprint.starts_with("budget|payments monthly|"))
                .map(|r| format!("{} {}", r.fingerprint, r.state.as_str()))
                .collect();
            f.sort();
            f
        };
        let (alerts, _) = jobs::check_budgets(&t.store, &r, day("2025-03-31"), 3, NOW)
            .await
            .expect("check budgets");
        assert!(
            alerts.iter().all(|a| a.threshold != "forecast 100%"),
            "{kind:?}: {alerts:#?}"
        );
        let rows = t.store.list_alerts(None).await.expect("list");
        assert_eq!(
            fingerprints(&rows),
            [
                "budget|payments monthly|actual 100%|2025-03 pending",
                "budget|payments monthly|actual 80%|2025-03 pending",
            ],
            "{kind:?}"
        );
        // `alerts list` names a budget's alert by its team.
        let dir = tempfile::tempdir().expect("tempdir");
        let out = costsplit(dir.path())
            .store(&t.store_url())
            .run(&["alerts", "list"]);
        let listed = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{listed}");
        let line = listed
            .lines()
            .find(|l| l.contains("Budget `payments monthly`") && l.contains("passed 100%"))
            .unwrap_or_else(|| panic!("{listed}"));
        assert!(
            line.contains("  budget            team payments  "),
            "{line}"
        );

        // Checked daily instead: the forecast alert of the 17th stays pending past the 24th.
        let t = TestStore::new(kind).await;
        seed(&t.store, &r, true).await;
        for d in [17, 24, 31] {
            let today = chrono::NaiveDate::from_ymd_opt(2025, 3, d).unwrap();
            jobs::check_budgets(&t.store, &r, today, 3, NOW)
                .await
                .expect("check budgets");
        }
        let rows = t.store.list_alerts(None).await.expect("list");
        assert_eq!(
            fingerprints(&rows),
            [
                "budget|payments monthly|actual 100%|2025-03 pending",
                "budget|payments monthly|actual 80%|2025-03 pending",
                "budget|payments monthly|forecast 100%|2025-03 pending",
            ],
            "{kind:?}"
        );
    }
}

/// A $10,000 fee on day 1 is counted once: the forecast moves by the fee, and its
/// extrapolation by less than 1% of the month (the naive run rate by 3.1 times the fee).
#[tokio::test]
async fn a_support_fee_on_day_one_is_counted_once_not_extrapolated() {
    let r = rules(&[("r.toml", &rules_text("50000"))]);
    let mut points = Vec::new();
    for fee in [false, true] {
        let t = TestStore::new(Kind::Sqlite).await;
        seed(&t.store, &r, fee).await;
        let statuses = jobs::budget_statuses(&t.store, &r, "2025-03", Some(day("2025-03-10")))
            .await
            .expect("budgets");
        let payments = statuses
            .iter()
            .find(|s| s.name == "payments monthly")
            .unwrap();
        let m = payments.forecast.ready().expect("a forecast").clone();
        points.push((m.point, payments.run_rate, m.once_to_date));
    }
    let (without, with) = (points[0], points[1]);
    assert_eq!(with.2, Nanos(10_000 * 1_000_000_000));
    let moved = (with.0 - without.0).0 as f64 / D - 10_000.0;
    let month = without.0 .0 as f64 / D;
    assert!(
        moved.abs() < 0.01 * month,
        "moved {moved} beyond the fee, month {month}"
    );
    let naive_moved = (with.1 - without.1).0 as f64 / D;
    assert!((naive_moved - 31_000.0).abs() < 1.0, "{naive_moved}");
}

/// `costsplit forecast` prints each budget, as a table and as JSON, and `rules test` runs a
/// case's `expect_budgets`.
#[tokio::test]
async fn the_forecast_command_prints_budgets_and_rules_test_checks_them() {
    let t = TestStore::new(Kind::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let text = rules_text("40000");
    std::fs::write(dir.path().join("r.toml"), &text).unwrap();
    let r = rules(&[("r.toml", &text)]);
    seed(&t.store, &r, false).await;
    let out = costsplit(dir.path())
        .store(&t.store_url())
        .rules(dir.path())
        .run(&["forecast", "--month", "2025-03", "--as-of", "2025-03-12"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("budgets and month-end forecasts, 2025-03\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("- team payments `payments monthly`: $"),
        "{stdout}"
    );
    assert!(stdout.contains(" of $40,000.00 ("), "{stdout}");
    assert!(stdout.contains("month-end forecast $"), "{stdout}");
    let out = costsplit(dir.path())
        .store(&t.store_url())
        .rules(dir.path())
        .run(&[
            "forecast",
            "--month",
            "2025-03",
            "--as-of",
            "2025-03-12",
            "--format",
            "json",
        ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let b = &json["budgets"][0];
    assert_eq!(b["name"], "payments monthly");
    assert_eq!(b["forecast"]["state"], "ready");
    assert_eq!(b["budget"]["amount"], "40000.000000000");
    // Month to date is exact: 12 days of checkout-api and its database share.
    let expected: f64 = payments_through(12, false);
    let to_date: f64 = b["to_date"]["amount"].as_str().unwrap().parse().unwrap();
    assert!((to_date - expected).abs() < 1e-6, "{to_date} vs {expected}");

    // Too little history: January 10th has ten days behind it.
    let out = costsplit(dir.path())
        .store(&t.store_url())
        .rules(dir.path())
        .run(&["forecast", "--month", "2025-01", "--as-of", "2025-01-10"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("month-end forecast: not enough history (10 of 14 days)"),
        "{stdout}"
    );

    // The JSON report carries the budgets of the month its range ends in, and the team's
    // monthly digest its budget's line.
    let out = costsplit(dir.path())
        .store(&t.store_url())
        .rules(dir.path())
        .run(&[
            "report",
            "--from",
            "2025-03-01",
            "--to",
            "2025-03-12",
            "--format",
            "json",
        ]);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(json["budgets"][0]["name"], "payments monthly");
    assert_eq!(json["budgets"][0]["as_of"], "2025-03-12");
    let digests = jobs::reports::team_digests(
        &t.store,
        &r,
        costsplit::report::digest::Period::Month,
        day("2025-04-01"),
        Some("payments"),
    )
    .await
    .expect("digest");
    assert!(
        digests[0].budgets[0].starts_with("team payments `payments monthly`: $"),
        "{:?}",
        digests[0].budgets
    );

    // Finance's summary lists each budget after the reconciliation row.
    let out = costsplit(dir.path())
        .store(&t.store_url())
        .rules(dir.path())
        .run(&["export", "--month", "2025-03", "--summary"]);
    let csv = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{csv}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = csv.lines().collect();
    assert!(
        lines[0].ends_with(",rules_edits_until,budget,budget_scope,budget_amount,budget_to_date,budget_forecast,budget_forecast_low,budget_forecast_high,budget_state"),
        "{csv}"
    );
    assert!(lines[1].starts_with("2025-03,USD,effective,"), "{csv}");
    assert!(lines[1].ends_with(",,,,,,,,"), "{csv}");
    let payments = lines
        .iter()
        .find(|l| l.contains(",payments monthly,team payments,40000.00,"))
        .unwrap_or_else(|| panic!("{csv}"));
    // The month is over: the forecast is the month, under its 40,000.
    let total = format!("{:.2}", payments_through(31, false));
    assert!(
        payments.ends_with(&format!(",{total},{total},{total},{total},under")),
        "{payments} ({total})"
    );

    let out = costsplit(dir.path())
        .rules(dir.path())
        .run(&["rules", "test"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A bad `[[budget]]` is named with file:line:col and what to do.
#[test]
fn bad_budgets_are_refused_with_file_line_and_column() {
    let loaded = costsplit::rules::load_texts(&[(
        "b.toml",
        r#"
[[service]]
name = "checkout-api"
team = "payments"

[[budget]]
name = "x"
team = "payment"
amount = 100

[[budget]]
name = "y"
service = "checkout-api"
team = "payments"
amount = -5
thresholds = [ { actual_percent = 0 }, { forecst_percent = 100 } ]
"#,
    )]);
    let errors: Vec<String> = loaded.errors().map(|d| d.to_string()).collect();
    let all = errors.join("\n");
    assert!(
        all.contains("b.toml:8:8: error: budget `x` names team `payment`, which no [[service]] has; the teams are: payments"),
        "{all}"
    );
    assert!(
        all.contains("b.toml:14:1: error: [[budget]] `y` covers one thing"),
        "{all}"
    );
    assert!(
        all.contains("b.toml:15:10: error: `amount` must be a positive amount"),
        "{all}"
    );
    assert!(
        all.contains("`actual_percent` must be a whole percent from 1 to 1000"),
        "{all}"
    );
    assert!(
        all.contains("unknown key `forecst_percent` in a budget threshold"),
        "{all}"
    );
}
