//! The embedded DuckDB warehouse: opening the file (created atomically,
//! waiting for another process's lock), the settings of loads and queries,
//! and what the load core ([`super::load`]) needs of DuckDB: the Arrow
//! appender, DuckDB's SQL spelling, and the state row. `replace` drops the
//! old table and renames the new one into its place. DuckDB also reads
//! whole CSV files itself ([`super::duckdb_files`]).

use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use duckdb::params;

use serde::Deserialize;

use super::duckdb_files;
use super::load::{Columns, Dialect, Load, STAGE, SqlConnection, Target};
use super::{
    Destination, KeySql, LoadSpec, QueryResult, SavedState, TableName, Warehouse,
    WarehouseConnector,
};
use crate::core::error::{Error, Result};
use crate::core::{DeadLetter, FileScan, Workspace};
use crate::data::duckdb::{append, normalize, query};
use crate::data::types::{duckdb_type, quote_ident, quote_literal};

/// Tables flowline keeps in the warehouse itself, so that progress and
/// rejected rows commit atomically with the data they describe.
const INTERNAL_TABLES: &str = "
CREATE TABLE IF NOT EXISTS main._flowline_state (
    pipeline VARCHAR, state VARCHAR, run_id VARCHAR, updated_at TIMESTAMP);
CREATE TABLE IF NOT EXISTS main._flowline_dead_letter (
    pipeline VARCHAR, run_id VARCHAR, origin VARCHAR, reason VARCHAR, raw VARCHAR,
    loaded_at TIMESTAMP);
";

/// How long opening the warehouse waits for another process to let go of it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// `[warehouse] kind = "duckdb"` (the default): an embedded DuckDB file.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DuckDbConfig {
    /// The DuckDB database file, relative to the project folder (an
    /// absolute path also works). flowline creates it, and its folder, on
    /// first use. Default `.flowline/warehouse.duckdb`.
    #[serde(default = "default_warehouse_path")]
    pub path: String,
    /// The memory limit for queries (`flowline sql`, and a process serving
    /// the project when no load runs): `"512MB"`, `"2GB"`. Beyond it DuckDB
    /// spills to disk. `flowline validate` checks the value. Default `"1GB"`.
    #[serde(default = "default_memory_limit")]
    pub memory_limit: String,
    /// The memory limit while loads run. Appended rows are written to the
    /// file as they arrive, so a load needs little: with the default, a
    /// 1 GB CSV or NDJSON file loads in about 200 MB of peak RSS (about
    /// 260 MB when flowline reads the NDJSON file itself), no slower than
    /// with twice the limit.
    /// `flowline validate` checks the value. Default `"64MB"`.
    #[serde(default = "default_load_memory_limit")]
    pub load_memory_limit: String,
    /// Worker threads while loads run. They compress the row groups
    /// written; the other cores are left to the sources. Default: half the
    /// machine's cores, at least 1.
    #[serde(default)]
    pub load_threads: Option<u32>,
    /// Worker threads for queries. Default: DuckDB's choice (the machine's
    /// cores).
    #[serde(default)]
    pub threads: Option<u32>,
}

impl Default for DuckDbConfig {
    fn default() -> Self {
        DuckDbConfig {
            path: default_warehouse_path(),
            memory_limit: default_memory_limit(),
            load_memory_limit: default_load_memory_limit(),
            load_threads: None,
            threads: None,
        }
    }
}

fn default_memory_limit() -> String {
    "1GB".into()
}

fn default_load_memory_limit() -> String {
    "64MB".into()
}

fn default_warehouse_path() -> String {
    ".flowline/warehouse.duckdb".into()
}

impl WarehouseConnector for DuckDbConfig {
    fn kind() -> &'static str {
        "duckdb"
    }

    fn summary() -> &'static str {
        "An embedded DuckDB file (the default)"
    }

    fn check(&self, workspace: &Workspace) -> Result<()> {
        let _ = workspace;
        check_settings(self)
    }

    fn open(&self, workspace: &Workspace) -> Result<Box<dyn Warehouse>> {
        let path = workspace.resolve(&self.path);
        Ok(Box::new(DuckDbWarehouse::open(&path, self)?))
    }
}

