//! `costsplit run`: the jobs of [`crate::jobs`] on cron schedules, one at a time (a job never
//! overlaps itself or another), each run recorded in the store; an HTTP endpoint for health
//! and metrics; rules reloaded when their files change (a bad edit keeps the last good
//! rules); on PostgreSQL one active replica (an advisory lock) with the others standing by;
//! and a shutdown that is a parameter of the run loop, so tests drive it.

pub mod http;
pub mod schedule;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tracing::{error, info, warn};

use crate::clock::{Clock, Shutdown};
use crate::config::Config;
use crate::jobs;
use crate::notify::SlackSettings;
use crate::rules::{self, Rules};
use crate::store::{JobRun, Store};
use http::{AppState, Status};
use schedule::{Job, Plan, Schedules};

/// `[daemon]` in costsplit.toml. Every key has a default, so a config with only a store URL
/// and credentials runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSettings {
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub listen: String,
    /// The time zone the schedules are read in (IANA name).
    pub timezone: String,
    /// How long a running job may take to finish after SIGTERM before it is abandoned (its
    /// transaction then rolls back).
    pub grace_seconds: u64,
    /// How often a standby replica tries to take the lead, and the rules files are checked.
    pub poll_seconds: u64,
    pub schedule: Schedules,
}

impl Default for DaemonSettings {
    fn default() -> DaemonSettings {
        DaemonSettings {
            listen: "127.0.0.1:9464".into(),
            timezone: "UTC".into(),
            grace_seconds: 30,
            poll_seconds: 5,
            schedule: Schedules::default(),
        }
    }
}

/// What the run loop works with, for as long as it runs.
struct Env<'a> {
    config: &'a Config,
    plan: &'a Plan,
    store: &'a Store,
    status: &'a Arc<Mutex<Status>>,
    timeline: &'a Timeline,
}

/// Where the run loop reads the time and how it waits: the system clock, or simulated time
/// (tests drive days of schedules in a moment: a wait jumps the time forward, and the run
/// ends, as on shutdown, once the time passes `until`).
#[derive(Debug, Clone)]
pub enum Timeline {
    System,
    Simulated {
        now: Arc<Mutex<DateTime<Utc>>>,
        until: DateTime<Utc>,
        /// How long each job takes in simulated time.
        job_seconds: i64,
    },
}

impl Timeline {
    /// Simulated time from `start` to `until`, each job taking `job_seconds`.
    pub fn simulated(start: DateTime<Utc>, until: DateTime<Utc>, job_seconds: i64) -> Timeline {
        Timeline::Simulated {
            now: Arc::new(Mutex::new(start)),
            until,
            job_seconds,
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Timeline::System => Utc::now(),
            Timeline::Simulated { now, .. } => *now.lock().expect("timeline lock"),
        }
    }

    /// The clock jobs record their runs with.
    fn clock(&self) -> Clock {
        match self {
            Timeline::System => Clock::System,
            Timeline::Simulated { .. } => Clock::Fixed(self.now().timestamp()),
        }
    }

    /// Waits `wait` (on the system clock at most `poll`, to pick up rules edits and check the
    /// lead). False when the run should stop: shutdown, or simulated time past its end.
    async fn sleep(&self, wait: Duration, poll: Duration, shutdown: &mut Shutdown) -> bool {
        match self {
            Timeline::System => shutdown.sleep(wait.min(poll)).await,
            Timeline::Simulated { now, until, .. } => {
                let mut t = now.lock().expect("timeline lock");
                *t += chrono::Duration::from_std(wait).unwrap_or_default();
                *t <= *until && !shutdown.is_requested()
            }
        }
    }

    /// Simulated time has passed its end.
    fn ended(&self) -> bool {
        match self {
            Timeline::System => false,
            Timeline::Simulated { until, .. } => self.now() > *until,
        }
    }

    /// A job ran: simulated time moves on by its duration.
    fn job_ran(&self) {
        if let Timeline::Simulated {
            now, job_seconds, ..
        } = self
        {
            *now.lock().expect("timeline lock") += chrono::Duration::seconds(*job_seconds);
        }
    }
}

