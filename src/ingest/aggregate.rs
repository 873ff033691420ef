//! Line items summed into facts (the one place amounts are rounded), one line at a time, in memory that follows the number of
//! distinct facts and distinct key values, never the number of lines.
//!
//! Each key column's values are interned to small integers (comparing with the previous
//! line's value first: billing files repeat account, provider and currency on every line),
//! so a line costs a few integer hashes instead of hashing and comparing ten strings. A new
//! currency or tags value is checked, and tags decoded, once, when first seen.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::NaiveDate;
use rustc_hash::FxHashMap;

use super::file::ImportError;
use super::line::{
    parse_tags, Line, RawFact, SplitSums, ACCOUNT, AMOUNT_COUNT, CATEGORY, CURRENCY, FINE_PER_NANO,
    KEY_COUNT, KEY_NAMES, PROVIDER, RESOURCE, SERVICE, SUB_ACCOUNT, TAGS,
};
use super::split::SplitRows;
use crate::model::{Fact, Key as Text, Tags};
use crate::money::Nanos;

/// An ISO 4217 alphabetic code's shape: three capital ASCII letters.
/// Three ASCII letters, in any case (`usd` is read as `USD`: ISO 4217 codes are written in
/// capitals, but a lowercase code is the same code, never a different currency).
fn is_currency_code(value: &str) -> bool {
    let value = value.trim();
    value.len() == 3 && value.bytes().all(|b| b.is_ascii_alphabetic())
}

/// Refuses a charge day far from its billing period (a year either way): a typo such as a
/// day in 9999 inside a 2025 bill would otherwise become a fact nobody asks for.
pub fn check_day_in_period(day: NaiveDate, period: NaiveDate) -> Result<(), FarFromPeriod> {
    use chrono::Datelike;
    let months = |d: NaiveDate| d.year() * 12 + d.month0() as i32;
    if (months(day) - months(period)).abs() <= 12 {
        Ok(())
    } else {
        Err(FarFromPeriod { day, period })
    }
}

/// A charge day more than a year away from its billing period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("charge day {day} is more than a year away from its billing period {}; fix the date", period.format("%Y-%m"))]
pub struct FarFromPeriod {
    pub day: NaiveDate,
    pub period: NaiveDate,
}

/// A key value the aggregator refused: which key column, and why.
#[derive(Debug)]
pub struct Rejected {
    pub key: usize,
    pub problem: String,
}

/// A fact's key within its day.
#[derive(Clone, Copy)]
struct Key {
    month: i32,
    ids: [u32; KEY_COUNT],
}

const _: () = assert!(KEY_COUNT == 8, "Key::words packs eight ids");

impl Key {
    /// The key as five words: compared and hashed inline (every line of a file looks its
    /// fact up by key; the derived comparison called `memcmp` for the array each time).
    #[inline]
    fn words(&self) -> [u64; 5] {
        let pair = |i: usize| u64::from(self.ids[i]) | (u64::from(self.ids[i + 1]) << 32);
        [pair(0), pair(2), pair(4), pair(6), self.month as u32 as u64]
    }
}

impl PartialEq for Key {
    #[inline]
    fn eq(&self, other: &Key) -> bool {
        self.words() == other.words()
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    #[inline]
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        for word in self.words() {
            state.write_u64(word);
        }
    }
}

#[derive(Default)]
struct Sums {
    amounts: [i128; AMOUNT_COUNT],
    split: Option<Box<SplitSums>>,
    lines: i64,
}

#[derive(Default)]
struct Interner {
    ids: FxHashMap<Box<[u8]>, u32>,
    values: Vec<String>,
    last: Option<u32>,
}

impl Interner {
    /// The id of `value`, and whether it is new.
    fn intern(&mut self, value: &[u8]) -> Result<(u32, bool), String> {
        if let Some(last) = self.last {
            if self.values[last as usize].as_bytes() == value {
                return Ok((last, false));
            }
        }
        let (id, new) = match self.ids.get(value) {
            Some(&id) => (id, false),
            None => {
                let text = std::str::from_utf8(value)
                    .map_err(|_| "is not valid UTF-8 text".to_string())?;
                let id = u32::try_from(self.values.len())
                    .map_err(|_| "has more than 4 billion distinct values".to_string())?;
                self.values.push(text.to_string());
                self.ids.insert(value.into(), id);
                (id, true)
            }
        };
        self.last = Some(id);
        Ok((id, new))
    }
}