/// Checks `[warehouse]` settings on a throwaway in-memory database.
pub fn check_settings(config: &DuckDbConfig) -> Result<()> {
    let conn = duckdb::Connection::open_in_memory()
        .map_err(|e| Error::warehouse("checking [warehouse] settings", e))?;
    let settings = LoadSettings::new(config);
    settings.for_queries(&conn)?;
    settings.for_loads(&conn)
}

/// DuckDB settings while at least one load runs: `load_memory_limit`, and
/// `load_threads` worker threads. The query settings come back when the last
/// load ends (both are settings of the whole database).
struct LoadSettings {
    active: std::sync::atomic::AtomicUsize,
    during_loads: String,
    after_loads: String,
    /// `threads` for a load, and while DuckDB reads a whole file.
    load_threads: u32,
    scan_threads: u32,
}

impl LoadSettings {
    fn new(config: &DuckDbConfig) -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        let load_threads = config.load_threads.unwrap_or(
            // Appending is one thread's work; DuckDB's workers compress the
            // row groups written. Half the cores leave the others to the
            // sources, and on two cores no worker spins waiting on another.
            (cores / 2).max(1),
        );
        let threads = match config.threads {
            Some(threads) => format!("SET threads = {threads};"),
            None => "RESET threads;".to_string(),
        };
        LoadSettings {
            active: std::sync::atomic::AtomicUsize::new(0),
            during_loads: format!(
                "SET memory_limit = {}; SET threads = {load_threads};",
                quote_literal(&config.load_memory_limit)
            ),
            after_loads: format!(
                "SET memory_limit = {}; {threads}",
                quote_literal(&config.memory_limit)
            ),
            load_threads,
            scan_threads: config.threads.unwrap_or(cores).max(load_threads),
        }
    }

    /// While DuckDB reads a whole file (`true`), the load's source waits:
    /// every core reads, and the rows are written as they are read rather
    /// than held back in the file's order, which would take more memory than
    /// `load_memory_limit`. Then (`false`) the load settings are back.
    fn reading_file(&self, conn: &duckdb::Connection, reading: bool) -> Result<()> {
        let settings = if reading {
            format!(
                "SET threads = {}; SET preserve_insertion_order = false",
                self.scan_threads
            )
        } else {
            format!(
                "SET threads = {}; RESET preserve_insertion_order",
                self.load_threads
            )
        };
        conn.execute_batch(&settings)
            .map_err(|e| Error::warehouse("applying the settings for reading a file", e))
    }

    /// `memory_limit` and `threads`: at open, and once the last load ends.
    fn for_queries(&self, conn: &duckdb::Connection) -> Result<()> {
        conn.execute_batch(&self.after_loads)
            .map_err(|e| Error::warehouse("applying memory_limit/threads", e))
    }

    /// `load_memory_limit` and `load_threads`.
    fn for_loads(&self, conn: &duckdb::Connection) -> Result<()> {
        conn.execute_batch(&self.during_loads)
            .map_err(|e| Error::warehouse("applying load_memory_limit/load_threads", e))
    }

    fn enter(&self, conn: &duckdb::Connection) -> Result<()> {
        use std::sync::atomic::Ordering;
        if self.active.fetch_add(1, Ordering::SeqCst) == 0 {
            self.for_loads(conn)?;
        }
        Ok(())
    }

    fn leave(&self, conn: &duckdb::Connection) {
        use std::sync::atomic::Ordering;
        if self.active.fetch_sub(1, Ordering::SeqCst) == 1
            && let Err(e) = self.for_queries(conn)
        {
            tracing::warn!("restoring the warehouse's settings: {e}");
        }
    }
}

