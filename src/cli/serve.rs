//! `flowline serve`: hold the project's warehouse and serve other flowline
//! commands on this machine until Ctrl-C or SIGTERM.
//!
//! Today it answers on the local control socket (see [`crate::server`]):
//! `flowline sql`, `status` and `run` started elsewhere on the same project
//! use this process's warehouse instead of opening the file. The scheduler,
//! the HTTP API and the web UI are to be served from here too.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;
use crate::server::local;
use crate::state::{StateStore, open_state_store};

/// Exit code after a second Ctrl-C cut the shutdown short (128 + SIGINT).
const INTERRUPTED: i32 = 130;

/// SIGINT (Ctrl-C) and SIGTERM, either of which stops the server.
pub(super) struct StopSignals {
    interrupt: Signal,
    terminate: Signal,
}

impl StopSignals {
    /// Listens for both signals.
    pub(super) fn install() -> Result<StopSignals> {
        let install = |kind: SignalKind| {
            signal(kind).map_err(|e| Error::Other(format!("listening for signals: {e}")))
        };
        Ok(StopSignals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
        })
    }

    /// Waits for the next of them.
    pub(super) async fn next(&mut self) {
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
    }
}

/// Serves the project until a stop signal, then shuts down cleanly.
pub async fn execute(project_dir: &Path) -> Result<ExitCode> {
    let project = Arc::new(Project::load(project_dir)?);
    let mut signals = StopSignals::install()?;
    // The socket first: a second `serve` fails naming this one's pid, and
    // other commands wait for this one instead of hitting the file's lock.
    let socket = local::bind(project.clone()).await?;
    let warehouse: Arc<dyn Warehouse> = Arc::from(project.open_warehouse()?);
    let store: Arc<dyn StateStore> = Arc::from(open_state_store(&project)?);
    let server = socket.serve(warehouse, store);
    server.set_activity("flowline serve");
    println!(
        "serving project {}'s warehouse on {} (Ctrl-C to stop)",
        project.settings.project.name,
        server.socket_path().display()
    );

    signals.next().await;
    let running = server.running();
    if running.is_empty() {
        tracing::info!("stopping");
    } else {
        tracing::warn!(
            "stopping once {} finished (Ctrl-C again to stop at once)",
            running.join(", ")
        );
    }
    tokio::select! {
        _ = server.shutdown() => Ok(ExitCode::SUCCESS),
        _ = signals.next() => {
            // What the runs had not committed is rolled back, as after a
            // crash; the socket file left behind is removed by the next owner.
            tracing::warn!("stopped before the runs finished");
            std::process::exit(INTERRUPTED)
        }
    }
}
