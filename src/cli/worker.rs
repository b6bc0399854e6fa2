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
use crate::core::error::Result;
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
    println!(
        "worker {} of project {} running up to {} steps at once (Ctrl-C to stop)",
        runner.id(),
        project.settings.project.name,
        args.concurrency.max(1)
    );
    let (stop, stopped) = watch::channel(false);
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