/// Creates a new warehouse file under a temporary name and renames it into
/// place, so a process killed while creating it never leaves a file DuckDB
/// cannot open.
fn create_atomically(path: &Path) -> Result<()> {
    // A name of this process's own: two commands may create the file at once.
    let tmp = path.with_extension(format!("duckdb.creating.{}", std::process::id()));
    let wal = tmp.with_extension(format!("{}.wal", std::process::id()));
    for leftover in [&tmp, &wal] {
        if leftover.exists() {
            std::fs::remove_file(leftover).map_err(|e| Error::io(leftover, e))?;
        }
    }
    let conn = duckdb::Connection::open(&tmp)
        .map_err(|e| Error::warehouse(format!("creating {}", path.display()), e))?;
    conn.execute_batch(INTERNAL_TABLES)
        .and_then(|_| conn.execute_batch("CHECKPOINT"))
        .map_err(|e| Error::warehouse("creating flowline's tables", e))?;
    drop(conn);
    // A hard link never replaces a file another process put there first.
    let linked = match std::fs::hard_link(&tmp, path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    };
    let _ = std::fs::remove_file(&tmp);
    linked
}

/// Whether opening failed because another process holds the file's lock.
/// DuckDB reports it as an I/O error whose text is all that tells it apart.
fn is_lock_conflict(error: &duckdb::Error) -> bool {
    let text = error.to_string();
    text.contains("Could not set lock") || text.contains("Conflicting lock")
}

/// A DuckDB database file.
pub struct DuckDbWarehouse {
    conn: Mutex<duckdb::Connection>,
    load_settings: Arc<LoadSettings>,
}

impl DuckDbWarehouse {
    /// Opens (or creates) the warehouse at `path` with the settings of `config`.
    pub fn open(path: &Path, config: &DuckDbConfig) -> Result<Self> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        if !path.exists() {
            create_atomically(path)?;
        }
        // Another flowline command may hold the file for a moment (a query,
        // a status): wait for it rather than fail at once.
        let started = std::time::Instant::now();
        let mut wait = std::time::Duration::from_millis(20);
        let conn = loop {
            match duckdb::Connection::open(path) {
                Ok(conn) => break conn,
                Err(e) if is_lock_conflict(&e) && started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(std::time::Duration::from_millis(500));
                }
                Err(e) if is_lock_conflict(&e) => {
                    return Err(Error::WarehouseLocked {
                        path: path.to_path_buf(),
                        source: e,
                    });
                }
                Err(e) => return Err(Error::warehouse(format!("opening {}", path.display()), e)),
            }
        };
        let load_settings = Arc::new(LoadSettings::new(config));
        load_settings.for_queries(&conn)?;
        duckdb_files::register(&conn)?;
        conn.execute_batch(INTERNAL_TABLES)
            .map_err(|e| Error::warehouse("creating flowline's tables", e))?;
        Ok(DuckDbWarehouse {
            conn: Mutex::new(conn),
            load_settings,
        })
    }

    fn connection(&self) -> Result<duckdb::Connection> {
        let conn = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        conn.try_clone()
            .map_err(|e| Error::warehouse("opening a connection", e))
    }
}

