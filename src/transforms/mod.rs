//! In-flight transforms (ETL): steps applied to every batch between the
//! source and the destination, in the order the pipeline lists them.

mod builtin;
mod sql;

use std::collections::BTreeMap;

use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use toml::Spanned;

use crate::data::types::parse_type;
use crate::error::Result;

/// One `[[transform]]` table. Exactly one of the step keys is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// SQL over the batch, which is visible as the table `input`
    /// (DuckDB's dialect, the same as the embedded warehouse).
    #[serde(default)]
    pub sql: Option<String>,
    /// Renames columns: `{ old_name = "new_name" }`.
    #[serde(default)]
    pub rename: Option<BTreeMap<String, String>>,
    /// Changes column types: `{ amount = "decimal(10,2)", at = "timestamp" }`.
    #[serde(default)]
    pub cast: Option<BTreeMap<String, String>>,
    /// Removes columns: `["internal_note"]`.
    #[serde(default)]
    pub drop: Option<Vec<String>>,
    /// Keeps the rows where this SQL condition holds: `"amount > 0"`.
    #[serde(default)]
    pub filter: Option<String>,
    /// Replaces each value of these columns by its SHA-256 hex digest (for PII).
    #[serde(default)]
    pub mask: Option<Vec<String>>,
    /// With `mask`: a secret mixed into the hash so values cannot be guessed
    /// by hashing candidates. Use `${VAR}`.
    #[serde(default)]
    pub salt: Option<String>,
}

impl TransformConfig {
    /// Checks that exactly one step is given and its arguments make sense.
    pub fn check(&self) -> std::result::Result<(), String> {
        let given: Vec<&str> = [
            ("sql", self.sql.is_some()),
            ("rename", self.rename.is_some()),
            ("cast", self.cast.is_some()),
            ("drop", self.drop.is_some()),
            ("filter", self.filter.is_some()),
            ("mask", self.mask.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        match given.as_slice() {
            [] => {
                return Err(
                    "[[transform]] needs one of: sql, rename, cast, drop, filter, mask".into(),
                );
            }
            [_] => {}
            many => {
                return Err(format!(
                    "[[transform]] has {}; give one step per [[transform]] table",
                    many.join(" and ")
                ));
            }
        }
        if self.salt.is_some() && self.mask.is_none() {
            return Err("salt only applies to mask".into());
        }
        if let Some(cast) = &self.cast {
            for (column, type_name) in cast {
                parse_type(type_name).map_err(|e| format!("cast.{column}: {e}"))?;
            }
        }
        Ok(())
    }
}

/// A step applied to each batch.
pub trait Transform: Send {
    /// Transforms one batch. May return no batch (every row filtered out).
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>>;

    /// A short description for error messages: `sql`, `rename`, ...
    fn describe(&self) -> String;

    /// Checks what can be checked without data (SQL syntax), for `flowline validate`.
    fn check(&self) -> Result<()> {
        Ok(())
    }
}

/// Builds the pipeline's transform chain, in order.
pub fn build(steps: &[Spanned<TransformConfig>]) -> Result<Vec<Box<dyn Transform>>> {
    steps.iter().map(|s| build_one(s.get_ref())).collect()
}

fn build_one(step: &TransformConfig) -> Result<Box<dyn Transform>> {
    if let Some(query) = &step.sql {
        return Ok(Box::new(sql::SqlTransform::new("sql", query.clone())?));
    }
    if let Some(condition) = &step.filter {
        let query = format!("select * from input where {condition}");
        return Ok(Box::new(sql::SqlTransform::new("filter", query)?));
    }
    if let Some(map) = &step.rename {
        return Ok(Box::new(builtin::Rename(map.clone())));
    }
    if let Some(map) = &step.cast {
        let mut types = BTreeMap::new();
        for (column, type_name) in map {
            let dt = parse_type(type_name).map_err(crate::error::Error::Config)?;
            types.insert(column.clone(), dt);
        }
        return Ok(Box::new(builtin::Cast(types)));
    }
    if let Some(columns) = &step.drop {
        return Ok(Box::new(builtin::Drop(columns.clone())));
    }
    if let Some(columns) = &step.mask {
        return Ok(Box::new(builtin::Mask {
            columns: columns.clone(),
            salt: step.salt.clone().unwrap_or_default(),
        }));
    }
    Err(crate::error::Error::Config(
        "[[transform]] needs one of: sql, rename, cast, drop, filter, mask".into(),
    ))
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
