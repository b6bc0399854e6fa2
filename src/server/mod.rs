//! Serving other flowline processes. Today: the local control socket.
//!
//! DuckDB lets one process open a database file at a time, so one flowline
//! process owns the project's embedded warehouse: a long-running one such as
//! `flowline serve` or `flowline stream`. It listens on a Unix socket at
//! `<project>/.flowline/flowline.sock`, or at a short path named after the
//! project when that one is too long for a socket ([`socket_path`],
//! [`local`]). Other flowline commands on
//! the same machine and project (`sql`, `status`, `run`) look for that owner
//! first and, when one answers, ask it instead of opening the file
//! ([`client`]); when none answers they open the warehouse themselves, as
//! before. The bytes exchanged are described in `protocol`.

pub mod access;
pub mod client;
pub mod http;
pub mod local;
mod protocol;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::Project;

/// Where the owning process listens, relative to the project folder, when
/// that path fits in a Unix socket address.
pub const SOCKET: &str = ".flowline/flowline.sock";

/// The longest socket path the kernel takes (`sun_path` holds 108 bytes,
/// the last one a NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The control socket of `project`: `<project>/.flowline/flowline.sock`
/// when that path fits in a socket address, otherwise a short one named
/// after a hash of the project's canonical path (see [`runtime_socket`]).
/// Every flowline process finds the same path for the same project folder,
/// however it was named on the command line.
pub fn socket_path(project: &Project) -> PathBuf {
    let canonical = std::fs::canonicalize(&project.dir).unwrap_or_else(|_| project.dir.clone());
    let in_project = project.dir.join(SOCKET);
    let fits = |path: &std::path::Path| path.as_os_str().len() <= MAX_SOCKET_PATH;
    match canonical.join(SOCKET) {
        long if !fits(&long) => runtime_socket(&canonical),
        _ if fits(&in_project) => in_project,
        short => short,
    }
}

/// `<runtime dir>/<hash>.sock` for a project folder whose own socket path
/// would be too long: the runtime dir is `$XDG_RUNTIME_DIR/flowline` (a
/// folder only this user can enter) or, without one, `/tmp/flowline-<uid>`.
pub fn runtime_socket(canonical_project: &std::path::Path) -> PathBuf {
    use sha2::{Digest, Sha256};
    use std::os::unix::ffi::OsStrExt;
    let digest = Sha256::digest(canonical_project.as_os_str().as_bytes());
    runtime_dir().join(format!("{}.sock", hex::encode(&digest[..8])))
}

/// The folder of [`runtime_socket`]s; short enough for any of them to fit.
pub fn runtime_dir() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR")
        .map(PathBuf::from)
        .filter(|dir| dir.is_absolute() && dir.as_os_str().len() <= MAX_SOCKET_PATH - 40);
    match xdg {
        Some(dir) => dir.join("flowline"),
        None => PathBuf::from(format!("/tmp/flowline-{}", current_uid())),
    }
}

/// This process's user id, as Linux shows it on `/proc/self`.
pub fn current_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
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
