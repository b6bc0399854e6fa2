//! What steps reach of the process that runs them: the project's
//! warehouse, its pipelines and the job store.
//!
//! `flowline serve` hands its own warehouse over ([`Host::owning`]). A
//! `flowline jobs run` or `flowline worker` ([`Host::local`]) asks the
//! process that owns the warehouse when one runs on this machine; when
//! none does and a step first needs the warehouse, it becomes the owner
//! itself for as long as it runs: it opens the warehouse once and answers
//! on the project's control socket, so `flowline sql` in another terminal,
//! or in a command step, works meanwhile.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::store::{NewRun, Store, Trigger};
use super::template::Vars;
use super::{JobRun, Interval};
use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::destinations::{QueryResult, Warehouse};
use crate::engine::RunOptions;
use crate::engine::progress::Progress;
use crate::server::local::{Claimer, LocalServer};
use crate::state::{RunRecord, StateStore, open_state_store};

/// How this process reaches the warehouse.
enum Access {
    /// Another flowline process owns it: ask that one.
    Remote,
    /// This process holds it.
    Owned {
        warehouse: Arc<dyn Warehouse>,
        history: Arc<dyn StateStore>,
        claimer: Claimer,
        /// The control socket this process serves while it owns the
        /// warehouse (none when `serve` owns it and serves it already).
        _server: Option<LocalServer>,
    },
}

/// The process a step runs in, as steps see it.
pub struct Host {
    /// The project.
    pub project: Arc<Project>,
    /// The job store.
    pub store: Arc<Store>,
    access: OnceCell<Access>,
}

impl Host {
    /// A host that holds the warehouse already (`flowline serve`).
    pub fn owning(
        project: Arc<Project>,
        store: Arc<Store>,
        warehouse: Arc<dyn Warehouse>,
        history: Arc<dyn StateStore>,
        claimer: Claimer,
    ) -> Host {
        Host {
            project,
            store,
            access: OnceCell::new_with(Some(Access::Owned {
                warehouse,
                history,
                claimer,
                _server: None,
            })),
        }
    }

    /// A host that finds the warehouse when a step first needs it.
    pub fn local(project: Arc<Project>, store: Arc<Store>) -> Host {
        Host {
            project,
            store,
            access: OnceCell::new(),
        }
    }

    async fn access(&self) -> Result<&Access> {
        self.access
            .get_or_try_init(|| async {
                let project = self.project.clone();
                let answered = tokio::task::spawn_blocking(move || {
                    crate::server::client::LocalClient::connect(&project).map(|c| c.is_some())
                })
                .await
                .map_err(|e| Error::Other(format!("looking for the warehouse's owner: {e}")))??;
                if answered {
                    return Ok(Access::Remote);
                }
                let socket = crate::server::local::bind(self.project.clone()).await?;
                let warehouse: Arc<dyn Warehouse> = Arc::from(self.project.open_warehouse()?);
                let history: Arc<dyn StateStore> = Arc::from(open_state_store(&self.project)?);
                let server = socket.serve(warehouse.clone(), history.clone());
                server.set_activity("flowline jobs");
                Ok(Access::Owned {
                    warehouse,
                    history,
                    claimer: server.claimer(),
                    _server: Some(server),
                })
            })
            .await
    }

    /// Runs the batch pipeline `name` once and returns its record.
    pub async fn run_pipeline(&self, name: &str) -> Result<RunRecord> {
        let pipeline = self.project.pipeline(name)?;
        let progress = Progress::new(false);
        match self.access().await? {
            Access::Owned {
                warehouse,
                history,
                claimer,
                ..
            } => {
                let _claim = claimer.claim(name)?;
                Ok(crate::engine::run_one(
                    &self.project,
                    pipeline,
                    warehouse.as_ref(),
                    history.as_ref(),
                    RunOptions::default(),
                    &progress,
                )
                .await)
            }
            Access::Remote => {
                let project = self.project.clone();
                let name = name.to_string();
                tokio::task::spawn_blocking(move || {
                    let pipeline = project.pipeline(&name)?;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Other(format!("starting a runtime: {e}")))?;
                    let records = runtime.block_on(crate::server::client::run(
                        &project,
                        &[pipeline],
                        RunOptions::default(),
                        &Progress::new(false),
                        |_, _| {},
                    ))?;
                    records
                        .into_iter()
                        .next()
                        .ok_or_else(|| Error::Other(format!("pipeline {name}: no run record")))
                })
                .await
                .map_err(|e| Error::Other(format!("running pipeline: {e}")))?
            }
        }
    }

    /// Runs `sql` in the warehouse and returns its result.
    pub async fn query(&self, sql: &str) -> Result<QueryResult> {
        let sql = sql.to_string();
        match self.access().await? {
            Access::Owned { warehouse, .. } => {
                let warehouse = warehouse.clone();
                tokio::task::spawn_blocking(move || warehouse.query(&sql))
                    .await
                    .map_err(|e| Error::Other(format!("running a query: {e}")))?
            }
            Access::Remote => {
                let project = self.project.clone();
                tokio::task::spawn_blocking(move || {
                    crate::server::client::open_warehouse(&project)?.query(&sql)
                })
                .await
                .map_err(|e| Error::Other(format!("running a query: {e}")))?
            }
        }
    }

    /// The run of job `name` that the step keyed `key` started, starting it
    /// when there is none yet (over the same interval and params).
    pub async fn start_child_run(&self, name: &str, key: &str, vars: &Vars) -> Result<JobRun> {
        if let Some(run) = self.store.run_by_key(name, key).await? {
            return Ok(run);
        }
        let job = self.project.job(name)?;
        let parse = |t: &str| {
            chrono::DateTime::parse_from_rfc3339(t)
                .map(|d| d.with_timezone(&chrono::Utc))
                .map_err(|e| Error::Other(format!("interval {t}: {e}")))
        };
        let interval = Interval {
            start: parse(&vars.data_interval_start)?,
            end: parse(&vars.data_interval_end)?,
        };
        let mut params = job.config.params_json();
        params.extend(vars.params.clone());
        self.store
            .create_run(NewRun {
                job: name,
                config: &job.config,
                key: key.to_string(),
                trigger: Trigger::Step,
                interval,
                params,
                parent: Some(vars.run_id.clone()),
            })
            .await?;
        self.store
            .run_by_key(name, key)
            .await?
            .ok_or_else(|| Error::Other(format!("job {name}: the run just started vanished")))
    }
}