/// Sums line items per fact key.
#[derive(Default)]
pub struct Aggregator {
    keys: [Interner; KEY_COUNT],
    /// Decoded tags, by tags id.
    tags: Vec<Arc<Tags>>,
    /// One map per day: a file is mostly in time order, so the facts being summed stay in
    /// cache, where one map of a month's facts would miss on nearly every line.
    days: Vec<(NaiveDate, FxHashMap<Key, Sums>)>,
    day_index: FxHashMap<NaiveDate, usize>,
    last_day: Option<(NaiveDate, usize)>,
    last_month: Option<(NaiveDate, i32)>,
}

impl Aggregator {
    pub fn add(&mut self, line: &Line<'_>) -> Result<(), Rejected> {
        let mut ids = [0u32; KEY_COUNT];
        for (i, value) in line.keys.iter().enumerate() {
            ids[i] = self.intern(i, value)?;
        }
        let sums = self.sums(line.day, line.period, ids);
        for (sum, amount) in sums.amounts.iter_mut().zip(line.amounts()) {
            *sum += amount;
        }
        SplitSums::add_line(&mut sums.split, line.split.as_ref());
        sums.lines += 1;
        Ok(())
    }

    /// The id of a value of key column `key` (checked when first seen).
    pub fn intern(&mut self, key: usize, value: &[u8]) -> Result<u32, Rejected> {
        let (id, new) = self.keys[key]
            .intern(value)
            .map_err(|problem| Rejected { key, problem })?;
        if new {
            self.check_new(key, id)?;
        }
        Ok(id)
    }

    /// Adds `lines` line items (one row of a billing file; a daily fact's line count in a
    /// facts file) whose key values are already interned.
    pub fn add_ids(
        &mut self,
        day: NaiveDate,
        period: NaiveDate,
        ids: [u32; KEY_COUNT],
        amounts: [i128; AMOUNT_COUNT],
        lines: i64,
    ) {
        let sums = self.sums(day, period, ids);
        for (sum, amount) in sums.amounts.iter_mut().zip(amounts) {
            *sum += amount;
        }
        sums.lines += lines;
    }

    /// The sums of the fact with these keys.
    fn sums(&mut self, day: NaiveDate, period: NaiveDate, ids: [u32; KEY_COUNT]) -> &mut Sums {
        let day = self.day_slot(day);
        let key = Key {
            month: self.month_number(period),
            ids,
        };
        self.days[day].1.entry(key).or_default()
    }

    /// The index of `day`'s map in `days`.
    fn day_slot(&mut self, day: NaiveDate) -> usize {
        match self.last_day {
            Some((last, slot)) if last == day => slot,
            _ => {
                let slot = *self.day_index.entry(day).or_insert_with(|| {
                    self.days.push((day, FxHashMap::default()));
                    self.days.len() - 1
                });
                self.last_day = Some((day, slot));
                slot
            }
        }
    }

    fn month_number(&mut self, day: NaiveDate) -> i32 {
        match self.last_month {
            Some((last, n)) if last == day => n,
            _ => {
                let n = chrono::Datelike::year(&day) * 12 + chrono::Datelike::month0(&day) as i32;
                self.last_month = Some((day, n));
                n
            }
        }
    }

