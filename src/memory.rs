//! A clear error before memory runs out, never the OOM killer (issue 33).
//!
//! A month's facts grow with its distinct resources, and a month of a million resources
//! needs more memory than most machines have. Rather than be killed mid-run by the kernel
//! (no message, a daemon in a restart loop), the `costsplit` binary watches its own resident
//! memory from a small thread and, past a limit, stops with an error that says what it was
//! doing, how much it used, and what to do instead. A store write commits whole or not at
//! all, so stopping loses nothing that was committed and commits nothing partial.
//!
//! The limit is `COSTSPLIT_MEMORY_LIMIT` (`800MB`, `20GB`, bytes; units of 1024), else 90% of
//! the smaller of the cgroup's memory limit and the memory available when the process
//! started (MemAvailable plus what it already holds).

use std::sync::Mutex;
use std::time::Duration;

/// How often the watcher reads the process's resident memory, at the most and at the least:
/// in between, the time the memory would take to grow from where it is to the limit at
/// [`GROWTH_PER_SECOND`]. An idle daemon far below its limit then wakes once a second, not
/// forty times.
const POLL: Duration = Duration::from_millis(25);
const POLL_IDLE: Duration = Duration::from_secs(1);
/// The fastest the resident memory is taken to grow (page faults on fresh memory run at a few
/// GB a second); the default limit leaves a tenth of the memory above it besides.
const GROWTH_PER_SECOND: u64 = 4 << 30;

/// The share of the available memory the process may use by default.
const DEFAULT_SHARE_PERCENT: u64 = 90;

/// What the process is doing, for the error (set by the jobs at each heavy stage).
static STAGE: Mutex<&'static str> = Mutex::new("starting");

/// Names what the process is doing from now on (`"reading the billing files"`).
pub fn set_stage(stage: &'static str) {
    if let Ok(mut current) = STAGE.lock() {
        *current = stage;
    }
}

fn stage() -> &'static str {
    STAGE.lock().map(|s| *s).unwrap_or("working")
}

/// The memory limit and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub source: String,
}

/// Why the limit could not be set.
#[derive(Debug, thiserror::Error)]
#[error(
    "COSTSPLIT_MEMORY_LIMIT `{0}`: write a size such as 800MB or 20GB (units of 1024), or bytes"
)]
pub struct BadLimit(String);

/// The limit: `COSTSPLIT_MEMORY_LIMIT`, else the default. None when this system says nothing
/// about its memory (not Linux): then there is no watcher.
pub fn limit() -> Result<Option<Limit>, BadLimit> {
    if let Ok(text) = std::env::var("COSTSPLIT_MEMORY_LIMIT") {
        let bytes = parse_size(&text).ok_or_else(|| BadLimit(text.clone()))?;
        return Ok(Some(Limit {
            bytes,
            source: "COSTSPLIT_MEMORY_LIMIT".to_string(),
        }));
    }
    let available = meminfo_available().map(|a| a + resident_bytes().unwrap_or(0));
    let (bytes, from) = match (available, cgroup_limit()) {
        (Some(a), Some(c)) if c < a => (c, "the cgroup's memory limit"),
        (Some(a), _) => (a, "the memory available when it started"),
        (None, Some(c)) => (c, "the cgroup's memory limit"),
        (None, None) => return Ok(None),
    };
    Ok(Some(Limit {
        bytes: bytes / 100 * DEFAULT_SHARE_PERCENT,
        source: format!(
            "{DEFAULT_SHARE_PERCENT}% of {from}; set COSTSPLIT_MEMORY_LIMIT to change it"
        ),
    }))
}

/// `800MB`, `20G`, `1.5GiB`, `123456` (bytes): units of 1024.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim().to_ascii_uppercase();
    let shift = match unit.trim_end_matches("IB").trim_end_matches('B') {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut bytes = whole.checked_mul(1 << shift)?;
    if !fraction.is_empty() {
        let digits: u32 = fraction.len().try_into().ok().filter(|d| *d <= 6)?;
        let fraction: u64 = fraction.parse().ok()?;
        bytes = bytes.checked_add(fraction * (1u64 << shift) / 10u64.pow(digits))?;
    }
    (bytes > 0).then_some(bytes)
}

