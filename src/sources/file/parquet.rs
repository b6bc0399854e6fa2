//! Parquet: read row group by row group through the Arrow reader.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use arrow::compute::cast;
use arrow::datatypes::{Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use super::{Chunk, Chunks, ReadOptions};
use crate::core::error::{Error, Result};

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
    Ok(Box::new(reader.map(move |batch| {
        let batch = batch.map_err(|e| Error::arrow(name.clone(), e))?;
        let bytes = size * batch.num_rows() as u64 / total_rows;
        let batch =
            apply_overrides(batch, &overrides).map_err(|e| Error::arrow(name.clone(), e))?;
        Ok(Chunk {
            batch,
            bytes,
            dead_letters: Vec::new(),
        })
    })))
}

fn apply_overrides(
    batch: RecordBatch,
    overrides: &std::collections::HashMap<String, arrow::datatypes::DataType>,
) -> std::result::Result<RecordBatch, arrow::error::ArrowError> {
    if overrides.is_empty() {
        return Ok(batch);
    }
    let schema = batch.schema();
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        match overrides.get(field.name()) {
            Some(dt) if dt != field.data_type() => {
                columns.push(cast(column, dt)?);
                fields.push(Field::new(field.name(), dt.clone(), true));
            }
            _ => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}
