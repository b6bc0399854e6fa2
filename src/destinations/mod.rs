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
mod duckdb_files;
mod duckdb_ndjson;
pub mod lazy;
pub(crate) mod load;
pub mod postgres;

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use crate::core::diagnostic::SpannedError;
use crate::core::error::{Error, Result};
use crate::core::schema::{SchemaFn, object_schema, with_kind};
use crate::core::{DeadLetter, FileScan, Workspace};

pub use crate::core::{KeySql, LoadSpec, SchemaPolicy, TableName, WriteMode, Written};

/// `[destination]`: the table a pipeline loads.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationConfig {
    /// `schema.table` in the warehouse. `table` alone means `main.table`
    /// (`public.table` in PostgreSQL). The schema and the table are created
    /// on the first load.
    #[schemars(with = "String")]
    pub table: Spanned<String>,
    /// What a load does with the rows already in the table. `append` adds
    /// the rows. `replace` swaps the table's contents for the loaded rows,
    /// atomically. `merge` upserts on the primary key: a key already in the
    /// table has its row replaced (columns the load does not have keep their
    /// values), a new key is inserted, and within one load the last row
    /// wins. A large `merge` commits every 100,000 rows, so it runs within
    /// the warehouse's load memory; its saved state moves only at the end,
    /// and merging the same rows again after a crash changes nothing.
    #[serde(default)]
    #[schemars(with = "WriteMode", extend("default" = "append"))]
    pub write: Option<Spanned<WriteMode>>,
    /// The columns identifying a row. Required for `merge`. With `merge`,
    /// with `replace` and in a `--full-refresh`, the table keeps one row per
    /// key (the last row wins), and every key column must be in the loaded
    /// data.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Columns identifying a message: a row whose key is already in the
    /// table (a broker's redelivery) is dropped, as are repeats within a batch.
    #[serde(default)]
    pub dedupe_key: Vec<String>,
    /// Load this pipeline into the PostgreSQL database of this
    /// `[connections.<name>]` instead of the project's warehouse. The
    /// pipeline's saved state is kept in that database. Only PostgreSQL
    /// connections work: `flowline validate` reports a name that is not in
    /// `flowline.toml` and a connection that is not PostgreSQL. If the
    /// database cannot be reached, `flowline run` fails this pipeline (a
    /// failed run in the history) and runs the others, and `flowline status`
    /// shows `error: ...` as its progress. Default: the project's warehouse.
    #[serde(default)]
    pub connection: Option<String>,
    /// New columns are added in both modes, and a value the table's column
    /// holds exactly (`4.0` in a `BIGINT` column) is stored as it. `evolve`:
    /// a column that cannot hold a new value exactly is widened to a type
    /// that holds the old and new values (`BIGINT` to `DOUBLE`, or to
    /// `VARCHAR` when a double would round one). `strict`: the table's
    /// types stay; such a row goes to the dead-letter table.
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

    /// Runs `statements` one after another in one transaction: either all
    /// of them take effect or, when one fails, none does (DDL included:
    /// both warehouses have transactional DDL). The error carries the
    /// warehouse's own message.
    fn execute(&self, statements: &[String]) -> Result<()>;

    /// The state `pipeline` last committed, if any.
    fn saved_state(&self, pipeline: &str) -> Result<Option<SavedState>>;

    /// Forgets the state `pipeline` committed, readable or not, so that its
    /// next run starts from the beginning; `false` when there was none.
    fn reset_state(&self, pipeline: &str) -> Result<bool>;

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
    /// after [`Destination::commit`]. The rows it could not take come back
    /// as dead letters, for the caller to record.
    fn write(&mut self, batch: RecordBatch) -> Result<Written>;

    /// Writes a batch into the child table `name`, declared with
    /// [`Destination::add_child`]; it commits with the pipeline's table.
    fn write_child(&mut self, name: &str, batch: RecordBatch) -> Result<Written>;

    /// Records rows the source could not read; committed with the data.
    fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()>;

    /// Whether [`Destination::load_file`] can load files at all: the
    /// warehouse reads files itself and the load appends. Default: `false`.
    fn reads_files(&self) -> bool {
        false
    }

    /// Loads a whole file the warehouse reads itself (see
    /// [`crate::core::scan`]) into the pipeline's table, with nothing
    /// uncommitted before it; commit it like a batch. `None` when this
    /// warehouse, load or file cannot be loaded so, or a value of the file
    /// does not convert exactly to its column's type: nothing was written
    /// then, and the caller reads the file as batches. Default: `None`.
    fn load_file(&mut self, scan: &FileScan) -> Result<Option<Written>> {
        let _ = scan;
        Ok(None)
    }

    /// Makes everything written so far, in every table of the load,
    /// visible together with `state` (`None` keeps the saved state as it is).
    fn commit(&mut self, state: Option<&serde_json::Value>) -> Result<()>;

    /// Discards everything written since the last commit.
    fn rollback(&mut self) -> Result<()>;

    /// After a failed run's rollback: records the rows it rejected in a
    /// transaction of their own, so the user can see why it failed.
    fn keep_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()>;
}

