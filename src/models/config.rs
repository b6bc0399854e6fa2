//! A model's config: how it is materialized and named. Values come from
//! `dbt_project.yml` folder configs, then from the model's own
//! `{{ config(...) }}`, the later winning (tags add up).

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use super::snapshot::SnapshotConfig;

/// The config names flowline reads; in `dbt_project.yml` they may be
/// written without the `+`.
const CONFIG_NAMES: &[&str] = &[
    "materialized",
    "unique_key",
    "incremental_strategy",
    "on_schema_change",
    "schema",
    "alias",
    "tags",
    "enabled",
    "docs",
    "meta",
    "persist_docs",
    "full_refresh",
    "database",
    "grants",
    "contract",
    "pre-hook",
    "post-hook",
    "column_types",
    "quote_columns",
    "delimiter",
    "strategy",
    "updated_at",
    "check_cols",
    "target_schema",
    "target_database",
    "hard_deletes",
    "invalidate_hard_deletes",
];

/// Whether `name` is a config (rather than a folder) in `dbt_project.yml`.
pub fn is_config_name(name: &str) -> bool {
    CONFIG_NAMES.contains(&name)
}

/// Raw config values by name, as written.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ConfigValues(BTreeMap<String, Value>);

impl ConfigValues {
    /// Sets `name`; tags are added to those already set.
    pub fn set(&mut self, name: &str, value: Value) {
        if name == "tags" {
            let mut tags = self.tags();
            for tag in as_strings(&value) {
                if !tags.contains(&tag) {
                    tags.push(tag);
                }
            }
            self.0.insert(name.to_string(), Value::from(tags));
        } else {
            self.0.insert(name.to_string(), value);
        }
    }

    /// `other`'s values over these.
    pub fn merge(&mut self, other: &ConfigValues) {
        for (name, value) in &other.0 {
            self.set(name, value.clone());
        }
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    /// The tags set.
    pub fn tags(&self) -> Vec<String> {
        self.0.get("tags").map(as_strings).unwrap_or_default()
    }
}

/// A string or a list of strings, as a list.
fn as_strings(value: &Value) -> Vec<String> {
    match value {
        Value::String(s) => vec![s.clone()],
        Value::Array(items) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// How a model is kept in the warehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Materialized {
    /// A view over its query (dbt's default).
    View,
    /// A table rebuilt from its query on each run, swapped in atomically.
    Table,
    /// A table that later runs add to (`is_incremental()` is true then).
    Incremental,
    /// Not built: inlined as a CTE into the models that refer to it.
    Ephemeral,
    /// A snapshot: a table keeping every version of the query's rows
    /// (`snapshots/*.sql`; see [`super::snapshot`]).
    Snapshot,
}

impl fmt::Display for Materialized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Materialized::View => "view",
            Materialized::Table => "table",
            Materialized::Incremental => "incremental",
            Materialized::Ephemeral => "ephemeral",
            Materialized::Snapshot => "snapshot",
        })
    }
}

/// How an incremental run adds its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Inserts every new row.
    Append,
    /// Updates the rows whose `unique_key` exists, inserts the others.
    Merge,
    /// Deletes the rows whose `unique_key` comes again, then inserts.
    DeleteInsert,
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strategy::Append => "append",
            Strategy::Merge => "merge",
            Strategy::DeleteInsert => "delete+insert",
        })
    }
}

/// What an incremental run does when the query's columns differ from the
/// table's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnSchemaChange {
    /// Loads the columns the two have in common.
    Ignore,
    /// Adds the query's new columns to the table first.
    AppendNewColumns,
    /// Fails the model.
    Fail,
}

/// A model's config, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// How it is kept.
    pub materialized: Materialized,
    /// The columns that identify a row, for `merge` and `delete+insert`.
    pub unique_key: Vec<String>,
    /// How incremental runs add rows.
    pub incremental_strategy: Strategy,
    /// What incremental runs do when the columns change.
    pub on_schema_change: OnSchemaChange,
    /// The schema it is built in; the warehouse's default when unset.
    pub schema: Option<String>,
    /// The relation's name, when not the model's.
    pub alias: Option<String>,
    /// Tags, for `-s tag:name`.
    pub tags: Vec<String>,
    /// `enabled: false` leaves the model out.
    pub enabled: bool,
    /// How a snapshot tells changes; set when materialized is `snapshot`.
    pub snapshot: Option<SnapshotConfig>,
}

impl ModelConfig {
    /// Where a model or seed called `name` is built: its `schema` (else
    /// `default_schema`) and its `alias` (else `name`).
    pub fn relation(&self, name: &str, default_schema: &str) -> super::relation::Relation {
        super::relation::Relation::new(
            self.schema
                .clone()
                .unwrap_or_else(|| default_schema.to_string()),
            self.alias.clone().unwrap_or_else(|| name.to_string()),
        )
    }

