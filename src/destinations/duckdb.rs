//! The embedded DuckDB warehouse: Arrow appends, staging tables for merge
//! and schema changes, `replace` by swapping a freshly built table, and the
//! pipeline's state row written in the same transaction as its data.

use std::path::Path;
use std::sync::{Arc, Mutex};

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use duckdb::params;

use super::{
    Destination, KeySql, LoadSpec, QueryResult, SavedState, SchemaPolicy, TableName, Warehouse,
    WriteMode,
};
use serde::Deserialize;

use super::WarehouseConnector;
use crate::core::DeadLetter;
use crate::core::Workspace;
use crate::core::error::{Error, Result};
use crate::data::duckdb::{append, column_definitions, normalize, query};
use crate::data::evolve::{Change, plan};
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

/// Name of the per-load staging table (temporary, per connection).
const STAGE: &str = "_flowline_stage";

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
    /// 6-million-row PostgreSQL table loads in about 250 MB of RSS.
    /// `flowline validate` checks the value. Default `"128MB"`.
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
    "128MB".into()
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
}

impl LoadSettings {
    fn new(config: &DuckDbConfig) -> Self {
        let load_threads = config.load_threads.unwrap_or_else(|| {
            // Appending is one thread's work; DuckDB's workers compress the
            // row groups written. Half the cores leave the others to the
            // sources, and on two cores no worker spins waiting on another.
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)) as u32
        });
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
        }
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
        let conn = self.connection()?;
        self.load_settings.enter(&conn)?;
        Ok(Box::new(DuckDbDestination {
            conn,
            load_settings: self.load_settings.clone(),
            load,
            in_transaction: false,
            columns: None,
            replace_started: false,
        }))
    }

    fn query(&self, sql: &str) -> Result<QueryResult> {
        let conn = self.connection()?;
        let (schema, batches) = query(&conn, sql)?;
        Ok(QueryResult { schema, batches })
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
            Some(t) => serde_json::from_str(&t)
                .map_err(|e| Error::Other(format!("saved state of {pipeline} is corrupt: {e}")))?,
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

/// One load into one DuckDB table.
pub struct DuckDbDestination {
    conn: duckdb::Connection,
    load_settings: Arc<LoadSettings>,
    load: LoadSpec,
    in_transaction: bool,
    /// The columns of the table being written, as (name, SQL type).
    columns: Option<Vec<(String, String)>>,
    /// `replace`: the new table has been created in this transaction.
    replace_started: bool,
}

impl DuckDbDestination {
    fn exec(&self, sql: &str, what: &str) -> Result<()> {
        self.conn
            .execute_batch(sql)
            .map_err(|e| Error::warehouse(format!("{what} ({})", self.load.table), e))
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_transaction {
            // The schema is created on its own, before the load's
            // transaction: loads of several tables in one schema (a
            // pipeline's child tables) would otherwise conflict on it.
            let schema = quote_ident(&self.load.table.schema);
            self.exec(
                &format!("CREATE SCHEMA IF NOT EXISTS {schema}"),
                "creating the schema",
            )?;
            self.exec("BEGIN TRANSACTION", "starting a transaction")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn table_columns(&self, table: &TableName) -> Result<Option<Vec<(String, String)>>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT column_name, data_type FROM information_schema.columns \
                 WHERE table_catalog = current_database() AND table_schema = ? AND table_name = ? \
                 ORDER BY ordinal_position",
            )
            .map_err(|e| Error::warehouse("reading table columns", e))?;
        let columns: Vec<(String, String)> = stmt
            .query_map(params![table.schema, table.table], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .map_err(|e| Error::warehouse("reading table columns", e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| Error::warehouse("reading table columns", e))?;
        Ok((!columns.is_empty()).then_some(columns))
    }

    /// Creates `table` for `schema`, or adds and widens its columns so the
    /// batch fits. Returns the table's columns afterwards.
    fn prepare_table(
        &mut self,
        table: &TableName,
        schema: &Schema,
    ) -> Result<Vec<(String, String)>> {
        let existing = match self.columns.take() {
            Some(columns) => Some(columns),
            None => self.table_columns(table)?,
        };
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.table)
        );
        let Some(mut columns) = existing else {
            self.exec(
                &format!("CREATE TABLE {qualified} ({})", column_definitions(schema)),
                "creating the table",
            )?;
            let columns: Vec<(String, String)> = schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), duckdb_type(f.data_type())))
                .collect();
            self.columns = Some(columns.clone());
            return Ok(columns);
        };
        // The table being built by `replace` belongs to this load alone.
        let allow_widening =
            self.load.write == WriteMode::Replace || self.load.schema == SchemaPolicy::Evolve;
        let source: Vec<(String, String)> = schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), duckdb_type(f.data_type())))
            .collect();
        let changes = plan(
            &mut columns,
            &source,
            allow_widening,
            &self.load.table.to_string(),
        )
        .map_err(|message| Error::pipeline(&self.load.pipeline, message))?;
        for change in changes {
            let (sql, what) = match &change {
                Change::Add { column, sql_type } => (
                    format!(
                        "ALTER TABLE {qualified} ADD COLUMN {} {sql_type}",
                        quote_ident(column)
                    ),
                    "adding a column",
                ),
                Change::Widen { column, to, .. } => (
                    format!(
                        "ALTER TABLE {qualified} ALTER COLUMN {} SET DATA TYPE {to}",
                        quote_ident(column)
                    ),
                    "widening a column",
                ),
            };
            self.exec(&sql, what)?;
            tracing::info!(pipeline = %self.load.pipeline, "{}: {change:?}", self.load.table);
        }
        self.columns = Some(columns.clone());
        Ok(columns)
    }

    fn stage(&self, batch: RecordBatch) -> Result<()> {
        self.exec(
            &format!(
                "CREATE OR REPLACE TEMP TABLE {STAGE} ({})",
                column_definitions(&batch.schema())
            ),
            "creating the staging table",
        )?;
        append(&self.conn, Some("temp"), "main", STAGE, batch)
    }

    /// Merges the staged rows (the last of each key wins) into the table: a
    /// row whose key is there is updated in place, keeping the columns the
    /// batch does not have; a new key is inserted.
    fn merge_from_stage(&self, qualified: &str, schema: &Schema) -> Result<()> {
        let keys = KeySql::new(&self.load.primary_key, quote_ident);
        let updates: Vec<String> = schema
            .fields()
            .iter()
            .filter(|f| !self.load.primary_key.contains(f.name()))
            .map(|f| format!("{c} = s.{c}", c = quote_ident(f.name())))
            .collect();
        let matched = if updates.is_empty() {
            "DO NOTHING".to_string()
        } else {
            format!("UPDATE SET {}", updates.join(", "))
        };
        self.exec(
            &format!(
                "MERGE INTO {qualified} AS t USING (SELECT * FROM {STAGE} \
                 QUALIFY row_number() OVER (PARTITION BY {k} ORDER BY rowid DESC) = 1) AS s \
                 ON {join} WHEN MATCHED THEN {matched} WHEN NOT MATCHED THEN INSERT BY NAME",
                k = keys.list,
                join = keys.join
            ),
            "merging",
        )
    }
}

