//! PostgreSQL's binary COPY format, read straight into Arrow builders.
//!
//! `COPY ... TO STDOUT (FORMAT binary)` sends a header, then one tuple per
//! row: a 16-bit field count and, per field, a 32-bit length (-1 for NULL)
//! followed by the value in its type's binary "send" form, then a trailer
//! (a field count of -1). [`CopyReader`] splits the byte stream into rows,
//! borrowing the network buffers where a row lies whole in one, and
//! [`append_row`] decodes each field into its column's Arrow builder. No
//! value of a scalar type is allocated on the way.

use arrow::datatypes::IntervalMonthDayNano;
use tokio_postgres::types::{FromSql, Type};

use super::{Column, Decode};
use crate::data::builders::{BatchBuilder, ColumnBuilder, Value};

/// The 11 bytes every binary COPY stream starts with.
const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Days from the Unix epoch to Postgres's epoch, 2000-01-01.
const PG_EPOCH_DAYS: i32 = 10_957;

/// Microseconds from the Unix epoch to Postgres's epoch.
const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS as i64 * 86_400_000_000;

/// One row's fields: where each starts in the row's bytes, and its length
/// (-1 for NULL).
pub(super) struct Row<'a> {
    data: &'a [u8],
    fields: &'a [(usize, i32)],
}

impl<'a> Row<'a> {
    /// Field `i`'s bytes, `None` for NULL.
    fn get(&self, i: usize) -> Option<&'a [u8]> {
        let (start, len) = *self.fields.get(i)?;
        let len = usize::try_from(len).ok()?;
        self.data.get(start..start + len)
    }
}

/// Splits a binary COPY byte stream, fed in arbitrary chunks, into rows.
#[derive(Default)]
pub(super) struct CopyReader {
    /// Bytes of an incomplete header or row, waiting for the next chunk.
    pending: Vec<u8>,
    header_read: bool,
    ended: bool,
    fields: Vec<(usize, i32)>,
}

