//! Money: decimals from Arrow, rounding to the currency's smallest unit, and
//! splitting a rounded total over lines so that the lines add up to it
//! exactly (largest remainder).

use rust_decimal::{Decimal, RoundingStrategy};

/// Digits after the decimal point of a currency's smallest unit (ISO 4217).
pub fn minor_units(currency: &str) -> u32 {
    match currency.to_ascii_uppercase().as_str() {
        "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX"
        | "UYI" | "VND" | "VUV" | "XAF" | "XOF" | "XPF" => 0,
        "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
        _ => 2,
    }
}

/// An Arrow `Decimal128` value as a [`Decimal`]. Digits beyond what a
/// `Decimal` holds (28) are rounded away from the far end of the scale,
/// which for money at scale 18 is far below the smallest unit.
pub fn from_i128(mut v: i128, mut scale: u32) -> Decimal {
    const MAX: i128 = 79_228_162_514_264_337_593_543_950_335; // 2^96 - 1
    while (!(-MAX..=MAX).contains(&v) || scale > 28) && scale > 0 {
        v = (v + v.signum() * 5) / 10;
        scale -= 1;
    }
    Decimal::try_from_i128_with_scale(v, scale).unwrap_or(Decimal::MAX)
}

/// `v` as text with exactly `dp` decimal places, such as `20000.00`.
pub fn show(v: Decimal, dp: u32) -> String {
    format!("{:.*}", dp as usize, round(v, dp))
}

/// `v` rounded half away from zero to `dp` places.
pub fn round(v: Decimal, dp: u32) -> Decimal {
    v.round_dp_with_strategy(dp, RoundingStrategy::MidpointAwayFromZero)
}

/// Rounds each line to `dp` places so that the rounded lines add up to
/// `total` exactly (largest remainder: each line is rounded down, then the
/// units still missing go to the lines with the largest remainders, ties to
/// the earlier line). `total` is normally `round(sum of lines)`.
pub fn allocate(lines: &[Decimal], total: Decimal, dp: u32) -> Vec<Decimal> {
    let unit = Decimal::new(1, dp);
    let floors: Vec<Decimal> = lines
        .iter()
        .map(|x| x.round_dp_with_strategy(dp, RoundingStrategy::ToNegativeInfinity))
        .collect();
    let mut out = floors.clone();
    let missing = total - floors.iter().sum::<Decimal>();
    let mut units = (missing / unit).trunc();
    if units <= Decimal::ZERO || lines.is_empty() {
        return out;
    }
    let mut order: Vec<usize> = (0..lines.len()).collect();
    order.sort_by(|&a, &b| {
        (lines[b] - floors[b])
            .cmp(&(lines[a] - floors[a]))
            .then(a.cmp(&b))
    });
    // More units than lines only if `total` is not the sum's rounding;
    // hand them out round after round.
    while units > Decimal::ZERO {
        for &i in &order {
            if units <= Decimal::ZERO {
                break;
            }
            out[i] += unit;
            units -= Decimal::ONE;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    #[test]
    fn thirds_add_up() {
        let lines = vec![d("0.333333"), d("0.333333"), d("0.333334")];
        let total = round(lines.iter().sum(), 2);
        let got = allocate(&lines, total, 2);
        assert_eq!(got, vec![d("0.33"), d("0.33"), d("0.34")]);
        assert_eq!(got.iter().sum::<Decimal>(), d("1.00"));
    }

    #[test]
    fn arrow_decimals_convert() {
        assert_eq!(from_i128(1_500_000_000_000_000_000, 18), d("1.5"));
        // More than 28 digits: rounded at the far end.
        let big = from_i128(123_456_789_012_345_678_901_234_567_890_123, 18);
        assert_eq!(round(big, 2), d("123456789012345.68"));
        assert_eq!(minor_units("JPY"), 0);
        assert_eq!(minor_units("usd"), 2);
    }

    proptest! {
        #[test]
        fn lines_always_add_up_to_the_rounded_total(
            xs in proptest::collection::vec(0i64..10_000_000_000, 0..40),
            dp in 0u32..4,
        ) {
            let lines: Vec<Decimal> = xs.iter().map(|x| Decimal::new(*x, 6)).collect();
            let total = round(lines.iter().sum(), dp);
            let got = allocate(&lines, total, dp);
            prop_assert_eq!(got.iter().sum::<Decimal>(), total);
            for (g, x) in got.iter().zip(&lines) {
                prop_assert!((*g - *x).abs() < Decimal::new(1, dp));
            }
        }
    }
}
