//! How job steps reach the project's warehouse, as the orchestrator asks
//! ([`WarehouseAccess`]):
//!
//! - [`OwnedWarehouse`]: `flowline serve` holds the warehouse and runs
//!   pipelines itself, marking each as running on its control socket;
//! - [`FoundWarehouse`]: `flowline jobs run` and `flowline worker` ask the
//!   process that owns the warehouse when one runs on this machine; when
//!   none does and a step first needs the warehouse, this process becomes
//!   the owner for as long as it runs: it opens the warehouse once and
//!   answers on the control socket, so `flowline sql` in another terminal,
//!   or in a command step, works meanwhile.

use std::sync::Arc;

use tokio::sync::OnceCell;

use super::local::{Claimer, LocalServer};
use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::destinations::{QueryResult, Warehouse};
use crate::engine::RunOptions;
use crate::engine::progress::Progress;
use crate::orchestrator::host::WarehouseAccess;
use crate::state::{RunRecord, StateStore, open_state_store};

/// A warehouse this process holds.
pub struct OwnedWarehouse {
    warehouse: Arc<dyn Warehouse>,
    history: Arc<dyn StateStore>,
    claimer: Claimer,
    /// The control socket served while this process owns the warehouse
    /// (none when `serve` serves it already).
    _server: Option<LocalServer>,
}

impl OwnedWarehouse {
    /// `serve`'s warehouse, run history and claims.
    pub fn new(
        warehouse: Arc<dyn Warehouse>,
        history: Arc<dyn StateStore>,
        claimer: Claimer,
    ) -> OwnedWarehouse {
        OwnedWarehouse {
            warehouse,
            history,
            claimer,
            _server: None,
        }
    }
}

#[async_trait::async_trait]
impl WarehouseAccess for OwnedWarehouse {
    async fn run_pipeline(&self, project: &Arc<Project>, name: &str) -> Result<RunRecord> {
        let pipeline = project.pipeline(name)?;
        let _claim = self.claimer.claim(name)?;
        Ok(crate::engine::run_one(
            project,
            pipeline,
            self.warehouse.as_ref(),
            self.history.as_ref(),
            RunOptions::default(),
            &Progress::new(false),
        )
        .await)
    }

    async fn drain_stream(
        &self,
        project: &Arc<Project>,
        name: &str,
        idle: std::time::Duration,
    ) -> Result<RunRecord> {
        let pipeline = project.pipeline(name)?;
        let _claim = self.claimer.claim(name)?;
        Ok(crate::engine::stream::drain(
            project,
            pipeline,
            self.warehouse.clone(),
            self.history.clone(),
            idle,
        )
        .await)
    }

    async fn query(&self, _project: &Arc<Project>, sql: &str) -> Result<QueryResult> {
        let warehouse = self.warehouse.clone();
        let sql = sql.to_string();
        tokio::task::spawn_blocking(move || warehouse.query(&sql))
            .await
            .map_err(|e| Error::Other(format!("running a query: {e}")))?
    }
}

/// The warehouse as found when first needed.
enum Found {
    /// Another flowline process owns it: ask that one.
    Remote,
    /// This process took it.
    Owned(OwnedWarehouse),
}

/// Finds the warehouse's owner when a step first needs the warehouse, or
/// becomes it.
#[derive(Default)]
pub struct FoundWarehouse {
    found: OnceCell<Found>,
}

impl FoundWarehouse {
    /// Nothing found yet.
    pub fn new() -> FoundWarehouse {
        FoundWarehouse::default()
    }

    async fn found(&self, project: &Arc<Project>) -> Result<&Found> {
        self.found
            .get_or_try_init(|| async {
                let asked = project.clone();
                let answered = tokio::task::spawn_blocking(move || {
                    super::client::LocalClient::connect(&asked).map(|c| c.is_some())
                })
                .await
                .map_err(|e| Error::Other(format!("looking for the warehouse's owner: {e}")))??;
                if answered {
                    return Ok(Found::Remote);
                }
                let socket = super::local::bind(project.clone()).await?;
                let warehouse: Arc<dyn Warehouse> = Arc::from(project.open_warehouse()?);
                let history: Arc<dyn StateStore> = Arc::from(open_state_store(project)?);
                let server = socket.serve(warehouse.clone(), history.clone());
                server.set_activity("flowline jobs");
                Ok(Found::Owned(OwnedWarehouse {
                    warehouse,
                    history,
                    claimer: server.claimer(),
                    _server: Some(server),
                }))
            })
            .await
    }
}

#[async_trait::async_trait]
impl WarehouseAccess for FoundWarehouse {
    async fn run_pipeline(&self, project: &Arc<Project>, name: &str) -> Result<RunRecord> {
        match self.found(project).await? {
            Found::Owned(owned) => owned.run_pipeline(project, name).await,
            Found::Remote => {
                let project = project.clone();
                let name = name.to_string();
                tokio::task::spawn_blocking(move || {
                    let pipeline = project.pipeline(&name)?;
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Other(format!("starting a runtime: {e}")))?;
                    let records = runtime.block_on(super::client::run(
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
                .map_err(|e| Error::Other(format!("running a pipeline: {e}")))?
            }
        }
    }

    async fn drain_stream(
        &self,
        project: &Arc<Project>,
        name: &str,
        idle: std::time::Duration,
    ) -> Result<RunRecord> {
        match self.found(project).await? {
            Found::Owned(owned) => owned.drain_stream(project, name, idle).await,
            Found::Remote => Err(Error::pipeline(
                name,
                "another flowline process on this machine owns the warehouse, and a stream \
                 pipeline runs in the process that holds it: run this job there (its \
                 `flowline serve`), or stop that process",
            )),
        }
    }

    async fn query(&self, project: &Arc<Project>, sql: &str) -> Result<QueryResult> {
        match self.found(project).await? {
            Found::Owned(owned) => owned.query(project, sql).await,
            Found::Remote => {
                let project = project.clone();
                let sql = sql.to_string();
                tokio::task::spawn_blocking(move || {
                    super::client::open_warehouse(&project)?.query(&sql)
                })
                .await
                .map_err(|e| Error::Other(format!("running a query: {e}")))?
            }
        }
    }
}