impl CopyReader {
    /// Feeds the next chunk, calling `row` for every row it completes.
    pub fn feed(
        &mut self,
        chunk: &[u8],
        mut row: impl FnMut(&Row<'_>) -> std::result::Result<(), String>,
    ) -> std::result::Result<(), String> {
        if self.pending.is_empty() {
            let used = self.parse(chunk, &mut row)?;
            self.pending.extend_from_slice(&chunk[used..]);
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let used = self.parse(&pending, &mut row)?;
            pending.drain(..used);
            self.pending = pending;
        }
        Ok(())
    }

    /// Checks that the stream ended with its trailer and nothing after it.
    pub fn finish(&self) -> std::result::Result<(), String> {
        if !self.ended {
            return Err("the COPY stream ended in the middle of a row".into());
        }
        if !self.pending.is_empty() {
            return Err("unexpected bytes after the end of the COPY stream".into());
        }
        Ok(())
    }

    /// Parses whole rows from `data`; returns how many bytes were used.
    fn parse(
        &mut self,
        data: &[u8],
        row: &mut impl FnMut(&Row<'_>) -> std::result::Result<(), String>,
    ) -> std::result::Result<usize, String> {
        let mut at = 0;
        if !self.header_read {
            match header_len(data)? {
                Some(len) => {
                    at = len;
                    self.header_read = true;
                }
                None => return Ok(0),
            }
        }
        while !self.ended {
            let Some(count) = read_i16(data, at) else {
                break;
            };
            if count == -1 {
                self.ended = true;
                at += 2;
                break;
            }
            let count = usize::try_from(count).map_err(|_| format!("bad field count {count}"))?;
            self.fields.clear();
            let mut cursor = at + 2;
            let mut complete = true;
            for _ in 0..count {
                let Some(len) = read_i32(data, cursor) else {
                    complete = false;
                    break;
                };
                cursor += 4;
                if len < -1 {
                    return Err(format!("bad field length {len}"));
                }
                self.fields.push((cursor, len));
                if len > 0 {
                    cursor += len as usize;
                    if cursor > data.len() {
                        complete = false;
                        break;
                    }
                }
            }
            if !complete {
                break;
            }
            row(&Row {
                data,
                fields: &self.fields,
            })?;
            at = cursor;
        }
        if self.ended && at < data.len() {
            return Err("unexpected bytes after the end of the COPY stream".into());
        }
        Ok(at)
    }
}

/// The header's length, `None` until all of it has arrived.
fn header_len(data: &[u8]) -> std::result::Result<Option<usize>, String> {
    let fixed = SIGNATURE.len() + 8;
    if data.len() < fixed {
        return Ok(None);
    }
    if &data[..SIGNATURE.len()] != SIGNATURE {
        return Err("not a binary COPY stream".into());
    }
    let extension = read_i32(data, SIGNATURE.len() + 4).unwrap_or(0).max(0) as usize;
    Ok((data.len() >= fixed + extension).then_some(fixed + extension))
}

fn read_i16(data: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

/// Appends `row` to `builder`, each field decoded from its bytes straight
/// into its column's builder. A field that cannot be stored (an `infinity`
/// date, a numeric too wide) is an error naming its column; the columns
/// before it then hold one value more than the others, so the caller must
/// [`BatchBuilder::finish`] (which keeps whole rows only) before appending
/// again.
pub(super) fn append_row(
    columns: &[Column],
    row: &Row<'_>,
    builder: &mut BatchBuilder,
) -> std::result::Result<(), String> {
    if row.fields.len() != columns.len() {
        return Err(format!(
            "the row has {} fields, expected {}",
            row.fields.len(),
            columns.len()
        ));
    }
    for (i, column) in columns.iter().enumerate() {
        let target = builder.column_mut(i);
        let appended = match row.get(i) {
            None => {
                target.append_null();
                Ok(())
            }
            Some(raw) => append_field(&column.decode, &column.sql_type, raw, target),
        };
        appended.map_err(|e| format!("column \"{}\": {e}", column.field.name()))?;
    }
    builder.end_row();
    Ok(())
}

/// A row's fields as text for the dead-letter table: UTF-8 as is, other
/// bytes in hex, NULL as `NULL`.
pub(super) fn describe_row(row: &Row<'_>) -> String {
    (0..row.fields.len())
        .map(|i| match row.get(i) {
            None => "NULL".to_string(),
            Some(raw) => match std::str::from_utf8(raw) {
                Ok(text) if !text.contains('\0') => text.to_string(),
                _ => format!("\\x{}", hex::encode(raw)),
            },
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn fixed<const N: usize>(raw: &[u8]) -> std::result::Result<[u8; N], String> {
    raw.try_into()
        .map_err(|_| format!("expected {N} bytes, got {}", raw.len()))
}

fn text(raw: &[u8]) -> std::result::Result<&str, String> {
    std::str::from_utf8(raw).map_err(|e| e.to_string())
}

/// Decodes one non-NULL field into `target`, a builder of the column's type.
fn append_field(
    decode: &Decode,
    sql_type: &Type,
    raw: &[u8],
    target: &mut ColumnBuilder,
) -> std::result::Result<(), String> {
    use ColumnBuilder as B;
    match (decode, target) {
        (Decode::Bool, B::Bool(b)) => b.append_value(fixed::<1>(raw)?[0] != 0),
        (Decode::Int16, B::Int16(b)) => b.append_value(i16::from_be_bytes(fixed(raw)?)),
        (Decode::Int32, B::Int32(b)) => b.append_value(i32::from_be_bytes(fixed(raw)?)),
        (Decode::Int64, B::Int64(b)) => b.append_value(i64::from_be_bytes(fixed(raw)?)),
        (Decode::Oid, B::Int64(b)) => b.append_value(u32::from_be_bytes(fixed(raw)?).into()),
        (Decode::Float32, B::Float32(b)) => b.append_value(f32::from_be_bytes(fixed(raw)?)),
        (Decode::Float64, B::Float64(b)) => b.append_value(f64::from_be_bytes(fixed(raw)?)),
        // NaN and the infinities have no DECIMAL value: NULL.
        (Decode::Numeric(scale), B::Decimal(b)) => match numeric(raw, *scale)? {
            Some(v) => b.append_value(v),
            None => b.append_null(),
        },
        (Decode::Text | Decode::Json, B::Text(b)) => b.append_value(text(raw)?),
        // Version 1 of jsonb's binary form is its text after a version byte.
        (Decode::Jsonb, B::Text(b)) => match raw.split_first() {
            Some((1, json)) => b.append_value(text(json)?),
            _ => return Err("unsupported jsonb version".into()),
        },
        (Decode::Bytea, B::Binary(b)) => b.append_value(raw),
        (Decode::Date, B::Date(b)) => {
            let days = i32::from_be_bytes(fixed(raw)?);
            if days == i32::MAX || days == i32::MIN {
                return Err("an infinite date cannot be stored".into());
            }
            b.append_value(days.checked_add(PG_EPOCH_DAYS).ok_or("date out of range")?);
        }
        (Decode::Time, B::Time(b)) => b.append_value(i64::from_be_bytes(fixed(raw)?)),
        (Decode::Timestamp | Decode::TimestampTz, B::Timestamp(b)) => {
            let micros = i64::from_be_bytes(fixed(raw)?);
            if micros == i64::MAX || micros == i64::MIN {
                return Err("an infinite timestamp cannot be stored".into());
            }
            b.append_value(
                micros
                    .checked_add(PG_EPOCH_MICROS)
                    .ok_or("timestamp out of range")?,
            );
        }
        (Decode::Interval, B::Interval(b)) => {
            let raw = fixed::<16>(raw)?;
            let micros = i64::from_be_bytes(fixed(&raw[0..8])?);
            let days = i32::from_be_bytes(fixed(&raw[8..12])?);
            let months = i32::from_be_bytes(fixed(&raw[12..16])?);
            let nanos = micros.checked_mul(1000).ok_or("interval out of range")?;
            b.append_value(IntervalMonthDayNano::new(months, days, nanos));
        }
        (Decode::Uuid, B::Text(b)) => {
            let mut buffer = uuid::Uuid::encode_buffer();
            let uuid = uuid::Uuid::from_bytes(fixed(raw)?);
            b.append_value(uuid.hyphenated().encode_lower(&mut buffer));
        }
        (Decode::Array(item), target) => target.append(array(item, sql_type, raw)?)?,
        (decode, _) => return Err(format!("no column builder for {decode:?}")),
    }
    Ok(())
}

/// A Postgres array (of a simple item type) as a list value.
fn array(item: &Decode, sql_type: &Type, raw: &[u8]) -> std::result::Result<Value, String> {
    fn list<'a, T: FromSql<'a>>(
        sql_type: &Type,
        raw: &'a [u8],
        f: impl Fn(T) -> Value,
    ) -> std::result::Result<Value, String> {
        let items = Vec::<Option<T>>::from_sql(sql_type, raw).map_err(|e| e.to_string())?;
        Ok(Value::List(
            items
                .into_iter()
                .map(|x| x.map_or(Value::Null, &f))
                .collect(),
        ))
    }
    match item {
        Decode::Bool => list(sql_type, raw, Value::Bool),
        Decode::Int16 => list(sql_type, raw, |v: i16| Value::Int(v.into())),
        Decode::Int32 => list(sql_type, raw, |v: i32| Value::Int(v.into())),
        Decode::Int64 => list(sql_type, raw, Value::Int),
        Decode::Float32 => list(sql_type, raw, |v: f32| Value::Float(v.into())),
        Decode::Float64 => list(sql_type, raw, Value::Float),
        _ => list(sql_type, raw, |v: AnyText| Value::Text(v.0)),
    }
}

/// Any item's bytes as text (array items of text-like and enum types).
struct AnyText(String);

impl<'a> FromSql<'a> for AnyText {
    fn from_sql(
        _: &Type,
        raw: &'a [u8],
    ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(AnyText(std::str::from_utf8(raw)?.to_string()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A `numeric` in its binary form (digit count, weight, sign, scale, then
/// base-10000 digits) as an integer scaled by 10^`scale`; `None` for NaN and
/// the infinities. Digits below the scale are truncated.
fn numeric(raw: &[u8], scale: i8) -> std::result::Result<Option<i128>, String> {
    let word = |i: usize| -> std::result::Result<u16, String> {
        raw.get(i * 2..i * 2 + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(|| "truncated numeric".to_string())
    };
    let ndigits = word(0)? as usize;
    let weight = word(1)? as i16 as i32;
    let sign = word(2)?;
    if matches!(sign, 0xC000 | 0xD000 | 0xF000) {
        return Ok(None);
    }
    let too_wide = || "numeric value does not fit DECIMAL(38)".to_string();
    // `acc` counts units of 10^`unit`, the place of the last digit taken.
    let mut acc: i128 = 0;
    let mut unit: i32 = 0;
    for i in 0..ndigits {
        let digit = word(4 + i)? as i128;
        let place = 4 * (weight - i as i32) + scale as i32;
        if place >= 0 {
            acc = acc
                .checked_mul(10_000)
                .and_then(|a| a.checked_add(digit))
                .ok_or_else(too_wide)?;
            unit = place;
        } else {
            if place > -4 {
                let keep = 10i128.pow((4 + place) as u32);
                let drop = 10i128.pow((-place) as u32);
                acc = acc
                    .checked_mul(keep)
                    .and_then(|a| a.checked_add(digit / drop))
                    .ok_or_else(too_wide)?;
                unit = 0;
            }
            break;
        }
    }
    if ndigits > 0 && acc != 0 {
        let shift = 10i128.checked_pow(unit as u32).ok_or_else(too_wide)?;
        acc = acc.checked_mul(shift).ok_or_else(too_wide)?;
    }
    Ok(Some(if sign == 0x4000 { -acc } else { acc }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric_bytes(negative: bool, weight: i16, digits: &[u16]) -> Vec<u8> {
        let mut raw = Vec::new();
        raw.extend_from_slice(&(digits.len() as u16).to_be_bytes());
        raw.extend_from_slice(&weight.to_be_bytes());
        raw.extend_from_slice(&(if negative { 0x4000u16 } else { 0 }).to_be_bytes());
        raw.extend_from_slice(&0u16.to_be_bytes());
        for d in digits {
            raw.extend_from_slice(&d.to_be_bytes());
        }
        raw
    }

    #[test]
    fn numerics_scale_exactly() {
        // 12345.678 = digits [1, 2345, 6780], weight 1
        let n = numeric_bytes(true, 1, &[1, 2345, 6780]);
        assert_eq!(numeric(&n, 3), Ok(Some(-12_345_678)));
        assert_eq!(numeric(&n, 0), Ok(Some(-12_345)));
        assert_eq!(numeric(&n, 2), Ok(Some(-1_234_567)));
        assert_eq!(numeric(&n, 9), Ok(Some(-12_345_678_000_000)));
        // 0.0012 = digits [12], weight -1
        assert_eq!(numeric(&numeric_bytes(false, -1, &[12]), 4), Ok(Some(12)));
        assert_eq!(numeric(&numeric_bytes(false, -1, &[12]), 2), Ok(Some(0)));
        // 10^40 does not fit.
        assert!(numeric(&numeric_bytes(false, 10, &[1]), 0).is_err());
        // Zero has no digits.
        assert_eq!(numeric(&numeric_bytes(false, 0, &[]), 2), Ok(Some(0)));
        let nan = [0, 0, 0, 0, 0xC0, 0, 0, 0];
        assert_eq!(numeric(&nan, 2), Ok(None));
    }

    fn stream(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&0i32.to_be_bytes());
        out.extend_from_slice(&0i32.to_be_bytes());
        for row in rows {
            out.extend_from_slice(&(row.len() as i16).to_be_bytes());
            for field in *row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(bytes) => {
                        out.extend_from_slice(&(bytes.len() as i32).to_be_bytes());
                        out.extend_from_slice(bytes);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn splits_rows_across_any_chunk_boundaries() {
        let data = stream(&[
            &[Some(b"abc"), None],
            &[Some(b""), Some(b"xyz")],
            &[None, Some(b"12345678")],
        ]);
        for chunk_size in [1, 2, 3, 7, 16, data.len()] {
            let mut reader = CopyReader::default();
            let mut seen = Vec::new();
            for chunk in data.chunks(chunk_size) {
                reader
                    .feed(chunk, |row| {
                        seen.push((
                            row.get(0).map(<[u8]>::to_vec),
                            row.get(1).map(<[u8]>::to_vec),
                        ));
                        Ok(())
                    })
                    .expect("parses");
            }
            reader.finish().expect("ends with the trailer");
            assert_eq!(
                seen,
                vec![
                    (Some(b"abc".to_vec()), None),
                    (Some(Vec::new()), Some(b"xyz".to_vec())),
                    (None, Some(b"12345678".to_vec())),
                ],
                "chunks of {chunk_size}"
            );
        }
    }

    #[test]
    fn a_cut_stream_is_an_error() {
        let data = stream(&[&[Some(b"abc")]]);
        let mut reader = CopyReader::default();
        reader
            .feed(&data[..data.len() - 4], |_| Ok(()))
            .expect("parses what there is");
        assert!(reader.finish().is_err());
        let mut reader = CopyReader::default();
        assert!(
            reader
                .feed(b"COPY\n\xff\r\n\0 not binary", |_| Ok(()))
                .is_err()
        );
    }
}
