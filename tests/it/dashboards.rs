//! Every panel query of `dashboards/*.json` runs against a real PostgreSQL store filled by
//! the pipeline (import, allocate, alerts, a job run), with Grafana's time macros given the
//! month, and returns rows of the shape its panel needs.

use costsplit::jobs;
use costsplit::model::CostBasis;
use costsplit::store::{JobRun, NewAlert};
use sqlx::{Column, Connection, Row};

use crate::support::{data, day, rules, Kind, TestStore, NOW};

const RULES: &str = r#"
[settings]
service_tag_keys = ["service", "application"]
[[service]]
name = "platform"
team = "core"
[[service]]
name = "data"
team = "data"
[[pool]]
name = "untagged-split"
method = "equal"
members = ["platform", "data"]
match = { untagged = true, charge_category = "Usage" }
"#;

#[tokio::test]
async fn every_dashboard_panel_query_runs_on_the_postgres_store() {
    let t = TestStore::new(Kind::Postgres).await;
    jobs::import_files(&t.store, &[data("focus-1.0-sample.csv")], NOW)
        .await
        .expect("import");
    let range = (day("2024-09-01"), day("2024-09-30"));
    jobs::allocate_range(
        &t.store,
        &rules(&[("r.toml", RULES)]),
        CostBasis::Effective,
        range,
        NOW,
    )
    .await
    .expect("allocate");
    t.store
        .enqueue_alerts(
            &[NewAlert {
                fingerprint: "spike:platform:2024-09-20".into(),
                kind: costsplit::model::MessageKind::Alert(costsplit::alert::AlertKind::Spike),
                service: "platform".into(),
                team: "core".into(),
                period: "2024-09-20".into(),
                channel: None,
                summary: "Cost spike for platform".into(),
                payload: "{}".into(),
            }],
            &[],
            range,
            NOW.stamp(),
        )
        .await
        .expect("alert");
    t.store
        .record_job_run(&JobRun {
            job: "allocate".into(),
            tick: NOW.stamp(),
            started_at: NOW.stamp(),
            finished_at: NOW.stamp(),
            ok: true,
            reason: "test".into(),
        })
        .await
        .expect("job run");

    let mut conn = sqlx::PgConnection::connect(&t.store_url())
        .await
        .expect("connect");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut panels = 0;
    // (time, metric, value) of the two panels whose figures are checked below.
    let mut cost_rows: Vec<(String, f64)> = Vec::new();
    let mut unallocated_rows: Vec<(String, f64)> = Vec::new();
    for entry in std::fs::read_dir(&dir).expect("dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            let title = panel["title"].as_str().unwrap_or_default();
            assert_eq!(panel["datasource"]["uid"], "costsplit-pg", "{title}");
            for target in panel["targets"].as_array().expect("targets") {
                let sql = target["rawSql"]
                    .as_str()
                    .expect("raw SQL")
                    .replace("$__timeFrom()", "'2024-09-01T00:00:00Z'")
                    .replace("$__timeTo()", "'2024-10-01T00:00:00Z'");
                let rows = sqlx::query(&sql)
                    .fetch_all(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{}: panel `{title}`: {e}\n{sql}", path.display()));
                assert!(!rows.is_empty(), "panel `{title}` returns no rows");
                let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
                if target["format"] == "time_series" {
                    assert_eq!(columns, ["time", "metric", "value"], "{title}");
                    let value: Option<f64> = rows[0].try_get("value").expect("a number");
                    assert!(value.is_some(), "{title}");
                }
                if title == "Cost per service" {
                    for row in &rows {
                        cost_rows.push((
                            row.try_get("metric").expect("metric"),
                            row.try_get::<f64, _>("value").expect("value"),
                        ));
                    }
                }
                if title == "Unallocated share (%)" {
                    // The panel's own query, its times read as days.
                    let days = sqlx::query(&format!(
                        "SELECT to_char(p.time, 'YYYY-MM-DD') AS day, p.value FROM ({sql}) p"
                    ))
                    .fetch_all(&mut conn)
                    .await
                    .expect("the panel's query");
                    for row in &days {
                        // A day whose allocations add up to zero has no share (NULL).
                        if let Some(value) = row.try_get::<Option<f64>, _>("value").expect("value")
                        {
                            unallocated_rows.push((row.try_get("day").expect("day"), value));
                        }
                    }
                }
                panels += 1;
            }
        }
    }
    assert!(
        panels >= 6,
        "cost, pools, movers, unallocated, alerts, job health"
    );
    conn.close().await.ok();
    // The cost panel's own query adds up to the month's billed total, and per service to
    // what costsplit reports.
    let report = jobs::report(&t.store, range, None).await.expect("report");
    let billed = report.billed["USD"].0 as f64 / 1e9;
    assert!((billed - 14.98).abs() < 0.005, "{billed}");
    let panel_total: f64 = cost_rows.iter().map(|(_, v)| v).sum();
    assert!(
        (panel_total - billed).abs() < 1e-6,
        "panel {panel_total} vs billed {billed}"
    );
    for s in &report.services {
        let panel: f64 = cost_rows
            .iter()
            .filter(|(metric, _)| *metric == s.service)
            .map(|(_, v)| v)
            .sum();
        let expected = s.total().0 as f64 / 1e9;
        assert!(
            (panel - expected).abs() < 1e-6,
            "{}: panel {panel} vs {expected}",
            s.service
        );
    }
    // The unallocated panel's share each day is the day's unallocated over its total.
    let allocations = t
        .store
        .allocations(range.0, range.1)
        .await
        .expect("allocations");
    assert!(!unallocated_rows.is_empty());
    for (text, value) in &unallocated_rows {
        let d = day(text);
        let of_day: Vec<_> = allocations.iter().filter(|a| a.day == d).collect();
        let total: i128 = of_day.iter().map(|a| a.amount.0).sum();
        let unallocated: i128 = of_day
            .iter()
            .filter(|a| a.service == "unallocated")
            .map(|a| a.amount.0)
            .sum();
        let expected = 100.0 * unallocated as f64 / total as f64;
        assert!(
            (value - expected).abs() < 1e-6,
            "{d}: panel {value}% vs {expected}%"
        );
    }
    // The days it leaves out (no share) are exactly the days whose allocations add up to
    // zero (2024-09-24's untagged $3 credit against $3 of usage among them).
    let mut days: std::collections::BTreeMap<chrono::NaiveDate, i128> = Default::default();
    for a in &allocations {
        *days.entry(a.day).or_default() += a.amount.0;
    }
    let shown: std::collections::BTreeSet<chrono::NaiveDate> =
        unallocated_rows.iter().map(|(d, _)| day(d)).collect();
    for (d, total) in &days {
        assert_eq!(shown.contains(d), *total != 0, "{d}: total {total}");
    }
    assert!(
        days.values().any(|t| *t == 0),
        "a day that adds up to zero is covered"
    );
}
