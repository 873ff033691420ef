//! The work of each scheduled job: a job of `jobs` with what the daemon adds around it (the
//! status counters `/metrics` shows, the skips when a job has nothing configured, a one-line
//! summary for the job-run record). A new scheduled job is a `Job` variant and a function here.

use std::sync::Mutex;

use anyhow::Context;
use tracing::{info, warn};

use super::http::Status;
use super::schedule::Job;
use crate::clock::{Clock, Shutdown};
use crate::config::Config;
use crate::jobs::{self, Rules, Store, SyncStatus, UsageStatus};
use crate::report::digest::Period;

/// How long one store call of the run loop may take (taking the lead, checking it, reading
/// the last runs) before the loop says so and steps down rather than hang.
pub(super) const STORE_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// What a job runs with.
pub(super) struct JobCtx<'a> {
    pub config: &'a Config,
    pub store: &'a Store,
    pub rules: &'a Rules,
    pub status: &'a Mutex<Status>,
    pub shutdown: &'a Shutdown,
    pub clock: Clock,
    pub api_cache: &'a std::sync::Arc<jobs::ApiCache>,
}

/// One job's work; returns a one-line summary.
pub(super) async fn job_work(job: Job, ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    match job {
        Job::SyncCatalog => sync_catalog(ctx.config, ctx.clock).await,
        Job::SyncBilling => sync_billing(ctx).await,
        Job::SyncExports => sync_exports(ctx).await,
        Job::SyncUsage => sync_usage(ctx).await,
        Job::Allocate => {
            let outcome = allocate(ctx).await;
            refresh_stale_months(ctx.store, ctx.status).await;
            // The API's first answers after new allocations are ready before anyone asks
            // (beside the run loop: the job does not wait for it).
            tokio::spawn(jobs::warm_api_cache(
                ctx.store.clone(),
                ctx.api_cache.clone(),
            ));
            outcome
        }
        Job::Alerts => alerts(ctx).await,
        Job::ReportWeekly => report(ctx, Period::Week).await,
        Job::ReportMonthly => report(ctx, Period::Month).await,
        Job::Notify => notify(ctx).await,
    }
}

/// Fetches the catalog API into its snapshot; the rules watch then loads the new map. Runs
/// without valid rules too (an API catalog's first snapshot is what makes them valid).
pub(super) async fn sync_catalog(config: &Config, clock: Clock) -> anyhow::Result<String> {
    let Some(settings) = config.catalog.as_ref().filter(|c| c.uses_api()) else {
        return Ok(
            "skipped: no catalog API ([catalog.backstage] or [catalog.port]) configured".into(),
        );
    };
    let sync = jobs::sync_catalog(settings, &|k| std::env::var(k).ok(), clock.stamp()).await?;
    for note in &sync.notes {
        warn!("{note}");
    }
    Ok(sync.summary())
}

async fn sync_billing(ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    let Some(aws) = ctx.config.aws.as_ref().filter(|a| !a.accounts.is_empty()) else {
        return Ok("skipped: no [aws] accounts configured".into());
    };
    let summary =
        jobs::sync_billing(ctx.store, aws, ctx.rules.service_tag(), None, ctx.clock).await;
    refresh_stale_months(ctx.store, ctx.status).await;
    let summary = summary?;
    let facts: i64 = summary.accounts.iter().map(|a| a.facts).sum();
    {
        let mut s = ctx.status.lock().expect("status lock");
        s.cost_explorer_calls += summary.calls() as u64;
        s.cost_explorer_cost_nanos += summary.cost().0;
        s.facts_written += facts as u64;
    }
    anyhow::ensure!(
        summary.complete(),
        "not every account synced: {}",
        summary
            .accounts
            .iter()
            .filter(|a| !a.message.is_empty())
            .map(|a| format!("{}: {}", a.account, a.message))
            .collect::<Vec<_>>()
            .join("; ")
    );
    Ok(format!(
        "{} account(s), {facts} facts, {} call(s)",
        summary.accounts.len(),
        summary.calls()
    ))
}

async fn sync_exports(ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    if ctx.config.exports.is_empty() {
        return Ok("skipped: no [[exports]] configured".into());
    }
    let runs = jobs::sync_exports(ctx.store, &ctx.config.exports, ctx.clock).await;
    refresh_stale_months(ctx.store, ctx.status).await;
    let runs = runs?;
    let facts: i64 = runs.iter().map(|r| r.facts).sum();
    ctx.status.lock().expect("status lock").facts_written += facts as u64;
    let failed: Vec<String> = runs
        .iter()
        .filter(|r| r.status == SyncStatus::Failed)
        .map(|r| format!("{}: {}", r.account, r.message))
        .collect();
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
    Ok(format!("{} period(s) seen, {facts} facts", runs.len()))
}

async fn sync_usage(ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    if ctx.rules.sources.is_empty() {
        return Ok("skipped: the rules declare no [[source]]".into());
    }
    let summary = jobs::sync_usage(
        ctx.store,
        ctx.rules,
        ctx.config.aws.as_ref(),
        ctx.clock.today(),
        None,
        ctx.clock,
    )
    .await?;
    let failed: Vec<String> = summary
        .runs
        .iter()
        .filter(|r| r.status == UsageStatus::Failed)
        .map(|r| format!("{}: {}", r.source, r.message))
        .collect();
    anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
    Ok(format!("{} source(s) measured", summary.runs.len()))
}

