//! Arrow batches encoded in Postgres's binary COPY format, column by column
//! from the Arrow buffers, with no per-value boxing.

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Date32Type, Decimal128Type, Float32Type, Float64Type, Int16Type, Int32Type,
    Int64Type, IntervalMonthDayNanoType, IntervalUnit, Time64MicrosecondType, TimeUnit,
    TimestampMicrosecondType,
};
use arrow::record_batch::RecordBatch;
use bytes::{BufMut, BytesMut};

use crate::core::error::{Error, Result};

/// Days from 1970-01-01 (Arrow's epoch) to 2000-01-01 (Postgres's).
const PG_EPOCH_DAYS: i32 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// The COPY header: signature, flags, header extension length.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// The COPY trailer.
pub const TRAILER: &[u8] = &[0xff, 0xff];

/// The Postgres type that stores `dt`, and the Arrow type its values are
/// encoded from (after a cast).
pub fn pg_type(dt: &DataType) -> (String, DataType) {
    match dt {
        DataType::Boolean => ("boolean".into(), DataType::Boolean),
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ("smallint".into(), DataType::Int16),
        DataType::Int32 | DataType::UInt16 => ("integer".into(), DataType::Int32),
        DataType::Int64 | DataType::UInt32 => ("bigint".into(), DataType::Int64),
        DataType::UInt64 => ("numeric(20,0)".into(), DataType::Decimal128(20, 0)),
        DataType::Float16 | DataType::Float32 => ("real".into(), DataType::Float32),
        DataType::Float64 => ("double precision".into(), DataType::Float64),
        DataType::Decimal128(p, s) | DataType::Decimal64(p, s) | DataType::Decimal32(p, s) => {
            (format!("numeric({p},{s})"), DataType::Decimal128(*p, *s))
        }
        DataType::Binary
        | DataType::LargeBinary
        | DataType::BinaryView
        | DataType::FixedSizeBinary(_) => ("bytea".into(), DataType::Binary),
        DataType::Date32 | DataType::Date64 => ("date".into(), DataType::Date32),
        DataType::Time32(_) | DataType::Time64(_) => {
            ("time".into(), DataType::Time64(TimeUnit::Microsecond))
        }
        DataType::Timestamp(_, None) => (
            "timestamp".into(),
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ),
        DataType::Timestamp(_, Some(_)) => (
            "timestamptz".into(),
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        DataType::Interval(_) | DataType::Duration(_) => (
            "interval".into(),
            DataType::Interval(IntervalUnit::MonthDayNano),
        ),
        _ => ("text".into(), DataType::Utf8),
    }
}

/// Encodes `batch` as COPY tuples (without header and trailer) into `out`.
pub fn encode(batch: &RecordBatch, out: &mut BytesMut) -> Result<()> {
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|c| {
            let (_, target) = pg_type(c.data_type());
            if c.data_type().is_nested() {
                // Structs, lists and maps are stored as JSON text.
                crate::data::conform::nested_as_json(c)
            } else if c.data_type() == &target {
                Ok(c.clone())
            } else {
                cast(c, &target).map_err(|e| Error::arrow("preparing a COPY", e))
            }
        })
        .collect::<Result<_>>()?;
    let width = i16::try_from(columns.len())
        .map_err(|_| Error::Other("too many columns for COPY".into()))?;
    for row in 0..batch.num_rows() {
        out.put_i16(width);
        for column in &columns {
            encode_value(column, row, out)?;
        }
    }
    Ok(())
}

