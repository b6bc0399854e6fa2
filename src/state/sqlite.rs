//! Run history in a SQLite file (`.flowline/state.db` by default).

use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::{RunRecord, RunStatus, StateStore};
use crate::core::error::{Error, Result};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    pipeline   TEXT NOT NULL,
    started_at TEXT NOT NULL,
    ended_at   TEXT,
    status     TEXT NOT NULL,
    rows       INTEGER NOT NULL DEFAULT 0,
    bytes      INTEGER NOT NULL DEFAULT 0,
    bad_rows   INTEGER NOT NULL DEFAULT 0,
    error      TEXT,
    stream     TEXT,
    duplicates INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_by_pipeline ON runs (pipeline, started_at);
";

/// The SQLite state store.
pub struct SqliteStateStore {
    conn: Mutex<Connection>,
}

impl SqliteStateStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let conn = Connection::open(path)
            .map_err(|e| Error::state(format!("opening {}", path.display()), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| Error::state("configuring", e))?;
        conn.execute_batch("PRAGMA journal_mode = WAL;")
            .map_err(|e| Error::state("configuring", e))?;
        conn.execute_batch(SCHEMA)
            .map_err(|e| Error::state("creating tables", e))?;
        migrate(&conn).map_err(|e| Error::state("upgrading tables", e))?;
        Ok(SqliteStateStore {
            conn: Mutex::new(conn),
        })
    }

    fn with<T>(&self, what: &str, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn).map_err(|e| Error::state(what.to_string(), e))
    }
}

/// Adds the columns that stores made by earlier versions lack.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    for (column, definition) in [
        ("stream", "TEXT"),
        ("duplicates", "INTEGER NOT NULL DEFAULT 0"),
    ] {
        let has: bool = conn.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('runs') WHERE name = ?1",
            [column],
            |row| row.get(0),
        )?;
        if !has {
            conn.execute_batch(&format!(
                "ALTER TABLE runs ADD COLUMN {column} {definition}"
            ))?;
        }
    }
    Ok(())
}

fn parse_time(text: Option<String>) -> Option<DateTime<Utc>> {
    text.and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| t.with_timezone(&Utc))
}

fn row_to_run(row: &rusqlite::Row<'_>) -> rusqlite::Result<RunRecord> {
    let status: String = row.get(4)?;
    Ok(RunRecord {
        run_id: row.get(0)?,
        pipeline: row.get(1)?,
        started_at: parse_time(row.get(2)?).unwrap_or_default(),
        ended_at: parse_time(row.get(3)?),
        status: RunStatus::parse(&status),
        rows: row.get::<_, i64>(5)? as u64,
        bytes: row.get::<_, i64>(6)? as u64,
        bad_rows: row.get::<_, i64>(7)? as u64,
        error: row.get(8)?,
        stream: row
            .get::<_, Option<String>>(9)?
            .and_then(|text| serde_json::from_str(&text).ok()),
        duplicates: row.get::<_, i64>(10)? as u64,
    })
}

const COLUMNS: &str = "run_id, pipeline, started_at, ended_at, status, rows, bytes, bad_rows, \
     error, stream, duplicates";

impl StateStore for SqliteStateStore {
    fn start_run(&self, run: &RunRecord) -> Result<()> {
        self.with("recording run start", |c| {
            c.execute(
                "UPDATE runs SET status = 'abandoned' WHERE pipeline = ?1 AND status = 'running'",
                params![run.pipeline],
            )?;
            c.execute(
                &format!(
                    "INSERT INTO runs ({COLUMNS}) VALUES (?1, ?2, ?3, NULL, ?4, 0, 0, 0, NULL, NULL, 0)"
                ),
                params![
                    run.run_id,
                    run.pipeline,
                    run.started_at.to_rfc3339(),
                    run.status.as_str()
                ],
            )?;
            Ok(())
        })
    }

