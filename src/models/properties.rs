//! Properties files (`models/**/*.yml`) in dbt's format: `sources:`
//! blocks, and per model its `config:`, columns and their data tests.
//! Keys flowline does not use (descriptions, meta, docs) are read and left.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::layout::{Layout, yaml_error};
use crate::core::error::{Error, Result};

/// One properties file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PropertiesFile {
    /// `sources:`.
    #[serde(default)]
    pub sources: Vec<SourceBlock>,
    /// `models:`.
    #[serde(default)]
    pub models: Vec<ModelProperties>,
    /// `seeds:`.
    #[serde(default)]
    pub seeds: Vec<SeedProperties>,
}

/// A `seeds:` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct SeedProperties {
    /// The seed's name (its file name without `.csv`).
    pub name: String,
    /// Its configs: `column_types: {id: integer}`, `schema`, `alias`.
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
}

/// A `sources:` entry: tables loaded by something other than a model.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceBlock {
    /// The first argument of `source('name', 'table')`.
    pub name: String,
    /// The schema its tables are in; the source's name when unset.
    #[serde(default)]
    pub schema: Option<String>,
    /// What it is.
    #[serde(default)]
    pub description: Option<String>,
    /// Its tables.
    #[serde(default)]
    pub tables: Vec<SourceTable>,
}

/// One table of a source.
#[derive(Debug, Clone, Deserialize)]
pub struct SourceTable {
    /// The second argument of `source('name', 'table')`.
    pub name: String,
    /// The table's name in the warehouse, when not `name`.
    #[serde(default)]
    pub identifier: Option<String>,
    /// What it is.
    #[serde(default)]
    pub description: Option<String>,
}

/// A `models:` entry.
#[derive(Debug, Clone, Deserialize)]
pub struct ModelProperties {
    /// The model's name.
    pub name: String,
    /// What it is.
    #[serde(default)]
    pub description: Option<String>,
    /// Configs, as in `{{ config(...) }}` (which wins over them).
    #[serde(default)]
    pub config: serde_json::Map<String, Value>,
    /// Its columns.
    #[serde(default)]
    pub columns: Vec<ColumnProperties>,
    /// Data tests on the whole model (each naming its `column_name`).
    #[serde(default)]
    pub tests: Vec<Value>,
    /// The same, by dbt's newer name.
    #[serde(default)]
    pub data_tests: Vec<Value>,
}

/// A column of a model.
#[derive(Debug, Clone, Deserialize)]
pub struct ColumnProperties {
    /// Its name.
    pub name: String,
    /// What it holds.
    #[serde(default)]
    pub description: Option<String>,
    /// Its data tests: `not_null`, `unique`, `{accepted_values: {values: [...]}}`,
    /// `{relationships: {to: "ref('x')", field: id}}`.
    #[serde(default)]
    pub tests: Vec<Value>,
    /// The same, by dbt's newer name.
    #[serde(default)]
    pub data_tests: Vec<Value>,
}

/// Every properties file of the project (in the model and seed folders),
/// with its path.
pub fn load(layout: &Layout) -> Result<Vec<(PathBuf, PropertiesFile)>> {
    let mut files = Vec::new();
    let mut folders = layout.model_paths.clone();
    folders.extend(layout.seed_paths.iter().cloned());
    folders.dedup();
    for (_, path) in layout.files(&folders, &["yml", "yaml"])? {
        let full = layout.dir.join(&path);
        files.push((path, read(&full)?));
    }
    Ok(files)
}

fn read(path: &Path) -> Result<PropertiesFile> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    if text.trim().is_empty() {
        return Ok(PropertiesFile::default());
    }
    serde_yaml_ng::from_str(&text).map_err(|e| yaml_error(path, &e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_models_read_with_unused_keys_left() {
        let parsed: PropertiesFile = serde_yaml_ng::from_str(
            "version: 2\nsources:\n  - name: shop\n    schema: raw\n    loader: flowline\n    tables:\n      - name: orders\n        identifier: orders_v2\nmodels:\n  - name: orders\n    description: one row per order\n    config:\n      materialized: table\n    columns:\n      - name: id\n        data_tests: [unique]\n",
        )
        .expect("parses");
        assert_eq!(parsed.sources[0].schema.as_deref(), Some("raw"));
        assert_eq!(
            parsed.sources[0].tables[0].identifier.as_deref(),
            Some("orders_v2")
        );
        assert_eq!(parsed.models[0].config["materialized"], "table");
        assert_eq!(parsed.models[0].columns[0].name, "id");
    }
}
