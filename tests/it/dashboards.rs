//! Every panel query of `dashboards/*.json` runs against a real PostgreSQL store filled by
//! the pipeline (import, allocate, alerts, a job run), with Grafana's time macros given the
//! month, and returns rows of the shape its panel needs.

use costsplit::allocate::UsageWeights;
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
        &UsageWeights::default(),
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
                kind: "spike".into(),
                service: "platform".into(),
                team: "core".into(),
                period: "2024-09-20".into(),
                channel: String::new(),
                summary: "Cost spike for platform".into(),
                payload: "{}".into(),
            }],
            range,
            &NOW.stamp(),
        )
        .await
        .expect("alert");
    t.store
        .record_job_run(&JobRun {
            job: "allocate".into(),
            tick: NOW.stamp(),
            started_at: NOW.stamp(),
            finished_at: NOW.stamp(),
            outcome: "ok".into(),
            reason: "test".into(),
        })
        .await
        .expect("job run");

    let mut conn = sqlx::PgConnection::connect(&t.store_url())
        .await
        .expect("connect");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("dashboards");
    let mut panels = 0;
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
                panels += 1;
            }
        }
    }
    assert!(
        panels >= 6,
        "cost, pools, movers, unallocated, alerts, job health"
    );
    // The cost panel's sum is the month's billed total.
    let total: f64 = sqlx::query_scalar(
        "SELECT (SUM(amount_units) + SUM(amount_nanos) / 1e9)::float8 FROM allocations",
    )
    .fetch_one(&mut conn)
    .await
    .expect("total");
    assert!((total - 14.98).abs() < 0.005, "{total}");
    conn.close().await.ok();
}
