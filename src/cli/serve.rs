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
use crate::destinations::lazy::LazyWarehouse;
use crate::orchestrator::host::Host;
use crate::orchestrator::runner::{Runner, RunnerOptions};
use crate::orchestrator::{open_store, scheduler};
use crate::server::access::OwnedWarehouse;
use crate::server::{http, local};
use crate::state::db::Dialect;
use crate::state::{StateStore, open_state_store};
use tokio::sync::watch;

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

/// Arguments of `flowline serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Job steps this process runs at once. Default: 16 on the embedded
    /// SQLite state store, 0 (steps run on `flowline worker`s) on PostgreSQL.
    #[arg(long)]
    pub concurrency: Option<usize>,
}

/// Serves the project until a stop signal, then shuts down cleanly.
pub async fn execute(project_dir: &Path, args: ServeArgs) -> Result<ExitCode> {
    let project = Arc::new(Project::load(project_dir)?);
    let mut signals = StopSignals::install()?;
    // The socket first: a second `serve` fails naming this one's pid, and
    // other commands wait for this one instead of hitting the file's lock.
    let socket = local::bind(project.clone()).await?;
    // Opened when first needed: an idle server holds none of its memory.
    let opener = project.clone();
    let warehouse: Arc<dyn Warehouse> =
        Arc::new(LazyWarehouse::new(move || opener.open_warehouse()));
    let history: Arc<dyn StateStore> = Arc::from(open_state_store(&project)?);
    let server = socket.serve(warehouse.clone(), history.clone());
    server.set_activity("flowline serve");
    let jobs = open_store(&project).await?;
    let settings = &project.settings.server;
    let listen = http::check_listen(&settings.listen, settings.token.as_deref())?;
    let host = Arc::new(Host::new(
        project.clone(),
        jobs.clone(),
        Arc::new(OwnedWarehouse::new(
            warehouse,
            history.clone(),
            server.claimer(),
        )),
    ));
    let concurrency = args.concurrency.unwrap_or(match jobs.dialect() {
        Dialect::Sqlite => 16,
        Dialect::Postgres => 0,
    });
    let runner = Runner::new(
        host,
        RunnerOptions {
            concurrency,
            ..RunnerOptions::default()
        },
    );
    let (stop, stopped) = watch::channel(false);
    let retention =
        crate::jobs::schedule::parse_duration(&project.settings.server.log_retention).ok();
    let scheduler = tokio::spawn(scheduler::run(
        project.clone(),
        jobs.clone(),
        runner.id().to_string(),
        runner.waker(),
        retention,
        stopped.clone(),
    ));
    // The HTTP API; a port already taken leaves the rest of serve working.
    let api = match tokio::net::TcpListener::bind(listen).await {
        Ok(listener) => {
            let state = Arc::new(http::ApiState::new(
                project.clone(),
                jobs.clone(),
                history,
                runner.waker(),
            ));
            Some(tokio::spawn(http::serve(listener, state, stopped.clone())))
        }
        Err(e) => {
            tracing::warn!(
                "the HTTP API is off: [server] listen = \"{listen}\": {e}; set another address there"
            );
            None
        }
    };
    println!(
        "serving project {}'s warehouse on {} (Ctrl-C to stop)",
        project.settings.project.name,
        server.socket_path().display(),
    );
    if api.is_some() {
        tracing::info!(
            "scheduling {}; the HTTP API is on http://{listen}",
            super::output::plural(project.jobs.len() as u64, "job")
        );
    }
    let alerts = project.clone();
    let on_end = move |ended: crate::orchestrator::store::RunEnded| {
        let project = alerts.clone();
        tokio::spawn(async move { crate::orchestrator::alert(&project, &ended).await });
    };
    // Steps run until the first stop signal, then finish within their
    // grace period (the runner drains itself).
    let steps = async {
        if concurrency > 0 {
            runner.run(stopped.clone(), None, &on_end).await
        } else {
            let mut stopped = stopped.clone();
            let _ = stopped.wait_for(|stop| *stop).await;
            Ok(())
        }
    };
    let signal = async {
        signals.next().await;
        stop.send_replace(true);
    };
    let (result, ()) = tokio::join!(steps, signal);
    result?;
    let _ = scheduler.await;
    if let Some(api) = api {
        match api.await {
            Ok(Err(e)) => tracing::warn!("{e}"),
            Err(e) => tracing::warn!("the HTTP API: {e}"),
            Ok(Ok(())) => {}
        }
    }
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