/// Every warehouse kind. Adding one is one module and one line here.
pub fn warehouses() -> Vec<WarehouseRegistration> {
    vec![
        WarehouseRegistration::of::<duckdb::DuckDbConfig>(),
        WarehouseRegistration::of::<postgres::PostgresWarehouseConfig>(),
    ]
}

/// What a warehouse kind is. Implemented by its `[warehouse]` config type,
/// whose `JsonSchema` documents it.
pub trait WarehouseConnector: fmt::Debug + Send + Sync + 'static {
    /// The `kind` that selects it.
    fn kind() -> &'static str
    where
        Self: Sized;

    /// What it is, in a few words.
    fn summary() -> &'static str
    where
        Self: Sized;

    /// URL schemes of the connections a `[destination] connection` may
    /// name to load into a warehouse of this kind.
    fn schemes() -> &'static [&'static str]
    where
        Self: Sized,
    {
        &[]
    }

    /// Opens the warehouse a connection URL names.
    fn open_url(url: &str) -> Result<Box<dyn Warehouse>>
    where
        Self: Sized,
    {
        let _ = url;
        Err(Error::Config(format!(
            "a {} warehouse cannot be named by a connection URL",
            Self::kind()
        )))
    }

    /// Checks the settings without opening the warehouse.
    fn check(&self, workspace: &Workspace) -> Result<()>;

    /// Opens (or creates) the warehouse.
    fn open(&self, workspace: &Workspace) -> Result<Box<dyn Warehouse>>;
}

/// Parses a `[warehouse]` table into a warehouse config.
type ParseWarehouse =
    for<'a> fn(ValueDeserializer<'a>) -> Result<Arc<dyn WarehouseConnector>, SpannedError>;

/// One entry of [`warehouses`].
#[derive(Clone, Copy)]
pub struct WarehouseRegistration {
    /// The `kind` that selects it.
    pub kind: &'static str,
    /// What it is.
    pub summary: &'static str,
    /// URL schemes a `[destination] connection` may have.
    pub schemes: &'static [&'static str],
    parse: ParseWarehouse,
    schema: SchemaFn,
    open_url: fn(&str) -> Result<Box<dyn Warehouse>>,
}

impl WarehouseRegistration {
    /// The registration of warehouse config `T`.
    pub fn of<T: WarehouseConnector + DeserializeOwned + JsonSchema>() -> Self {
        fn parse<T: WarehouseConnector + DeserializeOwned>(
            config: ValueDeserializer<'_>,
        ) -> Result<Arc<dyn WarehouseConnector>, SpannedError> {
            Ok(Arc::new(T::deserialize(config)?))
        }
        WarehouseRegistration {
            kind: T::kind(),
            summary: T::summary(),
            schemes: T::schemes(),
            parse: parse::<T>,
            schema: object_schema::<T>,
            open_url: T::open_url,
        }
    }

    /// The JSON Schema of a `[warehouse]` of this kind; `default` when
    /// `kind` may be left out for it.
    pub fn schema(&self, generator: &mut SchemaGenerator, default: bool) -> Schema {
        let mut schema = (self.schema)(generator);
        with_kind(&mut schema, self.kind, self.summary, default);
        schema
    }
}

impl fmt::Debug for WarehouseRegistration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarehouseRegistration")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// `[warehouse]`: the kind chosen, with its settings.
#[derive(Debug, Clone)]
pub struct WarehouseConfig {
    registration: WarehouseRegistration,
    connector: Arc<dyn WarehouseConnector>,
}