/// The rules in force and where they come from.
struct RulesWatch {
    dir: std::path::PathBuf,
    /// A fingerprint of every file the rules read (the `*.toml` files and the weight files
    /// they name): their names and contents.
    seen: String,
    /// The files the last load read, beside the directory's `*.toml` files.
    inputs: Vec<std::path::PathBuf>,
    /// Set by SIGHUP: load again even if the files look unchanged.
    hangup: Arc<std::sync::atomic::AtomicBool>,
    rules: Option<Rules>,
}

impl RulesWatch {
    fn new(dir: std::path::PathBuf) -> RulesWatch {
        RulesWatch {
            dir,
            seen: String::new(),
            inputs: Vec::new(),
            hangup: Arc::default(),
            rules: None,
        }
    }

    /// The names and a hash of the contents of the directory's `*.toml` files and of every
    /// other file the last load read (a weight CSV edited in place, or swapped by a
    /// ConfigMap's symlink, changes it; a file that cannot be read counts as its error).
    fn fingerprint(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut files = rules::rule_files(&self.dir).unwrap_or_default();
        files.extend(self.inputs.iter().cloned());
        files.sort();
        files.dedup();
        let mut hasher = Sha256::new();
        for file in &files {
            hasher.update(file.as_os_str().as_encoded_bytes());
            hasher.update([0]);
            match std::fs::read(file) {
                Ok(bytes) => {
                    hasher.update((bytes.len() as u64).to_le_bytes());
                    hasher.update(&bytes);
                }
                Err(e) => hasher.update(e.to_string().as_bytes()),
            }
        }
        hex::encode(hasher.finalize())
    }

    /// Loads the rules again when their files changed. A set with errors is logged with
    /// every error (file:line:col) and refused; the last good rules stay in force.
    fn reload(&mut self, status: &Mutex<Status>) {
        let now = self.fingerprint();
        let asked = self.hangup.swap(false, std::sync::atomic::Ordering::SeqCst);
        if now == self.seen && self.rules.is_some() && !asked {
            return;
        }
        let loaded = rules::load(&self.dir);
        // The files this load read decide what the next check looks at (a weight file named
        // for the first time, or no longer named). With the same files, the fingerprint taken
        // before reading stays: an edit made while they were read is seen at the next check.
        if loaded.inputs == self.inputs {
            self.seen = now;
        } else {
            self.inputs = loaded.inputs.clone();
            self.seen = self.fingerprint();
        }
        let errors: Vec<String> = loaded.errors().map(ToString::to_string).collect();
        let mut s = status.lock().expect("status lock");
        match loaded.rules {
            Some(new) if errors.is_empty() => {
                if self.rules.as_ref().map(|r| &r.hash) != Some(&new.hash) {
                    info!(rules = %new.hash, dir = %self.dir.display(), "rules loaded");
                }
                s.rules_hash = Some(new.hash.clone());
                s.rules_error = None;
                self.rules = Some(new);
            }
            _ => {
                for e in &errors {
                    error!("{e}");
                }
                let kept = self.rules.as_ref().map_or("none", |r| r.hash.as_str());
                warn!(errors = errors.len(), kept = %kept, "the rules edit does not validate; the last good rules stay in force");
                s.rules_error = errors.first().cloned();
            }
        }
    }
}

/// Runs the daemon until `shutdown`. Returns once the running job finished (or its grace
/// period ran out) and the HTTP server stopped.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    run_on(config, shutdown, Timeline::System).await
}

