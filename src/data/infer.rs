//! Schema inference for text data (CSV): the narrowest type every sampled
//! value of a column parses as.

use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};

/// What a column's sampled values have shown so far, narrowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inferred {
    /// Only nulls seen.
    Null,
    /// `true` / `false`.
    Boolean,
    /// Whole numbers that fit in 64 bits.
    Integer,
    /// Decimal or scientific numbers.
    Float,
    /// `YYYY-MM-DD`.
    Date,
    /// ISO-8601 date and time without an offset.
    Timestamp,
    /// ISO-8601 date and time with an offset (`Z`, `+02:00`).
    TimestampTz,
    /// Anything else.
    Text,
}

impl Inferred {
    /// The narrowest kind `value` parses as.
    pub fn of(value: &str) -> Inferred {
        let v = value.trim();
        if v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false") {
            return Inferred::Boolean;
        }
        let first = v.as_bytes().first().copied().unwrap_or(b'x');
        let numeric_start = first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.');
        if numeric_start && v.bytes().any(|b| b.is_ascii_digit()) {
            if v.parse::<i64>().is_ok() {
                return Inferred::Integer;
            }
            if v.parse::<f64>().is_ok() {
                return Inferred::Float;
            }
        }
        if v.len() == 10 && NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok() {
            return Inferred::Date;
        }
        if v.len() >= 16 && v.as_bytes().get(4) == Some(&b'-') {
            if fraction_digits(v) > 6 {
                // Finer than the microseconds a timestamp column holds.
                return Inferred::Text;
            }
            if DateTime::parse_from_rfc3339(v).is_ok()
                || DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%#z").is_ok()
            {
                return Inferred::TimestampTz;
            }
            for fmt in [
                "%Y-%m-%dT%H:%M:%S%.f",
                "%Y-%m-%d %H:%M:%S%.f",
                "%Y-%m-%dT%H:%M",
                "%Y-%m-%d %H:%M",
            ] {
                if NaiveDateTime::parse_from_str(v, fmt).is_ok() {
                    return Inferred::Timestamp;
                }
            }
        }
        Inferred::Text
    }

    /// The narrowest kind that holds both `self` and `other`.
    pub fn merge(self, other: Inferred) -> Inferred {
        use Inferred::*;
        match (self, other) {
            (a, b) if a == b => a,
            (Null, x) | (x, Null) => x,
            (Integer, Float) | (Float, Integer) => Float,
            (Date, Timestamp) | (Timestamp, Date) => Timestamp,
            (Date | Timestamp, TimestampTz) | (TimestampTz, Date | Timestamp) => TimestampTz,
            _ => Text,
        }
    }

    /// The kind whose [`Inferred::data_type`] is `data_type`, if any.
    pub fn of_type(data_type: &DataType) -> Option<Inferred> {
        match data_type {
            DataType::Boolean => Some(Inferred::Boolean),
            DataType::Int64 => Some(Inferred::Integer),
            DataType::Float64 => Some(Inferred::Float),
            DataType::Date32 => Some(Inferred::Date),
            DataType::Timestamp(TimeUnit::Microsecond, None) => Some(Inferred::Timestamp),
            DataType::Timestamp(TimeUnit::Microsecond, Some(_)) => Some(Inferred::TimestampTz),
            _ => None,
        }
    }

    /// Whether a column of this kind holds `value` without widening. For
    /// dates only the shape is checked (`2024-02-30` is one): the
    /// conversion that follows rejects what is no day.
    pub fn holds(self, value: &str) -> bool {
        let v = value.trim();
        match self {
            Inferred::Boolean => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
            Inferred::Date => is_date_shaped(v),
            _ => self.merge(Inferred::of(value)) == self,
        }
    }

    /// The Arrow type for this kind. Null-only columns become text.
    pub fn data_type(self) -> DataType {
        match self {
            Inferred::Boolean => DataType::Boolean,
            Inferred::Integer => DataType::Int64,
            Inferred::Float => DataType::Float64,
            Inferred::Date => DataType::Date32,
            Inferred::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            Inferred::TimestampTz => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            Inferred::Null | Inferred::Text => DataType::Utf8,
        }
    }
}

