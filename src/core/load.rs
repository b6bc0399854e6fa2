//! What one load is: the table, the write disposition, the keys and the
//! schema policy a destination applies to every batch of a run.

use serde::Deserialize;

use super::batch::DeadLetter;
use super::error::{Error, Result};
use super::table::TableName;

/// What a load does with rows already in the table.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Add the rows.
    #[default]
    Append,
    /// Swap the table's contents for the loaded rows, atomically.
    Replace,
    /// Upsert on the primary key; within one load the last row wins.
    Merge,
}

/// How the table's schema may change. In both, new columns are added and a
/// value that the table's column holds exactly (`2.0` in a `BIGINT` column)
/// is stored as the column's type; no value is ever rounded or cut.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// A column whose new values it cannot hold exactly is widened to a type
    /// that holds the old and the new ones (`BIGINT` to `DOUBLE` for `2.5`,
    /// to `VARCHAR` when no number type does).
    #[default]
    Evolve,
    /// The table's types stay as they are: a row holding a value its column
    /// cannot hold exactly goes to the dead-letter table with the reason.
    Strict,
}

/// What writing one batch did, before the commit that makes it visible.
#[derive(Debug, Default)]
pub struct Written {
    /// Rows inserted or updated.
    pub rows: u64,
    /// Rows left out as duplicates: their `dedupe_key` was loaded already
    /// or came earlier in the batch, or a later row of the batch had their
    /// `primary_key` (`merge`).
    pub duplicates: u64,
    /// Rows the table could not take (a NULL key, a value its column cannot
    /// hold exactly); the caller records them like the source's.
    pub dead_letters: Vec<DeadLetter>,
}

/// Everything a destination needs to know about one load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// The pipeline loading.
    pub pipeline: String,
    /// The run, recorded with dead letters.
    pub run_id: String,
    /// The table loaded.
    pub table: TableName,
    /// The write disposition.
    pub write: WriteMode,
    /// Key columns for `merge`.
    pub primary_key: Vec<String>,
    /// Rows whose key is already in the table are dropped.
    pub dedupe_key: Vec<String>,
    /// Rows upsert on `primary_key` (a `merge` pipeline, or a `replace` one
    /// with a key): also when a full refresh rebuilds the table.
    pub upsert: bool,
    /// Schema evolution policy.
    pub schema: SchemaPolicy,
}

impl LoadSpec {
    /// The table batches go into: the target, or for `replace` the new table
    /// that takes its place at commit.
    pub fn write_table(&self) -> TableName {
        match self.write {
            WriteMode::Replace => TableName {
                schema: self.table.schema.clone(),
                table: format!("_flowline_new_{}", self.table.table),
            },
            _ => self.table.clone(),
        }
    }

    /// The load of child table `name` (`<table>__<name>`) that goes with
    /// this one: same pipeline, run and disposition, its own key. A merge
    /// child without a key appends.
    pub fn child(&self, name: &str, primary_key: Vec<String>) -> LoadSpec {
        let upsert = self.upsert && !primary_key.is_empty();
        LoadSpec {
            pipeline: self.pipeline.clone(),
            run_id: self.run_id.clone(),
            table: TableName {
                schema: self.table.schema.clone(),
                table: format!("{}__{name}", self.table.table),
            },
            write: match self.write {
                WriteMode::Merge if !upsert => WriteMode::Append,
                other => other,
            },
            primary_key,
            dedupe_key: Vec::new(),
            upsert,
            schema: self.schema,
        }
    }

    /// Whether rows upsert on the primary key: `merge`, and `replace` (a
    /// merge pipeline's full refresh) when a key is given, so a rebuilt table
    /// holds one row per key just as the merged one did.
    pub fn upserts(&self) -> bool {
        self.upsert && !self.primary_key.is_empty()
    }

    /// Whether rows already in the table (by `dedupe_key`) are dropped.
    pub fn dedupes(&self) -> bool {
        !self.dedupe_key.is_empty() && !self.upserts()
    }

    /// The columns rows are matched on: the primary key of an upserting
    /// load, the dedupe key of a deduplicating one, none otherwise.
    pub fn match_keys(&self) -> &[String] {
        if self.upserts() {
            &self.primary_key
        } else if self.dedupes() {
            &self.dedupe_key
        } else {
            &[]
        }
    }

    /// Checks that the key columns an upserting or deduplicating load
    /// needs are in the batch.
    pub fn check_keys(&self, schema: &arrow::datatypes::Schema) -> Result<()> {
        for key in self.match_keys() {
            if schema.field_with_name(key).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(Error::pipeline(
                    &self.pipeline,
                    format!(
                        "key column \"{key}\" is not in the data (columns: {})",
                        names.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Key columns in SQL, for merging or deduplicating from a staging table
/// aliased `s` into a target aliased `t`.
pub struct KeySql {
    /// `"a", "b"`
    pub list: String,
    /// `t."a" = s."a" AND t."b" = s."b"`
    pub join: String,
}

impl KeySql {
    /// The SQL of `keys`, each quoted by `quote`.
    pub fn new(keys: &[String], quote: impl Fn(&str) -> String) -> KeySql {
        let quoted: Vec<String> = keys.iter().map(|k| quote(k)).collect();
        KeySql {
            list: quoted.join(", "),
            join: quoted
                .iter()
                .map(|k| format!("t.{k} = s.{k}"))
                .collect::<Vec<_>>()
                .join(" AND "),
        }
    }
}
