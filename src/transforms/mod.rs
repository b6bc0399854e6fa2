//! In-flight transforms (ETL): steps applied to every batch between the
//! source and the destination, in the order the pipeline lists them.
//!
//! Each `[[transform]]` table holds one step, named by its key (`sql = ...`,
//! `rename = {...}`); [`steps`] is the one list of step kinds, and each kind
//! is a config type implementing [`TransformStep`].

mod builtin;
mod python;
mod sql;

use std::fmt;
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use crate::core::Workspace;
use crate::core::diagnostic::SpannedError;
use crate::core::error::Result;
use crate::core::schema::{SchemaFn, object_schema};

/// Every transform step kind. Adding one is one module, one line here, its
/// docs and its tests.
pub fn steps() -> Vec<StepRegistration> {
    vec![
        StepRegistration::of::<sql::SqlStep>(),
        StepRegistration::of::<builtin::RenameStep>(),
        StepRegistration::of::<builtin::CastStep>(),
        StepRegistration::of::<builtin::DropStep>(),
        StepRegistration::of::<sql::FilterStep>(),
        StepRegistration::of::<builtin::MaskStep>(),
        StepRegistration::of::<python::PythonStep>(),
    ]
}

/// What a transform step kind is. Implemented by its config type, which
/// serde reads (with `deny_unknown_fields`) from the `[[transform]]` table,
/// and whose `JsonSchema` documents it.
pub trait TransformStep: fmt::Debug + Send + Sync + 'static {
    /// The key that names the step in a `[[transform]]` table.
    fn key() -> &'static str
    where
        Self: Sized;

    /// Checks the step's arguments without data.
    fn check(&self) -> std::result::Result<(), String> {
        Ok(())
    }

    /// The transform that runs the step in `workspace` (where relative
    /// paths resolve, which Python runs).
    fn build(&self, workspace: &Workspace) -> Result<Box<dyn Transform>>;

    /// What the step does to the batch's columns, for column lineage.
    fn columns(&self) -> StepColumns;
}

/// What a step does to the batch's columns, as column lineage reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepColumns {
    /// A query over the batch as the table `input` (DuckDB's dialect): its
    /// output columns are the batch's new columns.
    Query(String),
    /// Keeps the rows where this SQL condition holds; the columns stay.
    Filter(String),
    /// Renames columns, `old -> new`.
    Rename(std::collections::BTreeMap<String, String>),
    /// Changes the values of these columns; their names stay.
    Change(Vec<String>),
    /// Removes these columns.
    Drop(Vec<String>),
    /// A program (a Python function) returns the batch: any column may be
    /// new or changed, so lineage traces a column to the one of its name
    /// before the step, as transformed.
    Program,
}

/// Parses a `[[transform]]` table into step `T`.
type ParseStep = for<'a> fn(ValueDeserializer<'a>) -> Result<Arc<dyn TransformStep>, SpannedError>;

/// One entry of [`steps`].
#[derive(Clone, Copy)]
pub struct StepRegistration {
    /// The key that names the step.
    pub key: &'static str,
    parse: ParseStep,
    schema: SchemaFn,
}

impl StepRegistration {
    /// The registration of step `T`.
    pub fn of<T: TransformStep + DeserializeOwned + JsonSchema>() -> Self {
        fn parse<T: TransformStep + DeserializeOwned>(
            config: ValueDeserializer<'_>,
        ) -> Result<Arc<dyn TransformStep>, SpannedError> {
            Ok(Arc::new(T::deserialize(config)?))
        }
        StepRegistration {
            key: T::key(),
            parse: parse::<T>,
            schema: object_schema::<T>,
        }
    }

    /// The JSON Schema of a `[[transform]]` table holding this step.
    pub fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        let mut schema = (self.schema)(generator);
        schema.insert("title".into(), self.key.into());
        schema
    }
}

impl fmt::Debug for StepRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StepRegistration")
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

/// One `[[transform]]` table: the step its key names, with its arguments.
#[derive(Debug, Clone)]
pub struct TransformConfig {
    registration: StepRegistration,
    step: Arc<dyn TransformStep>,
}

impl JsonSchema for TransformConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "TransformConfig".into()
    }

    /// One of the registered steps, each a table holding its key.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let steps: Vec<serde_json::Value> = steps()
            .iter()
            .map(|s| s.schema(generator).to_value())
            .collect();
        schemars::json_schema!({
            "description": "One in-flight step, named by its key.",
            "type": "object",
            "oneOf": steps,
        })
    }
}

impl TransformConfig {
    /// Reads a `[[transform]]` table: the one step key it holds picks the
    /// step, whose config struct reads the whole table.
    pub fn from_toml(value: Spanned<DeValue<'_>>) -> Result<TransformConfig, SpannedError> {
        let span = value.span();
        let DeValue::Table(table) = value.into_inner() else {
            return Err(SpannedError {
                message: "[[transform]] must be a table".into(),
                span: Some(span),
            });
        };
        let all = steps();
        let keys: Vec<&str> = all.iter().map(|s| s.key).collect();
        let given: Vec<StepRegistration> = all
            .iter()
            .filter(|s| table.contains_key(s.key))
            .copied()
            .collect();
        let registration = match given.as_slice() {
            [one] => *one,
            [] => {
                return Err(SpannedError {
                    message: format!("[[transform]] needs one of: {}", keys.join(", ")),
                    span: Some(span),
                });
            }
            many => {
                let names: Vec<&str> = many.iter().map(|s| s.key).collect();
                return Err(SpannedError {
                    message: format!(
                        "[[transform]] has {}; give one step per [[transform]] table",
                        names.join(" and ")
                    ),
                    span: Some(span),
                });
            }
        };
        let rest = ValueDeserializer::from(Spanned::new(span, DeValue::Table(table)));
        Ok(TransformConfig {
            registration,
            step: (registration.parse)(rest)?,
        })
    }

    /// The step's key: `sql`, `rename`, ...
    pub fn key(&self) -> &'static str {
        self.registration.key
    }

    /// Checks the step's arguments without data.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.step.check()
    }

    /// What the step does to the batch's columns.
    pub fn columns(&self) -> StepColumns {
        self.step.columns()
    }
}

/// A step applied to each batch.
pub trait Transform: Send {
    /// Transforms one batch. May return no batch (every row filtered out).
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>>;

    /// A short description for error messages: `sql`, `rename`, ...
    fn describe(&self) -> String;

    /// Checks what can be checked without data (SQL syntax, a Python
    /// script's imports), for `flowline validate`.
    fn check(&mut self) -> Result<()> {
        Ok(())
    }
}

/// Builds the pipeline's transform chain, in order, for a run in `workspace`.
pub fn build(
    steps: &[Spanned<TransformConfig>],
    workspace: &Workspace,
) -> Result<Vec<Box<dyn Transform>>> {
    steps
        .iter()
        .map(|s| s.get_ref().step.build(workspace))
        .collect()
}

/// Applies `chain` to `batch` in order.
pub fn apply_all(
    chain: &mut [Box<dyn Transform>],
    batch: RecordBatch,
) -> Result<Option<RecordBatch>> {
    let mut current = batch;
    for step in chain.iter_mut() {
        match step.apply(current)? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}
