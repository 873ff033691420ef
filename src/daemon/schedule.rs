//! When each job runs: cron expressions with seconds (`sec min hour day month weekday`) in
//! the daemon's time zone, their defaults, and the catch-up rule. Weekdays are read as
//! crontab reads them (0 and 7 = Sunday, 1 = Monday … 6 = Saturday, or names), not as the
//! `cron` crate's own numbering (1 = Sunday), since operators write crontab. Times follow the
//! time zone as crontab does across daylight-saving changes: a tick in the hour skipped in
//! spring runs when the gap ends, a tick in the hour repeated in autumn runs once. Pure: no
//! IO, no clock.

use std::str::FromStr;

use crate::config::Schedules;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use cron::Schedule;

/// The daemon's jobs, in the order they run when several are due at once (the pipeline's
/// order: billing in, usage in, allocate, alerts, delivery).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Job {
    SyncCatalog,
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
    pub const ALL: [Job; 9] = [
        Job::SyncCatalog,
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
            Job::SyncCatalog => "sync_catalog",
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

impl Schedules {
    fn expression(&self, job: Job) -> &str {
        match job {
            Job::SyncCatalog => &self.sync_catalog,
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
    pub fn compile(&self, timezone: &str) -> Result<Plan, ScheduleError> {
        let tz: Tz = timezone
            .parse()
            .map_err(|_| ScheduleError::TimeZone(timezone.to_string()))?;
        let mut schedules = Vec::new();
        for job in Job::ALL {
            let text = self.expression(job);
            let translated = crontab_weekdays(text).map_err(|reason| ScheduleError::Weekday {
                job: job.as_str(),
                text: text.to_string(),
                reason,
            })?;
            let schedule = Schedule::from_str(&translated).map_err(|e| ScheduleError::Cron {
                job: job.as_str(),
                text: text.to_string(),
                reason: e.to_string(),
            })?;
            schedules.push((job, schedule));
        }
        Ok(Plan { tz, schedules })
    }
}

/// A `[daemon]` schedule that does not compile, said as what to write instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error("[daemon] timezone `{0}` is not an IANA time zone (e.g. UTC, Europe/Berlin)")]
    TimeZone(String),
    #[error("[daemon.schedule] {job} = \"{text}\": {reason}")]
    Weekday {
        job: &'static str,
        text: String,
        reason: WeekdayError,
    },
    #[error("[daemon.schedule] {job} = \"{text}\" is not a cron expression ({reason}); write sec min hour day month weekday, e.g. \"0 0 6 * * *\"")]
    Cron {
        job: &'static str,
        text: String,
        reason: String,
    },
}

/// A weekday field crontab would not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WeekdayError {
    #[error("weekday `{0}` does not exist: use 0-7 as crontab does (0 and 7 = Sunday, 1 = Monday) or names (MON-FRI)")]
    NoSuchDay(String),
    #[error("`{0}` has no valid step")]
    Step(String),
    #[error("`{0}` runs backwards; write the smaller day first")]
    Backwards(String),
}

/// How many ticks a look-up considers before saying there is none (a schedule whose only
/// ticks are in the past, or never: `0 0 0 30 2 *`).
const MAX_TICKS_LOOKED_AT: usize = 64;

/// A cron expression with its weekday field (the sixth) rewritten from crontab's numbering
/// (0 and 7 = Sunday, 1 = Monday … 6 = Saturday) to the day names the `cron` crate reads
/// unambiguously: `1-5` becomes `MON,TUE,WED,THU,FRI`. Names, `*` and `*/n` (the same days
/// in both numberings) are kept.
pub fn crontab_weekdays(expression: &str) -> Result<String, WeekdayError> {
    const NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
    let mut fields: Vec<String> = expression.split_whitespace().map(str::to_string).collect();
    let Some(weekday) = fields.get_mut(5) else {
        return Ok(expression.to_string());
    };
    let number = |text: &str| -> Result<u32, WeekdayError> {
        match text.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(WeekdayError::NoSuchDay(text.to_string())),
        }
    };
    let mut parts: Vec<String> = Vec::new();
    for item in weekday.split(',') {
        let numeric = item.chars().next().is_some_and(|c| c.is_ascii_digit());
        if !numeric {
            parts.push(item.to_string());
            continue;
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| WeekdayError::Step(item.to_string()))?,
            ),
            None => (item, 1),
        };
        let (first, last) = match range.split_once('-') {
            Some((a, b)) => (number(a)?, number(b)?),
            None if item.contains('/') => (number(range)?, 7),
            None => (number(range)?, number(range)?),
        };
        if first > last {
            return Err(WeekdayError::Backwards(item.to_string()));
        }
        for day in (first..=last).step_by(step as usize) {
            let name = NAMES[(day % 7) as usize].to_string();
            if !parts.contains(&name) {
                parts.push(name);
            }
        }
    }
    *weekday = parts.join(",");
    Ok(fields.join(" "))
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
        // The schedule is matched against local wall-clock times (as UTC stand-ins), each
        // then placed on the time line: so a skipped local time still runs (at the gap's
        // end) and a repeated one runs once (its first occurrence).
        self.schedule(job)
            .after(&self.wall_clock(after))
            .take(MAX_TICKS_LOOKED_AT)
            .map(|wall| self.instant(wall.naive_utc()))
            .find(|t| *t > after)
    }

    /// The latest tick of `job` at or before `now`.
    pub fn last_tick(&self, job: Job, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let wall = self.wall_clock(now);
        // Backwards from just past `now` (ticks are whole seconds)…
        let before = self
            .schedule(job)
            .after(&(wall + chrono::Duration::seconds(1)))
            .rev()
            .take(MAX_TICKS_LOOKED_AT)
            .map(|w| self.instant(w.naive_utc()))
            .find(|t| *t <= now);
        // …and, in an hour that repeats, a later wall-clock time that already happened in
        // its first occurrence.
        let repeated = self
            .schedule(job)
            .after(&wall)
            .take(MAX_TICKS_LOOKED_AT)
            .take_while(|w| *w <= wall + chrono::Duration::hours(2))
            .map(|w| self.instant(w.naive_utc()))
            .filter(|t| *t <= now)
            .max();
        before.max(repeated)
    }

    /// `t`'s local wall-clock time in the daemon's time zone, as a UTC value.
    fn wall_clock(&self, t: DateTime<Utc>) -> DateTime<Utc> {
        use chrono::TimeZone;
        Utc.from_utc_datetime(&t.with_timezone(&self.tz).naive_local())
    }

    /// When the local wall-clock time `wall` happens: its first occurrence when the hour
    /// repeats (autumn), the end of the gap when it is skipped (spring).
    fn instant(&self, wall: chrono::NaiveDateTime) -> DateTime<Utc> {
        use chrono::{TimeZone, Timelike};
        let mut probe = wall;
        // A gap is at most a few hours long; step to its end a minute at a time.
        for _ in 0..(24 * 60) {
            if let Some(t) = self.tz.from_local_datetime(&probe).earliest() {
                return t.with_timezone(&Utc);
            }
            probe = (probe + chrono::Duration::minutes(1))
                .with_second(0)
                .expect("second 0 exists");
        }
        Utc.from_utc_datetime(&wall)
    }

    /// What each job's schedule means: its expression and next tick after `now` in the
    /// daemon's time zone, e.g. `report_weekly "0 0 8 * * 1": next Mon 2026-12-07 08:00 UTC`.
    pub fn describe(&self, schedules: &Schedules, now: DateTime<Utc>) -> Vec<String> {
        Job::ALL
            .iter()
            .map(|&job| {
                let next = match self.next_tick(job, now) {
                    Some(t) => format!(
                        "next {}",
                        t.with_timezone(&self.tz).format("%a %Y-%m-%d %H:%M:%S %Z")
                    ),
                    None => "never runs: the expression names no time to come".to_string(),
                };
                format!("{} \"{}\": {next}", job.as_str(), schedules.expression(job))
            })
            .collect()
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
    fn weekdays_are_read_as_crontab_reads_them() {
        let weekly = |weekday: &str| {
            Schedules {
                report_weekly: format!("0 0 8 * * {weekday}"),
                ..Schedules::default()
            }
            .compile("UTC")
            .expect("compiles")
        };
        // 2026-12-02 is a Wednesday.
        let now = at("2026-12-02T12:00:00Z");
        assert_eq!(
            weekly("1").next_tick(Job::ReportWeekly, now),
            Some(at("2026-12-07T08:00:00Z")),
            "1 is Monday"
        );
        for sunday in ["0", "7", "Sun"] {
            assert_eq!(
                weekly(sunday).next_tick(Job::ReportWeekly, now),
                Some(at("2026-12-06T08:00:00Z")),
                "{sunday} is Sunday"
            );
        }
        // 1-5 is Monday to Friday: Thursday next, and never Saturday or Sunday.
        let weekdays = weekly("1-5");
        assert_eq!(
            weekdays.next_tick(Job::ReportWeekly, now),
            Some(at("2026-12-03T08:00:00Z"))
        );
        assert_eq!(
            weekdays.next_tick(Job::ReportWeekly, at("2026-12-04T09:00:00Z")),
            Some(at("2026-12-07T08:00:00Z"))
        );
        assert_eq!(
            crontab_weekdays("0 0 8 * * 5-7").expect("ok"),
            "0 0 8 * * FRI,SAT,SUN"
        );
        assert_eq!(
            crontab_weekdays("0 0 8 * * Mon-Fri").expect("ok"),
            "0 0 8 * * Mon-Fri"
        );
        assert!(crontab_weekdays("0 0 8 * * 8").is_err());
        let described = weekly("1").describe(
            &Schedules {
                report_weekly: "0 0 8 * * 1".into(),
                ..Schedules::default()
            },
            now,
        );
        assert!(
            described.contains(
                &"report_weekly \"0 0 8 * * 1\": next Mon 2026-12-07 08:00:00 UTC".to_string()
            ),
            "{described:?}"
        );
    }

    #[test]
    fn a_tick_in_a_daylight_saving_gap_runs_at_its_end_and_a_repeated_hour_runs_once() {
        let plan = Schedules {
            allocate: "0 30 2 * * *".into(),
            ..Schedules::default()
        }
        .compile("Europe/Berlin")
        .expect("compiles");
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00 UTC); 02:30 never happens.
        assert_eq!(
            plan.next_tick(Job::Allocate, at("2026-03-28T12:00:00Z")),
            Some(at("2026-03-29T01:00:00Z")),
            "at the gap's end, as crontab"
        );
        assert_eq!(
            plan.next_tick(Job::Allocate, at("2026-03-29T01:00:00Z")),
            Some(at("2026-03-30T00:30:00Z"))
        );
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice, runs once.
        assert_eq!(
            plan.next_tick(Job::Allocate, at("2026-10-24T12:00:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            plan.next_tick(Job::Allocate, at("2026-10-25T00:30:00Z")),
            Some(at("2026-10-26T01:30:00Z")),
            "not again at the repeated 02:30"
        );
        assert_eq!(
            plan.last_tick(Job::Allocate, at("2026-10-25T01:45:00Z")),
            Some(at("2026-10-25T00:30:00Z"))
        );
    }

    #[test]
    fn a_schedule_with_no_future_tick_has_none() {
        let plan = Schedules {
            allocate: "0 0 0 30 2 *".into(),
            ..Schedules::default()
        }
        .compile("UTC")
        .expect("compiles");
        assert_eq!(
            plan.next_tick(Job::Allocate, at("2026-12-02T00:00:00Z")),
            None
        );
    }

    #[test]
    fn a_bad_expression_names_the_job() {
        let schedules = Schedules {
            alerts: "every day".into(),
            ..Schedules::default()
        };
        let err = schedules.compile("UTC").expect_err("bad cron").to_string();
        assert!(
            err.contains("[daemon.schedule] alerts = \"every day\""),
            "{err}"
        );
        assert!(Schedules::default().compile("Mars/Olympus").is_err());
    }
}
