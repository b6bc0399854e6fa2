//! Transforms that need no SQL: rename, cast, drop and mask, done directly
//! on the Arrow columns.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, StringArray};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use sha2::{Digest, Sha256};

use serde::Deserialize;

use super::{StepColumns, Transform, TransformStep};
use crate::core::Workspace;
use crate::core::error::{Error, Result};
use crate::data::types::parse_type;

/// `rename = { old_name = "new_name" }`: renames columns.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameStep {
    /// Renames columns: `{ old_name = "new_name" }`.
    pub rename: BTreeMap<String, String>,
}

impl TransformStep for RenameStep {
    fn key() -> &'static str {
        "rename"
    }

    fn build(&self, _workspace: &Workspace) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Rename(self.rename.clone())))
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Rename(self.rename.clone())
    }
}

/// `cast = { amount = "decimal(10,2)", at = "timestamp" }`: changes column types.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CastStep {
    /// Changes column types: `{ amount = "decimal(10,2)", at = "timestamp" }`,
    /// with flowline's type names (`bigint`, `double`, `decimal(p,s)`, `date`,
    /// `timestamp`, `text`...). A value that does not convert fails the run,
    /// naming the column.
    pub cast: BTreeMap<String, String>,
}

impl TransformStep for CastStep {
    fn key() -> &'static str {
        "cast"
    }

    fn check(&self) -> std::result::Result<(), String> {
        for (column, type_name) in &self.cast {
            parse_type(type_name).map_err(|e| format!("cast.{column}: {e}"))?;
        }
        Ok(())
    }

    fn build(&self, _workspace: &Workspace) -> Result<Box<dyn Transform>> {
        let mut types = BTreeMap::new();
        for (column, type_name) in &self.cast {
            let dt = parse_type(type_name).map_err(Error::Config)?;
            types.insert(column.clone(), dt);
        }
        Ok(Box::new(Cast(types)))
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Change(self.cast.keys().cloned().collect())
    }
}

/// `drop = ["internal_note"]`: removes columns.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DropStep {
    /// Removes columns: `["internal_note"]`.
    pub drop: Vec<String>,
}

impl TransformStep for DropStep {
    fn key() -> &'static str {
        "drop"
    }

    fn build(&self, _workspace: &Workspace) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Drop(self.drop.clone())))
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Drop(self.drop.clone())
    }
}

/// `mask = ["email"]`: replaces each value of these columns by its SHA-256
/// hex digest (for PII).
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MaskStep {
    /// Replaces each value of these columns by its SHA-256 hex digest (for
    /// PII). NULL stays NULL, and equal values stay equal, so joins still
    /// work. The column becomes text.
    pub mask: Vec<String>,
    /// With `mask`: a secret mixed into the hash, so that values cannot be
    /// guessed by hashing candidates. Use `${VAR}`.
    #[serde(default)]
    pub salt: Option<String>,
}

impl TransformStep for MaskStep {
    fn key() -> &'static str {
        "mask"
    }

    fn build(&self, _workspace: &Workspace) -> Result<Box<dyn Transform>> {
        Ok(Box::new(Mask {
            columns: self.mask.clone(),
            salt: self.salt.clone().unwrap_or_default(),
        }))
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Change(self.mask.clone())
    }
}

fn missing(step: &str, column: &str, batch: &RecordBatch) -> Error {
    let names: Vec<String> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    Error::Other(format!(
        "{step}: no column \"{column}\" in the batch (columns: {})",
        names.join(", ")
    ))
}

fn rebuild(fields: Vec<Field>, columns: Vec<ArrayRef>) -> Result<RecordBatch> {
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| Error::arrow("rebuilding batch", e))
}

/// `rename = { old = "new" }`.
pub struct Rename(pub BTreeMap<String, String>);

impl Transform for Rename {
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        for old in self.0.keys() {
            if batch.schema().field_with_name(old).is_err() {
                return Err(missing("rename", old, &batch));
            }
        }
        let fields = batch
            .schema()
            .fields()
            .iter()
            .map(|f| match self.0.get(f.name()) {
                Some(new) => f.as_ref().clone().with_name(new),
                None => f.as_ref().clone(),
            })
            .collect();
        rebuild(fields, batch.columns().to_vec()).map(Some)
    }

    fn describe(&self) -> String {
        "rename".into()
    }
}

