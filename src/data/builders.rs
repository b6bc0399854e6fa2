//! Arrow column builders fed one value at a time, shared by the sources that
//! read rows (SQL databases): each source turns its driver's values into a
//! [`Value`] and the builder for the column's Arrow type takes it.

use std::sync::Arc;

use arrow::array::{
    ArrayBuilder, ArrayRef, BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder,
    Float32Builder, Float64Builder, Int16Builder, Int32Builder, Int64Builder,
    IntervalMonthDayNanoBuilder, ListBuilder, StringBuilder, Time64MicrosecondBuilder,
    TimestampMicrosecondBuilder, UInt64Builder,
};
use arrow::datatypes::{DataType, Field, IntervalMonthDayNano, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;

use crate::core::error::{Error, Result};

/// One value read from a row, before it goes into a column.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A boolean.
    Bool(bool),
    /// A signed integer.
    Int(i64),
    /// An unsigned integer.
    UInt(u64),
    /// A floating-point number.
    Float(f64),
    /// A decimal, as an integer scaled by the column's scale.
    Decimal(i128),
    /// Text.
    Text(String),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Days since 1970-01-01.
    Date(i32),
    /// Microseconds since midnight.
    Time(i64),
    /// Microseconds since 1970-01-01 00:00 (UTC for time-zone-aware columns).
    Timestamp(i64),
    /// Months, days and nanoseconds.
    Interval(IntervalMonthDayNano),
    /// An array of values of the list's item type.
    List(Vec<Value>),
}

/// Builds one Arrow column of a fixed type.
pub enum ColumnBuilder {
    /// BOOLEAN
    Bool(BooleanBuilder),
    /// SMALLINT
    Int16(Int16Builder),
    /// INTEGER
    Int32(Int32Builder),
    /// BIGINT
    Int64(Int64Builder),
    /// UBIGINT
    UInt64(UInt64Builder),
    /// FLOAT
    Float32(Float32Builder),
    /// DOUBLE
    Float64(Float64Builder),
    /// DECIMAL(p, s)
    Decimal(Decimal128Builder),
    /// VARCHAR
    Text(StringBuilder),
    /// BLOB
    Binary(BinaryBuilder),
    /// DATE
    Date(Date32Builder),
    /// TIME
    Time(Time64MicrosecondBuilder),
    /// TIMESTAMP / TIMESTAMPTZ
    Timestamp(TimestampMicrosecondBuilder),
    /// INTERVAL
    Interval(IntervalMonthDayNanoBuilder),
    /// A list of one of the above.
    List(ListBuilder<Box<dyn ArrayBuilder>>, Box<ColumnBuilderKind>),
}

/// The item kind of a list builder, to append items with the right type.
pub type ColumnBuilderKind = DataType;

fn leaf_builder(dt: &DataType, capacity: usize) -> Result<Box<dyn ArrayBuilder>> {
    Ok(match dt {
        DataType::Boolean => Box::new(BooleanBuilder::with_capacity(capacity)),
        DataType::Int16 => Box::new(Int16Builder::with_capacity(capacity)),
        DataType::Int32 => Box::new(Int32Builder::with_capacity(capacity)),
        DataType::Int64 => Box::new(Int64Builder::with_capacity(capacity)),
        DataType::Float32 => Box::new(Float32Builder::with_capacity(capacity)),
        DataType::Float64 => Box::new(Float64Builder::with_capacity(capacity)),
        DataType::Utf8 => Box::new(StringBuilder::with_capacity(capacity, capacity * 8)),
        other => return Err(Error::Other(format!("lists of {other} are not supported"))),
    })
}

