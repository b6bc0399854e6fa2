//! `sql = "select ... from input"`: SQL over each batch, run by an in-memory
//! DuckDB so the dialect is the embedded warehouse's own.

use arrow::compute::concat_batches;
use arrow::record_batch::RecordBatch;

use serde::Deserialize;

use super::{StepColumns, Transform, TransformStep};
use crate::core::Workspace;
use crate::core::error::{Error, Result};
use crate::data::duckdb::{append, column_definitions, normalize, query};

/// `sql = "select ... from input"`: SQL over the batch, which is visible as
/// the table `input` (DuckDB's dialect, the same as the embedded warehouse).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlStep {
    /// SQL over the batch, which is visible as the table `input`. It uses
    /// DuckDB's dialect, the same as the embedded warehouse's. The query's
    /// result becomes the batch. The query sees one batch at a time.
    pub sql: String,
}

impl TransformStep for SqlStep {
    fn key() -> &'static str {
        "sql"
    }

    fn build(&self, _workspace: &Workspace) -> Result<Box<dyn Transform>> {
        Ok(Box::new(SqlTransform::new("sql", self.sql.clone())?))
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Query(self.sql.clone())
    }
}

/// `filter = "amount > 0"`: keeps the rows where this SQL condition holds.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FilterStep {
    /// Keeps the rows where this SQL condition holds: `"amount > 0"`.
    pub filter: String,
}

impl TransformStep for FilterStep {
    fn key() -> &'static str {
        "filter"
    }

    fn build(&self, _workspace: &Workspace) -> Result<Box<dyn Transform>> {
        let query = format!("select * from input where {}", self.filter);
        Ok(Box::new(SqlTransform::new("filter", query)?))
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Filter(self.filter.clone())
    }
}

/// Runs one SQL query per batch, with the batch as the table `input`.
pub struct SqlTransform {
    label: &'static str,
    sql: String,
    conn: duckdb::Connection,
    input_schema: Option<arrow::datatypes::SchemaRef>,
}

impl SqlTransform {
    /// A transform running `sql`, named `label` (`sql`, `filter`) in errors.
    pub fn new(label: &'static str, sql: String) -> Result<Self> {
        let conn = duckdb::Connection::open_in_memory()
            .map_err(|e| Error::warehouse("opening the transform engine", e))?;
        conn.execute_batch("SET threads = 1")
            .map_err(|e| Error::warehouse("configuring the transform engine", e))?;
        Ok(SqlTransform {
            label,
            sql,
            conn,
            input_schema: None,
        })
    }
}

impl Transform for SqlTransform {
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let batch = normalize(batch)?;
        if self.input_schema.as_ref() != Some(&batch.schema()) {
            let ddl = format!(
                "CREATE OR REPLACE TABLE input ({})",
                column_definitions(&batch.schema())
            );
            self.conn
                .execute_batch(&ddl)
                .map_err(|e| Error::warehouse("preparing the transform input", e))?;
            self.input_schema = Some(batch.schema());
        } else {
            self.conn
                .execute_batch("DELETE FROM input")
                .map_err(|e| Error::warehouse("preparing the transform input", e))?;
        }
        append(&self.conn, None, "main", "input", batch)?;
        let (schema, batches) = query(&self.conn, &self.sql).map_err(|e| match e {
            Error::Warehouse { source, .. } => {
                Error::Other(format!("{} transform: {source}", self.label))
            }
            other => other,
        })?;
        let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
        if rows == 0 {
            return Ok(None);
        }
        let out =
            concat_batches(&schema, &batches).map_err(|e| Error::arrow("sql transform", e))?;
        Ok(Some(out))
    }

    fn describe(&self) -> String {
        self.label.into()
    }

    fn check(&mut self) -> Result<()> {
        let parsed: String = self
            .conn
            .query_row(
                "SELECT json_serialize_sql(CAST(? AS VARCHAR))",
                duckdb::params![self.sql],
                |row| row.get(0),
            )
            .map_err(|e| Error::warehouse("checking transform SQL", e))?;
        let parsed: serde_json::Value = serde_json::from_str(&parsed)
            .map_err(|e| Error::Other(format!("checking transform SQL: {e}")))?;
        // Statements the serializer does not cover (PIVOT, ...) are not errors.
        if parsed["error"] == true && parsed["error_type"] == "parser" {
            let message = parsed["error_message"].as_str().unwrap_or("syntax error");
            return Err(Error::Other(format!("{} transform: {message}", self.label)));
        }
        Ok(())
    }
}