impl DuckDbDestination {
    /// Inserts the staged rows whose `dedupe_key` is not in the table yet,
    /// the first of each key.
    fn insert_new_from_stage(&self, qualified: &str) -> Result<()> {
        let keys = KeySql::new(&self.load.dedupe_key, quote_ident);
        self.exec(
            &format!(
                "INSERT INTO {qualified} BY NAME SELECT * EXCLUDE (_flowline_row, _flowline_pos) FROM ( \
                 SELECT *, row_number() OVER (PARTITION BY {} ORDER BY rowid) AS _flowline_row, \
                 rowid AS _flowline_pos \
                 FROM {STAGE} s WHERE NOT EXISTS (SELECT 1 FROM {qualified} t WHERE {})) \
                 WHERE _flowline_row = 1 ORDER BY _flowline_pos",
                keys.list, keys.join
            ),
            "inserting new rows",
        )
    }
}

impl Destination for DuckDbDestination {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = normalize(batch)?;
        self.begin()?;
        let table = self.load.write_table();
        if self.load.write == WriteMode::Replace && !self.replace_started {
            let qualified = format!(
                "{}.{}",
                quote_ident(&table.schema),
                quote_ident(&table.table)
            );
            self.exec(
                &format!("DROP TABLE IF EXISTS {qualified}"),
                "clearing the new table",
            )?;
            self.columns = None;
            self.replace_started = true;
        }
        let schema = batch.schema();
        self.load.check_keys(&schema)?;
        let columns = self.prepare_table(&table, &schema)?;
        let exact = columns.len() == schema.fields().len()
            && columns
                .iter()
                .zip(schema.fields())
                .all(|((name, ty), f)| name == f.name() && *ty == duckdb_type(f.data_type()));
        let qualified = format!(
            "{}.{}",
            quote_ident(&table.schema),
            quote_ident(&table.table)
        );
        match self.load.write {
            _ if self.load.upserts() => {
                self.stage(batch)?;
                self.merge_from_stage(&qualified, &schema)
            }
            _ if self.load.dedupes() => {
                self.stage(batch)?;
                self.insert_new_from_stage(&qualified)
            }
            _ if exact => append(&self.conn, None, &table.schema, &table.table, batch),
            _ => {
                self.stage(batch)?;
                self.exec(
                    &format!("INSERT INTO {qualified} BY NAME SELECT * FROM {STAGE}"),
                    "inserting staged rows",
                )
            }
        }
    }

    fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        self.begin()?;
        self.insert_dead_letters(letters)
    }

    fn keep_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        self.rollback()?;
        if letters.is_empty() {
            return Ok(());
        }
        self.exec("BEGIN TRANSACTION", "starting a transaction")?;
        self.in_transaction = true;
        self.insert_dead_letters(letters)?;
        self.exec("COMMIT", "committing dead letters")?;
        self.in_transaction = false;
        Ok(())
    }

    fn commit(&mut self, state: Option<&serde_json::Value>) -> Result<()> {
        self.begin()?;
        if self.load.write == WriteMode::Replace {
            let target = &self.load.table;
            let qualified = format!(
                "{}.{}",
                quote_ident(&target.schema),
                quote_ident(&target.table)
            );
            if self.replace_started {
                let new = self.load.write_table();
                self.exec(
                    &format!("DROP TABLE IF EXISTS {qualified}"),
                    "replacing the table",
                )?;
                self.exec(
                    &format!(
                        "ALTER TABLE {}.{} RENAME TO {}",
                        quote_ident(&new.schema),
                        quote_ident(&new.table),
                        quote_ident(&target.table)
                    ),
                    "replacing the table",
                )?;
            } else if self.table_columns(target)?.is_some() {
                self.exec(&format!("DELETE FROM {qualified}"), "emptying the table")?;
            }
        }
        if let Some(state) = state {
            // The time of saving, as the commit is near (DuckDB's now() is
            // the transaction's start).
            let saved_at = chrono::Utc::now()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string();
            let pipeline = quote_literal(&self.load.pipeline);
            self.exec(
                &format!("DELETE FROM main._flowline_state WHERE pipeline = {pipeline}"),
                "saving state",
            )?;
            self.conn
                .execute(
                    "INSERT INTO main._flowline_state VALUES (?, ?, ?, ?::TIMESTAMP)",
                    params![
                        self.load.pipeline,
                        state.to_string(),
                        self.load.run_id,
                        saved_at
                    ],
                )
                .map_err(|e| Error::warehouse("saving state", e))?;
        }
        self.exec("COMMIT", "committing")?;
        self.in_transaction = false;
        self.replace_started = false;
        self.columns = None;
        Ok(())
    }

    fn rollback(&mut self) -> Result<()> {
        if self.in_transaction {
            self.in_transaction = false;
            self.columns = None;
            self.replace_started = false;
            self.exec("ROLLBACK", "rolling back")?;
        }
        Ok(())
    }
}

impl DuckDbDestination {
    fn insert_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        let mut stmt = self
            .conn
            .prepare(
                "INSERT INTO main._flowline_dead_letter VALUES (?, ?, ?, ?, ?, now()::TIMESTAMP)",
            )
            .map_err(|e| Error::warehouse("recording dead letters", e))?;
        for letter in letters {
            stmt.execute(params![
                self.load.pipeline,
                self.load.run_id,
                letter.origin,
                letter.reason,
                letter.raw
            ])
            .map_err(|e| Error::warehouse("recording dead letters", e))?;
        }
        Ok(())
    }
}

impl Drop for DuckDbDestination {
    fn drop(&mut self) {
        let _ = self.rollback();
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
