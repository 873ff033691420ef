//! The alert outbox and the series the detectors read. Delivery state lives here so a
//! restarted process knows exactly what is still to send.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use sqlx::Row;

use super::{day_from, Store};
use crate::model::day_key;

/// One day of one service's cost from one origin (a pool, or a provider service's direct cost).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeriesRow {
    pub day: NaiveDate,
    pub service: String,
    pub team: String,
    pub currency: String,
    /// Empty for direct cost.
    pub pool: String,
    pub provider_service: String,
    pub amount: crate::money::Nanos,
}

/// An alert to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub fingerprint: String,
    pub kind: String,
    pub service: String,
    pub team: String,
    pub period: String,
    /// Slack channel for `chat.postMessage`; empty means the team's or default webhook.
    pub channel: String,
    pub summary: String,
    /// costsplit's alert JSON.
    pub payload: String,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub fingerprint: String,
    pub kind: String,
    pub service: String,
    pub team: String,
    pub period: String,
    pub channel: String,
    pub summary: String,
    pub payload: String,
    pub created_at: String,
    pub state: String,
    pub attempts: i64,
    pub last_error: String,
    pub next_attempt_at: String,
    pub sent_at: String,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome<'a> {
    /// Slack accepted it at this time.
    Sent { at: &'a str },
    /// Permanent: not retried; the reason stays visible.
    Failed { reason: &'a str },
    /// Retriable: still pending, tried again after `next_attempt_at` (empty: at once).
    Retry {
        reason: &'a str,
        next_attempt_at: &'a str,
    },
}

/// What one detection run changed in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueResult {
    pub inserted: usize,
    pub already_known: usize,
    pub resolved: Vec<String>,
}

const COLUMNS: &str = "id, fingerprint, kind, service, team, period, channel, summary, payload, created_at, state, attempts, last_error, next_attempt_at, sent_at";

fn outbox_row(row: &sqlx::any::AnyRow) -> anyhow::Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.try_get(0)?,
        fingerprint: row.try_get(1)?,
        kind: row.try_get(2)?,
        service: row.try_get(3)?,
        team: row.try_get(4)?,
        period: row.try_get(5)?,
        channel: row.try_get(6)?,
        summary: row.try_get(7)?,
        payload: row.try_get(8)?,
        created_at: row.try_get(9)?,
        state: row.try_get(10)?,
        attempts: row.try_get(11)?,
        last_error: row.try_get(12)?,
        next_attempt_at: row.try_get(13)?,
        sent_at: row.try_get(14)?,
    })
}

