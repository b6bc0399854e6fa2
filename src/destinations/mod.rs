//! Destinations: where batches land. Each kind implements [`Warehouse`]
//! (queries, saved state) and hands out a [`Destination`] per load. The SQL
//! warehouses share one transactional load core, [`load`], and keep only
//! their connection, bulk append, type names and settings.
//!
//! The contract every destination keeps: data written since the last commit,
//! in the pipeline's table and its child tables alike, becomes visible
//! together with the pipeline's new state, in one transaction, or not at
//! all. A crash at any point therefore neither loses nor duplicates rows:
//! the re-run starts from the last committed state.

pub mod duckdb;
pub(crate) mod load;
pub mod postgres;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use toml::Spanned;

use crate::config::{Project, WarehouseConfig};
use crate::error::Result;
use crate::sources::DeadLetter;

/// `[destination]`: the table a pipeline loads.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// `schema.table` in the warehouse (`table` alone means `main.table`).
    pub table: Spanned<String>,
    /// `append` (default), `replace` or `merge`.
    #[serde(default)]
    pub write: Option<Spanned<WriteMode>>,
    /// Columns identifying a row; required for `merge`.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Columns identifying a message: a row whose key is already in the
    /// table (a broker's redelivery) is dropped, as are repeats within a batch.
    #[serde(default)]
    pub dedupe_key: Vec<String>,
    /// Load into this `[connections.<name>]` (a Postgres database) instead
    /// of the project's warehouse.
    #[serde(default)]
    pub connection: Option<String>,
    /// `strict` (default): a source type that does not fit the table's column
    /// fails the run. `evolve`: the column is widened to a type holding both.
    #[serde(default)]
    pub schema: SchemaPolicy,
}

impl DestinationConfig {
    /// The write disposition.
    pub fn write_mode(&self) -> WriteMode {
        self.write
            .as_ref()
            .map_or(WriteMode::Append, |w| *w.get_ref())
    }

    /// Where `table` is written in the file.
    pub fn table_span(&self) -> std::ops::Range<usize> {
        self.table.span()
    }
}

/// What a load does with rows already in the table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
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

/// How the table's schema may change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SchemaPolicy {
    /// New columns are added; incompatible types fail the run.
    #[default]
    Strict,
    /// New columns are added and columns are widened to hold new types.
    Evolve,
}

/// A `schema.table` name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableName {
    /// The schema (`main` when not given).
    pub schema: String,
    /// The table.
    pub table: String,
}

impl TableName {
    /// Parses `schema.table` or `table`.
    pub fn parse(text: &str) -> std::result::Result<TableName, String> {
        let parts: Vec<&str> = text.split('.').collect();
        let valid = |s: &str| !s.trim().is_empty();
        match parts.as_slice() {
            [table] if valid(table) => Ok(TableName {
                schema: "main".into(),
                table: table.to_string(),
            }),
            [schema, table] if valid(schema) && valid(table) => Ok(TableName {
                schema: schema.to_string(),
                table: table.to_string(),
            }),
            _ => Err(format!(
                "table {text:?} is not a table name: write \"schema.table\" or \"table\""
            )),
        }
    }
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
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