impl Warehouse for DuckDbWarehouse {
    fn table_exists(&self, table: &TableName) -> Result<bool> {
        let conn = self.connection()?;
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM information_schema.tables \
                 WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ?",
                params![table.schema, table.table],
                |row| row.get(0),
            )
            .map_err(|e| Error::warehouse("looking up a table", e))?;
        Ok(n > 0)
    }
    fn destination(&self, load: LoadSpec) -> Result<Box<dyn Destination>> {
        let conn = DuckDbConnection {
            conn: self.connection()?,
            load_settings: self.load_settings.clone(),
        };
        // Left when the connection drops, also if entering fails.
        conn.load_settings.enter(&conn.conn)?;
        Ok(Box::new(Load::new(conn, load)))
    }

    fn query(&self, sql: &str) -> Result<QueryResult> {
        let conn = self.connection()?;
        let (schema, batches) = query(&conn, sql)?;
        Ok(QueryResult { schema, batches })
    }

    fn execute(&self, statements: &[String]) -> Result<()> {
        let conn = self.connection()?;
        conn.execute_batch("BEGIN TRANSACTION")
            .map_err(|e| Error::warehouse("starting a transaction", e))?;
        for statement in statements {
            if let Err(e) = conn.execute_batch(statement) {
                // The transaction is aborted either way; rolling back ends it.
                let _ = conn.execute_batch("ROLLBACK");
                return Err(Error::warehouse("running a statement", e));
            }
        }
        conn.execute_batch("COMMIT")
            .map_err(|e| Error::warehouse("committing", e))
    }

    fn reset_state(&self, pipeline: &str) -> Result<bool> {
        let conn = self.connection()?;
        let deleted = conn
            .execute(
                "DELETE FROM main._flowline_state WHERE pipeline = ?",
                params![pipeline],
            )
            .map_err(|e| Error::warehouse(format!("resetting the state of {pipeline}"), e))?;
        Ok(deleted > 0)
    }

    fn saved_state(&self, pipeline: &str) -> Result<Option<SavedState>> {
        let conn = self.connection()?;
        let mut stmt = conn
            .prepare(
                "SELECT state, run_id, CAST(updated_at AS VARCHAR) FROM main._flowline_state \
                 WHERE pipeline = ?",
            )
            .map_err(|e| Error::warehouse("reading saved state", e))?;
        let mut rows = stmt
            .query(params![pipeline])
            .map_err(|e| Error::warehouse("reading saved state", e))?;
        let Some(row) = rows
            .next()
            .map_err(|e| Error::warehouse("reading saved state", e))?
        else {
            return Ok(None);
        };
        let text: Option<String> = row
            .get(0)
            .map_err(|e| Error::warehouse("reading saved state", e))?;
        let state = match text {
            Some(t) => serde_json::from_str(&t).map_err(|e| Error::StateUnreadable {
                what: format!("saved state of {pipeline}"),
                message: e.to_string(),
            })?,
            None => serde_json::Value::Null,
        };
        if state.is_null() {
            return Ok(None);
        }
        Ok(Some(SavedState {
            state,
            run_id: row
                .get(1)
                .map_err(|e| Error::warehouse("reading saved state", e))?,
            updated_at: row
                .get(2)
                .map_err(|e| Error::warehouse("reading saved state", e))?,
        }))
    }
}

/// A DuckDB connection running one load: the appender, DuckDB's spelling of
/// SQL, and the load settings while it lives.
struct DuckDbConnection {
    conn: duckdb::Connection,
    load_settings: Arc<LoadSettings>,
}

impl Dialect for DuckDbConnection {
    fn quote(&self, name: &str) -> String {
        quote_ident(name)
    }

    fn schema(&self, table: &TableName) -> String {
        quote_ident(&table.schema)
    }

    fn batch_columns(&self, schema: &Schema) -> Columns {
        schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), duckdb_type(f.data_type())))
            .collect()
    }

    fn type_sql(&self, canonical: &str) -> String {
        canonical.to_string()
    }

    fn create_stage(&self, definitions: &str) -> String {
        format!("CREATE OR REPLACE TEMP TABLE {STAGE} ({definitions})")
    }

    fn widen_column(&self, qualified: &str, column: &str, from: &str, to: &str) -> String {
        let c = quote_ident(column);
        // DuckDB writes a STRUCT or a list cast to text in its own syntax
        // ({'x': 1}); text holds objects and lists as JSON.
        let nested = from.starts_with("STRUCT") || from.starts_with("MAP") || from.ends_with(']');
        let using = if nested && to == "VARCHAR" {
            format!(" USING to_json({c})::VARCHAR")
        } else {
            String::new()
        };
        format!("ALTER TABLE {qualified} ALTER COLUMN {c} SET DATA TYPE {to}{using}")
    }

    fn latest_per_key(&self, keys: &KeySql, list: &str) -> String {
        format!(
            "SELECT {list} FROM {STAGE} \
             QUALIFY row_number() OVER (PARTITION BY {} ORDER BY rowid DESC) = 1",
            keys.list
        )
    }

    fn insert_new(&self, target: &str, keys: &KeySql, list: &str) -> String {
        // In the order staged.
        format!(
            "INSERT INTO {target} ({list}) SELECT {list} FROM ( \
             SELECT *, row_number() OVER (PARTITION BY {} ORDER BY rowid) AS _flowline_row, \
             rowid AS _flowline_pos \
             FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {})) \
             WHERE _flowline_row = 1 ORDER BY _flowline_pos",
            keys.list, keys.join
        )
    }

    fn appends_by_name(&self) -> bool {
        // The appender fills the table's columns in order.
        false
    }

    fn refills_on_replace(&self) -> bool {
        false
    }
}

