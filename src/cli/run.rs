//! `flowline run [PIPELINE...]`: run pipelines once, report, and exit
//! non-zero if any failed (so schedulers see the failure).

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::output::{human_duration, plural};
use crate::config::{Pipeline, Project};
use crate::core::Mode;
use crate::core::error::{Error, Result};
use crate::engine::RunOptions;
use crate::engine::progress::Progress;
use crate::state::{RunRecord, RunStatus};

/// Arguments of `flowline run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Pipelines to run, by file name without `.toml`. Default: all.
    pub pipelines: Vec<String>,
    /// Ignore saved progress: reload everything and rebuild the tables.
    #[arg(long)]
    pub full_refresh: bool,
}

/// Runs the selected pipelines one after another.
pub async fn execute(project_dir: &Path, json: bool, args: RunArgs) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    let selected = select(&project, &args.pipelines)?;
    if selected.is_empty() && !json {
        println!(
            "no pipelines in {}",
            project.dir.join(crate::config::PIPELINES_DIR).display()
        );
    }
    let progress = Progress::new(super::interactive() && !json);
    let options = RunOptions {
        full_refresh: args.full_refresh,
    };
    let report = |pipeline: &Pipeline, record: &RunRecord| {
        if !json {
            print_outcome(record, pipeline.config.destination.table.get_ref());
        }
    };
    // In the process that owns the warehouse, when one does.
    let records =
        crate::server::client::run(&project, &selected, options, &progress, report).await?;
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
                "duplicates": r.duplicates,
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

/// What an `ok` line adds after the rate: duplicates left out, rows
/// rejected.
fn notes(record: &RunRecord) -> String {
    let mut notes = String::new();
    if record.duplicates > 0 {
        notes += &format!(
            ", {} left out as duplicates",
            plural(record.duplicates, "row")
        );
    }
    if record.bad_rows > 0 {
        notes += &format!(
            ", {} to _flowline_dead_letter",
            plural(record.bad_rows, "row")
        );
    }
    notes
}

/// The pipelines to run: those named, or every batch pipeline. Stream
/// pipelines run with `flowline stream`, not once: naming one, or a project
/// with nothing but stream pipelines, is an error (and no run is recorded,
/// so `status` keeps showing the last stream session).
fn select<'a>(project: &'a Project, names: &[String]) -> Result<Vec<&'a Pipeline>> {
    let is_stream = |p: &Pipeline| p.config.mode == Mode::Stream;
    if names.is_empty() {
        let batch: Vec<&Pipeline> = project.pipelines.iter().filter(|p| !is_stream(p)).collect();
        if batch.is_empty() && !project.pipelines.is_empty() {
            return Err(Error::Config(format!(
                "every pipeline in {} is a stream pipeline (mode = \"stream\"): run them with \
                 `flowline stream`",
                project.dir.join(crate::config::PIPELINES_DIR).display()
            )));
        }
        return Ok(batch);
    }
    let selected = names
        .iter()
        .map(|name| project.pipeline(name))
        .collect::<Result<Vec<_>>>()?;
    if let Some(stream) = selected.iter().find(|p| is_stream(p)) {
        return Err(stream_refused(&stream.name));
    }
    Ok(selected)
}

/// The error for `flowline run` of a stream pipeline.
fn stream_refused(pipeline: &str) -> Error {
    Error::Config(format!(
        "pipeline {pipeline} is a stream pipeline (mode = \"stream\"): run it with \
         `flowline stream {pipeline}`; nothing was run"
    ))
}

/// The `ok` or `FAILED` line of one run.
pub(super) fn print_outcome(record: &RunRecord, table: &str) {
    match record.status {
        RunStatus::Succeeded => {
            let secs = record.duration().as_secs_f64().max(1e-3);
            println!(
                "ok      {}: {} -> {table} in {} ({:.0} rows/s){}",
                record.pipeline,
                plural(record.rows, "row"),
                human_duration(record.duration()),
                record.rows as f64 / secs,
                notes(record)
            )
        }
        _ => {
            let error = record.error.as_deref().unwrap_or("unknown error");
            println!("FAILED  {}: {error}", record.pipeline)
        }
    }
}
