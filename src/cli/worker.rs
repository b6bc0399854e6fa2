//! `flowline worker`: runs job steps taken from the shared state store
//! until Ctrl-C or SIGTERM; on a stop it takes no more steps, lets the
//! running ones finish within a grace period, then gives the rest back.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::serve::StopSignals;
use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::orchestrator::host::Host;
use crate::orchestrator::open_store;
use crate::orchestrator::runner::{Runner, RunnerOptions};
use crate::orchestrator::store::Scope;

/// Arguments of `flowline worker`.
#[derive(Debug, clap::Args)]
pub struct WorkerArgs {
    /// Steps at once, at most.
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// Take only steps of this pool (repeatable). Default: every step.
    #[arg(long = "pool")]
    pub pools: Vec<String>,
    /// On a stop, how long running steps may take to finish.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub grace: Duration,
    /// How long a step stays this worker's without a heartbeat; after it,
    /// another worker runs the step again.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub lease: Duration,
    /// Answer `GET /healthz` on this address (`127.0.0.1:8081`) while the
    /// worker runs, for container health checks (`flowline healthcheck
    /// --url http://127.0.0.1:8081/healthz`).
    #[arg(long, value_name = "ADDR")]
    pub health_listen: Option<std::net::SocketAddr>,
}

/// Runs steps until a stop signal.
pub async fn execute(project_dir: &Path, args: WorkerArgs) -> Result<ExitCode> {
    let project = Arc::new(Project::load(project_dir)?);
    let store = open_store(&project).await?;
    let host = Arc::new(Host::new(
        project.clone(),
        store,
        Arc::new(crate::server::access::FoundWarehouse::new()),
    ));
    let runner = Runner::new(
        host,
        RunnerOptions {
            concurrency: args.concurrency.max(1),
            scope: Scope {
                root_run: None,
                pools: args.pools.clone(),
            },
            grace: args.grace,
            lease: args.lease.max(Duration::from_millis(300)),
            ..RunnerOptions::default()
        },
    );
    let (stop, stopped) = watch::channel(false);
    if let Some(addr) = args.health_listen {
        serve_health(addr, stopped.clone()).await?;
    }
    println!(
        "worker {} of project {} running up to {} steps at once (Ctrl-C to stop)",
        runner.id(),
        project.settings.project.name,
        args.concurrency.max(1)
    );
    let mut signals = StopSignals::install()?;
    tokio::spawn(async move {
        signals.next().await;
        tracing::info!("stopping: taking no more steps");
        stop.send_replace(true);
    });
    let alerts = project.clone();
    let on_end = move |ended: crate::orchestrator::store::RunEnded| {
        let project = alerts.clone();
        tokio::spawn(async move { crate::orchestrator::alert(&project, &ended).await });
    };
    runner.run(stopped, None, &on_end).await?;
    Ok(ExitCode::SUCCESS)
}

/// Answers `GET /healthz` with `ok` on `addr` until `stop` turns true.
async fn serve_health(addr: std::net::SocketAddr, mut stop: watch::Receiver<bool>) -> Result<()> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("--health-listen {addr}"), e))?;
    let router = axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" }));
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = stop.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::warn!("the health endpoint stopped: {e}");
        }
    });
    Ok(())
}