impl ColumnBuilder {
    /// A builder for values of `dt`.
    pub fn new(dt: &DataType, capacity: usize) -> Result<Self> {
        Ok(match dt {
            DataType::Boolean => ColumnBuilder::Bool(BooleanBuilder::with_capacity(capacity)),
            DataType::Int16 => ColumnBuilder::Int16(Int16Builder::with_capacity(capacity)),
            DataType::Int32 => ColumnBuilder::Int32(Int32Builder::with_capacity(capacity)),
            DataType::Int64 => ColumnBuilder::Int64(Int64Builder::with_capacity(capacity)),
            DataType::UInt64 => ColumnBuilder::UInt64(UInt64Builder::with_capacity(capacity)),
            DataType::Float32 => ColumnBuilder::Float32(Float32Builder::with_capacity(capacity)),
            DataType::Float64 => ColumnBuilder::Float64(Float64Builder::with_capacity(capacity)),
            DataType::Decimal128(p, s) => ColumnBuilder::Decimal(
                Decimal128Builder::with_capacity(capacity)
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| Error::arrow("decimal column", e))?,
            ),
            DataType::Utf8 => {
                ColumnBuilder::Text(StringBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Binary => {
                ColumnBuilder::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            DataType::Date32 => ColumnBuilder::Date(Date32Builder::with_capacity(capacity)),
            DataType::Time64(TimeUnit::Microsecond) => {
                ColumnBuilder::Time(Time64MicrosecondBuilder::with_capacity(capacity))
            }
            DataType::Timestamp(TimeUnit::Microsecond, tz) => ColumnBuilder::Timestamp(
                TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone_opt(tz.clone()),
            ),
            DataType::Interval(_) => {
                ColumnBuilder::Interval(IntervalMonthDayNanoBuilder::with_capacity(capacity))
            }
            DataType::List(item) => ColumnBuilder::List(
                ListBuilder::new(leaf_builder(item.data_type(), capacity)?)
                    .with_field(item.clone()),
                Box::new(item.data_type().clone()),
            ),
            other => return Err(Error::Other(format!("no column builder for {other}"))),
        })
    }

    /// Appends a NULL.
    pub fn append_null(&mut self) {
        use ColumnBuilder as B;
        match self {
            B::Bool(b) => b.append_null(),
            B::Int16(b) => b.append_null(),
            B::Int32(b) => b.append_null(),
            B::Int64(b) => b.append_null(),
            B::UInt64(b) => b.append_null(),
            B::Float32(b) => b.append_null(),
            B::Float64(b) => b.append_null(),
            B::Decimal(b) => b.append_null(),
            B::Text(b) => b.append_null(),
            B::Binary(b) => b.append_null(),
            B::Date(b) => b.append_null(),
            B::Time(b) => b.append_null(),
            B::Timestamp(b) => b.append_null(),
            B::Interval(b) => b.append_null(),
            B::List(b, _) => b.append_null(),
        }
    }

    /// Appends `value`; a value of the wrong kind is an error naming both.
    pub fn append(&mut self, value: Value) -> std::result::Result<(), String> {
        use ColumnBuilder as B;
        if matches!(value, Value::Null) {
            self.append_null();
            return Ok(());
        }
        match (self, value) {
            (B::Bool(b), Value::Bool(v)) => b.append_value(v),
            (B::Int16(b), Value::Int(v)) => {
                b.append_value(i16::try_from(v).map_err(|_| format!("{v} overflows SMALLINT"))?)
            }
            (B::Int32(b), Value::Int(v)) => {
                b.append_value(i32::try_from(v).map_err(|_| format!("{v} overflows INTEGER"))?)
            }
            (B::Int64(b), Value::Int(v)) => b.append_value(v),
            (B::Int64(b), Value::UInt(v)) => {
                b.append_value(i64::try_from(v).map_err(|_| format!("{v} overflows BIGINT"))?)
            }
            (B::UInt64(b), Value::UInt(v)) => b.append_value(v),
            (B::UInt64(b), Value::Int(v)) => {
                b.append_value(u64::try_from(v).map_err(|_| format!("{v} is negative"))?)
            }
            (B::Float32(b), Value::Float(v)) => b.append_value(v as f32),
            (B::Float64(b), Value::Float(v)) => b.append_value(v),
            (B::Float64(b), Value::Int(v)) => b.append_value(v as f64),
            (B::Decimal(b), Value::Decimal(v)) => b.append_value(v),
            (B::Text(b), Value::Text(v)) => b.append_value(v),
            (B::Binary(b), Value::Bytes(v)) => b.append_value(v),
            (B::Binary(b), Value::Text(v)) => b.append_value(v.as_bytes()),
            (B::Date(b), Value::Date(v)) => b.append_value(v),
            (B::Time(b), Value::Time(v)) => b.append_value(v),
            (B::Timestamp(b), Value::Timestamp(v)) => b.append_value(v),
            (B::Interval(b), Value::Interval(v)) => b.append_value(v),
            (B::List(b, item), Value::List(items)) => {
                for v in items {
                    append_item(b.values(), item, v)?;
                }
                b.append(true);
            }
            (_, v) => return Err(format!("unexpected value {v:?}")),
        }
        Ok(())
    }

    /// The column built so far; the builder starts again empty.
    pub fn finish(&mut self) -> ArrayRef {
        use ColumnBuilder as B;
        match self {
            B::Bool(b) => Arc::new(b.finish()),
            B::Int16(b) => Arc::new(b.finish()),
            B::Int32(b) => Arc::new(b.finish()),
            B::Int64(b) => Arc::new(b.finish()),
            B::UInt64(b) => Arc::new(b.finish()),
            B::Float32(b) => Arc::new(b.finish()),
            B::Float64(b) => Arc::new(b.finish()),
            B::Decimal(b) => Arc::new(b.finish()),
            B::Text(b) => Arc::new(b.finish()),
            B::Binary(b) => Arc::new(b.finish()),
            B::Date(b) => Arc::new(b.finish()),
            B::Time(b) => Arc::new(b.finish()),
            B::Timestamp(b) => Arc::new(b.finish()),
            B::Interval(b) => Arc::new(b.finish()),
            B::List(b, _) => Arc::new(b.finish()),
        }
    }
}

fn append_item(
    builder: &mut Box<dyn ArrayBuilder>,
    item: &DataType,
    value: Value,
) -> std::result::Result<(), String> {
    fn get<T: 'static>(b: &mut Box<dyn ArrayBuilder>) -> std::result::Result<&mut T, String> {
        b.as_any_mut()
            .downcast_mut::<T>()
            .ok_or_else(|| "list item builder mismatch".to_string())
    }
    match (item, value) {
        (DataType::Boolean, Value::Bool(v)) => get::<BooleanBuilder>(builder)?.append_value(v),
        (DataType::Boolean, Value::Null) => get::<BooleanBuilder>(builder)?.append_null(),
        (DataType::Int16, Value::Int(v)) => get::<Int16Builder>(builder)?.append_value(v as i16),
        (DataType::Int16, Value::Null) => get::<Int16Builder>(builder)?.append_null(),
        (DataType::Int32, Value::Int(v)) => get::<Int32Builder>(builder)?.append_value(v as i32),
        (DataType::Int32, Value::Null) => get::<Int32Builder>(builder)?.append_null(),
        (DataType::Int64, Value::Int(v)) => get::<Int64Builder>(builder)?.append_value(v),
        (DataType::Int64, Value::Null) => get::<Int64Builder>(builder)?.append_null(),
        (DataType::Float32, Value::Float(v)) => {
            get::<Float32Builder>(builder)?.append_value(v as f32)
        }
        (DataType::Float32, Value::Null) => get::<Float32Builder>(builder)?.append_null(),
        (DataType::Float64, Value::Float(v)) => get::<Float64Builder>(builder)?.append_value(v),
        (DataType::Float64, Value::Null) => get::<Float64Builder>(builder)?.append_null(),
        (DataType::Utf8, Value::Text(v)) => get::<StringBuilder>(builder)?.append_value(v),
        (DataType::Utf8, Value::Null) => get::<StringBuilder>(builder)?.append_null(),
        (_, v) => return Err(format!("unexpected list item {v:?}")),
    }
    Ok(())
}

/// Builders for every column of a schema, producing batches.
pub struct BatchBuilder {
    schema: SchemaRef,
    columns: Vec<ColumnBuilder>,
    rows: usize,
}

impl BatchBuilder {
    /// Builders for `fields`.
    pub fn new(fields: Vec<Field>, capacity: usize) -> Result<Self> {
        let columns = fields
            .iter()
            .map(|f| ColumnBuilder::new(f.data_type(), capacity))
            .collect::<Result<_>>()?;
        Ok(BatchBuilder {
            schema: Arc::new(Schema::new(fields)),
            columns,
            rows: 0,
        })
    }