/// `bytes` for a person: `21.6 GB`, `812 MB` (units of 1024).
pub fn size_text(bytes: u64) -> String {
    const GB: u64 = 1 << 30;
    if bytes >= GB {
        format!("{}.{} GB", bytes / GB, bytes % GB * 10 / GB)
    } else {
        format!("{} MB", bytes.div_ceil(1 << 20))
    }
}

/// The process's resident memory, from `/proc/self/statm`.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0)?)
}

fn meminfo_available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = meminfo.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// cgroup v2's `memory.max`, else v1's `memory.limit_in_bytes` (when it is a real limit).
fn cgroup_limit() -> Option<u64> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()?
            .trim()
            .parse::<u64>()
            .ok()
    };
    read("/sys/fs/cgroup/memory.max")
        .or_else(|| read("/sys/fs/cgroup/memory/memory.limit_in_bytes"))
        .filter(|&b| b < (1 << 60))
}

/// The error the process stops with.
pub fn stop_message(in_use: u64, limit: &Limit, stage: &str) -> String {
    format!(
        "error: costsplit stopped before memory ran out: {} in use while {stage}, over its limit of {} ({}). \
         Nothing partial was committed (a store write commits whole or not at all). \
         A month's memory follows its distinct facts (days x resources x keys): import fewer \
         billing periods at a time, let Spark or Athena sum the line items (README, \"When one \
         machine is not enough\"), or run it where there is more memory",
        size_text(in_use),
        size_text(limit.bytes),
        limit.source
    )
}

/// Starts the watcher: past `limit`, it prints [`stop_message`] and ends the process with
/// exit code 1.
pub fn watch(limit: Limit) {
    let spawned = std::thread::Builder::new()
        .name("costsplit-memory".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut wait = POLL;
            loop {
                std::thread::sleep(wait);
                if let Some(in_use) = resident_bytes() {
                    if in_use > limit.bytes {
                        eprintln!("{}", stop_message(in_use, &limit, stage()));
                        std::process::exit(1);
                    }
                    wait = next_wait(in_use, limit.bytes);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "the memory watcher did not start");
    }
}

/// The wait before the next reading, with `in_use` of `limit` bytes resident.
fn next_wait(in_use: u64, limit: u64) -> Duration {
    let headroom = limit.saturating_sub(in_use);
    Duration::from_secs_f64(headroom as f64 / GROWTH_PER_SECOND as f64).clamp(POLL, POLL_IDLE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_watcher_reads_often_near_the_limit_and_rarely_far_below_it() {
        const GB: u64 = 1 << 30;
        // An idle daemon of 23 MB under a 20 GB limit: once a second.
        assert_eq!(next_wait(23 << 20, 20 * GB), POLL_IDLE);
        // 1 GB below: a quarter of a second, the time it takes to grow 1 GB at 4 GB/s.
        assert_eq!(next_wait(19 * GB, 20 * GB), Duration::from_millis(250));
        // 50 MB below, or past it: as often as it reads.
        assert_eq!(next_wait(20 * GB - (50 << 20), 20 * GB), POLL);
        assert_eq!(next_wait(21 * GB, 20 * GB), POLL);
    }

    #[test]
    fn sizes_read_in_units_of_1024() {
        assert_eq!(parse_size("800MB"), Some(800 << 20));
        assert_eq!(parse_size("20g"), Some(20 << 30));
        assert_eq!(parse_size("1.5GiB"), Some(3 << 29));
        assert_eq!(parse_size(" 4096 "), Some(4096));
        assert_eq!(parse_size("64 MB"), Some(64 << 20));
        for bad in ["", "MB", "12XB", "-5MB", "0", "1.2345678G"] {
            assert_eq!(parse_size(bad), None, "{bad}");
        }
        assert_eq!(size_text(21 << 30 | 700 << 20), "21.6 GB");
        assert_eq!(size_text(812 << 20), "812 MB");
    }

    #[test]
    fn this_process_knows_its_memory() {
        let resident = resident_bytes().expect("Linux has /proc/self/statm");
        assert!(resident > 1 << 20, "{resident}");
        let limit = limit()
            .expect("no COSTSPLIT_MEMORY_LIMIT in tests")
            .expect("a limit");
        assert!(limit.bytes > resident, "{limit:?}");
    }
}