/// [`run`] on a given timeline (tests run it on simulated time).
pub async fn run_on(config: Config, shutdown: Shutdown, timeline: Timeline) -> anyhow::Result<()> {
    let settings = config.daemon.clone();
    let plan = settings
        .schedule
        .compile(&settings.timezone)
        .map_err(anyhow::Error::msg)?;
    for line in plan.describe(&settings.schedule, timeline.now()) {
        info!("schedule: {line}");
    }
    let store = Store::connect(&config.store_url).await?;
    let status = Arc::new(Mutex::new(Status::default()));
    let mut watch = RulesWatch::new(config.rules_dir.clone());
    // SIGHUP: reload the rules now (they are also checked every poll).
    if let Ok(mut hup) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        let flag = watch.hangup.clone();
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                info!("SIGHUP: reloading the rules");
                flag.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        });
    }
    watch.reload(&status);

    let listener = tokio::net::TcpListener::bind(&settings.listen)
        .await
        .with_context(|| format!("cannot listen on {} ([daemon] listen)", settings.listen))?;
    let address = listener.local_addr()?;
    info!(%address, "serving /healthz, /readyz and /metrics");
    let app = http::router(AppState {
        status: status.clone(),
        store: store.clone(),
    });
    let mut server_shutdown = shutdown.clone();
    // The server stops on shutdown, or when the run loop ends for another reason.
    let (loop_done, loop_ended) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                tokio::select! {
                    _ = server_shutdown.requested() => {}
                    _ = loop_ended => {}
                }
            })
            .await
    });

    let env = Env {
        config: &config,
        plan: &plan,
        store: &store,
        status: &status,
        timeline: &timeline,
    };
    let result = schedule_loop(&env, &mut watch, shutdown).await;
    let _ = loop_done.send(());
    let _ = server.await;
    store.close().await;
    info!("stopped");
    result
}

async fn schedule_loop(
    env: &Env<'_>,
    watch: &mut RulesWatch,
    mut shutdown: Shutdown,
) -> anyhow::Result<()> {
    let Env {
        config,
        store,
        status,
        timeline,
        ..
    } = *env;
    let poll = Duration::from_secs(config.daemon.poll_seconds.max(1));
    loop {
        // Wait to lead: a standby polls the lease until the leader goes away.
        let mut lead = None;
        let mut said_standby = false;
        while lead.is_none() {
            match tokio::time::timeout(STORE_CALL_TIMEOUT, store.try_lead()).await {
                Ok(Ok(Some(l))) => lead = Some(l),
                Ok(Ok(None)) => {
                    if !said_standby {
                        info!(
                            "standby: another process leads this store; taking over when it stops"
                        );
                        said_standby = true;
                    }
                }
                Ok(Err(e)) => {
                    warn!(error = %format!("{e:#}"), "cannot reach the store to take the lead")
                }
                Err(_) => warn!(
                    seconds = STORE_CALL_TIMEOUT.as_secs(),
                    "the store did not answer in time; cannot take the lead"
                ),
            }
            if lead.is_none() {
                status.lock().expect("status lock").leader = false;
                if !timeline.sleep(poll, poll, &mut shutdown).await || timeline.ended() {
                    return Ok(());
                }
                watch.reload(status);
            }
        }
        let mut lead = lead.expect("the lead was taken");
        status.lock().expect("status lock").leader = true;
        info!("leading: this replica runs the jobs");
        lead_loop(env, watch, &mut shutdown, &mut lead).await?;
        if shutdown.is_requested() || timeline.ended() {
            return Ok(());
        }
        status.lock().expect("status lock").leader = false;
        warn!(
            "lost the lead (its lock's store connection ended or stopped answering); standing by"
        );
    }
}

