//! `flowline run [PIPELINE...]`: run pipelines once, report, and exit
//! non-zero if any failed (so schedulers see the failure).

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use super::output::{human_duration, plural};
use crate::config::{Pipeline, Project};
use crate::core::error::Result;
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
    let selected: Vec<&Pipeline> = if args.pipelines.is_empty() {
        // Stream pipelines run with `flowline stream`, not once.
        project
            .pipelines
            .iter()
            .filter(|p| p.config.mode == crate::core::Mode::Batch)
            .collect()
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

/// The `ok` or `FAILED` line of one run.
fn print_outcome(record: &RunRecord, table: &str) {
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
