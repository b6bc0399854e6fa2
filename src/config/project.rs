//! `flowline.toml`: the project's name, warehouse, state store and connections.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::core::Connections;
use crate::destinations::WarehouseConfig;

/// The whole of `flowline.toml`.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectFile {
    /// `[project]`: who this project is.
    pub project: ProjectSection,
    /// `[warehouse]`: where pipelines load by default. Read separately,
    /// with the config struct of its `kind` (see [`WarehouseConfig::from_toml`]).
    #[serde(skip)]
    pub warehouse: WarehouseConfig,
    /// `[state]`: the run-history store.
    #[serde(default)]
    pub state: StateConfig,
    /// `[connections.<name>]`: named connections that sources and destinations refer to.
    #[serde(default)]
    pub connections: Connections,
}

/// `[project]`: who this project is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// The project's name, shown in reports (`flowline validate`,
    /// `flowline run --json`).
    pub name: String,
}

/// `[state]`: the run-history store.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Store engine. Only the embedded SQLite exists today.
    #[serde(default)]
    pub kind: StateKind,
    /// The SQLite file, relative to the project folder. Default
    /// `.flowline/state.db`.
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum StateKind {
    /// An embedded SQLite file.
    #[default]
    Sqlite,
}
