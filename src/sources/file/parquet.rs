//! Parquet: read row group by row group through the Arrow reader; a row
//! whose value a declared column type cannot hold is a dead letter.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use std::collections::HashMap;

use arrow::array::{Array, ArrayRef, BooleanArray};
use arrow::compute::kernels::cmp::distinct;
use arrow::compute::{cast, filter_record_batch};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Chunk, Chunks, ReadOptions};
use crate::core::DeadLetter;
use crate::core::error::{Error, Result};
use crate::data::convert::rows_as_json;
use crate::data::types::duckdb_type;

/// Reads the Parquet file at `path` in batches of `options.batch_size` rows.
pub(crate) fn read(path: &Path, name: &str, options: &ReadOptions) -> Result<Chunks> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let parquet_err = |e| Error::Parquet {
        context: name.to_string(),
        source: e,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet_err)?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let reader = builder
        .with_batch_size(options.batch_size)
        .build()
        .map_err(parquet_err)?;
    let overrides = options.overrides.clone();
    let name = name.to_string();
    let mut first_row = 0;
    Ok(Box::new(reader.map(move |batch| {
        let batch = batch.map_err(|e| Error::arrow(name.clone(), e))?;
        let bytes = size * batch.num_rows() as u64 / total_rows;
        let rows = batch.num_rows();
        let (batch, dead_letters) = apply_overrides(batch, &overrides, &name, first_row)?;
        first_row += rows;
        Ok(Chunk {
            batch,
            bytes,
            dead_letters,
        })
    })))
}

/// `batch` with the declared column types of `overrides`. A row holding a
/// value its declared type cannot hold as it is (2.5 in `bigint`, text in
/// a number) is a dead letter, never a rounded or null value. Rows are
/// numbered from `first_row` in the file (`name#row`).
fn apply_overrides(
    batch: RecordBatch,
    overrides: &HashMap<String, DataType>,
    name: &str,
    first_row: usize,
) -> Result<(RecordBatch, Vec<DeadLetter>)> {
    if overrides.is_empty() {
        return Ok((batch, Vec::new()));
    }
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    let mut bad: Vec<Option<String>> = vec![None; batch.num_rows()];
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match overrides.get(field.name()) {
            Some(dt) if dt != field.data_type() => {
                let context = || format!("{name}: column \"{}\"", field.name());
                let cast_column = cast(column, dt).map_err(|e| Error::arrow(context(), e))?;
                for row in
                    changed_rows(column, &cast_column).map_err(|e| Error::arrow(context(), e))?
                {
                    bad[row].get_or_insert_with(|| {
                        format!(
                            "column \"{}\": {} cannot hold the value as it is",
                            field.name(),
                            duckdb_type(dt)
                        )
                    });
                }
                columns.push(cast_column);
                fields.push(Field::new(field.name(), dt.clone(), true));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    let cast_batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::arrow(name.to_string(), e))?;
    if bad.iter().all(Option::is_none) {
        return Ok((cast_batch, Vec::new()));
    }
    let mut letters = Vec::new();
    for (row, reason) in bad.iter().enumerate() {
        if let Some(reason) = reason {
            let raw = rows_as_json(&batch.slice(row, 1))?.concat();
            letters.push(DeadLetter {
                origin: format!("{name}#{}", first_row + row),
                reason: reason.clone(),
                raw,
            });
        }
    }
    let keep = BooleanArray::from(bad.iter().map(Option::is_none).collect::<Vec<bool>>());
    let kept = filter_record_batch(&cast_batch, &keep)
        .map_err(|e| Error::arrow("dropping rejected rows", e))?;
    Ok((kept, letters))
}

/// The rows whose value `cast_column` does not hold as `column` did: made
/// null, or (between numbers) changed on the way.
fn changed_rows(
    column: &ArrayRef,
    cast_column: &ArrayRef,
) -> std::result::Result<Vec<usize>, arrow::error::ArrowError> {
    let numeric = |t: &DataType| t.is_numeric();
    let round_trip = if numeric(column.data_type()) && numeric(cast_column.data_type()) {
        let back = cast(cast_column, column.data_type())?;
        Some(distinct(column, &back)?)
    } else {
        None
    };
    Ok((0..column.len())
        .filter(|&row| {
            let nulled = column.is_valid(row) && cast_column.is_null(row);
            nulled || round_trip.as_ref().is_some_and(|d| d.value(row))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int64Array};

    #[test]
    fn a_declared_type_rejects_rows_it_would_change() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Float64, true)]));
        let values: ArrayRef = Arc::new(Float64Array::from(vec![Some(1.0), Some(2.5), None]));
        let batch = RecordBatch::try_new(schema, vec![values]).expect("batch");
        let overrides = [("v".to_string(), DataType::Int64)].into_iter().collect();
        let (batch, letters) = apply_overrides(batch, &overrides, "t.parquet", 10).expect("casts");
        assert_eq!(batch.num_rows(), 2);
        let v = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("int");
        assert_eq!(v.value(0), 1);
        assert!(v.is_null(1));
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].origin, "t.parquet#11");
        assert_eq!(letters[0].raw, "{\"v\":2.5}");
    }
}
