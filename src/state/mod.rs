//! The metadata store: pipeline run history behind one interface, and the
//! SQL layer ([`db`]) the orchestrator's queue is written on. SQLite is the
//! embedded default; `[state] url = "postgres://..."` shares one store
//! between machines.

pub mod db;
mod postgres;
mod sqlite;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{Project, StateKind};
use crate::core::error::Result;

pub use postgres::PostgresStateStore;
pub use sqlite::SqliteStateStore;

/// How a run ended, or that it has not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Still going (or the process died; a later run marks it abandoned).
    Running,
    /// Finished and committed.
    Succeeded,
    /// Stopped by an error; nothing after the last commit was kept.
    Failed,
    /// The process running it died before it finished.
    Abandoned,
}

impl RunStatus {
    /// The status as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Abandoned => "abandoned",
        }
    }

    /// Parses a stored status.
    pub fn parse(text: &str) -> RunStatus {
        match text {
            "succeeded" => RunStatus::Succeeded,
            "failed" => RunStatus::Failed,
            "abandoned" => RunStatus::Abandoned,
            _ => RunStatus::Running,
        }
    }
}

/// One run of one pipeline.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// Unique, time-ordered id.
    pub run_id: String,
    /// The pipeline run.
    pub pipeline: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended.
    pub status: RunStatus,
    /// Rows loaded (after transforms): inserted or updated, and committed.
    pub rows: u64,
    /// Rows left out as duplicates of loaded rows (`dedupe_key`, or a
    /// `merge` key repeated in a batch), in committed loads.
    #[serde(default)]
    pub duplicates: u64,
    /// Bytes read from the source.
    pub bytes: u64,
    /// Rows sent to the dead-letter table.
    pub bad_rows: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// A stream session's live numbers, as of its last report.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamStats>,
}

/// The numbers of a stream session, kept in its run record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamStats {
    /// Messages consumed and committed.
    pub messages: u64,
    /// Batches committed.
    pub batches: u64,
    /// Messages per second over the session.
    pub messages_per_second: f64,
    /// Median time from a batch's first message to its commit, ms.
    pub batch_p50_ms: u64,
    /// 99th percentile of the same, ms.
    pub batch_p99_ms: u64,
    /// Median time from publish to commit, ms (0 when publishers stamp no time).
    pub end_to_end_p50_ms: u64,
    /// 99th percentile of the same, ms.
    pub end_to_end_p99_ms: u64,
    /// The consumer lag the broker reported last, where it reports one.
    pub lag: Option<u64>,
}

impl RunRecord {
    /// A run of `pipeline` starting now.
    pub fn start(pipeline: &str) -> RunRecord {
        RunRecord {
            run_id: uuid::Uuid::now_v7().to_string(),
            pipeline: pipeline.to_string(),
            started_at: chrono::Utc::now(),
            ended_at: None,
            status: RunStatus::Running,
            rows: 0,
            duplicates: 0,
            bytes: 0,
            bad_rows: 0,
            error: None,
            stream: None,
        }
    }

    /// Ends the run now with `outcome`; a failure's message is kept, redacted.
    pub fn finish(&mut self, outcome: crate::core::error::Result<()>) {
        self.ended_at = Some(chrono::Utc::now());
        match outcome {
            Ok(()) => self.status = RunStatus::Succeeded,
            Err(e) => {
                self.status = RunStatus::Failed;
                let message = match e {
                    crate::core::error::Error::Pipeline { message, .. } => message,
                    other => other.to_string(),
                };
                self.error = Some(crate::core::secrets::redact(&message));
            }
        }
    }

    /// Wall time from start to end (or to now while running).
    pub fn duration(&self) -> std::time::Duration {
        let end = self.ended_at.unwrap_or_else(Utc::now);
        (end - self.started_at).to_std().unwrap_or_default()
    }
}

/// Where run history lives.
pub trait StateStore: Send + Sync {
    /// Records that a run started; earlier runs of the same pipeline still
    /// marked running are marked abandoned.
    fn start_run(&self, run: &RunRecord) -> Result<()>;

    /// Records a run's outcome, or its numbers so far while it runs.
    fn finish_run(&self, run: &RunRecord) -> Result<()>;

    /// The latest run of each pipeline.
    fn last_runs(&self) -> Result<Vec<RunRecord>>;

    /// The latest `limit` runs of `pipeline`, newest first.
    fn runs(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>>;
}

/// Opens the project's state store.
pub fn open_state_store(project: &Project) -> Result<Box<dyn StateStore>> {
    let config = &project.settings.state;
    match config.kind() {
        StateKind::Sqlite => Ok(Box::new(SqliteStateStore::open(
            &project.resolve(&config.path),
        )?)),
        StateKind::Postgres => Ok(Box::new(PostgresStateStore::open(
            config.url.as_deref().unwrap_or_default(),
        )?)),
    }
}