/// Whether `v` looks like `YYYY-MM-DD`.
fn is_date_shaped(v: &str) -> bool {
    v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// How many digits a timestamp's fraction of a second has.
fn fraction_digits(timestamp: &str) -> usize {
    let time = timestamp.get(10..).unwrap_or("");
    match time.split_once('.') {
        Some((_, fraction)) => fraction.bytes().take_while(u8::is_ascii_digit).count(),
        None => 0,
    }
}

/// Accumulates samples column by column, then yields a schema.
#[derive(Debug)]
pub struct SchemaInference {
    names: Vec<String>,
    kinds: Vec<Inferred>,
}

impl SchemaInference {
    /// Starts inference for columns `names`.
    pub fn new(names: Vec<String>) -> Self {
        let kinds = vec![Inferred::Null; names.len()];
        SchemaInference { names, kinds }
    }

    /// Adds one row's values; `None` is a null.
    pub fn observe<'a>(&mut self, values: impl IntoIterator<Item = Option<&'a str>>) {
        for (kind, value) in self.kinds.iter_mut().zip(values) {
            if let Some(v) = value
                && *kind != Inferred::Text
            {
                *kind = kind.merge(Inferred::of(v));
            }
        }
    }

    /// The inferred schema; every column is nullable.
    pub fn schema(&self) -> Schema {
        let fields: Vec<Field> = self
            .names
            .iter()
            .zip(&self.kinds)
            .map(|(name, kind)| Field::new(name, kind.data_type(), true))
            .collect();
        Schema::new(fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_values() {
        assert_eq!(Inferred::of("42"), Inferred::Integer);
        assert_eq!(Inferred::of("-4.5e3"), Inferred::Float);
        assert_eq!(Inferred::of("TRUE"), Inferred::Boolean);
        assert_eq!(Inferred::of("2024-02-29"), Inferred::Date);
        assert_eq!(Inferred::of("2024-02-29 10:11:12"), Inferred::Timestamp);
        assert_eq!(
            Inferred::of("2024-02-29T10:11:12.5Z"),
            Inferred::TimestampTz
        );
        assert_eq!(Inferred::of("nan"), Inferred::Text);
        assert_eq!(
            Inferred::of("2024-02-29 10:11:12.123456"),
            Inferred::Timestamp
        );
        assert_eq!(
            Inferred::of("2024-02-29T10:11:12.123456789Z"),
            Inferred::Text,
            "nanoseconds would be cut to microseconds"
        );
        assert_eq!(Inferred::of("2024-02-30"), Inferred::Text);
    }

    #[test]
    fn a_kind_holds_only_values_that_do_not_widen_it() {
        assert!(Inferred::Timestamp.holds("2024-02-29"));
        assert!(!Inferred::Date.holds("2024-02-29 10:11:12"));
        assert!(!Inferred::Date.holds("2024-2-29"));
        assert!(Inferred::Boolean.holds("FALSE"));
        assert!(!Inferred::Boolean.holds("1"));
        assert!(Inferred::Float.holds("1"));
        assert_eq!(Inferred::of_type(&DataType::Date32), Some(Inferred::Date));
        assert_eq!(Inferred::of_type(&DataType::Utf8), None);
    }

    #[test]
    fn widens_across_rows() {
        let mut inf = SchemaInference::new(vec!["a".into(), "b".into(), "c".into()]);
        inf.observe([Some("1"), Some("x"), None]);
        inf.observe([Some("1.5"), Some("2"), None]);
        let schema = inf.schema();
        assert_eq!(schema.field(0).data_type(), &DataType::Float64);
        assert_eq!(schema.field(1).data_type(), &DataType::Utf8);
        assert_eq!(schema.field(2).data_type(), &DataType::Utf8);
    }
}
