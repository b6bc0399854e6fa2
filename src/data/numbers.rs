//! Numbers read as text, converted exactly. A value that a column's type
//! cannot hold as it is (2.5 in an integer column, 9007199254740993 in a
//! double) is never rounded or truncated: the caller widens the column or
//! rejects the row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float32Array, Float64Array, Int64Array, StringArray, UInt64Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;

use crate::core::error::{Error, Result};

/// The largest integer every smaller one of which a double holds exactly.
const F64_EXACT_INT: i128 = 1 << 53;

/// What became of a text column converted to a numeric type.
pub enum Exact {
    /// Every value fits exactly.
    Fits(ArrayRef),
    /// These rows hold values the type cannot hold exactly.
    Misfits(Vec<usize>),
}

/// Converts `text` to `target` if every value fits exactly.
pub fn exact(text: &StringArray, target: &DataType) -> Exact {
    let mut misfits = Vec::new();
    let array = convert(text, target, &mut misfits);
    match array {
        Some(array) if misfits.is_empty() => Exact::Fits(array),
        _ => Exact::Misfits(misfits),
    }
}

/// Converts `text` to `target`, the values that do not fit exactly as nulls.
pub fn exact_or_null(text: &StringArray, target: &DataType) -> Result<ArrayRef> {
    let mut misfits = Vec::new();
    convert(text, target, &mut misfits)
        .ok_or_else(|| Error::Config(format!("{target} is not a numeric type")))
}

/// Converts `text` to the numeric `target`: the array (values that do not
/// fit exactly are null in it) and the rows holding them; `None` when
/// `target` is not numeric.
pub fn convert_exact(text: &StringArray, target: &DataType) -> Option<(ArrayRef, Vec<usize>)> {
    let mut misfits = Vec::new();
    convert(text, target, &mut misfits).map(|array| (array, misfits))
}

/// The narrowest type wider than an integer that holds every value of
/// `text` exactly: a double when every value is one exactly, else text,
/// which keeps each value as the source wrote it.
pub fn widest(text: &StringArray) -> Result<(DataType, ArrayRef)> {
    let mut misfits = Vec::new();
    if let Some(array) = convert(text, &DataType::Float64, &mut misfits)
        && misfits.is_empty()
    {
        return Ok((DataType::Float64, array));
    }
    Ok((DataType::Utf8, Arc::new(text.clone())))
}

fn convert(text: &StringArray, target: &DataType, misfits: &mut Vec<usize>) -> Option<ArrayRef> {
    let array: ArrayRef = match target {
        DataType::Float64 => Arc::new(
            (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    let value = exact_f64(text.value(i));
                    if value.is_none() {
                        misfits.push(i);
                    }
                    value
                })
                .collect::<Float64Array>(),
        ),
        DataType::Float32 => Arc::new(
            (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    let value = exact_f32(text.value(i));
                    if value.is_none() {
                        misfits.push(i);
                    }
                    value
                })
                .collect::<Float32Array>(),
        ),
        DataType::UInt64 => Arc::new(
            (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    let value = integer(text.value(i)).and_then(|v| u64::try_from(v).ok());
                    if value.is_none() {
                        misfits.push(i);
                    }
                    value
                })
                .collect::<UInt64Array>(),
        ),
        t if t.is_integer() => {
            let wide: Int64Array = (0..text.len())
                .map(|i| {
                    if text.is_null(i) {
                        return None;
                    }
                    let value = exact_i64(text.value(i));
                    if value.is_none() {
                        misfits.push(i);
                    }
                    value
                })
                .collect();
            if t == &DataType::Int64 {
                Arc::new(wide)
            } else {
                // Narrower integers: out of range becomes null, and a misfit.
                let narrow = cast_with_options(&wide, t, &CastOptions::default()).ok()?;
                for i in 0..wide.len() {
                    if wide.is_valid(i) && narrow.is_null(i) {
                        misfits.push(i);
                    }
                }
                narrow
            }
        }
        _ => return None,
    };
    misfits.sort_unstable();
    misfits.dedup();
    Some(array)
}

/// `text` as a 64-bit integer, if it is one written as one, in range.
pub fn exact_i64(text: &str) -> Option<i64> {
    integer(text).and_then(|v| i64::try_from(v).ok())
}

/// An integer written as one (`-12`, not `1e3` or `12.0`). Works on bytes:
/// it runs for every number a file holds.
fn integer(text: &str) -> Option<i128> {
    let (negative, digits) = match text.as_bytes() {
        [b'-', digits @ ..] => (true, digits),
        digits => (false, digits),
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() > 38 {
        // Near i128's limits: let the standard parser check the range.
        return digits
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| text.parse().ok())
            .flatten();
    }
    let value = if digits.len() <= 19 {
        // 19 digits always fit 64 bits: no overflow to check.
        let mut value: u64 = 0;
        for &b in digits {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 + u64::from(digit);
        }
        i128::from(value)
    } else {
        // 38 digits always fit: no overflow to check.
        let mut value: u128 = 0;
        for &b in digits {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 + u128::from(digit);
        }
        i128::try_from(value).ok()?
    };
    Some(if negative { -value } else { value })
}