    /// Checks a key value seen for the first time (and decodes tags once).
    fn check_new(&mut self, key: usize, id: u32) -> Result<(), Rejected> {
        let value = &self.keys[key].values[id as usize];
        match key {
            CURRENCY if value.trim().is_empty() => Err(Rejected {
                key,
                problem: "empty currency".to_string(),
            }),
            CURRENCY if !is_currency_code(value) => Err(Rejected {
                key,
                problem: format!(
                    "currency `{}` is not an ISO 4217 code (three letters such as USD or EUR)",
                    value.chars().take(40).collect::<String>()
                ),
            }),
            TAGS => {
                let tags = parse_tags(value).map_err(|e| Rejected {
                    key,
                    problem: format!("not a JSON object of tags ({e}): {value}"),
                })?;
                self.tags.push(Arc::new(tags));
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Adds everything `other` summed (its ids are mapped onto this aggregator's).
    pub fn absorb(&mut self, other: Aggregator) -> Result<(), Rejected> {
        let mut maps: Vec<Vec<u32>> = Vec::with_capacity(KEY_COUNT);
        for (i, interner) in other.keys.iter().enumerate() {
            let mut map = Vec::with_capacity(interner.values.len());
            for value in &interner.values {
                map.push(self.intern(i, value.as_bytes())?);
            }
            maps.push(map);
        }
        for (day, facts) in other.days {
            let slot = self.day_slot(day);
            for (key, sums) in facts {
                let mut mapped = key;
                for (i, id) in mapped.ids.iter_mut().enumerate() {
                    *id = maps[i][*id as usize];
                }
                let into = self.days[slot].1.entry(mapped).or_default();
                for (sum, amount) in into.amounts.iter_mut().zip(sums.amounts) {
                    *sum += amount;
                }
                SplitSums::add(&mut into.split, sums.split.as_deref());
                into.lines += sums.lines;
            }
        }
        Ok(())
    }

    /// The summed facts (amounts still in 1e-11 units), in the order of
    /// [`merge_facts`] (day, resource, period, then the other keys), whatever order the
    /// lines came in. Sorted by each value's rank among its column's distinct values, so the
    /// sort compares integers, not strings.
    ///
    /// Split cost allocation rows are taken into the returned [`SplitRows`] one at a time, at
    /// their workload grain, instead of being returned.
    pub fn into_raw_facts(self) -> (Vec<RawFact>, SplitRows) {
        let Aggregator {
            keys, tags, days, ..
        } = self;
        let currencies: Vec<String> = keys[CURRENCY]
            .values
            .iter()
            .map(|c| c.trim().to_ascii_uppercase())
            .collect();
        let ranks: Vec<Vec<u32>> = (0..KEY_COUNT)
            .map(|i| match i {
                CURRENCY => ranks(&currencies),
                TAGS => ranks(&tags),
                _ => ranks(&keys[i].values),
            })
            .collect();
        let order = |key: &Key, i: usize| ranks[i][key.ids[i] as usize];
        // Every fact with the same text shares one copy of it.
        let shared: Vec<Vec<Text>> = (0..KEY_COUNT)
            .map(|i| match i {
                CURRENCY => currencies.iter().map(|c| Text::from(c.as_str())).collect(),
                TAGS => Vec::new(),
                _ => keys[i]
                    .values
                    .iter()
                    .map(|v| Text::from(v.as_str()))
                    .collect(),
            })
            .collect();
        let text = |key: &Key, i: usize| shared[i][key.ids[i] as usize].clone();
        let mut periods: HashMap<i32, Text> = HashMap::new();
        let split_resources: Vec<bool> = keys[RESOURCE]
            .values
            .iter()
            .map(|r| SplitRows::is_split_resource(r))
            .collect();
        let is_split = |key: &Key| split_resources[key.ids[RESOURCE] as usize];
        let plain = days
            .iter()
            .flat_map(|(_, facts)| facts.keys())
            .filter(|key| !is_split(key))
            .count();
        let mut facts = Vec::with_capacity(plain);
        let mut split = SplitRows::default();
        let mut days = days;
        days.sort_unstable_by_key(|(day, _)| *day);
        // A day at a time, each day's sums freed as its facts are made.
        for (day, sums) in days {
            let mut entries: Vec<(Key, Sums)> = sums.into_iter().collect();
            entries.sort_unstable_by_key(|(key, _)| {
                (
                    order(key, RESOURCE),
                    key.month,
                    order(key, ACCOUNT),
                    order(key, SUB_ACCOUNT),
                    order(key, PROVIDER),
                    order(key, SERVICE),
                    order(key, CATEGORY),
                    order(key, CURRENCY),
                    order(key, TAGS),
                )
            });
            for (key, sums) in entries {
                let raw = RawFact {
                    fact: Fact {
                        day,
                        billing_period: periods
                            .entry(key.month)
                            .or_insert_with(|| {
                                format!("{:04}-{:02}", key.month / 12, key.month % 12 + 1).into()
                            })
                            .clone(),
                        billing_account: text(&key, ACCOUNT),
                        sub_account: text(&key, SUB_ACCOUNT),
                        provider: text(&key, PROVIDER),
                        provider_service: text(&key, SERVICE),
                        resource_id: text(&key, RESOURCE),
                        charge_category: text(&key, CATEGORY),
                        tags: tags[key.ids[TAGS] as usize].clone(),
                        currency: text(&key, CURRENCY),
                        effective: Nanos::ZERO,
                        billed: Nanos::ZERO,
                        list: Nanos::ZERO,
                        contracted: Nanos::ZERO,
                        line_count: sums.lines,
                        estimated: false,
                    },
                    amounts: sums.amounts,
                    split: sums.split,
                };
                if is_split(&key) {
                    split.add(raw);
                } else {
                    facts.push(raw);
                }
            }
        }
        (facts, split)
    }
}

/// Sums numbered parts of a file on every core. Each worker takes the next part from `next`
/// (parts come in file order), adds it to its own aggregator with `add`, and the aggregators
/// are merged at the end. A failure (also flagged in `failed`, which a part's producer may
/// watch) stops the other workers after their current part; of several failures, the one of
/// the earliest part is returned, so the error names the first bad place in the file.
pub fn sum_in_parallel<P, S: Default>(
    path: &Path,
    failed: &AtomicBool,
    next: impl Fn() -> Option<(usize, P)> + Sync,
    add: impl Fn(P, &mut S, &mut Aggregator) -> Result<(), ImportError> + Sync,
) -> Result<Aggregator, ImportError> {
    let workers = std::thread::available_parallelism()
        .map_or(2, usize::from)
        .clamp(1, 8);
    let results: Vec<Result<Aggregator, (usize, ImportError)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut sums = Aggregator::default();
                    let mut state = S::default();
                    while !failed.load(Ordering::Relaxed) {
                        let Some((number, part)) = next() else {
                            break;
                        };
                        if let Err(e) = add(part, &mut state, &mut sums) {
                            failed.store(true, Ordering::Relaxed);
                            return Err((number, e));
                        }
                    }
                    Ok(sums)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("an import worker does not panic"))
            .collect()
    });
    let mut first_error: Option<(usize, ImportError)> = None;
    let mut total = Aggregator::default();
    for result in results {
        match result {
            Ok(sums) if first_error.is_none() => {
                total.absorb(sums).map_err(|r| ImportError::BadValue {
                    file: path.to_path_buf(),
                    row: 0,
                    column: KEY_NAMES[r.key].to_string(),
                    problem: r.problem,
                })?;
            }
            Ok(_) => {}
            Err((number, e)) => {
                if first_error
                    .as_ref()
                    .is_none_or(|(first, _)| number < *first)
                {
                    first_error = Some((number, e));
                }
            }
        }
    }
    match first_error {
        Some((_, e)) => Err(e),
        None => Ok(total),
    }
}

/// Each value's rank in sorted order (equal values share a rank).
fn ranks<T: Ord>(values: &[T]) -> Vec<u32> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_unstable_by(|&a, &b| values[a].cmp(&values[b]));
    let mut ranks = vec![0u32; values.len()];
    let mut rank = 0u32;
    for (n, &i) in order.iter().enumerate() {
        if n > 0 && values[order[n - 1]] != values[i] {
            rank += 1;
        }
        ranks[i] = rank;
    }
    ranks
}

