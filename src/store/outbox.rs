//! The alert outbox and the series the detectors read. Delivery state lives here so a
//! restarted process knows exactly what is still to send.

use std::collections::BTreeSet;

use anyhow::Context;

use chrono::NaiveDate;
use sqlx::Row;

use super::connect::{Backend, Store};
use super::rows::{bind, Cells, Param};
use crate::model::{day_key, MessageKind, MessageState, Timestamp};

/// An alert to put in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAlert {
    pub fingerprint: String,
    pub kind: MessageKind,
    pub service: String,
    pub team: String,
    pub period: String,
    /// Slack channel for `chat.postMessage`; none means the team's or default webhook.
    pub channel: Option<String>,
    pub summary: String,
    /// costsplit's alert JSON.
    pub payload: String,
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub fingerprint: String,
    pub kind: MessageKind,
    pub service: String,
    pub team: String,
    pub period: String,
    pub channel: Option<String>,
    pub summary: String,
    pub payload: String,
    pub created_at: Timestamp,
    pub state: MessageState,
    pub attempts: i64,
    /// Why the last try failed.
    pub last_error: Option<String>,
    /// Not tried again before this time.
    pub next_attempt_at: Option<Timestamp>,
    pub sent_at: Option<Timestamp>,
}

impl OutboxRow {
    /// What the message is about, for a person: its service, or its team's for a budget's
    /// alert (which has no service).
    pub fn subject(&self) -> String {
        match self.service.as_str() {
            "" => format!("team {}", self.team),
            service => service.to_string(),
        }
    }
}

/// How a delivery attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome<'a> {
    /// Slack accepted it at this time.
    Sent { at: Timestamp },
    /// Permanent: not retried; the reason stays visible.
    Failed { reason: &'a str },
    /// Retriable: still pending, tried again after `next_attempt_at` (none: at once).
    Retry {
        reason: &'a str,
        next_attempt_at: Option<Timestamp>,
    },
}

/// What one detection run changed in the outbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnqueueResult {
    pub inserted: usize,
    /// Left out: their anomaly was marked expected or planned from Slack.
    pub suppressed: usize,
    pub already_known: usize,
    pub resolved: Vec<String>,
}

const COLUMNS: &str = "id, fingerprint, kind, service, team, period, channel, summary, payload, created_at, state, attempts, last_error, next_attempt_at, sent_at";

fn outbox_row(row: &sqlx::any::AnyRow) -> anyhow::Result<OutboxRow> {
    let (kind, state) = (row.text(2)?, row.text(10)?);
    Ok(OutboxRow {
        id: row.int(0)?,
        fingerprint: row.text(1)?,
        kind: MessageKind::parse(&kind)
            .with_context(|| format!("unknown message kind `{kind}` in the outbox"))?,
        service: row.text(3)?,
        team: row.text(4)?,
        period: row.text(5)?,
        channel: row.maybe_text(6)?,
        summary: row.text(7)?,
        payload: row.text(8)?,
        created_at: row.timestamp(9)?,
        state: MessageState::parse(&state)
            .with_context(|| format!("unknown message state `{state}` in the outbox"))?,
        attempts: row.int(11)?,
        last_error: row.maybe_text(12)?,
        next_attempt_at: row.maybe_timestamp(13)?,
        sent_at: row.maybe_timestamp(14)?,
    })
}

impl Store {
    /// Adds new alerts (a fingerprint already in the outbox is left alone, whatever its state)
    /// and marks as resolved the spike alerts of `resolve_window` whose fingerprint the latest
    /// detection no longer produced (it produced `alerts` and `also_detected`, the ones not
    /// sent because their anomaly was marked). One transaction.
    pub async fn enqueue_alerts(
        &self,
        alerts: &[NewAlert],
        also_detected: &[String],
        resolve_window: (NaiveDate, NaiveDate),
        now: Timestamp,
    ) -> anyhow::Result<EnqueueResult> {
        let mut result = EnqueueResult::default();
        let mut tx = self.pool.begin().await?;
        insert_pending(&mut tx, alerts, now, &mut result).await?;
        let current: BTreeSet<&str> = alerts
            .iter()
            .map(|a| a.fingerprint.as_str())
            .chain(also_detected.iter().map(String::as_str))
            .collect();
        let candidates = sqlx::query(
            "SELECT id, fingerprint FROM alerts WHERE kind IN ('spike', 'fall') AND state IN ('pending', 'sent')
             AND period >= $1 AND period <= $2",
        )
        .bind(day_key(resolve_window.0))
        .bind(day_key(resolve_window.1))
        .fetch_all(&mut *tx)
        .await?;
        resolve_absent(&mut tx, candidates, &current, now, &mut result).await?;
        tx.commit().await?;
        Ok(result)
    }

    /// Adds budget alerts (a fingerprint already in the outbox is left alone) and resolves the
    /// pending budget alerts of `months` that the latest evaluation no longer produced (restated
    /// days) and are not `still_true` (true, but not sent anew); one sent stays sent. One
    /// transaction.
    pub async fn enqueue_budget_alerts(
        &self,
        alerts: &[NewAlert],
        still_true: &[String],
        months: &[String],
        now: Timestamp,
    ) -> anyhow::Result<EnqueueResult> {
        let mut result = EnqueueResult::default();
        let mut tx = self.pool.begin().await?;
        insert_pending(&mut tx, alerts, now, &mut result).await?;
        let current: BTreeSet<&str> = alerts
            .iter()
            .map(|a| a.fingerprint.as_str())
            .chain(still_true.iter().map(String::as_str))
            .collect();
        for month in months {
            let candidates = sqlx::query(
                "SELECT id, fingerprint FROM alerts WHERE kind = 'budget' AND state = 'pending' AND period = $1",
            )
            .bind(month.as_str())
            .fetch_all(&mut *tx)
            .await?;
            resolve_absent(&mut tx, candidates, &current, now, &mut result).await?;
        }
        tx.commit().await?;
        Ok(result)
    }

