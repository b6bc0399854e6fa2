//! `flowline run [PIPELINE...]`: run pipelines once, report, and exit
//! non-zero if any failed (so schedulers see the failure).

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use serde_json::json;

use super::output::{human_duration, plural};
use crate::config::{Pipeline, Project};
use crate::destinations::open_warehouse;
use crate::engine::progress::Progress;
use crate::engine::{RunOptions, run_pipeline};
use crate::error::Result;
use crate::state::{RunStatus, open_state_store};

/// Arguments of `flowline run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Pipelines to run, by file name without `.toml`. Default: all.
    pub pipelines: Vec<String>,
    /// Ignore saved progress: reload everything and rebuild the tables.
    #[arg(long)]
    pub full_refresh: bool,
}

/// The record of a pipeline that could not start (its destination could not be opened).
fn failed_to_start(pipeline: &str, error: &crate::error::Error) -> crate::state::RunRecord {
    let now = chrono::Utc::now();
    crate::state::RunRecord {
        run_id: uuid::Uuid::now_v7().to_string(),
        pipeline: pipeline.to_string(),
        started_at: now,
        ended_at: Some(now),
        status: RunStatus::Failed,
        rows: 0,
        bytes: 0,
        bad_rows: 0,
        error: Some(crate::config::secrets::redact(&error.to_string())),
    }
}

/// Runs the selected pipelines one after another.
pub async fn execute(project_dir: &Path, json: bool, args: RunArgs) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    let selected: Vec<&Pipeline> = if args.pipelines.is_empty() {
        project.pipelines.iter().collect()
    } else {
        args.pipelines
            .iter()
            .map(|name| project.pipeline(name))
            .collect::<Result<_>>()?
    };
    if selected.is_empty() && !json {
        println!(
            "no pipelines in {}",
            project.dir.join(crate::config::PIPELINES_DIR).display()
        );
    }
    let warehouse = open_warehouse(&project)?;
    let store = open_state_store(&project)?;
    let progress = Progress::new(super::interactive() && !json);
    let options = RunOptions {
        full_refresh: args.full_refresh,
    };

    let mut records = Vec::new();
    for pipeline in selected {
        let tracker = Arc::new(progress.pipeline(&pipeline.name));
        let own =
            crate::destinations::open_pipeline_warehouse(&project, &pipeline.config.destination);
        let record = match &own {
            Ok(own) => {
                let target = own.as_deref().unwrap_or(warehouse.as_ref());
                run_pipeline(&project, pipeline, target, store.as_ref(), options, tracker).await
            }
            Err(e) => {
                let record = failed_to_start(&pipeline.name, e);
                if let Err(e) = store
                    .start_run(&record)
                    .and_then(|_| store.finish_run(&record))
                {
                    tracing::warn!("{e}");
                }
                record
            }
        };
        if !json {
            let table = pipeline.config.destination.table.get_ref();
            let secs = record.duration().as_secs_f64().max(1e-3);
            match record.status {
                RunStatus::Succeeded => println!(
                    "ok      {}: {} -> {table} in {} ({:.0} rows/s){}",
                    record.pipeline,
                    plural(record.rows, "row"),
                    human_duration(record.duration()),
                    record.rows as f64 / secs,
                    if record.bad_rows > 0 {
                        format!(
                            ", {} to _flowline_dead_letter",
                            plural(record.bad_rows, "row")
                        )
                    } else {
                        String::new()
                    }
                ),
                _ => {
                    let error = record.error.as_deref().unwrap_or("unknown error");
                    println!("FAILED  {}: {error}", record.pipeline)
                }
            }
        }
        records.push(record);
    }
    let ok = records.iter().all(|r| r.status == RunStatus::Succeeded);
    if json {
        let report = json!({
            "project": project.settings.project.name,
            "ok": ok,
            "runs": records.iter().map(|r| json!({
                "run_id": r.run_id,
                "pipeline": r.pipeline,
                "status": r.status,
                "rows": r.rows,
                "bytes": r.bytes,
                "bad_rows": r.bad_rows,
                "started_at": r.started_at,
                "ended_at": r.ended_at,
                "duration_ms": r.duration().as_millis() as u64,
                "error": r.error,
            })).collect::<Vec<_>>(),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
