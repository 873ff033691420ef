//! Anomalies marked from Slack ("expected", "planned"): not alerted again while they last.

use sqlx::Row;

use super::connect::Store;
use super::rows::Cells;
use crate::model::Timestamp;

/// A mark on an anomaly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertMark {
    /// `kind|service|anomaly start`: the alert fingerprint without its period.
    pub anomaly: String,
    pub mark: String,
    pub marked_by: String,
    pub marked_at: Timestamp,
    pub alert_id: i64,
}

/// The anomaly part of an alert fingerprint (`spike|svc|2025-03-20|2025-03-21` ->
/// `spike|svc|2025-03-20`); none for fingerprints without one (budgets, reports).
pub fn anomaly_of(fingerprint: &str) -> Option<String> {
    let parts: Vec<&str> = fingerprint.split('|').collect();
    match parts.as_slice() {
        [kind, service, start, _period]
            if matches!(
                *kind,
                "spike" | "month_over_month" | "fall" | "drift" | "new_service"
            ) =>
        {
            Some(format!("{kind}|{service}|{start}"))
        }
        _ => None,
    }
}

impl Store {
    /// Marks the anomaly of alert `alert_id`; returns the anomaly, or none when the alert does
    /// not exist or is not about an anomaly.
    pub async fn mark_alert(
        &self,
        alert_id: i64,
        mark: &str,
        by: &str,
        now: Timestamp,
    ) -> anyhow::Result<Option<String>> {
        let mut tx = self.pool.begin().await?;
        let row = sqlx::query("SELECT fingerprint FROM alerts WHERE id = $1")
            .bind(alert_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(anomaly) = row
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .and_then(|f| anomaly_of(&f))
        else {
            return Ok(None);
        };
        sqlx::query(
            "INSERT INTO alert_marks (anomaly, mark, marked_by, marked_at, alert_id) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (anomaly) DO UPDATE SET mark = excluded.mark, marked_by = excluded.marked_by,
             marked_at = excluded.marked_at, alert_id = excluded.alert_id",
        )
        .bind(&anomaly)
        .bind(mark)
        .bind(by)
        .bind(now.to_string())
        .bind(alert_id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(anomaly))
    }

    /// Every mark, oldest first.
    pub async fn alert_marks(&self) -> anyhow::Result<Vec<AlertMark>> {
        let rows = sqlx::query(
            "SELECT anomaly, mark, marked_by, marked_at, alert_id FROM alert_marks ORDER BY marked_at, anomaly",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AlertMark {
                    anomaly: r.text(0)?,
                    mark: r.text(1)?,
                    marked_by: r.text(2)?,
                    marked_at: r.timestamp(3)?,
                    alert_id: r.int(4)?,
                })
            })
            .collect()
    }
}
