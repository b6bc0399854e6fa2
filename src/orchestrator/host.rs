//! The [`StepHost`] steps run against: the project, its job store, and its
//! warehouse as this process reaches it ([`WarehouseAccess`], provided by
//! the server layer: `flowline serve`'s own warehouse, or the owner's
//! through its socket).

use std::sync::Arc;

use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::destinations::QueryResult;
use crate::jobs::template::Vars;
use crate::jobs::{ChildRun, ChildState, PipelineRun, StepHost};
use crate::state::{RunRecord, RunStatus};

use super::Interval;
use super::store::{NewRun, RunState, Store, Trigger};

/// How a process reaches the project's warehouse and runs its pipelines.
#[async_trait::async_trait]
pub trait WarehouseAccess: Send + Sync {
    /// Runs the batch pipeline `name` of `project` once.
    async fn run_pipeline(&self, project: &Arc<Project>, name: &str) -> Result<RunRecord>;

    /// Runs the stream pipeline `name` of `project` until no message has
    /// arrived for `idle`.
    async fn drain_stream(
        &self,
        project: &Arc<Project>,
        name: &str,
        idle: std::time::Duration,
    ) -> Result<RunRecord>;

    /// Runs `sql` in the warehouse.
    async fn query(&self, project: &Arc<Project>, sql: &str) -> Result<QueryResult>;
}

/// The process a step runs in.
pub struct Host {
    /// The project.
    pub project: Arc<Project>,
    /// The job store.
    pub store: Arc<Store>,
    warehouse: Arc<dyn WarehouseAccess>,
}

impl Host {
    /// A host over `store` that reaches the warehouse through `warehouse`.
    pub fn new(
        project: Arc<Project>,
        store: Arc<Store>,
        warehouse: Arc<dyn WarehouseAccess>,
    ) -> Host {
        Host {
            project,
            store,
            warehouse,
        }
    }

    async fn child_run(&self, name: &str, key: &str, vars: &Vars) -> Result<ChildRun> {
        let run = match self.store.run_by_key(name, key).await? {
            Some(run) => run,
            None => {
                let job = self.project.job(name)?;
                let parse = |t: &str| {
                    chrono::DateTime::parse_from_rfc3339(t)
                        .map(|d| d.with_timezone(&chrono::Utc))
                        .map_err(|e| Error::Other(format!("interval {t}: {e}")))
                };
                let mut params = job.config.params_json();
                params.extend(vars.params.clone());
                self.store
                    .create_run(NewRun {
                        job: name,
                        config: &job.config,
                        key: key.to_string(),
                        trigger: Trigger::Step,
                        interval: Interval {
                            start: parse(&vars.data_interval_start)?,
                            end: parse(&vars.data_interval_end)?,
                        },
                        params,
                        parent: Some(vars.run_id.clone()),
                    })
                    .await?;
                self.store.run_by_key(name, key).await?.ok_or_else(|| {
                    Error::Other(format!("job {name}: the run just started vanished"))
                })?
            }
        };
        Ok(ChildRun {
            run_id: run.run_id,
            state: match run.state {
                RunState::Succeeded => ChildState::Succeeded,
                RunState::Failed => ChildState::Failed,
                RunState::Queued | RunState::Running => ChildState::Running,
            },
        })
    }
}

/// What a step learns of a pipeline's run.
fn pipeline_run(record: RunRecord) -> PipelineRun {
    PipelineRun {
        run_id: record.run_id,
        succeeded: record.status == RunStatus::Succeeded,
        rows: record.rows,
        bad_rows: record.bad_rows,
        error: record.error,
    }
}

#[async_trait::async_trait]
impl StepHost for Host {
    async fn run_pipeline(&self, name: &str) -> std::result::Result<PipelineRun, String> {
        let record = self
            .warehouse
            .run_pipeline(&self.project, name)
            .await
            .map_err(|e| e.to_string())?;
        Ok(pipeline_run(record))
    }

    async fn drain_stream(
        &self,
        name: &str,
        idle: std::time::Duration,
    ) -> std::result::Result<PipelineRun, String> {
        let record = self
            .warehouse
            .drain_stream(&self.project, name, idle)
            .await
            .map_err(|e| e.to_string())?;
        Ok(pipeline_run(record))
    }

    async fn query(&self, sql: &str) -> std::result::Result<usize, String> {
        let result = self
            .warehouse
            .query(&self.project, sql)
            .await
            .map_err(|e| e.to_string())?;
        Ok(result.batches.iter().map(|b| b.num_rows()).sum())
    }

    async fn queue_depth(&self, connection: &str, queue: &str) -> std::result::Result<u64, String> {
        let url = self
            .project
            .settings
            .connections
            .url(connection)
            .map_err(|e| e.to_string())?;
        crate::sources::rabbitmq::queue_depth(&url, queue)
            .await
            .map_err(|e| e.to_string())
    }

    async fn start_child_run(
        &self,
        job: &str,
        key: &str,
        vars: &Vars,
    ) -> std::result::Result<ChildRun, String> {
        self.child_run(job, key, vars)
            .await
            .map_err(|e| e.to_string())
    }
}
