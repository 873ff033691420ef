//! The common line item every format maps its rows onto, and the fact keys, declared once:
//! what a [`Line`] carries, in which order, and how its tags text is decoded. Formats build
//! lines; the aggregator sums them. Nothing here reads a file.

use chrono::NaiveDate;

use crate::model::{Fact, Tags};

/// Billing files carry up to 11 decimals; amounts are summed at 1e-11 and rounded to
/// nano-units once, per batch, keeping each day's total exact (see [`round_to_nanos`]).
pub const FINE_PER_NANO: i128 = 100;
/// The decimals of those units.
pub const FINE_DECIMALS: u32 = 11;

/// The text key columns of a fact, in this order (also the column names of a parquet
/// selection, see `parquet.rs`).
pub const KEY_NAMES: [&str; KEY_COUNT] = [
    "billing_account",
    "sub_account",
    "provider",
    "service",
    "resource",
    "category",
    "currency",
    "tags",
];
pub const KEY_COUNT: usize = 8;
pub const ACCOUNT: usize = 0;
pub const SUB_ACCOUNT: usize = 1;
pub const PROVIDER: usize = 2;
pub const SERVICE: usize = 3;
pub const RESOURCE: usize = 4;
pub const CATEGORY: usize = 5;
pub const CURRENCY: usize = 6;
pub const TAGS: usize = 7;

/// One line item: its day, billing month, key values (empty for null) and costs in 1e-11
/// units. The `TAGS` value is tags text in one of the encodings [`parse_tags`] reads.
pub struct Line<'a> {
    pub day: NaiveDate,
    pub period: NaiveDate,
    pub keys: [&'a [u8]; KEY_COUNT],
    pub effective: i128,
    pub billed: i128,
    /// FOCUS `ListCost` and `ContractedCost`; the billed cost where the source has none.
    pub list: i128,
    pub contracted: i128,
    /// A split cost allocation row's share of its parent instance; `None` on every other
    /// line. Not money: the money stays on the parent's line until [`super::split`] moves it.
    pub split: Option<SplitShare>,
}

/// The resource dimensions of split cost allocation data, one pod row each (by the row's
/// usage type): vCPU, memory, and accelerators (GPU, Neuron).
pub const DIMENSIONS: usize = crate::model::split_tags::DIMENSION_NAMES.len();

/// One split cost allocation row's share of its parent instance, in 1e-11 units.
#[derive(Debug, Clone, Copy, Default)]
pub struct SplitShare {
    /// Index of the row's dimension, below [`DIMENSIONS`].
    pub dimension: usize,
    /// `split_line_item_split_cost`.
    pub share: i128,
    /// The part of `share` its pod requested but did not use (the share times requests above
    /// usage over the larger of the two).
    pub requested_unused: i128,
    /// `split_line_item_unused_cost`: the pod's part of the instance's idle capacity of this
    /// dimension (read to tell how much of the idle is vCPU and how much memory).
    pub unused: i128,
}

/// The split shares a fact sums, per dimension. Boxed on the facts that have them, so the
/// facts of every other line pay one pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SplitSums {
    pub share: [i128; DIMENSIONS],
    pub requested_unused: [i128; DIMENSIONS],
    pub unused: [i128; DIMENSIONS],
}

impl SplitSums {
    /// Adds `line`'s share to `sums`, starting them when `None`.
    pub fn add_line(sums: &mut Option<Box<SplitSums>>, line: Option<&SplitShare>) {
        let Some(line) = line else { return };
        let sums = sums.get_or_insert_with(Default::default);
        let d = line.dimension.min(DIMENSIONS - 1);
        sums.share[d] += line.share;
        sums.requested_unused[d] += line.requested_unused;
        sums.unused[d] += line.unused;
    }

    /// Adds `other` to `sums`.
    pub fn add(sums: &mut Option<Box<SplitSums>>, other: Option<&SplitSums>) {
        let Some(other) = other else { return };
        let sums = sums.get_or_insert_with(Default::default);
        for d in 0..DIMENSIONS {
            sums.share[d] += other.share[d];
            sums.requested_unused[d] += other.requested_unused[d];
            sums.unused[d] += other.unused[d];
        }
    }
}

/// The amounts a line carries and a fact sums, in this order (see [`Line::amounts`]).
pub const AMOUNT_COUNT: usize = 4;

impl Line<'_> {
    /// Effective, billed, list and contracted cost, in 1e-11 units.
    pub fn amounts(&self) -> [i128; AMOUNT_COUNT] {
        [self.effective, self.billed, self.list, self.contracted]
    }
}

/// A fact whose amounts are still in 1e-11 units (effective, billed, list, contracted),
/// before the one rounding to nano-units. (The amounts of `fact` are zero until then.)
#[derive(Debug, Clone)]
pub struct RawFact {
    pub fact: Fact,
    pub amounts: [i128; AMOUNT_COUNT],
    /// The summed split shares of a split cost allocation fact (see [`Line::split`]).
    pub split: Option<Box<SplitSums>>,
}

