//! Orchestration: jobs (`jobs/*.toml`, DAGs of steps), their schedules,
//! runs and steps, and the processes that run them.
//!
//! ```text
//! scheduler ── creates runs as intervals end ──► store (job_runs, job_steps = the queue)
//!                                                   │ claim with a lease (SKIP LOCKED)
//! runner(s) ◄───────────────────────────────────────┘
//!    └─ runs a step kind (steps/) ─► finish: frees the next steps, ends the run
//! ```
//!
//! The store is the only thing processes share: `flowline serve` (the
//! scheduler, and a runner on the embedded default), `flowline worker`
//! (a runner) and `flowline jobs run` (a runner for one run) work the same
//! against SQLite on one machine or PostgreSQL across several.

pub mod host;
pub mod runner;
pub mod scheduler;
pub mod store;

use std::sync::Arc;

pub use crate::jobs::schedule::Interval;
pub use store::{JobRun, RunState, Store};

use crate::config::{Project, StateKind};
use crate::core::error::Result;
use crate::state::db::{Db, PostgresDb, SqliteDb};

/// Opens the project's job store: the `[state]` database.
pub async fn open_store(project: &Project) -> Result<Arc<Store>> {
    let state = &project.settings.state;
    let db: Box<dyn Db> = match state.kind() {
        StateKind::Postgres => {
            Box::new(PostgresDb::connect(state.url.as_deref().unwrap_or_default()).await?)
        }
        StateKind::Sqlite => Box::new(SqliteDb::open(&project.resolve(&state.path))?),
    };
    Ok(Arc::new(Store::open(db, &project.settings.pools).await?))
}

/// Reports a failed run to the job's `on_failure` webhook: a JSON POST with
/// the job, the run, the failed step, its error and where its log is.
pub async fn alert(project: &Project, ended: &store::RunEnded) {
    if ended.ok {
        return;
    }
    let Ok(job) = project.job(&ended.job) else {
        return;
    };
    let Some(on_failure) = &job.config.settings.on_failure else {
        return;
    };
    let (step, error) = ended.failed_step.clone().unwrap_or_default();
    let log_url = project.settings.server.public_url().map(|base| {
        format!(
            "{}/api/runs/{}/logs?step={step}",
            base.trim_end_matches('/'),
            ended.run_id
        )
    });
    let body = serde_json::json!({
        "job": ended.job,
        "run": ended.run_id,
        "step": step,
        "error": error,
        "log_url": log_url,
    });
    let sent = reqwest::Client::new()
        .post(&on_failure.webhook)
        .timeout(std::time::Duration::from_secs(10))
        .json(&body)
        .send()
        .await
        .and_then(|r| r.error_for_status());
    if let Err(e) = sent {
        tracing::warn!(
            "job {}: reporting the failed run to on_failure.webhook: {}",
            ended.job,
            crate::core::secrets::redact(&e.to_string())
        );
    }
}