fn encode_value(column: &ArrayRef, row: usize, out: &mut BytesMut) -> Result<()> {
    if column.is_null(row) {
        out.put_i32(-1);
        return Ok(());
    }
    match column.data_type() {
        DataType::Boolean => {
            out.put_i32(1);
            out.put_u8(u8::from(column.as_boolean().value(row)));
        }
        DataType::Int16 => {
            out.put_i32(2);
            out.put_i16(column.as_primitive::<Int16Type>().value(row));
        }
        DataType::Int32 => {
            out.put_i32(4);
            out.put_i32(column.as_primitive::<Int32Type>().value(row));
        }
        DataType::Int64 => {
            out.put_i32(8);
            out.put_i64(column.as_primitive::<Int64Type>().value(row));
        }
        DataType::Float32 => {
            out.put_i32(4);
            out.put_f32(column.as_primitive::<Float32Type>().value(row));
        }
        DataType::Float64 => {
            out.put_i32(8);
            out.put_f64(column.as_primitive::<Float64Type>().value(row));
        }
        DataType::Decimal128(_, scale) => {
            let value = column.as_primitive::<Decimal128Type>().value(row);
            put_numeric(value, *scale, out);
        }
        DataType::Utf8 => put_bytes(column.as_string::<i32>().value(row).as_bytes(), out),
        DataType::Binary => put_bytes(column.as_binary::<i32>().value(row), out),
        DataType::Date32 => {
            out.put_i32(4);
            out.put_i32(column.as_primitive::<Date32Type>().value(row) - PG_EPOCH_DAYS);
        }
        DataType::Time64(_) => {
            out.put_i32(8);
            out.put_i64(column.as_primitive::<Time64MicrosecondType>().value(row));
        }
        DataType::Timestamp(..) => {
            out.put_i32(8);
            out.put_i64(
                column.as_primitive::<TimestampMicrosecondType>().value(row) - PG_EPOCH_MICROS,
            );
        }
        DataType::Interval(_) => {
            let v = column.as_primitive::<IntervalMonthDayNanoType>().value(row);
            out.put_i32(16);
            out.put_i64(v.nanoseconds / 1000);
            out.put_i32(v.days);
            out.put_i32(v.months);
        }
        other => return Err(Error::Other(format!("cannot COPY values of type {other}"))),
    }
    Ok(())
}

fn put_bytes(bytes: &[u8], out: &mut BytesMut) {
    out.put_i32(bytes.len() as i32);
    out.put_slice(bytes);
}

/// A scaled integer as Postgres `numeric`: base-10000 digits around the point.
fn put_numeric(value: i128, scale: i8, out: &mut BytesMut) {
    let negative = value < 0;
    let digits = value.unsigned_abs().to_string();
    let scale = scale.max(0) as usize;
    let (int_part, frac_part) = if digits.len() > scale {
        (
            digits[..digits.len() - scale].to_string(),
            digits[digits.len() - scale..].to_string(),
        )
    } else {
        (String::new(), format!("{digits:0>scale$}"))
    };
    // Integer part, grouped by 4 from the right; fraction by 4 from the left.
    let int_padded = format!("{}{int_part}", "0".repeat((4 - int_part.len() % 4) % 4));
    let frac_padded = format!("{frac_part}{}", "0".repeat((4 - frac_part.len() % 4) % 4));
    let mut groups: Vec<i16> = int_padded
        .as_bytes()
        .chunks(4)
        .chain(frac_padded.as_bytes().chunks(4))
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    let mut weight = (int_padded.len() / 4) as i16 - 1;
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    out.put_i32(8 + 2 * groups.len() as i32);
    out.put_i16(groups.len() as i16);
    out.put_i16(weight);
    out.put_u16(if negative { 0x4000 } else { 0 });
    out.put_u16(scale as u16);
    for g in groups {
        out.put_i16(g);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(value: i128, scale: i8) -> Vec<i16> {
        let mut out = BytesMut::new();
        put_numeric(value, scale, &mut out);
        out[4..]
            .chunks(2)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    #[test]
    fn numerics_encode_in_base_10000() {
        // 12345.678: digits [1, 2345, 6780], weight 1, scale 3
        assert_eq!(numeric(12_345_678, 3), [3, 1, 0, 3, 1, 2345, 6780]);
        assert_eq!(numeric(-5, 2), [1, -1, 0x4000, 2, 500]);
        assert_eq!(numeric(0, 2), [0, 0, 0, 2]);
        assert_eq!(numeric(10_000, 0), [1, 1, 0, 0, 1]);
    }
}