/// Sums facts that share every key (raw tag strings that decode to the same tags merge here),
/// in key order, so the result does not depend on how the lines were read.
pub fn merge_facts(mut facts: Vec<RawFact>) -> Vec<RawFact> {
    // Equal keys are summed, so a stable sort buys nothing.
    facts.sort_unstable_by(|a, b| fact_key(&a.fact).cmp(&fact_key(&b.fact)));
    // In place: a month's facts are the largest thing an import holds.
    facts.dedup_by(|raw, last| {
        if fact_key(&last.fact) != fact_key(&raw.fact) {
            return false;
        }
        for (sum, amount) in last.amounts.iter_mut().zip(raw.amounts) {
            *sum += amount;
        }
        SplitSums::add(&mut last.split, raw.split.as_deref());
        last.fact.line_count += raw.fact.line_count;
        last.fact.estimated |= raw.fact.estimated;
        true
    });
    facts
}

/// Rounds 1e-11 amounts to nano-units so that, for every day and currency, the facts sum to
/// the exact total of the line items rounded once (no drift from rounding each line item).
pub fn round_to_nanos(mut raw: Vec<RawFact>) -> Vec<Fact> {
    let mut groups: HashMap<(NaiveDate, Text), Vec<usize>> = HashMap::new();
    for (i, r) in raw.iter().enumerate() {
        groups
            .entry((r.fact.day, r.fact.currency.clone()))
            .or_default()
            .push(i);
    }
    for indexes in groups.values() {
        // Each amount of the group rounded on its own, so each sums to its exact total.
        let columns: [Vec<i128>; AMOUNT_COUNT] = std::array::from_fn(|amount| {
            let values: Vec<i128> = indexes.iter().map(|&i| raw[i].amounts[amount]).collect();
            crate::money::round_preserving_sum(&values, FINE_PER_NANO)
        });
        for (n, &i) in indexes.iter().enumerate() {
            let fact = &mut raw[i].fact;
            fact.effective = Nanos(columns[0][n]);
            fact.billed = Nanos(columns[1][n]);
            fact.list = Nanos(columns[2][n]);
            fact.contracted = Nanos(columns[3][n]);
        }
    }
    // Collected in place: the facts take over the raw facts' memory.
    raw.into_iter().map(|r| r.fact).collect()
}

