//! One pipeline run as the CLI and the server start it: into the project's
//! warehouse, or into the database its `[destination] connection` names.

use std::sync::Arc;

use super::batch::{RunOptions, run_pipeline};
use super::progress::Progress;
use crate::config::{Pipeline, Project};
use crate::core::error::Error;
use crate::destinations::{Warehouse, open_pipeline_warehouse};
use crate::state::{RunRecord, StateStore};

/// Runs one pipeline into `warehouse`, or into the database its
/// `[destination] connection` names, and returns its record (also kept in
/// `store`). A destination that cannot be opened makes a failed run; it
/// never stops the pipelines after it.
pub async fn run_one(
    project: &Project,
    pipeline: &Pipeline,
    warehouse: &dyn Warehouse,
    store: &dyn StateStore,
    options: RunOptions,
    progress: &Progress,
) -> RunRecord {
    let tracker = Arc::new(progress.pipeline(&pipeline.name));
    let own = match open_pipeline_warehouse(&project.workspace(), &pipeline.config.destination) {
        Ok(own) => own,
        Err(e) => {
            let record = refused(&pipeline.name, &e);
            if let Err(e) = store
                .start_run(&record)
                .and_then(|_| store.finish_run(&record))
            {
                tracing::warn!("{e}");
            }
            return record;
        }
    };
    let target = own.as_deref().unwrap_or(warehouse);
    run_pipeline(project, pipeline, target, store, options, tracker).await
}

/// The record of a pipeline that could not start.
pub fn refused(pipeline: &str, error: &Error) -> RunRecord {
    let message = match error {
        Error::Pipeline { message, .. } => message.clone(),
        other => other.to_string(),
    };
    let mut record = RunRecord::start(pipeline);
    record.finish(Err(Error::Other(message)));
    record
}

/// `error` as `pipeline`'s failure; saved state that cannot be read says
/// how to start over, since running on would load everything again.
pub fn pipeline_failure(pipeline: &str, error: Error) -> Error {
    match error {
        Error::StateUnreadable { .. } => Error::pipeline(
            pipeline,
            format!(
                "{error}; nothing was loaded. To forget the saved state and load from the \
                 beginning, run `flowline state reset {pipeline}`"
            ),
        ),
        Error::Pipeline { .. } => error,
        other => Error::pipeline(pipeline, other.to_string()),
    }
}