    /// Checks that the key columns an upserting or deduplicating load
    /// needs are in the batch.
    pub fn check_keys(&self, schema: &arrow::datatypes::Schema) -> Result<()> {
        let keys = if self.upserts() {
            &self.primary_key
        } else if self.dedupes() {
            &self.dedupe_key
        } else {
            return Ok(());
        };
        for key in keys {
            if schema.field_with_name(key).is_err() {
                let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
                return Err(crate::error::Error::pipeline(
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
pub(crate) struct KeySql {
    /// `"a", "b"`
    pub list: String,
    /// `t."a" = s."a" AND t."b" = s."b"`
    pub join: String,
}

impl KeySql {
    /// The SQL of `keys`, each quoted by `quote`.
    pub(crate) fn new(keys: &[String], quote: impl Fn(&str) -> String) -> KeySql {
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

/// Progress a pipeline committed, as the warehouse holds it.
#[derive(Debug, Clone)]
pub struct SavedState {
    /// The source's state, as its last checkpoint gave it.
    pub state: serde_json::Value,
    /// The run that committed it.
    pub run_id: String,
    /// When, as text.
    pub updated_at: String,
}

/// A query result.
#[derive(Debug, Clone)]
pub struct QueryResult {
    /// Column names and types.
    pub schema: SchemaRef,
    /// The rows.
    pub batches: Vec<RecordBatch>,
}

/// A warehouse: loads, queries, and the pipelines' committed state.
pub trait Warehouse: Send + Sync {
    /// Opens a load for one pipeline run: `load`'s table, plus the child
    /// tables declared on it with [`Destination::add_child`].
    fn destination(&self, load: LoadSpec) -> Result<Box<dyn Destination>>;

    /// Runs SQL and returns the result.
    fn query(&self, sql: &str) -> Result<QueryResult>;

    /// The state `pipeline` last committed, if any.
    fn saved_state(&self, pipeline: &str) -> Result<Option<SavedState>>;

    /// Whether `table` exists.
    fn table_exists(&self, table: &TableName) -> Result<bool>;
}

/// One load of a pipeline: its table and its child tables, on one
/// connection, committed in steps. Each commit is one transaction holding
/// every table's rows and the pipeline's state.
pub trait Destination: Send {
    /// Adds child table `name` (`<table>__<name>`, see [`LoadSpec::child`])
    /// to this load, keyed by `primary_key` when the load upserts. Declare
    /// every child before the first commit: a `replace` load empties a
    /// declared child table that received no rows.
    fn add_child(&mut self, name: &str, primary_key: Vec<String>) -> Result<()>;

    /// Writes a batch into the pipeline's table; visible to others only
    /// after [`Destination::commit`].
    fn write(&mut self, batch: RecordBatch) -> Result<()>;

    /// Writes a batch into the child table `name`, declared with
    /// [`Destination::add_child`]; it commits with the pipeline's table.
    fn write_child(&mut self, name: &str, batch: RecordBatch) -> Result<()>;

    /// Records rows the source could not read; committed with the data.
    fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()>;

    /// Makes everything written so far, in every table of the load,
    /// visible together with `state` (`None` keeps the saved state as it is).
    fn commit(&mut self, state: Option<&serde_json::Value>) -> Result<()>;

    /// Discards everything written since the last commit.
    fn rollback(&mut self) -> Result<()>;

    /// After a failed run's rollback: records the rows it rejected in a
    /// transaction of their own, so the user can see why it failed.
    fn keep_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()>;
}

/// Opens the project's warehouse.
pub fn open_warehouse(project: &Project) -> Result<Box<dyn Warehouse>> {
    let config: &WarehouseConfig = &project.settings.warehouse;
    match config.kind {
        crate::config::WarehouseKind::Duckdb => {
            let path = project.resolve(&config.path);
            Ok(Box::new(duckdb::DuckDbWarehouse::open(&path, config)?))
        }
        crate::config::WarehouseKind::Postgres => {
            let url = match (&config.url, &config.connection) {
                (Some(url), None) => url.clone(),
                (None, Some(name)) => connection_url(project, name)?,
                _ => {
                    return Err(crate::error::Error::Config(
                        "[warehouse] kind = \"postgres\" needs either url or connection".into(),
                    ));
                }
            };
            Ok(Box::new(postgres::PostgresWarehouse::open(&url)?))
        }
    }
}

/// The warehouse a pipeline loads into when its `[destination]` names its
/// own `connection`; `None` means the project's warehouse.
pub fn open_pipeline_warehouse(
    project: &Project,
    config: &DestinationConfig,
) -> Result<Option<Box<dyn Warehouse>>> {
    let Some(name) = &config.connection else {
        return Ok(None);
    };
    check_destination(project, config)?;
    let url = connection_url(project, name)?;
    Ok(Some(Box::new(postgres::PostgresWarehouse::open(&url)?)))
}

fn connection_url(project: &Project, name: &str) -> Result<String> {
    project
        .settings
        .connections
        .get(name)
        .and_then(|c| c.url.clone())
        .ok_or_else(|| {
            crate::error::Error::Config(format!(
                "no [connections.{name}] with a url in flowline.toml"
            ))
        })
}

/// Checks `[warehouse]` settings without opening the warehouse.
pub fn check_warehouse_settings(project: &Project) -> Result<()> {
    let config = &project.settings.warehouse;
    match config.kind {
        crate::config::WarehouseKind::Duckdb => duckdb::check_settings(config),
        crate::config::WarehouseKind::Postgres => match (&config.url, &config.connection) {
            (Some(_), None) => Ok(()),
            (None, Some(name)) => connection_url(project, name).map(|_| ()),
            _ => Err(crate::error::Error::Config(
                "[warehouse] kind = \"postgres\" needs either url or connection".into(),
            )),
        },
    }
}

/// Checks a pipeline's `[destination] connection` without connecting.
pub fn check_destination(project: &Project, config: &DestinationConfig) -> Result<()> {
    let Some(name) = &config.connection else {
        return Ok(());
    };
    let url = connection_url(project, name)?;
    match crate::sources::catalog::DatabaseKind::of(&url)? {
        crate::sources::catalog::DatabaseKind::Postgres => Ok(()),
        other => Err(crate::error::Error::Config(format!(
            "[destination] connection = \"{name}\": {} is not a supported destination (postgres is)",
            other.source_kind()
        ))),
    }
}