    fn finish_run(&self, run: &RunRecord) -> Result<()> {
        self.with("recording run end", |c| {
            c.execute(
                "UPDATE runs SET ended_at = ?2, status = ?3, rows = ?4, bytes = ?5, bad_rows = ?6, \
                 error = ?7, stream = ?8, duplicates = ?9 WHERE run_id = ?1",
                params![
                    run.run_id,
                    run.ended_at.map(|t| t.to_rfc3339()),
                    run.status.as_str(),
                    run.rows as i64,
                    run.bytes as i64,
                    run.bad_rows as i64,
                    run.error,
                    run.stream
                        .as_ref()
                        .and_then(|stats| serde_json::to_string(stats).ok()),
                    run.duplicates as i64
                ],
            )?;
            Ok(())
        })
    }

    fn last_runs(&self) -> Result<Vec<RunRecord>> {
        self.with("reading runs", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM runs r WHERE started_at = \
                 (SELECT max(started_at) FROM runs WHERE pipeline = r.pipeline) ORDER BY pipeline"
            ))?;
            stmt.query_map([], row_to_run)?.collect()
        })
    }

    fn runs(&self, pipeline: &str, limit: usize) -> Result<Vec<RunRecord>> {
        self.with("reading runs", |c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {COLUMNS} FROM runs WHERE pipeline = ?1 ORDER BY started_at DESC LIMIT ?2"
            ))?;
            stmt.query_map(params![pipeline, limit as i64], row_to_run)?
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, status: RunStatus) -> RunRecord {
        RunRecord {
            run_id: id.into(),
            pipeline: "orders".into(),
            started_at: Utc::now(),
            ended_at: None,
            status,
            rows: 0,
            bytes: 0,
            bad_rows: 0,
            error: None,
            stream: None,
            duplicates: 0,
        }
    }

    #[test]
    fn records_runs_and_abandons_stale_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStateStore::open(&dir.path().join("state.db")).expect("opens");
        store
            .start_run(&run("a", RunStatus::Running))
            .expect("start a");
        std::thread::sleep(std::time::Duration::from_millis(5));
        let mut b = run("b", RunStatus::Running);
        store.start_run(&b).expect("start b");
        b.status = RunStatus::Succeeded;
        b.rows = 7;
        b.ended_at = Some(Utc::now());
        b.stream = Some(crate::state::StreamStats {
            messages: 7,
            end_to_end_p99_ms: 140,
            lag: Some(3),
            ..Default::default()
        });
        store.finish_run(&b).expect("finish b");
        let runs = store.runs("orders", 10).expect("runs");
        assert_eq!(runs.len(), 2);
        assert_eq!(runs[0].status, RunStatus::Succeeded);
        assert_eq!(runs[0].rows, 7);
        assert_eq!(runs[0].stream, b.stream);
        assert_eq!(runs[1].status, RunStatus::Abandoned);
        let last = store.last_runs().expect("last");
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].run_id, "b");
    }

    #[test]
    fn upgrades_a_store_without_the_stream_column() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("state.db");
        Connection::open(&path)
            .expect("opens")
            .execute_batch(
                "CREATE TABLE runs (run_id TEXT PRIMARY KEY, pipeline TEXT NOT NULL, \
                 started_at TEXT NOT NULL, ended_at TEXT, status TEXT NOT NULL, \
                 rows INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0, \
                 bad_rows INTEGER NOT NULL DEFAULT 0, error TEXT); \
                 INSERT INTO runs VALUES ('old', 'orders', '2026-01-01T00:00:00Z', NULL, \
                 'succeeded', 5, 0, 0, NULL);",
            )
            .expect("old schema");
        let store = SqliteStateStore::open(&path).expect("upgrades");
        let runs = store.runs("orders", 10).expect("runs");
        assert_eq!(runs[0].rows, 5);
        assert_eq!(runs[0].stream, None);
        store
            .start_run(&run("new", RunStatus::Running))
            .expect("writes");
    }
}