impl SqlConnection for DuckDbConnection {
    fn execute(&self, sql: &str, context: &str) -> Result<()> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| Error::warehouse(context, e))
    }

    fn execute_counting(&self, sql: &str, context: &str) -> Result<u64> {
        self.conn
            .execute(sql, [])
            .map(|n| n as u64)
            .map_err(|e| Error::warehouse(context, e))
    }

    fn any_row(&self, sql: &str, context: &str) -> Result<bool> {
        let mut stmt = self
            .conn
            .prepare(sql)
            .map_err(|e| Error::warehouse(context, e))?;
        let mut rows = stmt.query([]).map_err(|e| Error::warehouse(context, e))?;
        Ok(rows
            .next()
            .map_err(|e| Error::warehouse(context, e))?
            .is_some())
    }

    fn columns(&self, table: &TableName) -> Result<Option<Columns>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? \
                 ORDER BY ordinal_position",
            )
            .map_err(|e| Error::warehouse(format!("reading the columns of {table}"), e))?;
        let columns: Columns = stmt
            .query_map(params![table.schema, table.table], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| Error::warehouse(format!("reading the columns of {table}"), e))?;
        Ok((!columns.is_empty()).then_some(columns))
    }

    fn append(&self, target: Target<'_>, batch: RecordBatch) -> Result<()> {
        match target {
            Target::Table(table) => append(&self.conn, None, &table.schema, &table.table, batch),
            Target::Stage => append(&self.conn, Some("temp"), "main", STAGE, batch),
        }
    }

    fn supports_merge(&self) -> Result<bool> {
        // MERGE's updates stay in memory until the transaction ends, and a
        // large merge outgrows load_memory_limit; deleting the keys' rows
        // and inserting them again writes the new rows out as they come.
        Ok(false)
    }

    fn save_state(&self, pipeline: &str, run_id: &str, state: &str) -> Result<()> {
        // The time of saving, as the commit is near (DuckDB's now() is the
        // transaction's start).
        let saved_at = chrono::Utc::now()
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string();
        self.conn
            .execute(
                "DELETE FROM main._flowline_state WHERE pipeline = ?",
                params![pipeline],
            )
            .and_then(|_| {
                self.conn.execute(
                    "INSERT INTO main._flowline_state VALUES (?, ?, ?, ?::TIMESTAMP)",
                    params![pipeline, state, run_id, saved_at],
                )
            })
            .map_err(|e| Error::warehouse(format!("saving the state of {pipeline}"), e))?;
        Ok(())
    }

    fn insert_dead_letters(
        &self,
        pipeline: &str,
        run_id: &str,
        letters: &[DeadLetter],
    ) -> Result<()> {
        let context = || format!("recording the dead letters of {pipeline}");
        let mut stmt = self
            .conn
            .prepare(
                "INSERT INTO main._flowline_dead_letter VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
            )
            .map_err(|e| Error::warehouse(context(), e))?;
        for letter in letters {
            stmt.execute(params![
                pipeline,
                run_id,
                letter.origin,
                letter.reason,
                letter.raw
            ])
            .map_err(|e| Error::warehouse(context(), e))?;
        }
        Ok(())
    }

    fn normalize(&self, batch: RecordBatch) -> Result<RecordBatch> {
        normalize(batch)
    }

    fn reads_files(&self) -> bool {
        true
    }

    fn select_file(&self, scan: &FileScan) -> Option<String> {
        duckdb_files::select(scan)
    }

    fn reading_file(&self, reading: bool) -> Result<()> {
        self.load_settings.reading_file(&self.conn, reading)
    }
}

