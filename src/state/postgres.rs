//! Run history in a shared PostgreSQL database (`[state] url`), for
//! projects whose workers run on several machines.
//!
//! [`StateStore`] is synchronous (SQLite answers in microseconds); this
//! store bridges to tokio-postgres by blocking the calling thread on the
//! runtime, the same way the control socket's client does.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;

use super::{RunRecord, RunStatus, StateStore};
use crate::clients::postgres::describe_error;
use crate::core::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flowline_pipeline_runs (
    run_id     TEXT PRIMARY KEY,
    pipeline   TEXT NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at   TIMESTAMPTZ,
    status     TEXT NOT NULL,
    rows       BIGINT NOT NULL DEFAULT 0,
    bytes      BIGINT NOT NULL DEFAULT 0,
    bad_rows   BIGINT NOT NULL DEFAULT 0,
    error      TEXT,
    stream     TEXT,
    duplicates BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS flowline_pipeline_runs_by_pipeline
    ON flowline_pipeline_runs (pipeline, started_at);
";

const COLUMNS: &str = "run_id, pipeline, started_at, ended_at, status, rows, bytes, bad_rows, \
     error, stream, duplicates";

/// The PostgreSQL run history.
pub struct PostgresStateStore {
    client: Arc<Mutex<tokio_postgres::Client>>,
}

/// Runs `work` to completion from synchronous code, inside or outside a
/// tokio runtime.
fn block_on<T: Send>(work: impl std::future::Future<Output = Result<T>> + Send) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| handle.block_on(work))
        }
        _ => std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| Error::Other(format!("starting a runtime: {e}")))?
                        .block_on(work)
                })
                .join()
                .map_err(|_| Error::Other("the state store's thread panicked".into()))?
        }),
    }
}

fn pg(context: &'static str) -> impl Fn(tokio_postgres::Error) -> Error {
    move |e| Error::Other(format!("state store: {context}: {}", describe_error(&e)))
}

fn row_to_run(row: &tokio_postgres::Row) -> RunRecord {
    let int = |i: usize| row.get::<_, i64>(i).max(0) as u64;
    RunRecord {
        run_id: row.get(0),
        pipeline: row.get(1),
        started_at: row.get::<_, DateTime<Utc>>(2),
        ended_at: row.get(3),
        status: RunStatus::parse(row.get(4)),
        rows: int(5),
        bytes: int(6),
        bad_rows: int(7),
        error: row.get(8),
        stream: row
            .get::<_, Option<String>>(9)
            .and_then(|text| serde_json::from_str(&text).ok()),
        duplicates: int(10),
    }
}

impl PostgresStateStore {
    /// Connects to `url` and creates the history table when missing.
    pub fn open(url: &str) -> Result<Self> {
        let url = url.to_string();
        block_on(async move {
            let client = crate::clients::postgres::connect(&url).await?;
            client
                .batch_execute(SCHEMA)
                .await
                .map_err(pg("creating tables"))?;
            Ok(PostgresStateStore {
                client: Arc::new(Mutex::new(client)),
            })
        })
    }
}

impl StateStore for PostgresStateStore {
    fn start_run(&self, run: &RunRecord) -> Result<()> {
        let client = self.client.clone();
        let run = run.clone();
        block_on(async move {
            let client = client.lock().await;
            client
                .execute(
                    "UPDATE flowline_pipeline_runs SET status = 'abandoned' \
                     WHERE pipeline = $1 AND status = 'running'",
                    &[&run.pipeline],
                )
                .await
                .map_err(pg("recording run start"))?;
            client
                .execute(
                    &format!(
                        "INSERT INTO flowline_pipeline_runs ({COLUMNS}) \
                         VALUES ($1, $2, $3, NULL, $4, 0, 0, 0, NULL, NULL, 0)"
                    ),
                    &[
                        &run.run_id,
                        &run.pipeline,
                        &run.started_at,
                        &run.status.as_str(),
                    ],
                )
                .await
                .map_err(pg("recording run start"))?;
            Ok(())
        })
    }

    fn finish_run(&self, run: &RunRecord) -> Result<()> {
        let client = self.client.clone();
        let run = run.clone();
        block_on(async move {
            let stream = run
                .stream
                .as_ref()
                .and_then(|stats| serde_json::to_string(stats).ok());
            client
                .lock()
                .await
                .execute(
                    "UPDATE flowline_pipeline_runs SET ended_at = $2, status = $3, rows = $4, \
                     bytes = $5, bad_rows = $6, error = $7, stream = $8, duplicates = $9 \
                     WHERE run_id = $1",
                    &[
                        &run.run_id,
                        &run.ended_at,
                        &run.status.as_str(),
                        &(run.rows as i64),
                        &(run.bytes as i64),
                        &(run.bad_rows as i64),
                        &run.error,
                        &stream,
                        &(run.duplicates as i64),
                    ],
                )
                .await
                .map_err(pg("recording run end"))?;
            Ok(())
        })
    }

    fn last_runs(&self) -> Result<Vec<RunRecord>> {
        let client = self.client.clone();
        block_on(async move {
            let rows = client
                .lock()
                .await
                .query(
                    &format!(
                        "SELECT DISTINCT ON (pipeline) {COLUMNS} FROM flowline_pipeline_runs \
                         ORDER BY pipeline, started_at DESC"
                    ),
                    &[],
                )
                .await
                .map_err(pg("reading runs"))?;
            Ok(rows.iter().map(row_to_run).collect())
        })
    }

    fn runs(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>> {
        let client = self.client.clone();
        let pipeline = pipeline.to_string();
        block_on(async move {
            let rows = client
                .lock()
                .await
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM flowline_pipeline_runs WHERE pipeline = $1 \
                         ORDER BY started_at DESC LIMIT $2"
                    ),
                    &[&pipeline, &(limit as i64)],
                )
                .await
                .map_err(pg("reading runs"))?;
            Ok(rows.iter().map(row_to_run).collect())
        })
    }
}