    /// Checks `values`; the error names the config and what it accepts.
    pub fn from_values(values: &ConfigValues) -> Result<ModelConfig, String> {
        let text = |name: &str| -> Result<Option<String>, String> {
            match values.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(other) => Err(format!("config {name}: expected a string, got {other}")),
            }
        };
        let materialized = match text("materialized")?.as_deref() {
            None | Some("view") => Materialized::View,
            Some("table") => Materialized::Table,
            Some("incremental") => Materialized::Incremental,
            Some("ephemeral") => Materialized::Ephemeral,
            Some("snapshot") => Materialized::Snapshot,
            Some(other) => {
                return Err(format!(
                    "config materialized = '{other}': expected 'view', 'table', 'incremental' or 'ephemeral'"
                ));
            }
        };
        let unique_key = match values.get("unique_key") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(key)) => key
                .split(',')
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
            Some(Value::Array(_)) => values.get("unique_key").map(as_strings).unwrap_or_default(),
            Some(other) => {
                return Err(format!(
                    "config unique_key: expected a column or a list of columns, got {other}"
                ));
            }
        };
        let incremental_strategy = match text("incremental_strategy")?.as_deref() {
            None if unique_key.is_empty() => Strategy::Append,
            None => Strategy::Merge,
            Some("append") => Strategy::Append,
            Some("merge") => Strategy::Merge,
            Some("delete+insert") => Strategy::DeleteInsert,
            Some(other) => {
                return Err(format!(
                    "config incremental_strategy = '{other}': expected 'append', 'merge' or 'delete+insert'"
                ));
            }
        };
        if incremental_strategy != Strategy::Append && unique_key.is_empty() {
            return Err(format!(
                "config incremental_strategy = '{incremental_strategy}' needs unique_key = 'column' (or a list)"
            ));
        }
        let on_schema_change = match text("on_schema_change")?.as_deref() {
            None | Some("ignore") => OnSchemaChange::Ignore,
            Some("append_new_columns") => OnSchemaChange::AppendNewColumns,
            Some("fail") => OnSchemaChange::Fail,
            Some(other) => {
                return Err(format!(
                    "config on_schema_change = '{other}': expected 'ignore', 'append_new_columns' or 'fail'"
                ));
            }
        };
        let enabled = match values.get("enabled") {
            None | Some(Value::Null) => true,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(format!(
                    "config enabled: expected true or false, got {other}"
                ));
            }
        };
        let snapshot = match materialized {
            Materialized::Snapshot => Some(SnapshotConfig::from_values(values, &unique_key)?),
            _ => None,
        };
        Ok(ModelConfig {
            materialized,
            unique_key,
            incremental_strategy,
            on_schema_change,
            // Snapshots name their schema `target_schema` too.
            schema: text("schema")?.or(text("target_schema")?),
            alias: text("alias")?,
            tags: values.tags(),
            enabled,
            snapshot,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, Value)]) -> Result<ModelConfig, String> {
        let mut values = ConfigValues::default();
        for (k, v) in pairs {
            values.set(k, v.clone());
        }
        ModelConfig::from_values(&values)
    }

    #[test]
    fn defaults_are_dbts() {
        let c = config(&[]).expect("valid");
        assert_eq!(c.materialized, Materialized::View);
        assert_eq!(c.incremental_strategy, Strategy::Append);
        assert_eq!(c.on_schema_change, OnSchemaChange::Ignore);
        assert!(c.enabled);
    }

    #[test]
    fn a_unique_key_makes_merge_the_default_strategy() {
        let c = config(&[
            ("materialized", "incremental".into()),
            ("unique_key", serde_json::json!(["id", "day"])),
        ])
        .expect("valid");
        assert_eq!(c.incremental_strategy, Strategy::Merge);
        assert_eq!(c.unique_key, ["id", "day"]);
    }

    #[test]
    fn bad_values_name_the_config_and_the_choices() {
        let e = config(&[("materialized", "tabel".into())]).expect_err("bad");
        assert!(
            e.contains("materialized = 'tabel'") && e.contains("'table'"),
            "{e}"
        );
        let e = config(&[("incremental_strategy", "merge".into())]).expect_err("no key");
        assert!(e.contains("needs unique_key"), "{e}");
    }

    #[test]
    fn tags_add_up() {
        let mut values = ConfigValues::default();
        values.set("tags", "daily".into());
        values.set("tags", serde_json::json!(["finance", "daily"]));
        assert_eq!(values.tags(), ["daily", "finance"]);
    }
}
