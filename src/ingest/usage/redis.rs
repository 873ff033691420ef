//! Keys (or memory) per key prefix of a shared Redis / ElastiCache endpoint. One `SCAN`
//! pass with a `COUNT` hint over the keyspace (never `KEYS`, which blocks the server), with
//! `MATCH` on the prefixes' common start when they have one, each key counted under the
//! longest prefix the rules map, at most `max_keys` keys read: past
//! the budget the counts are those of the keys scanned, which SCAN's hash order makes a
//! sample of the whole. With `measure = "memory"`, `MEMORY USAGE` of at most
//! `memory_samples` keys per prefix gives each prefix's mean key size, times its key count.
//! The load on the server: DBSIZE / COUNT cheap SCAN calls, plus the memory samples.

use std::collections::BTreeMap;

use super::measured::Measured;
use crate::rules::RedisMeasure;

/// Keys that no mapped prefix covers are counted here, so their share is visible.
const OTHER: &str = "(other keys)";

#[derive(Debug, Clone, Copy)]
pub(super) struct Budget {
    pub max_keys: u64,
    pub scan_count: u64,
    pub memory_samples: u64,
}

#[derive(Default)]
struct Prefix {
    keys: u64,
    sampled: Vec<Vec<u8>>,
}

pub(super) async fn measure(
    url: &str,
    measure: RedisMeasure,
    prefixes: &[&str],
    budget: Budget,
) -> Result<Measured, String> {
    let client = redis::Client::open(url).map_err(|e| {
        format!("the Redis URL is not valid (redis://[:PASSWORD@]HOST:PORT/DB): {e}")
    })?;
    let mut con = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| format!("cannot connect: {e}"))?;
    let dbsize: u64 = redis::cmd("DBSIZE")
        .query_async(&mut con)
        .await
        .map_err(|e| format!("DBSIZE: {e}"))?;
    let mut counts: BTreeMap<&str, Prefix> = BTreeMap::new();
    let pattern = match_pattern(prefixes);
    let mut cursor: u64 = 0;
    let mut read: u64 = 0;
    loop {
        let mut scan = redis::cmd("SCAN");
        scan.arg(cursor).arg("COUNT").arg(budget.scan_count);
        if let Some(pattern) = &pattern {
            scan.arg("MATCH").arg(pattern);
        }
        let (next, keys): (u64, Vec<Vec<u8>>) = scan
            .query_async(&mut con)
            .await
            .map_err(|e| format!("SCAN: {e}"))?;
        for key in keys {
            read += 1;
            let prefix = prefixes
                .iter()
                .filter(|p| key.starts_with(p.as_bytes()))
                .max_by_key(|p| p.len())
                .copied()
                .unwrap_or(OTHER);
            let entry = counts.entry(prefix).or_default();
            entry.keys += 1;
            if measure == RedisMeasure::Memory
                && (entry.sampled.len() as u64) < budget.memory_samples
            {
                entry.sampled.push(key);
            }
        }
        cursor = next;
        if cursor == 0 || read >= budget.max_keys {
            break;
        }
    }
    let mut notes = Vec::new();
    if cursor != 0 {
        notes.push(format!(
            "read {read} of {dbsize} keys (max_keys); the counts are a sample of the keyspace"
        ));
    }
    let mut members = Vec::new();
    for (prefix, entry) in &counts {
        let value = match measure {
            RedisMeasure::Keys => u128::from(entry.keys),
            RedisMeasure::Memory => {
                let mut bytes: u128 = 0;
                for key in &entry.sampled {
                    let used: Option<u64> = redis::cmd("MEMORY")
                        .arg("USAGE")
                        .arg(key)
                        .query_async(&mut con)
                        .await
                        .map_err(|e| format!("MEMORY USAGE: {e}"))?;
                    bytes += u128::from(used.unwrap_or(0));
                }
                let sampled = entry.sampled.len().max(1) as u128;
                bytes * u128::from(entry.keys) / sampled
            }
        };
        members.push((prefix.to_string(), value.to_string()));
    }
    // Prefixes with no key at all are measured as zero, not missing.
    for prefix in prefixes {
        if !counts.contains_key(prefix) {
            members.push((prefix.to_string(), "0".to_string()));
        }
    }
    Ok(Measured { members, notes })
}

/// `MATCH` for the prefixes' longest common start (glob characters escaped), if they share
/// one: the server then sends only keys that can count.
fn match_pattern(prefixes: &[&str]) -> Option<String> {
    let first = prefixes.first()?;
    let mut common = first.len();
    for p in &prefixes[1..] {
        common = common.min(
            first
                .bytes()
                .zip(p.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    while !first.is_char_boundary(common) {
        common -= 1;
    }
    if common == 0 {
        return None;
    }
    let mut pattern = String::new();
    for c in first[..common].chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('*');
    Some(pattern)
}

#[cfg(test)]
mod tests {
    use super::match_pattern;

    #[test]
    fn scans_match_the_common_start_of_the_prefixes() {
        assert_eq!(
            match_pattern(&["app:orders:", "app:sess:"]).as_deref(),
            Some("app:*")
        );
        assert_eq!(match_pattern(&["orders:", "sess:"]), None);
        assert_eq!(
            match_pattern(&["a*b:x", "a*b:y"]).as_deref(),
            Some("a\\*b:*")
        );
    }
}