    /// The schema of the batches built.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Appends `value` to column `i` of the current row.
    pub fn append(&mut self, i: usize, value: Value) -> Result<()> {
        self.columns[i]
            .append(value)
            .map_err(|e| self.column_error(i, e))
    }

    /// Column `i`'s builder, to append to it directly.
    pub fn column_mut(&mut self, i: usize) -> &mut ColumnBuilder {
        &mut self.columns[i]
    }

    fn column_error(&self, i: usize, message: String) -> Error {
        Error::Other(format!(
            "column \"{}\": {message}",
            self.schema.field(i).name()
        ))
    }

    /// Marks the current row as complete.
    pub fn end_row(&mut self) {
        self.rows += 1;
    }

    /// Rows appended since the last [`BatchBuilder::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The batch of the rows appended so far. Values appended to some
    /// columns of a row never ended (see [`BatchBuilder::end_row`]) are
    /// dropped.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        let rows = std::mem::take(&mut self.rows);
        let columns = self
            .columns
            .iter_mut()
            .map(|c| {
                let column = c.finish();
                if column.len() > rows {
                    column.slice(0, rows)
                } else {
                    column
                }
            })
            .collect();
        RecordBatch::try_new(self.schema.clone(), columns)
            .map_err(|e| Error::arrow("building a batch", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_typed_columns_with_nulls_and_lists() {
        let fields = vec![
            Field::new("n", DataType::Int32, true),
            Field::new("d", DataType::Decimal128(10, 2), true),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
        ];
        let mut b = BatchBuilder::new(fields, 4).expect("builder");
        b.append(0, Value::Int(7)).expect("int");
        b.append(1, Value::Decimal(1234)).expect("dec");
        b.append(2, Value::List(vec![Value::Text("a".into()), Value::Null]))
            .expect("list");
        b.end_row();
        b.append(0, Value::Null).expect("null");
        b.append(1, Value::Null).expect("null");
        b.append(2, Value::Null).expect("null");
        b.end_row();
        let batch = b.finish().expect("batch");
        assert_eq!(batch.num_rows(), 2);
        assert!(
            b.append(0, Value::Int(i64::MAX)).is_err(),
            "overflow is an error"
        );
    }
}
