//! `flowline stream [PIPELINE...]`: run stream pipelines in the foreground
//! until SIGINT or SIGTERM, then drain: the batch in hand is committed and
//! acknowledged, and the command exits 0.
//!
//! While it runs, this process owns the warehouse and serves the project's
//! other flowline commands (`sql`, `status`, `run`) over the local socket.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::sync::watch;

use super::output::{human_duration, plural};
use crate::config::{Pipeline, Project};
use crate::core::Mode;
use crate::core::error::{Error, Result};
use crate::destinations::Warehouse;
use crate::engine::stream::{StreamMetrics, run_stream, stop_when_idle};
use crate::state::{RunStatus, StateStore, open_state_store};

/// Arguments of `flowline stream`.
#[derive(Debug, clap::Args)]
pub struct StreamArgs {
    /// Stream pipelines to run, by file name without `.toml`. Default: every
    /// pipeline with `mode = "stream"`.
    pub pipelines: Vec<String>,
    /// Stop (draining as on SIGTERM) once no message has arrived for this
    /// long, e.g. `5s`: a job step that empties a queue, then ends.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub until_idle: Option<Duration>,
}

/// Runs the stream pipelines until a signal, then reports.
pub async fn execute(project_dir: &Path, json_output: bool, args: StreamArgs) -> Result<ExitCode> {
    let project = Arc::new(Project::load(project_dir)?);
    let selected: Vec<Pipeline> = if args.pipelines.is_empty() {
        project
            .pipelines
            .iter()
            .filter(|p| p.config.mode == Mode::Stream)
            .cloned()
            .collect()
    } else {
        args.pipelines
            .iter()
            .map(|name| project.pipeline(name).cloned())
            .collect::<Result<_>>()?
    };
    if selected.is_empty() {
        return Err(Error::Config(format!(
            "no stream pipelines in {} (a stream pipeline has mode = \"stream\")",
            project.dir.join(crate::config::PIPELINES_DIR).display()
        )));
    }
    for pipeline in &selected {
        if pipeline.config.mode != Mode::Stream {
            return Err(Error::Config(format!(
                "pipeline {} is a batch pipeline: run it with `flowline run {}`",
                pipeline.name, pipeline.name
            )));
        }
    }
    // Signals are caught from here on: a SIGTERM while the sources connect
    // stops the streams as soon as they start, and the exit is clean.
    let mut signals = super::serve::StopSignals::install()?;
    // The socket first: other commands then wait for this process instead
    // of meeting the warehouse file's lock.
    let socket = crate::server::local::bind(project.clone()).await?;
    let warehouse: Arc<dyn Warehouse> = Arc::from(project.open_warehouse()?);
    let store: Arc<dyn StateStore> = Arc::from(open_state_store(&project)?);
    let owner = socket.serve(warehouse.clone(), store.clone());
    let names: Vec<&str> = selected.iter().map(|p| p.name.as_str()).collect();
    owner.set_activity(format!("flowline stream {}", names.join(" ")));
    // `flowline run <name>` from another terminal must not run a pipeline
    // this process is streaming.
    let _claims = names
        .iter()
        .map(|name| owner.claim(name))
        .collect::<Result<Vec<_>>>()?;

    let (stop_tx, stop_rx) = watch::channel(false);
    let mut runners = Vec::new();
    for pipeline in selected {
        let metrics = Arc::new(StreamMetrics::default());
        let (project, warehouse, store, stop) = (
            project.clone(),
            warehouse.clone(),
            store.clone(),
            stop_rx.clone(),
        );
        let table = pipeline.config.destination.table.get_ref().clone();
        let task_metrics = metrics.clone();
        let task = tokio::spawn(async move {
            run_stream(&project, &pipeline, warehouse, store, stop, task_metrics).await
        });
        runners.push((task, metrics, table));
    }
    if !json_output {
        eprintln!(
            "starting {} (Ctrl-C or SIGTERM stops after committing the batch in hand)",
            plural(runners.len() as u64, "pipeline")
        );
    }
    let stop_tx = Arc::new(stop_tx);
    let on_signal = stop_tx.clone();
    let stopping = tokio::spawn(async move {
        signals.next().await;
        tracing::info!("stopping: committing the batches in hand");
        let _ = on_signal.send(true);
    });
    let idle_watch = args.until_idle.map(|idle| {
        let counters: Vec<_> = runners.iter().map(|(_, m, _)| m.clone()).collect();
        tokio::spawn(stop_when_idle(idle, counters, stop_tx))
    });

    let mut ok = true;
    let mut reports = Vec::new();
    for (task, metrics, table) in runners {
        let record = task.await.map_err(Error::task("stream runner"))?;
        let latencies = metrics.latencies();
        ok &= record.status == RunStatus::Succeeded;
        if json_output {
            reports.push(json!({
                "run_id": record.run_id,
                "pipeline": record.pipeline,
                "status": record.status,
                "messages": metrics.messages.load(Ordering::Relaxed),
                "rows": record.rows,
                "bad_rows": record.bad_rows,
                "duration_ms": record.duration().as_millis() as u64,
                "latency": latencies,
                "error": record.error,
            }));
        } else if record.status == RunStatus::Succeeded {
            println!(
                "ok      {}: {} -> {table} in {}, {} batches; batch p50 {} ms p99 {} ms{}",
                record.pipeline,
                plural(record.rows, "row"),
                human_duration(record.duration()),
                metrics.batches.load(Ordering::Relaxed),
                latencies.batch_p50_ms,
                latencies.batch_p99_ms,
                if record.bad_rows > 0 {
                    format!(
                        ", {} to _flowline_dead_letter",
                        plural(record.bad_rows, "row")
                    )
                } else {
                    String::new()
                }
            );
        } else {
            let error = record.error.as_deref().unwrap_or("unknown error");
            println!("FAILED  {}: {error}", record.pipeline);
        }
    }
    stopping.abort();
    if let Some(watch) = idle_watch {
        watch.abort();
    }
    // Let go of the warehouse before the socket goes, so that no command
    // finds neither an owner nor an unlocked file.
    drop(warehouse);
    drop(store);
    owner.shutdown().await;
    if json_output {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "streams": reports })).unwrap_or_default()
        );
    }
    // Give the broker clients a moment to close their connections cleanly.
    tokio::time::sleep(Duration::from_millis(50)).await;
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
