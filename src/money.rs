//! Exact money: amounts are integer nano-units (1e-9) of a currency, and every split uses
//! largest-remainder rounding so the parts always sum to the whole. Never uses f64 for money
//! except to read a float column from a billing file, once, at the edge.
//!
//! Amounts are `i128`: nano-units in an `i64` end at 9.2e9 currency units, which an ordinary
//! month in IDR, KRW or VND passes. At rest the store keeps each amount as whole units and the
//! nano-units past them (`store`), which holds 9.2e18 units; one line item may carry at most
//! [`MAX_LINE_UNITS`], so a month's sums stay far inside that range.

use std::fmt;

/// Nano-units per currency unit.
pub const NANOS_PER_UNIT: i128 = 1_000_000_000;

/// The largest amount, in currency units, that one billing line item (or one Cost Explorer
/// group) may carry: 10^15, about US$40 billion even in the currency with the smallest unit
/// (VND). A larger value is refused with its file, row and column rather than stored.
pub const MAX_LINE_UNITS: i128 = 1_000_000_000_000_000;

/// An exact amount of some currency, in nano-units (1e-9). The currency travels beside it.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Nanos(pub i128);

impl Nanos {
    pub const ZERO: Nanos = Nanos(0);

    /// Rounds a float read from a billing file to the nearest nano-unit (half away from zero).
    /// Returns `None` for NaN, infinities and values that do not fit.
    pub fn from_f64(value: f64) -> Option<Nanos> {
        let scaled = (value * NANOS_PER_UNIT as f64).round();
        if scaled.is_finite() && scaled.abs() < 1.0e38 {
            Some(Nanos(scaled as i128))
        } else {
            None
        }
    }

    /// Parses a plain decimal string such as `-12.3456` exactly (extra digits past 9
    /// decimals are rounded half away from zero).
    pub fn parse(text: &str) -> Option<Nanos> {
        parse_scaled(text, 9).map(Nanos)
    }

    /// Formats with exactly `decimals` places (0..=9), rounding half away from zero.
    pub fn format(self, decimals: u32) -> String {
        let decimals = decimals.min(9);
        let unit = 10u128.pow(9 - decimals);
        let value = self.0;
        let rounded = (value.unsigned_abs() + unit / 2) / unit;
        let sign = if value < 0 && rounded != 0 { "-" } else { "" };
        let scale = 10u128.pow(decimals);
        if decimals == 0 {
            format!("{sign}{rounded}")
        } else {
            format!(
                "{sign}{}.{:0width$}",
                rounded / scale,
                rounded % scale,
                width = decimals as usize
            )
        }
    }
}

/// The decimals of a currency's minor unit (ISO 4217): 0 for JPY, KRW, VND and the other
/// currencies without a minor unit, 3 for KWD, BHD, OMR, JOD, IQD, LYD and TND, 4 for the
/// units of account CLF and UYW, 2 for every other code.
pub fn minor_decimals(currency: &str) -> u32 {
    const ZERO: [&str; 17] = [
        "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI", "VND",
        "VUV", "XAF", "XOF", "XPF",
    ];
    const THREE: [&str; 7] = ["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"];
    const FOUR: [&str; 2] = ["CLF", "UYW"];
    let code = currency.to_ascii_uppercase();
    if ZERO.contains(&code.as_str()) {
        0
    } else if THREE.contains(&code.as_str()) {
        3
    } else if FOUR.contains(&code.as_str()) {
        4
    } else {
        2
    }
}

/// Nano-units per minor unit of `currency` (10^7 for a cent, 10^9 for a yen).
pub fn nanos_per_minor(currency: &str) -> i128 {
    10i128.pow(9 - minor_decimals(currency))
}

/// `minor` minor units of `currency` as a plain decimal (`-1234.56`, `7612`, `12.345`).
pub fn minor_text(minor: i128, currency: &str) -> String {
    Nanos(minor * nanos_per_minor(currency)).format(minor_decimals(currency))
}

/// A human amount with thousands separators in the currency's own minor units: `$1,234.50`
/// for USD, `7,612 JPY`, `12.345 KWD`, `1,234.50 EUR`. With `signed`, positive amounts get a
/// `+`.
pub fn human(amount: Nanos, currency: &str, signed: bool) -> String {
    let text = amount.format(minor_decimals(currency));
    let (sign, digits) = match text.strip_prefix('-') {
        Some(rest) => ("-", rest.to_string()),
        None if signed && amount.0 != 0 => ("+", text.clone()),
        None => ("", text.clone()),
    };
    let (whole, frac) = match digits.split_once('.') {
        Some((whole, frac)) => (whole, format!(".{frac}")),
        None => (digits.as_str(), String::new()),
    };
    let grouped = group_thousands(whole);
    if currency == "USD" {
        format!("{sign}${grouped}{frac}")
    } else {
        format!("{sign}{grouped}{frac} {currency}")
    }
}

