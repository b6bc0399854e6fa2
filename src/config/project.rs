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
    /// `[pools]`: `name = slots`; a job step with `pool = "name"` waits
    /// while that many steps of the pool run.
    #[serde(default)]
    pub pools: std::collections::BTreeMap<String, u32>,
    /// `[server]`: how `flowline serve` listens.
    #[serde(default)]
    pub server: ServerConfig,
}

/// `[server]`: how `flowline serve` listens and who may ask it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the HTTP API and `/metrics`. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// The bearer token every API request must carry
    /// (`token = "${FLOWLINE_TOKEN}"`). Required when `listen` is not a
    /// loopback address.
    #[serde(default)]
    pub token: Option<String>,
    /// The URL users reach the server at, for links in alerts. Default:
    /// `http://` + `listen`.
    #[serde(default)]
    pub url: Option<String>,
    /// How long step logs are kept (`"30d"`). Default `30d`.
    #[serde(default = "default_log_retention")]
    pub log_retention: String,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: default_listen(),
            token: None,
            url: None,
            log_retention: default_log_retention(),
        }
    }
}

impl ServerConfig {
    /// Where users reach the server.
    pub fn public_url(&self) -> Option<String> {
        Some(
            self.url
                .clone()
                .unwrap_or_else(|| format!("http://{}", self.listen)),
        )
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_log_retention() -> String {
    "30d".into()
}

/// `[project]`: who this project is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    /// The project's name, shown in reports (`flowline validate`,
    /// `flowline run --json`).
    pub name: String,
    /// The Python interpreter that runs `[[transform]] python = ...` steps:
    /// a program on `PATH` (`python3.12`) or a path, relative to the project
    /// folder (`.venv/bin/python`), so that a virtualenv's packages are
    /// there. Default: `python3`, else `python`, on `PATH`.
    #[serde(default)]
    pub python: Option<String>,
}

/// `[state]`: the run-history store.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Store engine: `sqlite` (the default) or `postgres`; a `url` that
    /// starts with `postgres://` picks `postgres` by itself.
    #[serde(default)]
    pub kind: Option<StateKind>,
    /// The SQLite file, relative to the project folder. Default
    /// `.flowline/state.db`.
    #[serde(default = "default_state_path")]
    pub path: String,
    /// A shared PostgreSQL store (`"${STATE_DB_URL}"`): workers on several
    /// machines share its queue.
    #[serde(default)]
    pub url: Option<String>,
}

impl StateConfig {
    /// Checks that the settings agree (a PostgreSQL store needs its URL).
    pub fn check(&self) -> Result<(), String> {
        match (self.kind(), &self.url) {
            (StateKind::Postgres, None) => {
                Err("[state] kind = \"postgres\" needs url = \"postgres://...\"".into())
            }
            (StateKind::Sqlite, Some(url)) => Err(format!(
                "[state] url {:?} is not a postgres:// URL; the SQLite store takes path = \"...\"",
                crate::core::secrets::redact(url)
            )),
            _ => Ok(()),
        }
    }

    /// The engine in use.
    pub fn kind(&self) -> StateKind {
        match (self.kind, &self.url) {
            (Some(kind), _) => kind,
            (None, Some(url)) if url.starts_with("postgres") => StateKind::Postgres,
            _ => StateKind::Sqlite,
        }
    }
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            kind: None,
            path: default_state_path(),
            url: None,
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
    /// A PostgreSQL database (`url`), shared by workers on several machines.
    Postgres,
}
