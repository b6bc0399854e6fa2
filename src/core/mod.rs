//! The shared vocabulary every other layer speaks, importing nothing of
//! flowline's: errors, batches and dead letters, table names, write modes and
//! load specs, connections, secrets and diagnostics, and the JSON Schema pieces
//! the connector registries share.

pub mod batch;
pub mod connections;
pub mod diagnostic;
pub mod error;
pub mod load;
pub mod scan;
pub mod schema;
pub mod secrets;
pub mod table;
pub mod tables;

pub use batch::{BatchSender, ChildTable, DeadLetter, SourceBatch};
pub use connections::{ConnectionConfig, Connections, Workspace};
pub use error::{Error, Result};
pub use load::{KeySql, LoadSpec, SchemaPolicy, WriteMode, Written};
pub use scan::{FileScan, ScanFormat, ScanOffer};
pub use table::TableName;

/// How a pipeline runs.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    serde::Deserialize,
    serde::Serialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Offline extraction: a run reads what is there and stops.
    #[default]
    Batch,
    /// Online extraction: `flowline stream` consumes continuously, in
    /// micro-batches, until stopped.
    Stream,
}

impl Mode {
    /// The mode as written in a pipeline file.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Batch => "batch",
            Mode::Stream => "stream",
        }
    }
}
