//! Seeds: small CSV files (`seeds/*.csv`) loaded as tables, which models
//! read with `ref('name')`. A column's type comes from `column_types` (in
//! a `seeds:` entry of a properties file, or `+column_types` in
//! `dbt_project.yml`), else from its values: BIGINT, FLOAT8, BOOLEAN, DATE
//! or VARCHAR. An empty field is NULL. A seed is loaded like a table model:
//! built beside the old table and swapped in, in one transaction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::catalog;
use super::config::{ConfigValues, ModelConfig};
use super::layout::Layout;
use super::materialize::{self, Build};
use super::properties::PropertiesFile;
use super::relation::{Relation, literal, quote};
use super::run::{ModelResult, Status};
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;

/// One seed file.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Its name: the file name without `.csv`.
    pub name: String,
    /// Its file, relative to the project.
    pub file: PathBuf,
    /// Its config (`schema`, `alias`; materialized as a table).
    pub config: ModelConfig,
    /// Column types given by the user, by column.
    pub column_types: BTreeMap<String, String>,
}

impl Seed {
    /// Where it is loaded.
    pub fn relation(&self, default_schema: &str) -> Relation {
        self.config.relation(&self.name, default_schema)
    }

    /// The query that yields the seed's rows with their types.
    pub fn select_sql(&self, project_dir: &Path) -> Result<String> {
        let path = project_dir.join(&self.file);
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_path(&path)
            .map_err(|e| Error::Other(format!("{}: {e}", self.file.display())))?;
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| Error::Other(format!("{}: {e}", self.file.display())))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect();
        let mut rows: Vec<Vec<Option<String>>> = Vec::new();
        for (n, record) in reader.records().enumerate() {
            let record = record.map_err(|e| {
                Error::Other(format!("{}: row {}: {e}", self.file.display(), n + 2))
            })?;
            rows.push(
                (0..headers.len())
                    .map(|i| record.get(i).filter(|v| !v.is_empty()).map(str::to_string))
                    .collect(),
            );
        }
        let types: Vec<String> = headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                self.column_types
                    .get(h)
                    .cloned()
                    .unwrap_or_else(|| infer(rows.iter().filter_map(|r| r[i].as_deref())))
            })
            .collect();
        let columns: Vec<String> = headers.iter().map(|h| quote(h)).collect();
        let casts: Vec<String> = columns
            .iter()
            .zip(&types)
            .map(|(c, t)| format!("CAST({c} AS {t}) AS {c}"))
            .collect();
        if rows.is_empty() {
            let nulls: Vec<String> = columns
                .iter()
                .zip(&types)
                .map(|(c, t)| format!("CAST(NULL AS {t}) AS {c}"))
                .collect();
            return Ok(format!("SELECT {} WHERE 1 = 0", nulls.join(", ")));
        }
        let values: Vec<String> = rows
            .iter()
            .map(|row| {
                let fields: Vec<String> = row
                    .iter()
                    .map(|v| match v {
                        Some(v) => literal(v),
                        None => "NULL".to_string(),
                    })
                    .collect();
                format!("({})", fields.join(", "))
            })
            .collect();
        Ok(format!(
            "SELECT {} FROM (VALUES\n{}\n) AS seed ({})",
            casts.join(", "),
            values.join(",\n"),
            columns.join(", ")
        ))
    }
}

/// The type that holds every one of `values`.
fn infer<'a>(values: impl Iterator<Item = &'a str> + Clone) -> String {
    let all = |test: fn(&str) -> bool| values.clone().all(test);
    let is_date = |v: &str| chrono::NaiveDate::parse_from_str(v, "%Y-%m-%d").is_ok();
    let is_bool = |v: &str| ["true", "false"].iter().any(|b| v.eq_ignore_ascii_case(b));
    if values.clone().next().is_none() {
        "VARCHAR"
    } else if all(|v| v.parse::<i64>().is_ok()) {
        "BIGINT"
    } else if all(|v| v.parse::<f64>().is_ok()) {
        "FLOAT8"
    } else if all(is_bool) {
        "BOOLEAN"
    } else if all(is_date) {
        "DATE"
    } else {
        "VARCHAR"
    }
    .to_string()
}