/// Digits with a comma every three from the right: `1234567` as `1,234,567`.
pub fn group_thousands(digits: &str) -> String {
    let mut grouped = String::new();
    let len = digits.chars().count();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(c);
    }
    grouped
}

/// Amounts kept per currency: never added across currencies, printed one figure each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PerCurrency(pub std::collections::BTreeMap<String, Nanos>);

impl PerCurrency {
    pub fn add(&mut self, currency: &str, amount: Nanos) {
        match self.0.get_mut(currency) {
            Some(sum) => *sum += amount,
            None => {
                self.0.insert(currency.to_string(), amount);
            }
        }
    }

    /// The amount of one currency (zero when there is none).
    pub fn get(&self, currency: &str) -> Nanos {
        self.0.get(currency).copied().unwrap_or_default()
    }

    /// Every currency's amount added: a checksum for a run record, never shown as money.
    pub fn checksum(&self) -> Nanos {
        self.0.values().copied().sum()
    }

    /// `USD 16954.82, JPY 7612`: each currency rounded to its minor unit; `0` when empty.
    pub fn text(&self) -> String {
        self.joined(|amount, currency| amount.format(minor_decimals(currency)))
    }

    /// `USD 16954.819367961`: exact, nine decimals each.
    pub fn exact_text(&self) -> String {
        self.joined(|amount, _| amount.to_string())
    }