impl RawFact {
    /// `fact` with its amounts in nano-units put back as 1e-11 units.
    pub fn of(fact: Fact) -> RawFact {
        let fine = |n: crate::money::Nanos| n.0 * FINE_PER_NANO;
        RawFact {
            amounts: [
                fine(fact.effective),
                fine(fact.billed),
                fine(fact.list),
                fine(fact.contracted),
            ],
            split: None,
            fact,
        }
    }
}

/// Marks a `Tags` value encoded as key/value pairs, not JSON (CUR tag columns). See
/// [`parse_tags`].
pub const KV_TAGS: char = '\u{1d}';
/// Marks a `Tags` value that is CUR 2.0's `resource_tags` map as JSON text (CSV exports):
/// decoded once per distinct value, user tags losing their `user_` prefix.
pub const CUR_JSON_TAGS: char = '\u{1c}';
pub const KV_PAIR: char = '\u{1f}';
pub const KV_SEP: char = '\u{1e}';

/// Decodes a `Tags` key value: FOCUS's JSON object (or empty; non-string values are kept as
/// their JSON text, null values are dropped), or one of the two CUR encodings.
pub fn parse_tags(raw: &str) -> Result<Tags, serde_json::Error> {
    if raw.starts_with(KV_TAGS) {
        return Ok(decode_tags(raw));
    }
    match raw.strip_prefix(CUR_JSON_TAGS) {
        Some(cur) => json_tags(cur, true),
        None => json_tags(raw, false),
    }
}

/// A JSON object of tags (empty or `null` for none). For CUR (`cur`), user tags lose their
/// `user_` prefix and empty values are no tag, as in the CUR's other encodings.
fn json_tags(raw: &str, cur: bool) -> Result<Tags, serde_json::Error> {
    let raw = raw.trim();
    if raw.is_empty() || raw.eq_ignore_ascii_case("null") {
        return Ok(Tags::new());
    }
    let map: serde_json::Map<String, serde_json::Value> = serde_json::from_str(raw)?;
    let mut tags = Tags::new();
    for (k, v) in map {
        // A tag value is text; a number or boolean (FOCUS marks a valueless tag `true`)
        // is kept as its JSON text; a list or object is no tag value at all.
        let value = match v {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) if cur && s.is_empty() => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
                return Err(serde::de::Error::custom(format!(
                    "tag `{k}` has a list or object as its value; tag values are text"
                )))
            }
            other => other.to_string(),
        };
        let key = if cur { tag_key(&k).to_string() } else { k };
        tags.insert(key, value);
    }
    Ok(tags)
}

/// A user tag's key as Cost Explorer and FOCUS show it: CUR 2.0 names it `user_<key>`, the
/// legacy CUR `user:<key>`.
pub(super) fn tag_key(key: &str) -> &str {
    tag_key_prefixes()
        .iter()
        .find_map(|p| key.strip_prefix(p))
        .unwrap_or(key)
}

/// The prefixes of a user tag's key, stripped by [`tag_key`] (the first that matches).
pub(super) fn tag_key_prefixes() -> [&'static str; 2] {
    ["user_", "user:"]
}

/// Decodes [`KV_TAGS`] text. Empty values are no tag.
pub fn decode_tags(raw: &str) -> crate::model::Tags {
    raw.trim_start_matches(KV_TAGS)
        .split(KV_PAIR)
        .filter_map(|pair| {
            let (key, value) = pair.split_once(KV_SEP)?;
            if value.is_empty() {
                return None;
            }
            Some((tag_key(key).to_string(), value.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_tags_decode_with_user_prefix_removed() {
        let raw = format!("{KV_TAGS}user_service{KV_SEP}web{KV_PAIR}user_team{KV_SEP}{KV_PAIR}aws_createdBy{KV_SEP}x");
        let tags = decode_tags(&raw);
        assert_eq!(tags.get("service").map(String::as_str), Some("web"));
        assert!(!tags.contains_key("team"));
        assert_eq!(tags.get("aws_createdBy").map(String::as_str), Some("x"));
        assert!(decode_tags(&KV_TAGS.to_string()).is_empty());
    }

    #[test]
    fn tags_decode_with_non_string_values() {
        let tags = parse_tags(r#"{"service": "a", "n": 3, "x": null}"#).expect("valid");
        assert_eq!(tags.get("service").map(String::as_str), Some("a"));
        assert_eq!(tags.get("n").map(String::as_str), Some("3"));
        assert!(!tags.contains_key("x"));
        assert!(parse_tags("NULL").expect("null").is_empty());
        assert!(parse_tags("[1]").is_err());
    }
}