/// The daily allocate: every month whose facts changed since its last allocation (or were
/// never allocated: a backfill, a closed month AWS rewrote), each whole, then the
/// restatement window (widened to a month's first day when that month is stale, by its facts
/// or by a rules edit).
async fn allocate(ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    let (config, store, rules, clock) = (ctx.config, ctx.store, ctx.rules, ctx.clock);
    let mut window = jobs::allocation_window(
        store,
        rules,
        config.cost_basis,
        config.restatement_window(clock.today()),
    )
    .await?;
    let mut done = Vec::new();
    for stale in jobs::stale_months(store).await? {
        let (first, last) = stale.range();
        if last >= window.0 && first <= window.1 {
            window.0 = window.0.min(first);
            continue;
        }
        let summary = jobs::allocate_range(store, rules, config.cost_basis, (first, last), clock)
            .await
            .with_context(|| format!("allocating {} ({})", stale.label(), stale.reason.as_str()))?;
        info!(month = %stale.label(), reason = stale.reason.as_str(), allocations = summary.allocations, "allocated a month outside the restatement window");
        done.push(format!("{} ({})", stale.label(), stale.reason.as_str()));
    }
    let summary = jobs::allocate_range(store, rules, config.cost_basis, window, clock).await?;
    let mut line = format!(
        "{}..{}: {} allocations, allocated {} == billed {}",
        window.0,
        window.1,
        summary.allocations,
        summary.allocated.exact_text(),
        summary.billed.exact_text()
    );
    if !done.is_empty() {
        line.push_str(&format!("; also allocated {}", done.join(", ")));
    }
    Ok(line)
}

async fn alerts(ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    let detected = jobs::detect_alerts(ctx.store, ctx.rules, None, None).await?;
    let result = jobs::enqueue_alerts(ctx.store, ctx.rules, &detected, ctx.clock).await?;
    ctx.status.lock().expect("status lock").alerts_detected += result.inserted as u64;
    let mut line = format!(
        "{}: {} detected, {} new",
        detected.day,
        detected.alerts.len(),
        result.inserted
    );
    if !ctx.rules.budgets.is_empty() {
        let (budget_alerts, budgets) = jobs::check_budgets(
            ctx.store,
            ctx.rules,
            detected.day,
            detected.lookback,
            ctx.clock,
        )
        .await?;
        ctx.status.lock().expect("status lock").alerts_detected += budgets.inserted as u64;
        line.push_str(&format!(
            "; budgets: {} passed or forecast, {} new",
            budget_alerts.len(),
            budgets.inserted
        ));
    }
    Ok(line)
}

async fn report(ctx: &JobCtx<'_>, period: Period) -> anyhow::Result<String> {
    let digests =
        jobs::reports::team_digests(ctx.store, ctx.rules, period, ctx.clock.today(), None).await?;
    if digests.is_empty() {
        return Ok(format!(
            "skipped: nothing allocated in the last complete {}",
            period.as_str()
        ));
    }
    let result = jobs::reports::enqueue_digests(ctx.store, ctx.rules, &digests, ctx.clock).await?;
    Ok(format!(
        "{} team digest(s), {} message(s) new in the outbox",
        digests.len(),
        result.inserted
    ))
}

async fn notify(ctx: &JobCtx<'_>) -> anyhow::Result<String> {
    let settings = jobs::slack_settings(ctx.rules, &ctx.config.slack)?;
    if settings.default_webhook.is_none()
        && settings.team_webhooks.is_empty()
        && settings.bot_token.is_none()
    {
        return Ok("skipped: no Slack webhook or token configured".into());
    }
    let summary = jobs::deliver_alerts(ctx.store, &settings, ctx.clock, ctx.shutdown).await?;
    {
        let mut s = ctx.status.lock().expect("status lock");
        s.alerts_sent += summary.sent as u64;
        s.alerts_failed += summary.failed as u64;
    }
    match summary.stopped {
        Some(reason) => anyhow::bail!(
            "{} sent, {} still pending: {reason}",
            summary.sent,
            summary.still_pending
        ),
        None => Ok(format!("{} sent", summary.sent)),
    }
}

/// Puts the months whose allocations do not follow their facts in the status (`/readyz`,
/// `/metrics`); a store that cannot say keeps the last answer.
pub(super) async fn refresh_stale_months(store: &Store, status: &Mutex<Status>) {
    let Ok(answer) = tokio::time::timeout(STORE_CALL_TIMEOUT, jobs::stale_months(store)).await
    else {
        warn!(
            seconds = STORE_CALL_TIMEOUT.as_secs(),
            "cannot tell which months are stale: the store did not answer in time"
        );
        return;
    };
    match answer {
        Ok(months) => {
            status.lock().expect("status lock").stale_months = Some(
                months
                    .iter()
                    .map(|m| (m.label(), m.reason.as_str()))
                    .collect(),
            );
        }
        Err(e) => warn!(error = %format!("{e:#}"), "cannot tell which months are stale"),
    }
}