    fn joined(&self, each: impl Fn(Nanos, &str) -> String) -> String {
        if self.0.is_empty() {
            return "0".to_string();
        }
        self.0
            .iter()
            .map(|(currency, amount)| format!("{currency} {}", each(*amount, currency)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl<'a> FromIterator<(&'a str, Nanos)> for PerCurrency {
    fn from_iter<I: IntoIterator<Item = (&'a str, Nanos)>>(iter: I) -> PerCurrency {
        let mut sums = PerCurrency::default();
        for (currency, amount) in iter {
            sums.add(currency, amount);
        }
        sums
    }
}

/// An amount as a JSON-ready float rounded half away from zero to 1e-5 of its unit, as
/// OpenCost and Backstage Cost Insights carry money: only at that edge, never at rest.
pub fn rounded_1e5(amount: Nanos) -> f64 {
    let hundred_thousandths = (amount.0 * 2 / 10_000 + amount.0.signum()) / 2;
    hundred_thousandths as f64 / 100_000.0
}

impl fmt::Display for Nanos {
    /// The exact value with 9 decimals.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.format(9))
    }
}

impl std::ops::Add for Nanos {
    type Output = Nanos;
    fn add(self, rhs: Nanos) -> Nanos {
        Nanos(self.0 + rhs.0)
    }
}

impl std::ops::AddAssign for Nanos {
    fn add_assign(&mut self, rhs: Nanos) {
        self.0 += rhs.0;
    }
}

impl std::ops::Sub for Nanos {
    type Output = Nanos;
    fn sub(self, rhs: Nanos) -> Nanos {
        Nanos(self.0 - rhs.0)
    }
}

impl std::iter::Sum for Nanos {
    fn sum<I: Iterator<Item = Nanos>>(iter: I) -> Nanos {
        Nanos(iter.map(|n| n.0).sum())
    }
}

/// Parses a plain decimal (`12`, `-0.5`, `+3.25`, `.5`) into an integer scaled by
/// 10^`decimals`, rounding extra digits half away from zero. No exponents, no separators.
pub fn parse_scaled(text: &str, decimals: u32) -> Option<i128> {
    if text.bytes().any(|b| b == b'e' || b == b'E') {
        return None;
    }
    parse_decimal(text.as_bytes(), decimals)
}

/// Parses a decimal with an optional exponent (`12.5`, `-.5`, `1.2E-7`) into an integer
/// scaled by 10^`decimals`, rounding the digits past that half away from zero. Surrounding
/// ASCII whitespace is ignored. No allocation and two passes over the bytes: a billing file
/// has tens of millions of these. `None` when it is not a number or does not fit.
pub fn parse_decimal(text: &[u8], decimals: u32) -> Option<i128> {
    let text = text.trim_ascii();
    let (negative, rest) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exponent) = match rest.iter().position(|&b| b == b'e' || b == b'E') {
        Some(at) => {
            let exponent = std::str::from_utf8(&rest[at + 1..]).ok()?;
            (&rest[..at], exponent.parse::<i32>().ok()?)
        }
        None => (rest, 0),
    };
    let (whole, frac) = match mantissa.iter().position(|&b| b == b'.') {
        Some(at) => (&mantissa[..at], &mantissa[at + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    let digits = whole.len() + frac.len();
    if digits == 0 || !whole.iter().chain(frac).all(u8::is_ascii_digit) {
        return None;
    }
    // value = (all digits as one integer) * 10^shift
    let shift = i64::from(decimals) + i64::from(exponent) - frac.len() as i64;
    // Digits kept; the one after them rounds.
    let keep = if shift >= 0 {
        digits as i64
    } else {
        digits as i64 + shift
    };
    let mut value: i128 = 0;
    let mut round_up = false;
    for (i, &b) in whole.iter().chain(frac).enumerate() {
        let digit = i128::from(b - b'0');
        let i = i as i64;
        if i < keep {
            value = value.checked_mul(10)?.checked_add(digit)?;
        } else {
            round_up = i == keep && digit >= 5;
            break;
        }
    }
    if shift > 0 {
        if value != 0 {
            value = value.checked_mul(10i128.checked_pow(u32::try_from(shift).ok()?)?)?;
        }
    } else if round_up {
        value += 1;
    }
    Some(if negative { -value } else { value })
}

/// A billing amount at 10^-`decimals` units, parsed like [`parse_decimal`] and refused when
/// it is not a number or is larger than one line item may be ([`MAX_LINE_UNITS`]). The error
/// says why, quoting the text.
pub fn parse_line_amount(text: &[u8], decimals: u32) -> Result<i128, AmountError> {
    let shown = || String::from_utf8_lossy(text.trim_ascii()).into_owned();
    let value = parse_decimal(text, decimals).ok_or_else(|| {
        // A number too large even for i128 at this scale is still a number.
        if parse_decimal(text, 0).is_some() || looks_numeric(text) {
            AmountError::TooLarge(shown())
        } else {
            AmountError::NotANumber(shown())
        }
    })?;
    if value.abs() > MAX_LINE_UNITS * 10i128.pow(decimals) {
        return Err(AmountError::TooLarge(shown()));
    }
    Ok(value)
}

/// A billing amount that cannot be one line item's, quoting its text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("`{0}` is not a number")]
    NotANumber(String),
    /// Past [`MAX_LINE_UNITS`].
    #[error("`{0}` is larger than one line item may be (at most 10^15 units of a currency)")]
    TooLarge(String),
}

#[cfg(test)]
fn too_large(shown: &str) -> String {
    AmountError::TooLarge(shown.to_string()).to_string()
}

fn looks_numeric(text: &[u8]) -> bool {
    let text = text.trim_ascii();
    let digits = text
        .strip_prefix(b"-")
        .or(text.strip_prefix(b"+"))
        .unwrap_or(text);
    !digits.is_empty()
        && digits.iter().filter(|b| **b == b'.').count() <= 1
        && digits.iter().all(|b| b.is_ascii_digit() || *b == b'.')
}

/// Splits `total` into parts proportional to `weights` so that the parts sum exactly to
/// `total` (largest-remainder method). Ties go to the earlier index, so the result is
/// deterministic for a given member order. A negative total is split like its absolute value
/// and negated, so no part of a positive total is negative and vice versa.
///
/// Returns `None` when the weights sum to zero (the caller falls back to another method).
pub fn split_largest_remainder(total: Nanos, weights: &[u128]) -> Option<Vec<Nanos>> {
    let weights = scale_down(weights);
    let sum: u128 = weights.iter().sum();
    if sum == 0 {
        return None;
    }
    let magnitude = total.0.unsigned_abs();
    // magnitude * w / sum without overflowing: with magnitude = whole * sum + rest,
    // it is whole * w + rest * w / sum, and rest * w < 2^124.
    let (whole, rest) = (magnitude / sum, magnitude % sum);
    let mut parts: Vec<u128> = Vec::with_capacity(weights.len());
    let mut remainders: Vec<(u128, usize)> = Vec::with_capacity(weights.len());
    for (i, w) in weights.iter().enumerate() {
        let product = rest * w;
        parts.push(whole * w + product / sum);
        remainders.push((product % sum, i));
    }
    let assigned: u128 = parts.iter().sum();
    let leftover =
        usize::try_from(magnitude - assigned).expect("leftover is below the member count");
    // Largest remainder first; on equal remainders the lower index wins.
    remainders.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    for &(_, i) in remainders.iter().take(leftover) {
        parts[i] += 1;
    }
    let sign = if total.0 < 0 { -1 } else { 1 };
    Some(
        parts
            .into_iter()
            .map(|p| Nanos(sign * i128::try_from(p).expect("a part never exceeds the total")))
            .collect(),
    )
}

/// Keeps `remainder * weight` within u128: shifts every weight right by the same number of
/// bits when their sum is above 2^62 (the ratio between weights is kept to 62 bits of precision).
fn scale_down(weights: &[u128]) -> Vec<u128> {
    let sum: u128 = weights.iter().fold(0u128, |acc, w| acc.saturating_add(*w));
    let bits = 128 - sum.leading_zeros();
    if bits <= 62 {
        return weights.to_vec();
    }
    let shift = bits - 62;
    weights.iter().map(|w| w >> shift).collect()
}

/// Divides every value by `divisor` so that the results sum to the exactly rounded
/// (half away from zero) sum of the values: each result is the floor of its quotient, and the
/// units left over go to the largest remainders (ties to the earlier index). Used to bring
/// amounts read at a finer precision down to nano-units without drifting the total.
pub fn round_preserving_sum(values: &[i128], divisor: i128) -> Vec<i128> {
    assert!(divisor > 0, "divisor must be positive");
    let total: i128 = values.iter().sum();
    let half = divisor / 2;
    let target = if total >= 0 {
        (total + half) / divisor
    } else {
        -((-total + half) / divisor)
    };
    let mut parts: Vec<i128> = values.iter().map(|v| v.div_euclid(divisor)).collect();
    let leftover = target - parts.iter().sum::<i128>();
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| {
        values[b]
            .rem_euclid(divisor)
            .cmp(&values[a].rem_euclid(divisor))
            .then(a.cmp(&b))
    });
    for &i in order
        .iter()
        .take(usize::try_from(leftover.max(0)).unwrap_or(0))
    {
        parts[i] += 1;
    }
    parts
}

/// Parts per billion of `part` in `whole` (0 when the whole is zero), for display and audit.
pub fn ratio_ppb(part: Nanos, whole: Nanos) -> i64 {
    if whole.0 == 0 {
        return 0;
    }
    // part and whole are within the store's range (|x| < 2^93), so the product fits.
    let ratio = part.0.saturating_mul(1_000_000_000) / whole.0;
    i64::try_from(ratio).unwrap_or(if ratio < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_sums_exactly_and_breaks_ties_by_order() {
        let parts = split_largest_remainder(Nanos(100), &[1, 1, 1]).expect("weights");
        assert_eq!(parts, vec![Nanos(34), Nanos(33), Nanos(33)]);
        let parts = split_largest_remainder(Nanos(-100), &[1, 1, 1]).expect("weights");
        assert_eq!(parts, vec![Nanos(-34), Nanos(-33), Nanos(-33)]);
        assert!(split_largest_remainder(Nanos(5), &[0, 0]).is_none());
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let parts =
            split_largest_remainder(Nanos(i64::MAX.into()), &[u128::MAX / 4, u128::MAX / 4, 7])
                .expect("weights");
        assert_eq!(parts.iter().copied().sum::<Nanos>(), Nanos(i64::MAX.into()));
        // The largest amount the store holds (9.2e18 units), split 3 ways exactly.
        let total = Nanos(i128::from(i64::MAX) * NANOS_PER_UNIT);
        let parts = split_largest_remainder(total, &[1 << 40, 3 << 40, 3]).expect("w");
        assert_eq!(parts.iter().copied().sum::<Nanos>(), total);
        assert!(parts[0] < parts[1] && parts[2] < parts[0]);
    }

    #[test]
    fn amounts_past_i64_nanos_parse_and_split_exactly() {
        // 15.5e9 IDR: past i64 nano-units (9.2e9 units).
        let month = Nanos::parse("15500000000.123456789").expect("a number");
        assert_eq!(month.to_string(), "15500000000.123456789");
        let parts = split_largest_remainder(month, &[1, 1, 1]).expect("weights");
        assert_eq!(parts.iter().copied().sum::<Nanos>(), month);
        assert_eq!(parts[0].to_string(), "5166666666.707818930");
        assert_eq!(human(month, "IDR", false), "15,500,000,000.12 IDR");
    }

    #[test]
    fn line_amounts_past_the_limit_are_refused_with_the_text() {
        assert_eq!(
            parse_line_amount(b"1000000000000", 11).map_err(|e| e.to_string()),
            Ok(100_000_000_000_000_000_000_000)
        );
        assert_eq!(
            parse_line_amount(b"99999999999999999999", 11).map_err(|e| e.to_string()),
            Err(too_large("99999999999999999999"))
        );
        assert_eq!(
            parse_line_amount(b"-1e16", 11).map_err(|e| e.to_string()),
            Err(too_large("-1e16"))
        );
        assert_eq!(
            parse_line_amount(b"99999999999999999999999999999999999999", 11)
                .map_err(|e| e.to_string()),
            Err(too_large("99999999999999999999999999999999999999"))
        );
        assert_eq!(
            parse_line_amount(b"12x", 11).map_err(|e| e.to_string()),
            Err("`12x` is not a number".to_string())
        );
        assert_eq!(
            parse_line_amount(b"1.2.3", 11).map_err(|e| e.to_string()),
            Err("`1.2.3` is not a number".to_string())
        );
    }

    #[test]
    fn rounding_to_a_coarser_unit_keeps_the_exact_total() {
        // 10 values of 0.5 units each: naive rounding gives 10, the exact total is 5.
        let parts = round_preserving_sum(&[50; 10], 100);
        assert_eq!(parts.iter().sum::<i128>(), 5);
        let parts = round_preserving_sum(&[-150, 49, 1], 100);
        assert_eq!(parts.iter().sum::<i128>(), -1);
        assert_eq!(round_preserving_sum(&[], 100), Vec::<i128>::new());
    }

    #[test]
    fn human_amounts_have_separators_and_signs() {
        assert_eq!(
            human(Nanos(1_234_567_500_000_000), "USD", false),
            "$1,234,567.50"
        );
        assert_eq!(human(Nanos(-5_000_000_000), "EUR", true), "-5.00 EUR");
        assert_eq!(human(Nanos(812_400_000_000), "USD", true), "+$812.40");
    }

    #[test]
    fn parse_and_format_round_trip() {
        assert_eq!(Nanos::parse("0.00000080000"), Some(Nanos(800)));
        assert_eq!(Nanos::parse("-1.5"), Some(Nanos(-1_500_000_000)));
        assert_eq!(Nanos::parse("0.0000000015"), Some(Nanos(2)));
        assert_eq!(Nanos::parse("abc"), None);
        assert_eq!(Nanos::parse("."), None);
        assert_eq!(Nanos(-1_500_000_000).format(2), "-1.50");
        assert_eq!(Nanos(4_999_999).format(2), "0.00");
        assert_eq!(Nanos(5_000_000).format(2), "0.01");
        assert_eq!(Nanos(-4_000_000).format(2), "0.00");
        assert_eq!(Nanos(1).to_string(), "0.000000001");
    }

    #[test]
    fn decimals_parse_exactly_with_exponents_and_rounding() {
        let p = |s: &str| parse_decimal(s.as_bytes(), 11);
        assert_eq!(p("12.5"), Some(1_250_000_000_000));
        assert_eq!(p(" -0.5 "), Some(-50_000_000_000));
        assert_eq!(p("+.5"), Some(50_000_000_000));
        assert_eq!(p("5."), Some(500_000_000_000));
        assert_eq!(p("0.000000000015"), Some(2));
        assert_eq!(p("-0.000000000015"), Some(-2));
        assert_eq!(p("0.000000000014999"), Some(1));
        assert_eq!(p("1.2E-7"), Some(12_000));
        assert_eq!(p("-3e2"), Some(-30_000_000_000_000));
        assert_eq!(p("1e-40"), Some(0));
        assert_eq!(p("0e400"), Some(0));
        assert_eq!(p("1e400"), None);
        assert_eq!(p("99999999999999999999999999999999999999"), None);
        for bad in ["", ".", "-", "abc", "1.2.3", "12.5x", "1e", "1,5", "- 1"] {
            assert_eq!(p(bad), None, "{bad:?}");
        }
        assert_eq!(parse_scaled("1e3", 2), None, "plain decimals only");
    }
}