    /// Adds messages that resolve nothing (per-team reports): a fingerprint already in the
    /// outbox is left alone, so a report is sent once. One transaction.
    pub async fn enqueue_reports(
        &self,
        reports: &[NewAlert],
        now: Timestamp,
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
        now: Timestamp,
        until: Timestamp,
    ) -> anyhow::Result<Option<OutboxRow>> {
        let lock = match self.backend {
            Backend::Postgres => "FOR UPDATE",
            Backend::Sqlite => "",
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
            .bind(until.to_string())
            .bind(now.to_string())
            .bind(after)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(outbox_row)
            .transpose()
    }

    /// The first pending alert after id `after` when another deliverer's claim on it lasts
    /// past `now`: (id, claimed until).
    pub async fn claimed_after(
        &self,
        after: i64,
        now: Timestamp,
    ) -> anyhow::Result<Option<(i64, Timestamp)>> {
        let row = sqlx::query(
            "SELECT id, claimed_until FROM alerts WHERE state = 'pending' AND id > $1 ORDER BY id LIMIT 1",
        )
        .bind(after)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            Some(row) => {
                let until = row.maybe_timestamp(1)?;
                until
                    .filter(|until| *until >= now)
                    .map(|until| Ok::<_, anyhow::Error>((row.int(0)?, until)))
                    .transpose()?
            }
            None => None,
        })
    }

    /// Extends this deliverer's claim on a pending alert to `until`.
    pub async fn renew_alert_claim(&self, id: i64, until: Timestamp) -> anyhow::Result<()> {
        sqlx::query("UPDATE alerts SET claimed_until = $1 WHERE id = $2 AND state = 'pending'")
            .bind(until.to_string())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives a claimed alert back untouched (it waits for a later run).
    pub async fn release_alert(&self, id: i64) -> anyhow::Result<()> {
        sqlx::query("UPDATE alerts SET claimed_until = '' WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Outbox rows, optionally of one state, newest last.
    pub async fn list_alerts(&self, state: Option<MessageState>) -> anyhow::Result<Vec<OutboxRow>> {
        let rows = match state {
            Some(state) => {
                let sql = format!("SELECT {COLUMNS} FROM alerts WHERE state = $1 ORDER BY id");
                sqlx::query(&sql)
                    .bind(state.as_str())
                    .fetch_all(&self.pool)
                    .await?
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
            AttemptOutcome::Sent { at } => (MessageState::Sent, "", None, Some(at)),
            AttemptOutcome::Failed { reason } => (MessageState::Failed, reason, None, None),
            AttemptOutcome::Retry {
                reason,
                next_attempt_at,
            } => (MessageState::Pending, reason, next_attempt_at, None),
        };
        bind(
            sqlx::query(
                "UPDATE alerts SET state = $1, attempts = $2, last_error = $3, next_attempt_at = $4,
                                   sent_at = $5, claimed_until = ''
                 WHERE id = $6 AND state = 'pending'",
            ),
            [
                Param::Text(state.as_str()),
                Param::Int(attempts),
                Param::Text(error),
                Param::maybe_time(next_attempt_at),
                Param::maybe_time(sent_at),
                Param::Int(id),
            ],
        )
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

/// Marks resolved each of `candidates` (rows of id, fingerprint) whose fingerprint the
/// latest detection did not produce (`current`).
async fn resolve_absent(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    candidates: Vec<sqlx::any::AnyRow>,
    current: &BTreeSet<&str>,
    now: Timestamp,
    result: &mut EnqueueResult,
) -> anyhow::Result<()> {
    for row in candidates {
        let id: i64 = row.try_get(0)?;
        let fingerprint: String = row.try_get(1)?;
        if !current.contains(fingerprint.as_str()) {
            sqlx::query("UPDATE alerts SET state = 'resolved', resolved_at = $1 WHERE id = $2")
                .bind(now.to_string())
                .bind(id)
                .execute(&mut **tx)
                .await?;
            result.resolved.push(fingerprint);
        }
    }
    Ok(())
}

/// Inserts rows as pending, skipping fingerprints already in the outbox.
async fn insert_pending(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    rows: &[NewAlert],
    now: Timestamp,
    result: &mut EnqueueResult,
) -> anyhow::Result<()> {
    for a in rows {
        let inserted = sqlx::query(
            "INSERT INTO alerts (fingerprint, kind, service, team, period, channel, summary, payload, created_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending')
             ON CONFLICT (fingerprint) DO NOTHING",
        )
        .bind(&a.fingerprint)
        .bind(a.kind.as_str())
        .bind(&a.service)
        .bind(&a.team)
        .bind(&a.period)
        .bind(a.channel.as_deref().unwrap_or_default())
        .bind(&a.summary)
        .bind(&a.payload)
        .bind(now.to_string())
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
