//! When each job runs: cron expressions (with seconds, as the `cron` crate reads them) in
//! the daemon's time zone, their defaults, and the catch-up rule. Pure: no IO, no clock.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cron::Schedule;
use serde::Deserialize;

/// The daemon's jobs, in the order they run when several are due at once (the pipeline's
/// order: billing in, usage in, allocate, alerts, delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    SyncBilling,
    SyncExports,
    SyncUsage,
    Allocate,
    Alerts,
    ReportWeekly,
    ReportMonthly,
    Notify,
}

impl Job {
    pub const ALL: [Job; 8] = [
        Job::SyncBilling,
        Job::SyncExports,
        Job::SyncUsage,
        Job::Allocate,
        Job::Alerts,
        Job::ReportWeekly,
        Job::ReportMonthly,
        Job::Notify,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Job::SyncBilling => "sync_billing",
            Job::SyncExports => "sync_exports",
            Job::SyncUsage => "sync_usage",
            Job::Allocate => "allocate",
            Job::Alerts => "alerts",
            Job::ReportWeekly => "report_weekly",
            Job::ReportMonthly => "report_monthly",
            Job::Notify => "notify",
        }
    }

    /// Daily jobs are caught up after downtime (once, not once per missed tick); frequent
    /// ones simply run at their next tick.
    pub fn catches_up(self) -> bool {
        !matches!(self, Job::Notify)
    }
}

/// `[daemon.schedule]`: a cron expression per job (sec min hour day month weekday).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Schedules {
    pub sync_billing: String,
    pub sync_exports: String,
    pub sync_usage: String,
    pub allocate: String,
    pub alerts: String,
    pub report_weekly: String,
    pub report_monthly: String,
    pub notify: String,
}

impl Default for Schedules {
    fn default() -> Schedules {
        Schedules {
            sync_billing: "0 0 6 * * *".into(),
            sync_exports: "0 30 */6 * * *".into(),
            sync_usage: "0 0 5 * * *".into(),
            allocate: "0 0 7 * * *".into(),
            alerts: "0 15 7 * * *".into(),
            report_weekly: "0 0 8 * * Mon".into(),
            report_monthly: "0 0 8 2 * *".into(),
            notify: "0 */5 * * * *".into(),
        }
    }
}

impl Schedules {
    fn expression(&self, job: Job) -> &str {
        match job {
            Job::SyncBilling => &self.sync_billing,
            Job::SyncExports => &self.sync_exports,
            Job::SyncUsage => &self.sync_usage,
            Job::Allocate => &self.allocate,
            Job::Alerts => &self.alerts,
            Job::ReportWeekly => &self.report_weekly,
            Job::ReportMonthly => &self.report_monthly,
            Job::Notify => &self.notify,
        }
    }

    /// Every schedule parsed, or one error naming the job and what to write.
    pub fn compile(&self, timezone: &str) -> Result<Plan, String> {
        let tz: Tz = timezone.parse().map_err(|_| {
            format!(
                "[daemon] timezone `{timezone}` is not an IANA time zone (e.g. UTC, Europe/Berlin)"
            )
        })?;
        let mut schedules = Vec::new();
        for job in Job::ALL {
            let text = self.expression(job);
            let schedule = Schedule::from_str(text).map_err(|e| {
                format!(
                    "[daemon.schedule] {} = \"{text}\" is not a cron expression ({e}); write sec min hour day month weekday, e.g. \"0 0 6 * * *\"",
                    job.as_str()
                )
            })?;
            schedules.push((job, schedule));
        }
        Ok(Plan { tz, schedules })
    }
}

/// The compiled schedules.
#[derive(Debug, Clone)]
pub struct Plan {
    tz: Tz,
    schedules: Vec<(Job, Schedule)>,
}

impl Plan {
    fn schedule(&self, job: Job) -> &Schedule {
        &self
            .schedules
            .iter()
            .find(|(j, _)| *j == job)
            .expect("every job has a schedule")
            .1
    }

    /// The first tick of `job` strictly after `after`.
    pub fn next_tick(&self, job: Job, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.schedule(job)
            .after(&after.with_timezone(&self.tz))
            .next()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The latest tick of `job` at or before `now`.
    pub fn last_tick(&self, job: Job, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // Backwards from just past `now` (ticks are whole seconds).
        let past = (now + chrono::Duration::seconds(1)).with_timezone(&self.tz);
        self.schedule(job)
            .after(&past)
            .next_back()
            .map(|t| t.with_timezone(&Utc))
    }

    /// The tick a daily job must catch up on at start: its latest tick up to `now`, when the
    /// latest tick it answered (`last_ok`) is older. One run answers every missed tick.
    pub fn catch_up(
        &self,
        job: Job,
        last_ok: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        if !job.catches_up() {
            return None;
        }
        let due = self.last_tick(job, now)?;
        match last_ok {
            Some(done) if done >= due => None,
            _ => Some(due),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .expect("time")
            .with_timezone(&Utc)
    }

    #[test]
    fn ticks_follow_the_time_zone() {
        let plan = Schedules::default()
            .compile("Europe/Berlin")
            .expect("compiles");
        // 06:00 in Berlin is 05:00 UTC in winter.
        assert_eq!(
            plan.next_tick(Job::SyncBilling, at("2025-01-10T12:00:00Z")),
            Some(at("2025-01-11T05:00:00Z"))
        );
        assert_eq!(
            plan.next_tick(Job::Notify, at("2025-01-10T12:01:00Z")),
            Some(at("2025-01-10T12:05:00Z"))
        );
    }

    #[test]
    fn days_down_are_caught_up_once_with_the_latest_tick() {
        let plan = Schedules::default().compile("UTC").expect("compiles");
        let now = at("2025-01-10T09:00:00Z");
        // Down since the 5th: one catch-up run, for today's 07:00 tick.
        assert_eq!(
            plan.catch_up(Job::Allocate, Some(at("2025-01-05T07:00:00Z")), now),
            Some(at("2025-01-10T07:00:00Z"))
        );
        assert_eq!(
            plan.catch_up(Job::Allocate, Some(at("2025-01-10T07:00:00Z")), now),
            None
        );
        assert_eq!(
            plan.catch_up(Job::Allocate, None, now),
            Some(at("2025-01-10T07:00:00Z"))
        );
        assert_eq!(plan.catch_up(Job::Notify, None, now), None);
        // A tick exactly now counts; a per-second schedule answers at once.
        assert_eq!(
            plan.last_tick(Job::Allocate, at("2025-01-10T07:00:00Z")),
            Some(at("2025-01-10T07:00:00Z"))
        );
        let every_second = Schedules {
            allocate: "* * * * * *".into(),
            ..Schedules::default()
        }
        .compile("UTC")
        .expect("compiles");
        assert_eq!(
            every_second.last_tick(Job::Allocate, at("2025-01-10T07:00:05Z")),
            Some(at("2025-01-10T07:00:05Z"))
        );
    }

    #[test]
    fn a_bad_expression_names_the_job() {
        let schedules = Schedules {
            alerts: "every day".into(),
            ..Schedules::default()
        };
        let err = schedules.compile("UTC").expect_err("bad cron");
        assert!(
            err.contains("[daemon.schedule] alerts = \"every day\""),
            "{err}"
        );
        assert!(Schedules::default().compile("Mars/Olympus").is_err());
    }
}
