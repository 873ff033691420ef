//! What a probe returns, shared by the source kinds.

/// The largest usage value a sample may hold: far above any real measurement (bytes of
/// the largest database, messages of a year) and far inside what a weight can carry
/// (weights are integers of 1e-6 units up to about 3.4e32), so a larger value is a broken
/// probe, refused where it is measured instead of read back as a zero weight.
pub const MAX_SAMPLE: f64 = 1e24;

/// What a probe measured: (member, exact non-negative decimal value), plus notes on how
/// (a key budget reached, values refused).
#[derive(Debug, Default)]
pub(super) struct Measured {
    pub members: Vec<(String, String)>,
    pub notes: Vec<String>,
}

/// A non-negative decimal for a sample: whole numbers as they are, others with at most six
/// decimals (the precision of weights). `None` for NaN, infinities, negative values and
/// values above [`MAX_SAMPLE`].
pub(super) fn decimal_value(value: f64) -> Option<String> {
    if !value.is_finite() || !(0.0..=MAX_SAMPLE).contains(&value) {
        return None;
    }
    if value.fract() == 0.0 && value < 1e15 {
        return Some(format!("{value:.0}"));
    }
    let text = format!("{value:.6}");
    Some(text.trim_end_matches('0').trim_end_matches('.').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_exact_decimals() {
        assert_eq!(decimal_value(1234.0).as_deref(), Some("1234"));
        assert_eq!(decimal_value(0.25).as_deref(), Some("0.25"));
        assert_eq!(decimal_value(1.0e16).as_deref(), Some("10000000000000000"));
        assert_eq!(decimal_value(f64::NAN), None);
        assert_eq!(decimal_value(-1.0), None);
        // Past what a weight can carry (read back as 0 before): refused at measurement.
        assert_eq!(decimal_value(3.5e32), None);
        assert_eq!(
            decimal_value(1.0e20).as_deref(),
            Some("100000000000000000000")
        );
    }
}
