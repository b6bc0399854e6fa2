//! Serving other flowline processes. Today: the local control socket.
//!
//! DuckDB lets one process open a database file at a time, so one flowline
//! process owns the project's embedded warehouse: a long-running one such as
//! `flowline serve` or `flowline stream`. It listens on a Unix socket at
//! `<project>/.flowline/flowline.sock` ([`local`]). Other flowline commands on
//! the same machine and project (`sql`, `status`, `run`) look for that owner
//! first and, when one answers, ask it instead of opening the file
//! ([`client`]); when none answers they open the warehouse themselves, as
//! before. The bytes exchanged are described in `protocol`.

pub mod client;
pub mod local;
mod protocol;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Project;

/// Where the owning process listens, relative to the project folder.
pub const SOCKET: &str = ".flowline/flowline.sock";

/// The control socket of `project`.
pub fn socket_path(project: &Project) -> PathBuf {
    project.dir.join(SOCKET)
}

/// The process that owns a project's warehouse, as it describes itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Its process id.
    pub pid: u32,
    /// The name of the project it serves.
    pub project: String,
    /// What it is doing, such as `flowline serve`.
    pub activity: String,
    /// Pipelines it is running right now.
    pub running: Vec<String>,
}