/// Every seed of the project, with its configs.
pub fn discover(layout: &Layout, properties: &[(PathBuf, PropertiesFile)]) -> Result<Vec<Seed>> {
    let mut from_yml: BTreeMap<String, ConfigValues> = BTreeMap::new();
    for (_, file) in properties {
        for seed in &file.seeds {
            let values = from_yml.entry(seed.name.clone()).or_default();
            for (k, v) in &seed.config {
                values.set(k, v.clone());
            }
        }
    }
    let mut seeds = Vec::new();
    for (in_root, file) in layout.files(&layout.seed_paths, &["csv"])? {
        let name = in_root
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_default();
        let folders = super::layout::folders_of(&in_root);
        let mut values = layout.seed_folders.resolve(&folders, &name);
        if let Some(yml) = from_yml.get(&name) {
            values.merge(yml);
        }
        let column_types = match values.get("column_types") {
            None | Some(Value::Null) => BTreeMap::new(),
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("VARCHAR").to_string()))
                .collect(),
            Some(other) => {
                return Err(Error::Config(format!(
                    "seed {name}: column_types: expected a mapping of column to type, got {other}"
                )));
            }
        };
        values.set("materialized", Value::from("table"));
        let config = ModelConfig::from_values(&values)
            .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
        if config.enabled {
            seeds.push(Seed {
                name,
                file,
                config,
                column_types,
            });
        }
    }
    Ok(seeds)
}

/// Loads `seed` into `warehouse`; a failure becomes its result.
pub fn load(
    seed: &Seed,
    project_dir: &Path,
    warehouse: &dyn Warehouse,
    default_schema: &str,
) -> ModelResult {
    let relation = seed.relation(default_schema);
    let started = std::time::Instant::now();
    let outcome = (|| -> Result<String> {
        let sql = seed.select_sql(project_dir)?;
        warehouse.execute(&[materialize::create_schema(&relation)])?;
        let existing = catalog::kind(warehouse, &relation)?;
        materialize::build(
            warehouse,
            &Build {
                config: &seed.config,
                relation: &relation,
                sql: &sql,
                existing,
                full_refresh: true,
            },
        )
        .map_err(|e| Error::Other(format!("{}: {e}", seed.file.display())))
    })();
    let (status, message) = match outcome {
        Ok(done) => (Status::Success, done),
        Err(e) => (Status::Error, e.to_string()),
    };
    ModelResult {
        model: seed.name.clone(),
        file: seed.file.display().to_string(),
        materialized: "seed".into(),
        relation: relation.to_string(),
        status,
        message,
        seconds: started.elapsed().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_are_inferred_from_every_value() {
        let t = |values: &[&str]| infer(values.iter().copied());
        assert_eq!(t(&["1", "-2"]), "BIGINT");
        assert_eq!(t(&["1", "2.5"]), "FLOAT8");
        assert_eq!(t(&["true", "False"]), "BOOLEAN");
        assert_eq!(t(&["2024-01-31"]), "DATE");
        assert_eq!(t(&["1", "x"]), "VARCHAR");
        assert_eq!(t(&[]), "VARCHAR");
    }

    #[test]
    fn a_seed_is_a_select_of_typed_values() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("c.csv"),
            "id,name,joined\n1,O'Neil,2024-01-01\n2,,\n",
        )
        .expect("write");
        let seed = Seed {
            name: "c".into(),
            file: PathBuf::from("c.csv"),
            config: ModelConfig::from_values(&ConfigValues::default()).expect("defaults"),
            column_types: BTreeMap::from([("joined".to_string(), "VARCHAR".to_string())]),
        };
        let sql = seed.select_sql(dir.path()).expect("sql");
        assert!(sql.starts_with("SELECT CAST(\"id\" AS BIGINT) AS \"id\", CAST(\"name\" AS VARCHAR) AS \"name\", CAST(\"joined\" AS VARCHAR)"), "{sql}");
        assert!(
            sql.contains("('1', 'O''Neil', '2024-01-01'),\n('2', NULL, NULL)"),
            "{sql}"
        );
    }
}