impl Drop for DuckDbConnection {
    fn drop(&mut self) {
        self.load_settings.leave(&self.conn);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::destinations::{TableName, Warehouse, WriteMode};

    fn setting(warehouse: &DuckDbWarehouse, name: &str) -> String {
        let result = warehouse
            .query(&format!("SELECT current_setting('{name}')::VARCHAR AS v"))
            .expect("query");
        result.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .expect("text")
            .value(0)
            .to_string()
    }

    #[test]
    fn loads_run_under_the_load_settings_and_queries_under_the_others() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = DuckDbConfig {
            memory_limit: "512MB".into(),
            threads: Some(2),
            load_memory_limit: "100MB".into(),
            load_threads: Some(1),
            ..DuckDbConfig::default()
        };
        let warehouse =
            DuckDbWarehouse::open(&dir.path().join("w.duckdb"), &config).expect("opens");
        let for_queries = (
            setting(&warehouse, "memory_limit"),
            setting(&warehouse, "threads"),
        );
        assert_eq!(for_queries.1, "2");
        let spec = || LoadSpec {
            pipeline: "p".into(),
            run_id: "r".into(),
            table: TableName::parse("t").expect("name"),
            write: WriteMode::Append,
            primary_key: Vec::new(),
            dedupe_key: Vec::new(),
            upsert: false,
            schema: Default::default(),
        };
        let first = warehouse.destination(spec()).expect("a load");
        let second = warehouse.destination(spec()).expect("another load");
        let during = (
            setting(&warehouse, "memory_limit"),
            setting(&warehouse, "threads"),
        );
        assert_ne!(during.0, for_queries.0, "a smaller limit while loading");
        assert_eq!(during.1, "1");
        drop(first);
        assert_eq!(setting(&warehouse, "threads"), "1", "one load still runs");
        drop(second);
        assert_eq!(
            (
                setting(&warehouse, "memory_limit"),
                setting(&warehouse, "threads")
            ),
            for_queries
        );
    }
}

#[cfg(test)]
mod merge_tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field};

    use super::*;
    use crate::destinations::{SchemaPolicy, WriteMode};

    fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("name", DataType::Utf8, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .expect("batch")
    }

    #[test]
    fn a_merge_deletes_and_inserts_the_keys_rows() {
        let dir = tempfile::tempdir().expect("tempdir");
        let warehouse = DuckDbWarehouse::open(&dir.path().join("w.duckdb"), &Default::default())
            .expect("opens");
        let conn = DuckDbConnection {
            conn: warehouse.connection().expect("a connection"),
            load_settings: warehouse.load_settings.clone(),
        };
        conn.load_settings.enter(&conn.conn).expect("load settings");
        let spec = LoadSpec {
            pipeline: "p".into(),
            run_id: "r".into(),
            table: TableName::parse("raw.items").expect("name"),
            write: WriteMode::Merge,
            primary_key: vec!["id".into()],
            dedupe_key: Vec::new(),
            upsert: true,
            schema: SchemaPolicy::Strict,
        };
        let mut load = Load::new(conn, spec);
        load.write(batch(&[1, 2], &["a", "b"])).expect("rows");
        load.commit(None).expect("commits");
        load.write(batch(&[2, 3, 2], &["B", "c", "B2"]))
            .expect("rows");
        load.commit(None).expect("commits");
        drop(load);
        let result = warehouse
            .query("SELECT string_agg(id || name, ',' ORDER BY id) AS v FROM raw.items")
            .expect("query");
        let rows = result.batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text")
            .value(0)
            .to_string();
        assert_eq!(rows, "1a,2B2,3c", "one row per key, the last of a batch");
    }
}