/// How long one store call of the run loop may take (taking the lead, checking it, reading
/// the last runs) before the loop says so and steps down rather than hang.
const STORE_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs the jobs while this replica holds the lead. Returns on shutdown or when the lead's
/// connection is gone (another replica may then already lead).
async fn lead_loop(
    env: &Env<'_>,
    watch: &mut RulesWatch,
    shutdown: &mut Shutdown,
    lead: &mut crate::store::Leadership,
) -> anyhow::Result<()> {
    let Env {
        config,
        plan,
        store,
        status,
        timeline,
    } = *env;
    let poll = Duration::from_secs(config.daemon.poll_seconds.max(1));
    refresh_stale_months(store, status).await;
    // Catch up the daily jobs a stop made us miss: once each, in pipeline order.
    let now = timeline.now();
    let mut next: BTreeMap<Job, DateTime<Utc>> = BTreeMap::new();
    for job in Job::ALL {
        let last_ok = match tokio::time::timeout(
            STORE_CALL_TIMEOUT,
            store.last_ok_tick(job.as_str()),
        )
        .await
        {
            Ok(Ok(tick)) => tick,
            Ok(Err(e)) => {
                warn!(error = %format!("{e:#}"), "cannot read the last job runs; stepping down");
                return Ok(());
            }
            Err(_) => {
                warn!(
                    seconds = STORE_CALL_TIMEOUT.as_secs(),
                    "the store did not answer in time; stepping down"
                );
                return Ok(());
            }
        }
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc));
        match plan.catch_up(job, last_ok, now) {
            Some(tick) => {
                info!(job = job.as_str(), %tick, since = ?last_ok, "catching up a missed run");
                next.insert(job, tick);
            }
            None => {
                if let Some(tick) = plan.next_tick(job, now) {
                    next.insert(job, tick);
                }
            }
        }
    }

    loop {
        if shutdown.is_requested() {
            return Ok(());
        }
        watch.reload(status);
        if !lead.still_held().await {
            return Ok(());
        }
        // Of the jobs due now, the first in pipeline order (sync before allocate before
        // alerts, as a catch-up needs); else the earliest tick.
        let now = timeline.now();
        let due = next
            .iter()
            .filter(|(_, tick)| **tick <= now)
            .min_by_key(|(job, _)| **job);
        let Some((&job, &tick)) =
            due.or_else(|| next.iter().min_by_key(|(job, tick)| (**tick, **job)))
        else {
            // No job has a tick to come (every schedule a date that never comes, or past):
            // nothing to run, so wait for shutdown, holding the lead, without spinning.
            let first = !std::mem::replace(
                &mut status.lock().expect("status lock").no_future_tick,
                true,
            );
            if first {
                warn!("no job has a tick to come (each [daemon.schedule] expression names a time that never comes or has passed); nothing will run until the schedules are changed and the daemon restarted");
            }
            if !timeline.sleep(poll, poll, shutdown).await {
                return Ok(());
            }
            continue;
        };
        let wait = (tick - timeline.now()).to_std().unwrap_or_default();
        if !wait.is_zero() {
            // Wake at least every poll to pick up rules edits and check the lead; stop at
            // once on shutdown.
            if !timeline.sleep(wait, poll, shutdown).await {
                return Ok(());
            }
            continue;
        }
        let started = timeline.now();
        let outcome = match watch.rules.clone() {
            None => Err(anyhow::anyhow!(
                "no valid rules in {}; fix them (costsplit rules check)",
                config.rules_dir.display()
            )),
            Some(rules) => {
                let grace = Duration::from_secs(config.daemon.grace_seconds);
                let clock = timeline.clock();
                let outcome = run_job(env, job, &rules, shutdown, grace, clock, lead).await;
                timeline.job_ran();
                outcome
            }
        };
        let finished = timeline.now();
        record(store, status, job, tick, started, finished, &outcome).await;
        // The next tick after now: missed ticks are not run one by one.
        match plan.next_tick(job, finished.max(tick)) {
            Some(t) => {
                next.insert(job, t);
            }
            None => {
                next.remove(&job);
            }
        }
    }
}

/// Runs one job to its end, or until the grace period after shutdown runs out, or until
/// this replica loses the lead (the job's open transaction then rolls back as its future is
/// dropped, so a replica that lost the lead stops before writing, and the new leader never
/// runs a job beside it).
async fn run_job(
    env: &Env<'_>,
    job: Job,
    rules: &Rules,
    shutdown: &Shutdown,
    grace: Duration,
    clock: Clock,
    lead: &mut crate::store::Leadership,
) -> anyhow::Result<String> {
    let work = job_work(
        job, env.config, env.store, rules, env.status, shutdown, clock,
    );
    tokio::pin!(work);
    let mut stop = shutdown.clone();
    let poll = Duration::from_secs(env.config.daemon.poll_seconds.max(1));
    let lost = async {
        loop {
            if matches!(env.timeline, Timeline::System) {
                tokio::time::sleep(poll).await;
            } else {
                std::future::pending::<()>().await;
            }
            if !lead.still_held().await {
                return;
            }
        }
    };
    tokio::select! {
        result = &mut work => result,
        () = lost => {
            warn!(job = job.as_str(), "lost the lead during the job; abandoning it (its open transaction rolls back)");
            Err(anyhow::anyhow!("abandoned: this replica lost the lead during the job; nothing of its open transaction was committed"))
        }
        _ = stop.requested() => {
            info!(job = job.as_str(), grace_s = grace.as_secs(), "shutting down: letting the running job finish");
            match tokio::time::timeout(grace, &mut work).await {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!("abandoned after the {} s grace period of a shutdown; nothing of it was committed", grace.as_secs())),
            }
        }
    }
}