/// Day and resource first: they tell nearly all facts apart, so comparisons end early.
type FactKey<'a> = (
    NaiveDate,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a str,
    &'a Tags,
);

fn fact_key(f: &Fact) -> FactKey<'_> {
    (
        f.day,
        &f.resource_id,
        &f.billing_period,
        &f.billing_account,
        &f.sub_account,
        &f.provider,
        &f.provider_service,
        &f.charge_category,
        &f.currency,
        &f.tags,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("day")
    }

    fn line<'a>(d: &str, resource: &'a str, tags: &'a str, cost: i128) -> Line<'a> {
        Line {
            day: day(d),
            period: day("2025-03-01"),
            keys: [
                b"payer",
                b"",
                b"AWS",
                b"EC2",
                resource.as_bytes(),
                b"Usage",
                b"USD",
                tags.as_bytes(),
            ],
            effective: cost,
            billed: cost * 2,
            list: cost * 3,
            contracted: cost * 2,
            split: None,
        }
    }

    #[test]
    fn a_lowercase_currency_code_is_that_currency_and_a_non_code_is_refused() {
        let mut a = Aggregator::default();
        let mut l = line("2025-03-01", "i-1", "{}", 5);
        l.keys[CURRENCY] = b"usd";
        a.add(&l).expect("a lowercase code");
        a.add(&line("2025-03-01", "i-1", "{}", 7)).expect("ok");
        let facts = merge_facts(a.into_raw_facts().0);
        assert_eq!(facts.len(), 1, "usd and USD are one currency");
        assert_eq!(facts[0].fact.currency, "USD");
        let mut b = Aggregator::default();
        let mut bad = line("2025-03-01", "i-1", "{}", 5);
        bad.keys[CURRENCY] = b"US$";
        assert!(b.add(&bad).is_err());
    }

    #[test]
    fn lines_sum_per_key_and_two_aggregators_merge() {
        let mut a = Aggregator::default();
        a.add(&line("2025-03-01", "i-1", "{}", 5)).expect("ok");
        a.add(&line("2025-03-01", "i-1", "{}", 7)).expect("ok");
        a.add(&line("2025-03-02", "i-1", "{}", 1)).expect("ok");
        let mut b = Aggregator::default();
        b.add(&line("2025-03-02", "i-2", r#"{"service":"x"}"#, 3))
            .expect("ok");
        b.add(&line("2025-03-01", "i-1", "{}", 100)).expect("ok");
        a.absorb(b).expect("merge");
        let mut facts = a.into_raw_facts().0;
        facts.sort_by_key(|f| (f.fact.day, f.fact.resource_id.clone()));
        let got: Vec<_> = facts
            .iter()
            .map(|f| {
                (
                    f.fact.day.to_string(),
                    f.fact.resource_id.as_str(),
                    f.amounts[0],
                    f.amounts[1],
                    f.fact.line_count,
                    f.fact.currency.as_str(),
                    f.fact.billing_period.as_str(),
                    f.fact.tags.get("service").cloned(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (
                    "2025-03-01".into(),
                    "i-1",
                    112,
                    224,
                    3,
                    "USD",
                    "2025-03",
                    None
                ),
                ("2025-03-02".into(), "i-1", 1, 2, 1, "USD", "2025-03", None),
                (
                    "2025-03-02".into(),
                    "i-2",
                    3,
                    6,
                    1,
                    "USD",
                    "2025-03",
                    Some("x".to_string())
                ),
            ]
        );
    }

    #[test]
    fn bad_tags_and_empty_currency_are_refused_when_first_seen() {
        let mut a = Aggregator::default();
        let err = a
            .add(&line("2025-03-01", "i-1", "{service:a}", 1))
            .unwrap_err();
        assert_eq!(err.key, TAGS);
        assert!(
            err.problem.starts_with("not a JSON object of tags"),
            "{err:?}"
        );
        let mut bad = line("2025-03-01", "i-1", "{}", 1);
        bad.keys[CURRENCY] = b" ";
        assert_eq!(a.add(&bad).unwrap_err().key, CURRENCY);
        bad.keys[CURRENCY] = b"\xff";
        assert!(a.add(&bad).unwrap_err().problem.contains("UTF-8"));
        for code in [&b"NOTACURRENCY!!"[..], b"US$", b"US"] {
            bad.keys[CURRENCY] = code;
            assert!(a.add(&bad).unwrap_err().problem.contains("ISO 4217"));
        }
    }
}
