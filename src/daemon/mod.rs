//! `costsplit run`: the jobs of [`crate::jobs`] on cron schedules, one at a time (a job never
//! overlaps itself or another), each run recorded in the store; an HTTP endpoint for health
//! and metrics; rules reloaded when their files change (a bad edit keeps the last good
//! rules); on PostgreSQL one active replica (an advisory lock) with the others standing by;
//! and a shutdown that is a parameter of the run loop, so tests drive it.

pub mod api;
pub mod http;
mod page;
pub mod push;
pub mod schedule;
pub mod slack_actions;
mod work;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use tracing::{error, info, warn};

use crate::clock::{Clock, Shutdown};
use crate::config::Config;
use crate::jobs;
use crate::jobs::{JobRun, Leadership, Rules, Store};
use crate::model::Timestamp;
use axum::Router;
use http::{AppState, Status};
use schedule::{Job, Plan};
use work::STORE_CALL_TIMEOUT;

/// What each job's schedule means in `[daemon]`'s time zone (see [`Plan::describe`]), or why
/// the schedules do not compile.
pub fn describe_schedule(
    settings: &crate::config::DaemonSettings,
    now: DateTime<Utc>,
) -> Result<Vec<String>, schedule::ScheduleError> {
    let plan = settings.schedule.compile(&settings.timezone)?;
    Ok(plan.describe(&settings.schedule, now))
}

/// What the run loop works with, for as long as it runs.
struct Env<'a> {
    config: &'a Config,
    plan: &'a Plan,
    store: &'a Store,
    status: &'a Arc<Mutex<Status>>,
    timeline: &'a Timeline,
    /// The API's kept answers, filled again after each allocate job.
    api_cache: &'a Arc<jobs::ApiCache>,
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
    /// `[catalog]`: its files (or its API's snapshot) are watched like the rules'.
    catalog: Option<crate::config::CatalogSettings>,
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
    fn new(dir: std::path::PathBuf, catalog: Option<crate::config::CatalogSettings>) -> RulesWatch {
        RulesWatch {
            dir,
            catalog,
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
        let mut files = jobs::rule_files(&self.dir).unwrap_or_default();
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
        let loaded = jobs::load_rules_checked(&self.dir, self.catalog.as_ref());
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

/// `costsplit serve`: the read-only API (and `/healthz`) over the store, without jobs, until
/// `shutdown`. Without a token it listens on loopback only.
pub async fn serve(config: Config, mut shutdown: Shutdown) -> anyhow::Result<()> {
    let listen = &config.daemon.listen;
    let token = api::ApiToken::from_env(&|k| std::env::var(k).ok())?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| {
            format!("cannot listen on {listen} ([daemon] listen or COSTSPLIT_LISTEN)")
        })?;
    let address = listener.local_addr()?;
    anyhow::ensure!(
        token.is_some() || address.ip().is_loopback(),
        "{address} is not loopback and the API has no token: set COSTSPLIT_API_TOKEN (or COSTSPLIT_API_TOKEN_FILE), or listen on 127.0.0.1"
    );
    let store = Store::connect(&config.store_url).await?;
    let api_cache = jobs::ApiCache::new();
    tokio::spawn(jobs::warm_api_cache(store.clone(), api_cache.clone()));
    let app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .merge(api::routes(
            store.clone(),
            api_cache,
            token,
            address.ip().is_loopback(),
            crate::clock::Clock::System,
        ))
        .merge(push::routes_for(
            &config,
            store.clone(),
            crate::clock::Clock::System,
        )?)
        .merge(slack_actions::routes_from_env(
            store.clone(),
            crate::clock::Clock::System,
        )?);
    info!(%address, "serving the API over the store");
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.requested().await })
        .await?;
    store.close().await;
    Ok(())
}

/// Runs the daemon until `shutdown`. Returns once the running job finished (or its grace
/// period ran out) and the HTTP server stopped.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    run_on(config, shutdown, Timeline::System).await
}

/// [`run`] on a given timeline (tests run it on simulated time).
pub async fn run_on(config: Config, shutdown: Shutdown, timeline: Timeline) -> anyhow::Result<()> {
    let settings = config.daemon.clone();
    let plan = settings.schedule.compile(&settings.timezone)?;
    for line in plan.describe(&settings.schedule, timeline.now()) {
        info!("schedule: {line}");
    }
    let store = Store::connect(&config.store_url).await?;
    let status = Arc::new(Mutex::new(Status::default()));
    let mut watch = RulesWatch::new(config.rules_dir.clone(), config.catalog.clone());
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
    info!(%address, "serving /healthz, /readyz, /metrics and the API");
    let token = api::ApiToken::from_env(&|k| std::env::var(k).ok())?;
    let api_cache = jobs::ApiCache::new();
    let app = http::router(AppState {
        status: status.clone(),
        store: store.clone(),
    })
    .merge(api::routes(
        store.clone(),
        api_cache.clone(),
        token,
        address.ip().is_loopback(),
        timeline.clock(),
    ))
    .merge(push::routes_for(&config, store.clone(), timeline.clock())?)
    .merge(slack_actions::routes_from_env(
        store.clone(),
        timeline.clock(),
    )?);
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
        api_cache: &api_cache,
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

/// Runs the jobs while this replica holds the lead. Returns on shutdown or when the lead's
/// connection is gone (another replica may then already lead).
async fn lead_loop(
    env: &Env<'_>,
    watch: &mut RulesWatch,
    shutdown: &mut Shutdown,
    lead: &mut Leadership,
) -> anyhow::Result<()> {
    let Env {
        config,
        plan,
        store,
        status,
        timeline,
        ..
    } = *env;
    let poll = Duration::from_secs(config.daemon.poll_seconds.max(1));
    work::refresh_stale_months(store, status).await;
    let Some(mut next) = first_ticks(env).await else {
        return Ok(());
    };

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
            None if job == Job::SyncCatalog => {
                let outcome = work::sync_catalog(config, timeline.clock()).await;
                timeline.job_ran();
                outcome
            }
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

/// Each job's first tick on taking the lead: a daily job a stop made us miss runs once to
/// catch up (in pipeline order), the rest at their next tick. None when the store cannot say
/// (the replica then steps down).
async fn first_ticks(env: &Env<'_>) -> Option<BTreeMap<Job, DateTime<Utc>>> {
    let Env {
        plan,
        store,
        timeline,
        ..
    } = *env;
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
                return None;
            }
            Err(_) => {
                warn!(
                    seconds = STORE_CALL_TIMEOUT.as_secs(),
                    "the store did not answer in time; stepping down"
                );
                return None;
            }
        }
        .map(Timestamp::datetime);
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
    Some(next)
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
    lead: &mut Leadership,
) -> anyhow::Result<String> {
    let ctx = work::JobCtx {
        config: env.config,
        store: env.store,
        rules,
        status: env.status,
        shutdown,
        clock,
        api_cache: env.api_cache,
    };
    let work = work::job_work(job, &ctx);
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

async fn record(
    store: &Store,
    status: &Mutex<Status>,
    job: Job,
    tick: DateTime<Utc>,
    started: DateTime<Utc>,
    finished: DateTime<Utc>,
    outcome: &anyhow::Result<String>,
) {
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
        tick: Timestamp::at(tick),
        started_at: Timestamp::at(started),
        finished_at: Timestamp::at(finished),
        ok,
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