/// One job's work; returns a one-line summary.
async fn job_work(
    job: Job,
    config: &Config,
    store: &Store,
    rules: &Rules,
    status: &Mutex<Status>,
    shutdown: &Shutdown,
    clock: Clock,
) -> anyhow::Result<String> {
    match job {
        Job::SyncBilling => {
            let Some(aws) = config.aws.as_ref().filter(|a| !a.accounts.is_empty()) else {
                return Ok("skipped: no [aws] accounts configured".into());
            };
            let summary = jobs::sync_billing(store, aws, rules.service_tag(), None, clock).await;
            refresh_stale_months(store, status).await;
            let summary = summary?;
            let facts: i64 = summary.accounts.iter().map(|a| a.facts).sum();
            {
                let mut s = status.lock().expect("status lock");
                s.cost_explorer_calls += summary.calls() as u64;
                s.cost_explorer_cost_nanos +=
                    crate::ingest::cost_explorer::calls_cost(summary.calls()).0;
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
        Job::SyncExports => {
            if config.exports.is_empty() {
                return Ok("skipped: no [[exports]] configured".into());
            }
            let runs = jobs::sync_exports(store, &config.exports, clock).await;
            refresh_stale_months(store, status).await;
            let runs = runs?;
            let facts: i64 = runs.iter().map(|r| r.facts).sum();
            status.lock().expect("status lock").facts_written += facts as u64;
            let failed: Vec<String> = runs
                .iter()
                .filter(|r| r.status == crate::store::SyncStatus::Failed)
                .map(|r| format!("{}: {}", r.account, r.message))
                .collect();
            anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
            Ok(format!("{} period(s) seen, {facts} facts", runs.len()))
        }
        Job::SyncUsage => {
            if rules.sources.is_empty() {
                return Ok("skipped: the rules declare no [[source]]".into());
            }
            let summary = jobs::sync_usage(
                store,
                rules,
                config.aws.as_ref(),
                clock.today(),
                None,
                clock,
            )
            .await?;
            let failed: Vec<String> = summary
                .runs
                .iter()
                .filter(|r| r.status == crate::store::UsageStatus::Failed)
                .map(|r| format!("{}: {}", r.source, r.message))
                .collect();
            anyhow::ensure!(failed.is_empty(), "{}", failed.join("; "));
            Ok(format!("{} source(s) measured", summary.runs.len()))
        }
        Job::Allocate => {
            let outcome = allocate_job(config, store, rules, clock).await;
            refresh_stale_months(store, status).await;
            outcome
        }
        Job::Alerts => {
            let detected = jobs::detect_alerts(store, rules, None, None).await?;
            let result = jobs::enqueue_alerts(store, rules, &detected, clock).await?;
            status.lock().expect("status lock").alerts_detected += result.inserted as u64;
            Ok(format!(
                "{}: {} detected, {} new",
                detected.day,
                detected.alerts.len(),
                result.inserted
            ))
        }
        Job::ReportWeekly | Job::ReportMonthly => {
            let period = if job == Job::ReportWeekly {
                crate::report::digest::Period::Week
            } else {
                crate::report::digest::Period::Month
            };
            let digests =
                jobs::reports::team_digests(store, rules, period, clock.today(), None).await?;
            if digests.is_empty() {
                return Ok(format!(
                    "skipped: nothing allocated in the last complete {}",
                    period.as_str()
                ));
            }
            let result = jobs::reports::enqueue_digests(store, rules, &digests, clock).await?;
            Ok(format!(
                "{} team digest(s), {} message(s) new in the outbox",
                digests.len(),
                result.inserted
            ))
        }
        Job::Notify => {
            let settings =
                SlackSettings::for_rules(&|k| std::env::var(k).ok(), rules, &config.slack)?;
            if settings.default_webhook.is_none()
                && settings.team_webhooks.is_empty()
                && settings.bot_token.is_none()
            {
                return Ok("skipped: no Slack webhook or token configured".into());
            }
            let summary = jobs::deliver_alerts(store, &settings, clock, shutdown).await?;
            {
                let mut s = status.lock().expect("status lock");
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
    }
}

/// The daily allocate: every month whose facts changed since its last allocation (or were
/// never allocated: a backfill, a closed month AWS rewrote), each whole, then the
/// restatement window (widened to a month's first day when that month is stale, by its facts
/// or by a rules edit).
async fn allocate_job(
    config: &Config,
    store: &Store,
    rules: &Rules,
    clock: Clock,
) -> anyhow::Result<String> {
    let usage = crate::allocate::UsageWeights::default();
    let mut window = jobs::allocation_window(
        store,
        rules,
        config.cost_basis,
        restatement_window(config, clock),
    )
    .await?;
    let mut done = Vec::new();
    for stale in jobs::stale_months(store).await? {
        let (first, last) = stale.range();
        if last >= window.0 && first <= window.1 {
            window.0 = window.0.min(first);
            continue;
        }
        let summary = jobs::allocate_range(
            store,
            rules,
            &usage,
            config.cost_basis,
            (first, last),
            clock,
        )
        .await
        .with_context(|| format!("allocating {} ({})", stale.label(), stale.reason.as_str()))?;
        info!(month = %stale.label(), reason = stale.reason.as_str(), allocations = summary.allocations, "allocated a month outside the restatement window");
        done.push(format!("{} ({})", stale.label(), stale.reason.as_str()));
    }
    let summary =
        jobs::allocate_range(store, rules, &usage, config.cost_basis, window, clock).await?;
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

/// Puts the months whose allocations do not follow their facts in the status (`/readyz`,
/// `/metrics`); a store that cannot say keeps the last answer.
async fn refresh_stale_months(store: &Store, status: &Mutex<Status>) {
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

/// The restatement window the daemon re-allocates each day: the days before today that
/// Cost Explorer may still revise (`restate_days`), and the previous month until its bill is
/// final (`month_final_day`), with [aws]'s settings or their defaults (3 days, the 7th).
fn restatement_window(config: &Config, clock: Clock) -> (chrono::NaiveDate, chrono::NaiveDate) {
    use chrono::Datelike;
    let today = clock.today();
    let (restate, final_day) = config.restatement();
    let yesterday = today.pred_opt().expect("a day before today");
    let mut from = today - chrono::Duration::days(i64::from(restate));
    if today.day() <= final_day {
        let first = today.with_day(1).expect("day 1 exists");
        let previous = first.pred_opt().expect("a day before").with_day(1);
        from = from.min(previous.expect("day 1 exists"));
    }
    (from.min(yesterday), yesterday)
}

async fn record(
    store: &Store,
    status: &Mutex<Status>,
    job: Job,
    tick: DateTime<Utc>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    outcome: &anyhow::Result<String>,
) {
    let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (name, seconds) = (
        job.as_str(),
        (finished - started).num_milliseconds() as f64 / 1000.0,
    );
    let (ok, reason) = match outcome {
        Ok(summary) => {
            info!(job = name, seconds, "{summary}");
            (true, summary.clone())
        }
        Err(e) => {
            let reason = format!("{e:#}");
            warn!(job = name, seconds, %reason, "job failed; it runs again at its next tick");
            (false, reason)
        }
    };
    {
        let mut s = status.lock().expect("status lock");
        let stats = s.jobs.entry(name).or_default();
        stats.runs += 1;
        stats.last_duration_seconds = seconds;
        if ok {
            stats.last_success = Some(finished.timestamp());
        } else {
            stats.failures += 1;
        }
    }
    let run = JobRun {
        job: name.to_string(),
        tick: stamp(tick),
        started_at: stamp(started),
        finished_at: stamp(finished),
        outcome: if ok { "ok" } else { "failed" }.to_string(),
        reason: reason.chars().take(2000).collect(),
    };
    match tokio::time::timeout(STORE_CALL_TIMEOUT, store.record_job_run(&run)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(job = name, error = %format!("{e:#}"), "cannot record the job run"),
        Err(_) => warn!(
            job = name,
            seconds = STORE_CALL_TIMEOUT.as_secs(),
            "cannot record the job run: the store did not answer in time"
        ),
    }
}