/// `drop = ["column"]`.
pub struct Drop(pub Vec<String>);

impl Transform for Drop {
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        for column in &self.0 {
            if schema.field_with_name(column).is_err() {
                return Err(missing("drop", column, &batch));
            }
        }
        let keep: Vec<usize> = (0..schema.fields().len())
            .filter(|i| !self.0.contains(schema.field(*i).name()))
            .collect();
        batch
            .project(&keep)
            .map(Some)
            .map_err(|e| Error::arrow("drop", e))
    }

    fn describe(&self) -> String {
        "drop".into()
    }
}

/// `cast = { column = "type" }`. A value that does not convert fails the run
/// with the column named.
pub struct Cast(pub BTreeMap<String, DataType>);

impl Transform for Cast {
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        for column in self.0.keys() {
            if schema.field_with_name(column).is_err() {
                return Err(missing("cast", column, &batch));
            }
        }
        let options = CastOptions {
            safe: false,
            ..Default::default()
        };
        let mut fields = Vec::new();
        let mut columns = Vec::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            match self.0.get(field.name()) {
                Some(dt) => {
                    let cast = cast_with_options(column, dt, &options).map_err(|e| {
                        Error::arrow(format!("cast column \"{}\"", field.name()), e)
                    })?;
                    columns.push(cast);
                    fields.push(Field::new(field.name(), dt.clone(), true));
                }
                None => {
                    columns.push(column.clone());
                    fields.push(field.as_ref().clone());
                }
            }
        }
        rebuild(fields, columns).map(Some)
    }

    fn describe(&self) -> String {
        "cast".into()
    }
}

/// `mask = ["email"]`: each value becomes the hex SHA-256 of salt + value;
/// NULL stays NULL, equal values stay equal (so joins still work).
pub struct Mask {
    pub columns: Vec<String>,
    pub salt: String,
}

impl Mask {
    fn hash(&self, value: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.salt.as_bytes());
        hasher.update(value.as_bytes());
        hex::encode(hasher.finalize())
    }
}

impl Transform for Mask {
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        let schema = batch.schema();
        for column in &self.columns {
            if schema.field_with_name(column).is_err() {
                return Err(missing("mask", column, &batch));
            }
        }
        let mut fields = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if !self.columns.contains(field.name()) {
                columns.push(column.clone());
                fields.push(field.as_ref().clone());
                continue;
            }
            let text = arrow::compute::cast(column, &DataType::Utf8)
                .map_err(|e| Error::arrow(format!("mask column \"{}\"", field.name()), e))?;
            let text = text.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                Error::Other(format!("mask column \"{}\": not text", field.name()))
            })?;
            let hashed: StringArray = text.iter().map(|v| v.map(|v| self.hash(v))).collect();
            columns.push(Arc::new(hashed));
            fields.push(Field::new(field.name(), DataType::Utf8, true));
        }
        rebuild(fields, columns).map(Some)
    }

    fn describe(&self) -> String {
        "mask".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("email", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec![Some("a@x.io"), None])),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn mask_hashes_values_and_keeps_nulls() {
        let mut mask = Mask {
            columns: vec!["email".into()],
            salt: String::new(),
        };
        let out = mask.apply(batch()).expect("applies").expect("rows");
        let emails = out
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(emails.value(0).len(), 64);
        assert_ne!(emails.value(0), "a@x.io");
        assert!(emails.is_null(1));
    }

    #[test]
    fn rename_drop_and_cast() {
        let renamed = Rename(BTreeMap::from([("email".into(), "mail".into())]))
            .apply(batch())
            .expect("ok")
            .expect("rows");
        assert_eq!(renamed.schema().field(1).name(), "mail");
        let dropped = Drop(vec!["email".into()])
            .apply(batch())
            .expect("ok")
            .expect("rows");
        assert_eq!(dropped.num_columns(), 1);
        let cast = Cast(BTreeMap::from([("id".into(), DataType::Utf8)]))
            .apply(batch())
            .expect("ok")
            .expect("rows");
        assert_eq!(cast.schema().field(0).data_type(), &DataType::Utf8);
        let err = Drop(vec!["nope".into()]).apply(batch()).expect_err("error");
        assert!(err.to_string().contains("\"nope\""));
    }
}
