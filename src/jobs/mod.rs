//! What a job is made of, below the project's config: the step kinds (one
//! module each, listed once in [`steps::kinds`]), schedules and data
//! intervals, templates, and the trigger rules that decide which step runs
//! next. It knows nothing of how or where steps run: a step reaches the
//! warehouse, pipelines and other jobs through the [`StepHost`] the
//! orchestrator hands it.

pub mod dag;
pub mod log;
pub mod schedule;
pub mod steps;
pub mod template;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

pub use dag::TriggerRule;

use crate::core::diagnostic::did_you_mean;

/// How a pipeline step's run ended.
#[derive(Debug, Clone)]
pub struct PipelineRun {
    /// The pipeline run's id.
    pub run_id: String,
    /// Whether it succeeded.
    pub succeeded: bool,
    /// Rows committed.
    pub rows: u64,
    /// Rows sent to the dead-letter table.
    pub bad_rows: u64,
    /// Why it failed.
    pub error: Option<String>,
}

/// Where a run started by a `job` step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildState {
    /// Queued or running.
    Running,
    /// Ended well.
    Succeeded,
    /// Ended badly.
    Failed,
}

/// A run started by a `job` step.
#[derive(Debug, Clone)]
pub struct ChildRun {
    /// Its id.
    pub run_id: String,
    /// Where it stands.
    pub state: ChildState,
}

/// The process a step runs in, as steps see it: the orchestrator
/// implements it over the warehouse and the job store.
#[async_trait::async_trait]
pub trait StepHost: Send + Sync {
    /// Runs the batch pipeline `name` once.
    async fn run_pipeline(&self, name: &str) -> Result<PipelineRun, String>;

    /// Runs the stream pipeline `name` until no message has arrived for
    /// `idle`, then commits and stops.
    async fn drain_stream(
        &self,
        name: &str,
        idle: std::time::Duration,
    ) -> Result<PipelineRun, String>;

    /// Runs `sql` in the project's warehouse; returns how many rows it
    /// returned.
    async fn query(&self, sql: &str) -> Result<usize, String>;

    /// The messages waiting in RabbitMQ `queue` at `[connections.<connection>]`.
    async fn queue_depth(&self, connection: &str, queue: &str) -> Result<u64, String>;

    /// The run of job `job` keyed `key` (the step that starts it), started
    /// now over the interval and params of `vars` when there is none yet.
    async fn start_child_run(
        &self,
        job: &str,
        key: &str,
        vars: &template::Vars,
    ) -> Result<ChildRun, String>;
}

/// The names a job's steps may refer to, for checking them.
#[derive(Debug, Clone, Default)]
pub struct ProjectRefs {
    /// The project folder.
    pub dir: PathBuf,
    /// Pipelines, and whether each is a stream pipeline.
    pub pipelines: BTreeMap<String, bool>,
    /// Jobs.
    pub jobs: BTreeSet<String>,
    /// `[connections.<name>]`.
    pub connections: BTreeSet<String>,
}

impl ProjectRefs {
    /// An error naming `what` `name` and the known ones, unless it exists.
    pub fn expect(&self, what: &str, name: &str) -> Result<(), String> {
        let known: Vec<&str> = match what {
            "pipeline" => self.pipelines.keys().map(String::as_str).collect(),
            "job" => self.jobs.iter().map(String::as_str).collect(),
            _ => self.connections.iter().map(String::as_str).collect(),
        };
        if known.contains(&name) {
            return Ok(());
        }
        let hint = did_you_mean(name, &known)
            .map(|n| format!("; did you mean \"{n}\"?"))
            .unwrap_or_default();
        let known = if known.is_empty() {
            "none".to_string()
        } else {
            known.join(", ")
        };
        Err(format!("no {what} named \"{name}\" (known: {known}){hint}"))
    }
}
