//! Moving Arrow batches in and out of DuckDB, shared by the warehouse and
//! the in-flight SQL transforms.

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;

use super::types::{duckdb_type, quote_ident};
use crate::core::error::{Error, Result};

/// Column definitions for `CREATE TABLE`: `"id" BIGINT, "name" VARCHAR`.
pub fn column_definitions(schema: &Schema) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("{} {}", quote_ident(f.name()), duckdb_type(f.data_type())))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rewrites types DuckDB's appender does not take (all-null columns, views)
/// into ones it does.
pub fn normalize(batch: RecordBatch) -> Result<RecordBatch> {
    let needs = |dt: &DataType| matches!(dt, DataType::Null | DataType::Float16);
    if !batch.schema().fields().iter().any(|f| needs(f.data_type())) {
        return Ok(batch);
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = match field.data_type() {
            DataType::Null => Some(DataType::Utf8),
            DataType::Float16 => Some(DataType::Float32),
            _ => None,
        };
        match target {
            Some(dt) => {
                columns.push(cast(column, &dt).map_err(|e| Error::arrow("normalizing batch", e))?);
                fields.push(Field::new(field.name(), dt, true));
            }
            None => {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
            }
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::arrow("normalizing batch", e))
}

/// Appends `batch` to `table` (in `schema`, and `catalog` when given: `temp`
/// for temporary tables) through DuckDB's Arrow appender. The table's
/// columns must match the batch's, in order.
pub fn append(
    conn: &duckdb::Connection,
    catalog: Option<&str>,
    schema: &str,
    table: &str,
    batch: RecordBatch,
) -> Result<()> {
    let batch = intervals_as_text(batch)?;
    let appender = match catalog {
        Some(catalog) => conn.appender_to_catalog_and_db(table, catalog, schema),
        None => conn.appender_to_db(table, schema),
    };
    let mut appender = appender
        .map_err(|e| Error::warehouse(format!("opening appender on {schema}.{table}"), e))?;
    appender
        .append_record_batch(batch)
        .map_err(|e| Error::warehouse(format!("appending to {schema}.{table}"), e))?;
    appender
        .flush()
        .map_err(|e| Error::warehouse(format!("appending to {schema}.{table}"), e))
}

/// DuckDB's Arrow appender drops the nulls of INTERVAL columns (they arrive
/// as zero). Such columns go in as text instead, which the appender casts to
/// the table's INTERVAL type, nulls kept.
fn intervals_as_text(batch: RecordBatch) -> Result<RecordBatch> {
    use arrow::array::{Array, AsArray, StringArray};
    use arrow::datatypes::{IntervalMonthDayNanoType, IntervalUnit};
    let affected = |f: &Field, c: &ArrayRef| {
        matches!(
            f.data_type(),
            DataType::Interval(IntervalUnit::MonthDayNano)
        ) && c.null_count() > 0
    };
    let schema = batch.schema();
    if !schema
        .fields()
        .iter()
        .zip(batch.columns())
        .any(|(f, c)| affected(f, c))
    {
        return Ok(batch);
    }
    let mut fields = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if affected(field, column) {
            let text: StringArray = column
                .as_primitive::<IntervalMonthDayNanoType>()
                .iter()
                .map(|v| {
                    v.map(|v| {
                        format!(
                            "{} months {} days {} microseconds",
                            v.months,
                            v.days,
                            v.nanoseconds / 1000
                        )
                    })
                })
                .collect();
            columns.push(Arc::new(text));
            fields.push(Field::new(field.name(), DataType::Utf8, true));
        } else {
            columns.push(column.clone());
            fields.push(field.as_ref().clone());
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::arrow("appending intervals", e))
}

/// Runs `sql` and returns its result as Arrow: the schema and the batches.
pub fn query(conn: &duckdb::Connection, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let mut stmt = conn
        .prepare(sql)
        .map_err(|e| Error::warehouse("query", e))?;
    let arrow = stmt
        .query_arrow([])
        .map_err(|e| Error::warehouse("query", e))?;
    let schema = arrow.get_schema();
    let batches: Vec<RecordBatch> = arrow.collect();
    Ok((schema, batches))
}
