//! `flowline state show|reset PIPELINE`: look at, or forget, the progress a
//! pipeline committed in its warehouse (files loaded, cursor, offsets).
//!
//! Both reach the warehouse the way `sql` and `status` do: through the
//! flowline process that owns it when one runs, otherwise directly. A
//! pipeline whose `[destination] connection` names its own database keeps
//! its state there.

use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::config::{Pipeline, Project};
use crate::core::error::{Error, Result};
use crate::destinations::{Warehouse, open_pipeline_warehouse};
use crate::server::client::{LocalClient, open_warehouse};

/// Subcommands of `flowline state`.
#[derive(Debug, clap::Subcommand)]
pub enum StateCommand {
    /// Print the progress PIPELINE last committed.
    Show {
        /// The pipeline, by file name without `.toml`.
        pipeline: String,
    },
    /// Forget the progress PIPELINE committed: its next run loads from the beginning.
    ///
    /// Its tables and their rows stay: with `write = "append"` the next run
    /// adds the rows again. Use it when the saved state cannot be read, or
    /// to reload a source from scratch (`flowline run --full-refresh`
    /// also rebuilds the tables).
    Reset {
        /// The pipeline, by file name without `.toml`.
        pipeline: String,
    },
}

/// Runs the subcommand.
pub fn execute(project_dir: &Path, json: bool, command: StateCommand) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    match command {
        StateCommand::Show { pipeline } => show(&project, project.pipeline(&pipeline)?, json),
        StateCommand::Reset { pipeline } => reset(&project, project.pipeline(&pipeline)?, json),
    }
}

/// The warehouse holding `pipeline`'s state: its own destination database,
/// or the project's (reached through its owner when one runs).
fn state_warehouse(project: &Project, pipeline: &Pipeline) -> Result<Box<dyn Warehouse>> {
    match open_pipeline_warehouse(&project.workspace(), &pipeline.config.destination)? {
        Some(own) => Ok(own),
        None => open_warehouse(project),
    }
}

fn show(project: &Project, pipeline: &Pipeline, json: bool) -> Result<ExitCode> {
    let warehouse = state_warehouse(project, pipeline)?;
    let saved = warehouse
        .saved_state(&pipeline.name)
        .map_err(|e| crate::engine::pipeline_failure(&pipeline.name, e))?;
    if json {
        let report = json!({
            "pipeline": pipeline.name,
            "saved_state": saved.as_ref().map(|s| &s.state),
            "run_id": saved.as_ref().map(|s| &s.run_id),
            "saved_at": saved.as_ref().map(|s| &s.updated_at),
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
        return Ok(ExitCode::SUCCESS);
    }
    match saved {
        None => println!(
            "{}: no saved state (its next run loads from the beginning)",
            pipeline.name
        ),
        Some(saved) => {
            println!(
                "{}: saved at {} by run {}",
                pipeline.name, saved.updated_at, saved.run_id
            );
            println!(
                "{}",
                serde_json::to_string_pretty(&saved.state).unwrap_or_default()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn reset(project: &Project, pipeline: &Pipeline, json: bool) -> Result<ExitCode> {
    let name = &pipeline.name;
    if pipeline.config.destination.connection.is_some() {
        // Its state is not in the owner's warehouse, so the owner cannot
        // refuse: ask it whether it runs the pipeline.
        refuse_if_running(project, name)?;
    }
    let existed = state_warehouse(project, pipeline)?.reset_state(name)?;
    if json {
        println!("{}", json!({ "pipeline": name, "reset": existed }));
    } else if existed {
        println!("reset   {name}: saved state forgotten; its next run loads from the beginning");
    } else {
        println!("{name}: no saved state to reset; its next run loads from the beginning");
    }
    Ok(ExitCode::SUCCESS)
}

/// An error when the flowline process owning the project runs `pipeline`.
fn refuse_if_running(project: &Project, pipeline: &str) -> Result<()> {
    let Some(client) = LocalClient::connect(project)? else {
        return Ok(());
    };
    let owner = client.owner();
    if owner.running.iter().any(|p| p == pipeline) {
        return Err(Error::pipeline(
            pipeline,
            format!(
                "running in flowline process {}; stop it before resetting its state",
                owner.pid
            ),
        ));
    }
    Ok(())
}
