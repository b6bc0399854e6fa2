//! Text columns to typed columns, one bad value costing one row, not a batch.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, BooleanArray, StringArray};
use arrow::compute::{CastOptions, cast_with_options, filter};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::types::duckdb_type;
use crate::core::error::{Error, Result};

/// A row that could not be converted, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct BadRow {
    /// Index of the row in the input columns.
    pub row: usize,
    /// What failed, naming the column and value.
    pub reason: String,
}

/// Casts text `columns` to the types of `schema`. Rows holding a value that
/// does not parse are left out of the batch and reported as [`BadRow`]s.
pub fn text_to_batch(
    schema: &SchemaRef,
    columns: Vec<StringArray>,
) -> Result<(RecordBatch, Vec<BadRow>)> {
    let rows = columns.first().map_or(0, |c| c.len());
    let mut bad: Vec<Option<String>> = vec![None; rows];
    let mut typed: Vec<ArrayRef> = Vec::with_capacity(columns.len());
    let options = CastOptions {
        safe: true,
        ..Default::default()
    };
    for (field, text) in schema.fields().iter().zip(columns) {
        if field.data_type() == &DataType::Utf8 {
            typed.push(Arc::new(text));
            continue;
        }
        let array = cast_with_options(&text, field.data_type(), &options)
            .map_err(|e| Error::arrow(format!("column \"{}\"", field.name()), e))?;
        if array.null_count() != text.null_count() {
            for (row, slot) in bad.iter_mut().enumerate() {
                if array.is_null(row) && !text.is_null(row) && slot.is_none() {
                    *slot = Some(format!(
                        "column \"{}\": cannot convert {:?} to {}",
                        field.name(),
                        text.value(row),
                        duckdb_type(field.data_type())
                    ));
                }
            }
        }
        typed.push(array);
    }
    let bad_rows: Vec<BadRow> = bad
        .iter()
        .enumerate()
        .filter_map(|(row, reason)| reason.clone().map(|reason| BadRow { row, reason }))
        .collect();
    if !bad_rows.is_empty() {
        let keep = BooleanArray::from(bad.iter().map(|b| b.is_none()).collect::<Vec<bool>>());
        typed = typed
            .iter()
            .map(|col| filter(col, &keep))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::arrow("dropping bad rows", e))?;
    }
    let batch = RecordBatch::try_new(schema.clone(), typed)
        .map_err(|e| Error::arrow("building a batch", e))?;
    Ok((batch, bad_rows))
}

/// Each row of `batch` as one line of JSON, for dead letters.
pub fn rows_as_json(batch: &RecordBatch) -> Result<Vec<String>> {
    let mut writer = arrow::json::LineDelimitedWriter::new(Vec::new());
    writer
        .write(batch)
        .map_err(|e| Error::arrow("writing rows as JSON", e))?;
    writer
        .finish()
        .map_err(|e| Error::arrow("writing rows as JSON", e))?;
    let text = String::from_utf8_lossy(&writer.into_inner()).into_owned();
    Ok(text.lines().map(str::to_string).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use arrow::datatypes::{Field, Schema};

    #[test]
    fn bad_values_cost_one_row() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]));
        let ids = StringArray::from(vec![Some("1"), Some("two"), None]);
        let names = StringArray::from(vec![Some("a"), Some("b"), Some("c")]);
        let (batch, bad) = text_to_batch(&schema, vec![ids, names]).expect("converts");
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].row, 1);
        assert!(bad[0].reason.contains("\"two\""), "{}", bad[0].reason);
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int");
        assert_eq!(col.value(0), 1);
        assert!(col.is_null(1));
    }
}