impl Store {
    /// Per (day, service, currency, pool, provider service) sums over a range, in (service,
    /// currency, day) order, and the days that are still estimated. `alert` groups them.
    pub async fn series_rows(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> anyhow::Result<(Vec<SeriesRow>, BTreeSet<NaiveDate>)> {
        let rows = sqlx::query(
            "SELECT day, service, MAX(team), currency, pool, provider_service, CAST(SUM(amount_units) AS BIGINT), CAST(SUM(amount_nanos) AS BIGINT)
             FROM allocations WHERE day >= $1 AND day <= $2
             GROUP BY day, service, currency, pool, provider_service
             ORDER BY service, currency, day",
        )
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.pool)
        .await?;
        let estimated: BTreeSet<NaiveDate> = sqlx::query(
            "SELECT DISTINCT day FROM billing_facts WHERE estimated <> 0 AND day >= $1 AND day <= $2",
        )
        .bind(day_key(from))
        .bind(day_key(to))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| day_from(r, 0))
        .collect::<anyhow::Result<_>>()?;
        let rows = rows
            .iter()
            .map(|row| {
                Ok(SeriesRow {
                    day: day_from(row, 0)?,
                    service: row.try_get(1)?,
                    team: row.try_get(2)?,
                    currency: row.try_get(3)?,
                    pool: row.try_get(4)?,
                    provider_service: row.try_get(5)?,
                    amount: super::Stored::amount(row.try_get(6)?, row.try_get(7)?),
                })
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok((rows, estimated))
    }

    /// The last day that has allocations.
    pub async fn latest_allocation_day(&self) -> anyhow::Result<Option<NaiveDate>> {
        let row = sqlx::query("SELECT MAX(day) FROM allocations")
            .fetch_one(&self.pool)
            .await?;
        let day: Option<String> = row.try_get(0)?;
        Ok(day.and_then(|d| crate::model::parse_day(&d)))
    }

    /// Adds new alerts (a fingerprint already in the outbox is left alone, whatever its state)
    /// and marks as resolved the spike alerts of `resolve_window` whose fingerprint the latest
    /// detection no longer produced. One transaction.
    pub async fn enqueue_alerts(
        &self,
        alerts: &[NewAlert],
        resolve_window: (NaiveDate, NaiveDate),
        now: &str,
    ) -> anyhow::Result<EnqueueResult> {
        let mut result = EnqueueResult::default();
        let mut tx = self.pool.begin().await?;
        insert_pending(&mut tx, alerts, now, &mut result).await?;
        let current: BTreeSet<&str> = alerts.iter().map(|a| a.fingerprint.as_str()).collect();
        let candidates = sqlx::query(
            "SELECT id, fingerprint FROM alerts WHERE kind = 'spike' AND state IN ('pending', 'sent')
             AND period >= $1 AND period <= $2",
        )
        .bind(day_key(resolve_window.0))
        .bind(day_key(resolve_window.1))
        .fetch_all(&mut *tx)
        .await?;
        for row in candidates {
            let id: i64 = row.try_get(0)?;
            let fingerprint: String = row.try_get(1)?;
            if !current.contains(fingerprint.as_str()) {
                sqlx::query("UPDATE alerts SET state = 'resolved', resolved_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                result.resolved.push(fingerprint);
            }
        }
        tx.commit().await?;
        Ok(result)
    }

    /// Adds messages that resolve nothing (per-team reports): a fingerprint already in the
    /// outbox is left alone, so a report is sent once. One transaction.
    pub async fn enqueue_reports(
        &self,
        reports: &[NewAlert],
        now: &str,
    ) -> anyhow::Result<EnqueueResult> {
        let mut result = EnqueueResult::default();
        let mut tx = self.pool.begin().await?;
        insert_pending(&mut tx, reports, now, &mut result).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Claims the first pending alert after id `after`, until `until`, and returns it; `None`
    /// when there is none, or when another deliverer's live claim holds it (see
    /// [`Store::claimed_after`]): a deliverer never passes an alert another one is sending, so
    /// alerts go out in order and never twice. On PostgreSQL the candidate is locked `FOR
    /// UPDATE`, so a concurrent claimer waits for the other's claim and then finds it taken.
    pub async fn claim_next_alert(
        &self,
        after: i64,
        now: &str,
        until: &str,
    ) -> anyhow::Result<Option<OutboxRow>> {
        let lock = match self.backend {
            super::Backend::Postgres => "FOR UPDATE",
            super::Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE alerts SET claimed_until = $1
             WHERE id = (SELECT id FROM alerts
                         WHERE state = 'pending' AND id > $3
                         ORDER BY id LIMIT 1 {lock})
               AND state = 'pending' AND claimed_until < $2
             RETURNING {COLUMNS}"
        );
        sqlx::query(&sql)
            .bind(until)
            .bind(now)
            .bind(after)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(outbox_row)
            .transpose()
    }

    /// Gives a claimed alert back untouched (it waits for a later run).
    /// The first pending alert after id `after` when another deliverer's claim on it lasts
    /// past `now`: (id, claimed until).
    pub async fn claimed_after(
        &self,
        after: i64,
        now: &str,
    ) -> anyhow::Result<Option<(i64, String)>> {
        let row = sqlx::query(
            "SELECT id, claimed_until FROM alerts WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT 1",
        )
        .bind(after)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => {
                let id: i64 = row.try_get(0)?;
                let until: String = row.try_get(1)?;
                (until.as_str() >= now).then_some((id, until))
            }
            None => None,
        })
    }

    /// Extends this deliverer's claim on a pending alert to `until` (RFC 3339).
    pub async fn renew_alert_claim(&self, id: i64, until: &str) -> anyhow::Result<()> {
        sqlx::query("UPDATE alerts SET claimed_until = $1 WHERE id = $2 AND state = 'pending'")
            .bind(until)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn release_alert(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE alerts SET claimed_until = '' WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Outbox rows, optionally of one state, newest last.
    pub async fn list_alerts(&self, state: Option<&str>) -> anyhow::Result<Vec<OutboxRow>> {
        let rows = match state {
            Some(state) => {
                let sql = format!("SELECT {COLUMNS} FROM alerts WHERE state = $1 ORDER BY id");
                sqlx::query(&sql).bind(state).fetch_all(&self.pool).await?
            }
            None => {
                let sql = format!("SELECT {COLUMNS} FROM alerts ORDER BY id");
                sqlx::query(&sql).fetch_all(&self.pool).await?
            }
        };
        rows.iter().map(outbox_row).collect()
    }

    /// Records the outcome of trying to deliver a pending alert (`attempts` tries so far) and
    /// ends its claim. Only pending alerts change, so a late outcome cannot undo a resolution.
    pub async fn record_alert_attempt(
        &self,
        id: i64,
        attempts: i64,
        outcome: AttemptOutcome<'_>,
    ) -> anyhow::Result<()> {
        let (state, error, next_attempt_at, sent_at) = match outcome {
            AttemptOutcome::Sent { at } => ("sent", "", "", at),
            AttemptOutcome::Failed { reason } => ("failed", reason, "", ""),
            AttemptOutcome::Retry {
                reason,
                next_attempt_at,
            } => ("pending", reason, next_attempt_at, ""),
        };
        sqlx::query(
            "UPDATE alerts SET state = $1, attempts = $2, last_error = $3, next_attempt_at = $4,
                               sent_at = $5, claimed_until = ''
             WHERE id = $6 AND state = 'pending'",
        )
        .bind(state)
        .bind(attempts)
        .bind(error)
        .bind(next_attempt_at)
        .bind(sent_at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Inserts rows as pending, skipping fingerprints already in the outbox.
async fn insert_pending(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[NewAlert],
    now: &str,
    result: &mut EnqueueResult,
) -> anyhow::Result<()> {
    for a in rows {
        let inserted = sqlx::query(
            "INSERT INTO alerts (fingerprint, kind, service, team, period, channel, summary, payload, created_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')
             ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(&a.fingerprint)
        .bind(&a.kind)
        .bind(&a.service)
        .bind(&a.team)
        .bind(&a.period)
        .bind(&a.channel)
        .bind(&a.summary)
        .bind(&a.payload)
        .bind(now)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            result.inserted += 1;
        } else {
            result.already_known += 1;
        }
    }
    Ok(())
}