impl JsonSchema for WarehouseConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "WarehouseConfig".into()
    }

    /// One of the registered kinds; the first is the default, whose `kind`
    /// may be left out.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let all = warehouses();
        let kinds: Vec<&str> = all.iter().map(|w| w.kind).collect();
        let variants: Vec<serde_json::Value> = all
            .iter()
            .enumerate()
            .map(|(i, w)| w.schema(generator, i == 0).to_value())
            .collect();
        schemars::json_schema!({
            "description": "`[warehouse]`: where pipelines load by default, and where `flowline sql` runs its queries.",
            "type": "object",
            "properties": { "kind": { "enum": kinds, "default": kinds.first() } },
            "oneOf": variants,
        })
    }
}

impl Default for WarehouseConfig {
    /// The embedded DuckDB file with its default settings.
    fn default() -> Self {
        WarehouseConfig {
            registration: WarehouseRegistration::of::<duckdb::DuckDbConfig>(),
            connector: Arc::new(duckdb::DuckDbConfig::default()),
        }
    }
}

impl WarehouseConfig {
    /// Reads a `[warehouse]` table: its `kind` (default `duckdb`), then the
    /// rest as that kind's config struct, keeping exact error positions.
    pub fn from_toml(value: Spanned<DeValue<'_>>) -> Result<WarehouseConfig, SpannedError> {
        let span = value.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            return Err(SpannedError {
                message: "[warehouse] must be a table".into(),
                span: Some(span),
            });
        };
        let all = warehouses();
        let names: Vec<String> = all.iter().map(|w| format!("`{}`", w.kind)).collect();
        let registration = match table.remove("kind") {
            None => all[0],
            Some(kind) => {
                let kind_span = kind.span();
                let name = kind.get_ref().as_str().ok_or_else(|| SpannedError {
                    message: "`kind` must be a string".into(),
                    span: Some(kind_span.clone()),
                })?;
                *all.iter()
                    .find(|w| w.kind == name)
                    .ok_or_else(|| SpannedError {
                        message: format!(
                            "unknown variant `{name}`, expected one of {}",
                            names.join(", ")
                        ),
                        span: Some(kind_span),
                    })?
            }
        };
        let rest = ValueDeserializer::from(Spanned::new(span, DeValue::Table(table)));
        Ok(WarehouseConfig {
            registration,
            connector: (registration.parse)(rest)?,
        })
    }

    /// The `kind`.
    pub fn kind(&self) -> &'static str {
        self.registration.kind
    }

    /// Checks the settings without opening the warehouse.
    pub fn check(&self, workspace: &Workspace) -> Result<()> {
        self.connector.check(workspace)
    }

    /// Opens the warehouse.
    pub fn open(&self, workspace: &Workspace) -> Result<Box<dyn Warehouse>> {
        self.connector.open(workspace)
    }
}

/// The warehouse kind a `[destination] connection = "name"` loads into,
/// chosen by the connection URL's scheme.
fn destination_warehouse(
    workspace: &Workspace,
    name: &str,
) -> Result<(WarehouseRegistration, String)> {
    let url = workspace.connections.url(name)?;
    let scheme = crate::core::connections::scheme(&url);
    let all = warehouses();
    let found = all.iter().find(|w| w.schemes.contains(&scheme.as_str()));
    match found {
        Some(warehouse) => Ok((*warehouse, url)),
        None => {
            let supported: Vec<&str> = all
                .iter()
                .filter(|w| !w.schemes.is_empty())
                .map(|w| w.kind)
                .collect();
            Err(Error::Config(format!(
                "[destination] connection = \"{name}\": {scheme}:// is not a supported destination ({} is)",
                supported.join(", ")
            )))
        }
    }
}

/// The warehouse a pipeline loads into when its `[destination]` names its
/// own `connection`; `None` means the project's warehouse.
pub fn open_pipeline_warehouse(
    workspace: &Workspace,
    config: &DestinationConfig,
) -> Result<Option<Box<dyn Warehouse>>> {
    let Some(name) = &config.connection else {
        return Ok(None);
    };
    let (warehouse, url) = destination_warehouse(workspace, name)?;
    Ok(Some((warehouse.open_url)(&url)?))
}

/// Checks a pipeline's `[destination] connection` without connecting.
pub fn check_destination(workspace: &Workspace, config: &DestinationConfig) -> Result<()> {
    match &config.connection {
        Some(name) => destination_warehouse(workspace, name).map(|_| ()),
        None => Ok(()),
    }
}
