//! Detecting alerts over the stored allocations and putting them in the outbox.

use anyhow::Context;
use chrono::NaiveDate;
use tracing::info;

use crate::alert::{self, Alert, Series};
use crate::clock::Clock;
use crate::model::MessageKind;
use crate::rules::Rules;
use crate::store::{EnqueueResult, NewAlert, Store};

/// Runs the detectors for `day` (default: the last allocated day) and the `lookback_days`
/// before it (default: the rules') over the stored allocations. Writes nothing.
pub async fn detect_alerts(
    store: &Store,
    rules: &Rules,
    day: Option<NaiveDate>,
    lookback_days: Option<u32>,
) -> anyhow::Result<Detected> {
    let day = match day {
        Some(day) => day,
        None => store
            .latest_allocation_day()
            .await?
            .context("no allocations yet; run `costsplit allocate` first")?,
    };
    let lookback = lookback_days.unwrap_or(rules.alerts.lookback_days);
    let history = rules.alerts.base.baseline_days as i64 + i64::from(lookback) + 70;
    let (rows, estimated) = store
        .series_rows(day - chrono::Duration::days(history), day)
        .await?;
    let mut series = alert::series_from_rows(&rows, &estimated);
    // The team in the rules now owns the service, whatever it was when allocated.
    for s in &mut series {
        if let Some(service) = rules.service(&s.service) {
            s.team = service.team.clone();
        }
    }
    let thresholds = |s: &Series| rules.alerts.thresholds_for(&s.service, &s.team);
    let alerts = alert::detect(&series, &thresholds, day, lookback);
    Ok(Detected {
        day,
        lookback,
        alerts,
    })
}

/// What the detectors found for a day.
#[derive(Debug, Clone)]
pub struct Detected {
    pub day: NaiveDate,
    pub lookback: u32,
    pub alerts: Vec<Alert>,
}

/// Puts newly detected alerts into the outbox and resolves the spikes of the checked window
/// that restated data no longer supports, in one transaction. An alert already in the outbox
/// (same fingerprint) is not enqueued again.
pub async fn enqueue_alerts(
    store: &Store,
    rules: &Rules,
    detected: &Detected,
    clock: Clock,
) -> anyhow::Result<EnqueueResult> {
    let Detected {
        day,
        lookback,
        alerts,
    } = detected;
    // An anomaly marked from Slack ("expected", "planned") is not alerted again while it lasts.
    let marked: std::collections::BTreeSet<String> = store
        .alert_marks()
        .await?
        .into_iter()
        .map(|m| m.anomaly)
        .collect();
    let (alerts, suppressed): (Vec<&crate::alert::Alert>, Vec<&crate::alert::Alert>) =
        alerts.iter().partition(|a| {
            crate::store::anomaly_of(&a.fingerprint()).is_none_or(|k| !marked.contains(&k))
        });
    let rows: Vec<NewAlert> = alerts
        .iter()
        .map(|a| NewAlert {
            fingerprint: a.fingerprint(),
            kind: MessageKind::Alert(a.kind),
            service: a.service.clone(),
            team: a.team.clone(),
            period: a.period.clone(),
            channel: rules
                .service(&a.service)
                .and_then(|s| s.slack_channel.clone()),
            summary: a.summary(),
            payload: serde_json::to_string(a).expect("alerts always serialise"),
        })
        .collect();
    let window = (*day - chrono::Duration::days(i64::from(*lookback)), *day);
    let marked_fingerprints: Vec<String> = suppressed.iter().map(|a| a.fingerprint()).collect();
    let mut result = store
        .enqueue_alerts(&rows, &marked_fingerprints, window, clock.stamp())
        .await?;
    result.suppressed = suppressed.len();
    info!(
        new = result.inserted,
        known = result.already_known,
        resolved = result.resolved.len(),
        marked = result.suppressed,
        "alerts checked"
    );
    Ok(result)
}
