//! `flowline.toml`: the project's name, warehouse, state store and connections.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The whole of `flowline.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// `[project]`: who this project is.
    pub project: ProjectSection,
    /// `[warehouse]`: where pipelines load by default.
    #[serde(default)]
    pub warehouse: WarehouseConfig,
    /// `[state]`: where run history is kept.
    #[serde(default)]
    pub state: StateConfig,
    /// `[connections.<name>]`: named connections that sources and destinations refer to.
    #[serde(default)]
    pub connections: BTreeMap<String, ConnectionConfig>,
}

/// `[project]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// The project's name, shown in reports.
    pub name: String,
}

/// `[warehouse]`: the default destination of every pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    /// Warehouse engine: `duckdb` (embedded, the default).
    #[serde(default)]
    pub kind: WarehouseKind,
    /// DuckDB database file, relative to the project. Default `.flowline/warehouse.duckdb`.
    #[serde(default = "default_warehouse_path")]
    pub path: String,
    /// Postgres: the database URL (prefer `connection` with `${VAR}`).
    #[serde(default)]
    pub url: Option<String>,
    /// Postgres: a `[connections.<name>]` whose `url` is used.
    #[serde(default)]
    pub connection: Option<String>,
    /// DuckDB's memory limit for queries (`"512MB"`, `"2GB"`). Beyond it
    /// DuckDB spills to disk. Default `"1GB"`.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: String,
    /// DuckDB's memory limit while loads run. Appended data is written to
    /// the file as it comes, so loads need little: a small limit keeps the
    /// loading process's memory bounded whatever the table's size.
    /// Default `"128MB"`.
    #[serde(default = "default_load_memory_limit")]
    pub load_memory_limit: String,
    /// DuckDB worker threads while loads run. Default: half the machine's
    /// cores (at least one), leaving the rest to the sources.
    #[serde(default)]
    pub load_threads: Option<u32>,
    /// DuckDB worker threads. Default: DuckDB's choice (the machine's cores).
    #[serde(default)]
    pub threads: Option<u32>,
}

impl Default for WarehouseConfig {
    fn default() -> Self {
        WarehouseConfig {
            kind: WarehouseKind::default(),
            path: default_warehouse_path(),
            memory_limit: default_memory_limit(),
            load_memory_limit: default_load_memory_limit(),
            load_threads: None,
            threads: None,
            url: None,
            connection: None,
        }
    }
}

fn default_memory_limit() -> String {
    "1GB".into()
}

fn default_load_memory_limit() -> String {
    "128MB".into()
}

fn default_warehouse_path() -> String {
    ".flowline/warehouse.duckdb".into()
}

/// Warehouse engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WarehouseKind {
    /// An embedded DuckDB file.
    #[default]
    Duckdb,
    /// A Postgres database (`url` or `connection`).
    Postgres,
}

/// `[state]`: the run-history store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Store engine: `sqlite` (embedded, the default).
    #[serde(default)]
    pub kind: StateKind,
    /// SQLite file, relative to the project. Default `.flowline/state.db`.
    #[serde(default = "default_state_path")]
    pub path: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            kind: StateKind::default(),
            path: default_state_path(),
        }
    }
}

fn default_state_path() -> String {
    ".flowline/state.db".into()
}

/// State store engines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// An embedded SQLite file.
    #[default]
    Sqlite,
}

/// `[connections.<name>]`: a URL plus connector-specific options.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionConfig {
    /// Connection URL, usually `${SOME_URL}` so the secret stays out of the file.
    #[serde(default)]
    pub url: Option<String>,
    /// Any other option, read by the connector that uses this connection.
    #[serde(flatten)]
    pub options: BTreeMap<String, toml::Value>,
}
