//! Scraped rows to batches. The columns and their types are known from the
//! config, so every batch has the same schema; values are cast from text the
//! way CSV columns are, and a row with a value that does not convert
//! becomes a dead letter naming the column and the value. An empty value
//! in a typed column is NULL.

use arrow::array::StringArray;
use arrow::datatypes::SchemaRef;
use serde_json::{Map, Value};

use crate::core::error::Result;
use crate::core::{DeadLetter, SourceBatch};
use crate::data::convert::text_to_batch;

/// One scraped row: its values in schema order, and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `<page url>#<index on the page>`.
    pub origin: String,
    /// One value per column, `_url` included.
    pub values: Vec<Option<String>>,
}

/// Rows waiting to become a batch.
pub struct RowBuffer {
    schema: SchemaRef,
    rows: Vec<Row>,
    bytes: u64,
}

impl RowBuffer {
    /// An empty buffer for rows of `schema`.
    pub fn new(schema: SchemaRef) -> Self {
        RowBuffer {
            schema,
            rows: Vec::new(),
            bytes: 0,
        }
    }

    /// Adds rows and the bytes read to scrape them.
    pub fn push(&mut self, rows: Vec<Row>, bytes: u64) {
        self.rows.extend(rows);
        self.bytes += bytes;
    }

    /// Rows waiting.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.bytes == 0
    }

    /// The first `limit` rows waiting (all, if fewer) as a batch.
    pub fn take(&mut self, limit: usize) -> Result<SourceBatch> {
        let rest = self.rows.split_off(limit.min(self.rows.len()));
        let rows = std::mem::replace(&mut self.rows, rest);
        let columns = self
            .schema
            .fields()
            .iter()
            .enumerate()
            .map(|(i, field)| {
                // An empty element holds no value: NULL, unless the column is text.
                let typed = field.data_type() != &arrow::datatypes::DataType::Utf8;
                rows.iter()
                    .map(|r| r.values[i].as_deref().filter(|v| !(typed && v.is_empty())))
                    .collect::<StringArray>()
            })
            .collect();
        let (batch, bad) = text_to_batch(&self.schema, columns)?;
        let dead_letters = bad
            .into_iter()
            .map(|bad| {
                let row = &rows[bad.row];
                DeadLetter {
                    origin: row.origin.clone(),
                    reason: bad.reason,
                    raw: self.raw(row),
                }
            })
            .collect();
        Ok(SourceBatch {
            batch,
            bytes: std::mem::take(&mut self.bytes),
            dead_letters,
            checkpoint: None,
            table: None,
            offer: None,
        })
    }

    /// A row as scraped, as a JSON object of column to text.
    fn raw(&self, row: &Row) -> String {
        let object: Map<String, Value> = self
            .schema
            .fields()
            .iter()
            .zip(&row.values)
            .map(|(field, value)| {
                let value = value.clone().map_or(Value::Null, Value::String);
                (field.name().clone(), value)
            })
            .collect();
        Value::Object(object).to_string()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Float64Array};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn rows_cast_to_their_types_and_bad_ones_become_dead_letters() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("name", DataType::Utf8, true),
            Field::new("price", DataType::Float64, true),
        ]));
        let mut buffer = RowBuffer::new(schema);
        let row = |origin: &str, name: &str, price: Option<&str>| Row {
            origin: origin.into(),
            values: vec![Some(name.into()), price.map(String::from)],
        };
        buffer.push(
            vec![
                row("p#0", "mug", Some("3.5")),
                row("p#1", "cup", Some("call us")),
                row("p#2", "jug", None),
                row("p#3", "jar", Some("")),
            ],
            100,
        );
        let first = buffer.take(2).expect("batch");
        assert_eq!(first.batch.num_rows(), 1);
        assert_eq!(first.bytes, 100);
        assert_eq!(first.dead_letters.len(), 1);
        let letter = &first.dead_letters[0];
        assert_eq!(letter.origin, "p#1");
        assert!(
            letter
                .reason
                .contains("cannot convert \"call us\" to DOUBLE"),
            "{}",
            letter.reason
        );
        assert_eq!(letter.raw, r#"{"name":"cup","price":"call us"}"#);
        let prices = first
            .batch
            .column(1)
            .as_any()
            .downcast_ref::<Float64Array>()
            .expect("doubles");
        assert_eq!(prices.value(0), 3.5);

        assert_eq!(buffer.len(), 2);
        let rest = buffer.take(10).expect("batch");
        assert_eq!(rest.batch.num_rows(), 2);
        assert!(rest.dead_letters.is_empty());
        assert!(rest.batch.column(1).is_null(0), "no match is NULL");
        assert!(
            rest.batch.column(1).is_null(1),
            "an empty typed value is NULL"
        );
        assert!(buffer.is_empty());
    }
}