/// How many digits the mantissa of a decimal number's text holds, leading
/// zeros included: at least as many as its significant digits.
fn mantissa_digits(text: &str) -> usize {
    text.bytes()
        .take_while(|b| !matches!(b, b'e' | b'E'))
        .filter(u8::is_ascii_digit)
        .count()
}

/// The significant digits of a decimal number's text, without sign, point,
/// exponent, or leading and trailing zeros: `-0.0120e5` -> `12`.
fn significant(text: &str) -> String {
    let mantissa = text
        .trim_start_matches(['-', '+'])
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string()
}

/// `text` as a double, if the double is exactly the number written.
pub fn exact_f64(text: &str) -> Option<f64> {
    if let Some(i) = integer(text) {
        return (i.abs() <= F64_EXACT_INT).then_some(i as f64);
    }
    let value: f64 = text.parse().ok()?;
    if !value.is_finite() || !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    // Up to 15 significant digits always survive a double's round trip.
    if mantissa_digits(text) <= 15 {
        return Some(value);
    }
    let written = significant(text);
    if written.len() <= 15 {
        return Some(value);
    }
    (significant(ryu::Buffer::new().format_finite(value)) == written).then_some(value)
}

/// `text` as a float, if the float is exactly the number written.
fn exact_f32(text: &str) -> Option<f32> {
    let value: f32 = text.parse().ok()?;
    if !value.is_finite() || !text.bytes().any(|b| b.is_ascii_digit()) {
        return None;
    }
    (significant(ryu::Buffer::new().format_finite(value)) == significant(text)).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(values: &[Option<&str>]) -> StringArray {
        values.iter().copied().collect()
    }

    #[test]
    fn integers_fit_only_when_written_as_integers_in_range() {
        let Exact::Misfits(rows) = exact(
            &text(&[Some("1"), Some("2.5"), None, Some("-7.9")]),
            &DataType::Int64,
        ) else {
            panic!("2.5 is not an integer");
        };
        assert_eq!(rows, [1, 3]);
        assert!(matches!(
            exact(&text(&[Some("300")]), &DataType::Int8),
            Exact::Misfits(_)
        ));
        assert!(matches!(
            exact(&text(&[Some("-3"), None]), &DataType::Int32),
            Exact::Fits(_)
        ));
    }

    #[test]
    fn doubles_hold_only_what_they_hold_exactly() {
        assert_eq!(exact_f64("2.5"), Some(2.5));
        assert_eq!(exact_f64("0.1"), Some(0.1));
        assert_eq!(exact_f64("1e3"), Some(1000.0));
        assert_eq!(exact_f64("9007199254740992"), Some(9_007_199_254_740_992.0));
        assert_eq!(exact_f64("9007199254740993"), None, "2^53 + 1 is no double");
        assert_eq!(exact_f64("0.10000000000000000001"), None);
        assert_eq!(exact_f64("1.7976931348623157e308"), Some(f64::MAX));
        assert_eq!(exact_f64("1e400"), None);
        assert_eq!(exact_f64("NaN"), None);
        assert_eq!(exact_f64("abc"), None);
        assert_eq!(exact_f64("0.000000000000000000001"), Some(1e-21));
        assert_eq!(exact_f64("-0.5"), Some(-0.5));
    }

    #[test]
    fn integers_parse_to_the_value_written() {
        assert_eq!(integer("-12"), Some(-12));
        assert_eq!(integer("007"), Some(7));
        assert_eq!(
            integer("170141183460469231731687303715884105727"),
            Some(i128::MAX)
        );
        assert_eq!(integer("170141183460469231731687303715884105728"), None);
        assert_eq!(
            integer("-99999999999999999999999999999999999999"),
            Some(-99_999_999_999_999_999_999_999_999_999_999_999_999)
        );
        assert_eq!(integer("1e3"), None);
        assert_eq!(integer("+1"), None);
        assert_eq!(integer("-"), None);
    }

    #[test]
    fn widening_picks_double_when_exact_and_text_otherwise() {
        let (t, _) = widest(&text(&[Some("1"), Some("2.5")])).expect("widens");
        assert_eq!(t, DataType::Float64);
        let (t, a) = widest(&text(&[Some("9007199254740993"), Some("2.5")])).expect("widens");
        assert_eq!(t, DataType::Utf8);
        let a = a.as_any().downcast_ref::<StringArray>().expect("text");
        assert_eq!(a.value(0), "9007199254740993", "kept as written");
    }
}
