//! One small SQL interface over the state store's two engines, so the
//! orchestrator's queue, leases and history are written once.
//!
//! Statements are written in PostgreSQL's dialect with `$1`-style
//! parameters; the SQLite driver rewrites the parameters to `?1` and drops
//! row-locking clauses (`FOR UPDATE`, `SKIP LOCKED`), since a SQLite
//! transaction started with `BEGIN IMMEDIATE` already holds the one write
//! lock. Values are integers, text or null: times are stored as Unix
//! milliseconds and documents as JSON text, which both engines hold the
//! same way.

use std::sync::Arc;

use async_trait::async_trait;
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::core::error::{Error, Result};

/// A value passed to or read from a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// A 64-bit integer (also booleans, as 0 and 1, and times, as Unix ms).
    Int(i64),
    /// Text (also JSON documents).
    Text(String),
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_string())
    }
}

impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}

impl From<&String> for Value {
    fn from(v: &String) -> Self {
        Value::Text(v.clone())
    }
}

impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

/// One result row.
#[derive(Debug, Clone)]
pub struct Row(pub Vec<Value>);

impl Row {
    /// Column `i` as an integer (0 for NULL or text).
    pub fn int(&self, i: usize) -> i64 {
        match self.0.get(i) {
            Some(Value::Int(v)) => *v,
            Some(Value::Text(t)) => t.parse().unwrap_or(0),
            _ => 0,
        }
    }

    /// Column `i` as an integer, or `None` for NULL.
    pub fn opt_int(&self, i: usize) -> Option<i64> {
        match self.0.get(i) {
            Some(Value::Int(v)) => Some(*v),
            _ => None,
        }
    }

    /// Column `i` as text ("" for NULL).
    pub fn text(&self, i: usize) -> String {
        self.opt_text(i).unwrap_or_default()
    }

    /// Column `i` as text, or `None` for NULL.
    pub fn opt_text(&self, i: usize) -> Option<String> {
        match self.0.get(i) {
            Some(Value::Text(t)) => Some(t.clone()),
            Some(Value::Int(v)) => Some(v.to_string()),
            _ => None,
        }
    }
}

/// Which engine a [`Db`] talks to, for the few statements that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded SQLite file.
    Sqlite,
    /// A shared PostgreSQL database.
    Postgres,
}

/// A database the state store runs statements on, one transaction at a time.
#[async_trait]
pub trait Db: Send + Sync {
    /// Starts a transaction that holds the locks it needs to write.
    async fn begin(&self) -> Result<Box<dyn Tx>>;

    /// Starts a transaction whose commit may return before it is on disk:
    /// for frequent bookkeeping that a database crash may forget without
    /// harm (the caller says why). SQLite in WAL mode with `synchronous =
    /// NORMAL` commits that way already; PostgreSQL does with
    /// `synchronous_commit = off` (about ten times faster per commit).
    async fn begin_relaxed(&self) -> Result<Box<dyn Tx>> {
        self.begin().await
    }

    /// The engine behind it.
    fn dialect(&self) -> Dialect;
}

/// An open transaction. Dropping it without [`Tx::commit`] rolls it back.
#[async_trait]
pub trait Tx: Send {
    /// Runs a query and returns its rows.
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>>;

    /// Runs a statement and returns the number of rows it changed.
    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64>;

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<()>;
}

/// An error from the state store's database, with what was being done.
fn db_error(context: &str, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("state store: {context}: {e}"))
}

// ---------------------------------------------------------------- SQLite

/// The embedded SQLite state store.
pub struct SqliteDb {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

impl SqliteDb {
    /// Opens (or creates) the file at `path`, in WAL mode, waiting up to
    /// ten seconds for another process's write lock.
    pub fn open(path: &std::path::Path) -> Result<SqliteDb> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        let conn = rusqlite::Connection::open(path)
            .map_err(|e| Error::state(format!("opening {}", path.display()), e))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(|e| Error::state("configuring", e))?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(|e| Error::state("configuring", e))?;
        Ok(SqliteDb {
            conn: Arc::new(Mutex::new(conn)),
        })
    }
}

/// `sql` in SQLite's dialect: `$1` becomes `?1`, row locks go.
fn sqlite_sql(sql: &str) -> String {
    let sql = sql
        .replace(" FOR UPDATE SKIP LOCKED", "")
        .replace(" FOR UPDATE OF s SKIP LOCKED", "")
        .replace(" FOR UPDATE", "");
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(|d| d.is_ascii_digit()) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

fn to_sqlite(value: &Value) -> rusqlite::types::Value {
    match value {
        Value::Null => rusqlite::types::Value::Null,
        Value::Int(v) => rusqlite::types::Value::Integer(*v),
        Value::Text(t) => rusqlite::types::Value::Text(t.clone()),
    }
}

fn from_sqlite(value: rusqlite::types::ValueRef<'_>) -> Value {
    use rusqlite::types::ValueRef;
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(v) => Value::Int(v),
        ValueRef::Real(v) => Value::Int(v as i64),
        ValueRef::Text(t) | ValueRef::Blob(t) => Value::Text(String::from_utf8_lossy(t).into()),
    }
}

#[async_trait]
impl Db for SqliteDb {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        let conn = self.conn.clone().lock_owned().await;
        conn.execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| Error::state("starting a transaction", e))?;
        Ok(Box::new(SqliteTx { conn: Some(conn) }))
    }

    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }
}

struct SqliteTx {
    conn: Option<OwnedMutexGuard<rusqlite::Connection>>,
}

impl SqliteTx {
    fn conn(&self) -> Result<&rusqlite::Connection> {
        self.conn
            .as_deref()
            .ok_or_else(|| Error::Other("state store: the transaction has ended".into()))
    }
}

#[async_trait]
impl Tx for SqliteTx {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let conn = self.conn()?;
        let sql = sqlite_sql(sql);
        let mut stmt = conn.prepare_cached(&sql).map_err(|e| db_error(&sql, e))?;
        let columns = stmt.column_count();
        let params: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
        let mut rows = stmt
            .query(rusqlite::params_from_iter(params))
            .map_err(|e| db_error(&sql, e))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(|e| db_error(&sql, e))? {
            let mut values = Vec::with_capacity(columns);
            for i in 0..columns {
                values.push(from_sqlite(row.get_ref(i).map_err(|e| db_error(&sql, e))?));
            }
            out.push(Row(values));
        }
        Ok(out)
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let conn = self.conn()?;
        let sql = sqlite_sql(sql);
        let params: Vec<rusqlite::types::Value> = params.iter().map(to_sqlite).collect();
        let changed = conn
            .prepare_cached(&sql)
            .and_then(|mut stmt| stmt.execute(rusqlite::params_from_iter(params)))
            .map_err(|e| db_error(&sql, e))?;
        Ok(changed as u64)
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(conn) = self.conn.take() {
            conn.execute_batch("COMMIT")
                .map_err(|e| Error::state("committing", e))?;
        }
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.execute_batch("ROLLBACK");
        }
    }
}

// ------------------------------------------------------------- PostgreSQL

/// A shared PostgreSQL state store: one connection, one transaction at a
/// time per process. (More connections were measured slower: finishes of
/// one run wait on its row lock, and more of them at once only queue there.)
pub struct PostgresDb {
    client: Arc<Mutex<PgConnection>>,
}

/// The connection and the statements prepared on it.
struct PgConnection {
    client: tokio_postgres::Client,
    /// By SQL text: a statement is parsed once per connection, not at
    /// every use (which doubled the round trips of each query).
    statements: std::collections::HashMap<String, tokio_postgres::Statement>,
}

/// Prepared statements a connection keeps, at most (the queue's SQL is a
/// few dozen texts; lists of varying length make more).
const MAX_PREPARED: usize = 512;

impl PgConnection {
    /// `sql`, prepared on this connection once.
    async fn statement(&mut self, sql: &str) -> Result<tokio_postgres::Statement> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let statement = self
            .client
            .prepare(sql)
            .await
            .map_err(|e| db_error(sql, crate::clients::postgres::describe_error(&e)))?;
        if self.statements.len() >= MAX_PREPARED {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

impl PostgresDb {
    /// Connects to `url` (TLS as the URL's `sslmode` asks).
    pub async fn connect(url: &str) -> Result<PostgresDb> {
        let client = crate::clients::postgres::connect(url).await?;
        Ok(PostgresDb {
            client: Arc::new(Mutex::new(PgConnection {
                client,
                statements: std::collections::HashMap::new(),
            })),
        })
    }

    /// Takes a connection and opens a transaction with `begin`.
    async fn start(&self, begin: &str) -> Result<Box<dyn Tx>> {
        let client = self.client.clone().lock_owned().await;
        client
            .client
            .batch_execute(begin)
            .await
            .map_err(|e| db_error("starting a transaction", e))?;
        Ok(Box::new(PostgresTx {
            client: Some(client),
        }))
    }
}

#[async_trait]
impl Db for PostgresDb {
    async fn begin(&self) -> Result<Box<dyn Tx>> {
        self.start("BEGIN").await
    }

    async fn begin_relaxed(&self) -> Result<Box<dyn Tx>> {
        // One round trip for both statements.
        self.start("BEGIN; SET LOCAL synchronous_commit = off")
            .await
    }

    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }
}

struct PostgresTx {
    client: Option<OwnedMutexGuard<PgConnection>>,
}

impl PostgresTx {
    fn connection(&mut self) -> Result<&mut PgConnection> {
        self.client
            .as_deref_mut()
            .ok_or_else(|| Error::Other("state store: the transaction has ended".into()))
    }
}

impl tokio_postgres::types::ToSql for Value {
    fn to_sql(
        &self,
        ty: &tokio_postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<tokio_postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>>
    {
        use tokio_postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(v) => match *ty {
                Type::INT2 => i16::try_from(*v)?.to_sql(ty, out),
                Type::INT4 => i32::try_from(*v)?.to_sql(ty, out),
                Type::BOOL => (*v != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => v.to_string().to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Value::Text(t) => match *ty {
                Type::INT8 => t.parse::<i64>()?.to_sql(ty, out),
                _ => t.to_sql(ty, out),
            },
        }
    }

    fn accepts(_: &tokio_postgres::types::Type) -> bool {
        true
    }

    tokio_postgres::types::to_sql_checked!();
}

fn from_postgres(row: &tokio_postgres::Row, i: usize) -> Value {
    use tokio_postgres::types::Type;
    let ty = row.columns()[i].type_().clone();
    let int = |v: Option<i64>| v.map_or(Value::Null, Value::Int);
    match ty {
        Type::INT8 => int(row.try_get::<_, Option<i64>>(i).ok().flatten()),
        Type::INT4 => int(row
            .try_get::<_, Option<i32>>(i)
            .ok()
            .flatten()
            .map(i64::from)),
        Type::INT2 => int(row
            .try_get::<_, Option<i16>>(i)
            .ok()
            .flatten()
            .map(i64::from)),
        Type::BOOL => int(row
            .try_get::<_, Option<bool>>(i)
            .ok()
            .flatten()
            .map(i64::from)),
        _ => row
            .try_get::<_, Option<String>>(i)
            .ok()
            .flatten()
            .map_or(Value::Null, Value::Text),
    }
}

fn pg_params(params: &[Value]) -> Vec<&(dyn tokio_postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn tokio_postgres::types::ToSql + Sync))
        .collect()
}

#[async_trait]
impl Tx for PostgresTx {
    async fn query(&mut self, sql: &str, params: &[Value]) -> Result<Vec<Row>> {
        let connection = self.connection()?;
        let statement = connection.statement(sql).await?;
        let rows = connection
            .client
            .query(&statement, &pg_params(params))
            .await
            .map_err(|e| db_error(sql, crate::clients::postgres::describe_error(&e)))?;
        Ok(rows
            .iter()
            .map(|row| Row((0..row.len()).map(|i| from_postgres(row, i)).collect()))
            .collect())
    }

    async fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64> {
        let connection = self.connection()?;
        let statement = connection.statement(sql).await?;
        connection
            .client
            .execute(&statement, &pg_params(params))
            .await
            .map_err(|e| db_error(sql, crate::clients::postgres::describe_error(&e)))
    }

    async fn commit(mut self: Box<Self>) -> Result<()> {
        if let Some(client) = self.client.take() {
            client
                .client
                .batch_execute("COMMIT")
                .await
                .map_err(|e| db_error("committing", e))?;
        }
        Ok(())
    }
}

impl Drop for PostgresTx {
    fn drop(&mut self) {
        // Roll back on the runtime, still holding the connection, so the
        // next transaction starts clean.
        if let Some(client) = self.client.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(async move {
                let _ = client.client.batch_execute("ROLLBACK").await;
            });
        }
    }
}

// ------------------------------------------------------------- migrations

/// One step of the state store's schema, applied once, in order.
pub struct Migration {
    /// Increasing from 1; never renumbered once released.
    pub version: i64,
    /// What it does, kept in the store.
    pub name: &'static str,
    /// Statements, `;`-separated, valid in both dialects.
    pub sql: &'static str,
}

/// Applies the `migrations` not yet applied, each in its own transaction,
/// and records them in `flowline_migrations`. Processes starting at once
/// on PostgreSQL take turns (an advisory lock); on SQLite the write lock
/// does the same.
pub async fn migrate(db: &dyn Db, migrations: &[Migration]) -> Result<()> {
    let mut tx = db.begin().await?;
    if db.dialect() == Dialect::Postgres {
        tx.execute("SELECT pg_advisory_xact_lock(727274)", &[])
            .await?;
    }
    tx.execute(
        "CREATE TABLE IF NOT EXISTS flowline_migrations (version BIGINT PRIMARY KEY, \
         name TEXT NOT NULL, applied_at BIGINT NOT NULL)",
        &[],
    )
    .await?;
    let applied: Vec<i64> = tx
        .query("SELECT version FROM flowline_migrations", &[])
        .await?
        .iter()
        .map(|r| r.int(0))
        .collect();
    for migration in migrations {
        if applied.contains(&migration.version) {
            continue;
        }
        for statement in migration.sql.split(';').filter(|s| !s.trim().is_empty()) {
            tx.execute(statement, &[]).await.map_err(|e| {
                Error::Other(format!(
                    "state store: migration {} ({}): {e}",
                    migration.version, migration.name
                ))
            })?;
        }
        tx.execute(
            "INSERT INTO flowline_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[
                migration.version.into(),
                migration.name.into(),
                now_ms().into(),
            ],
        )
        .await?;
    }
    tx.commit().await
}

/// The current time as Unix milliseconds.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_statements_take_numbered_parameters_and_no_row_locks() {
        assert_eq!(
            sqlite_sql("SELECT a FROM t WHERE b = $1 AND c = $12 FOR UPDATE SKIP LOCKED"),
            "SELECT a FROM t WHERE b = ?1 AND c = ?12"
        );
    }

    #[tokio::test]
    async fn migrations_apply_once_and_roll_back_when_a_transaction_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = SqliteDb::open(&dir.path().join("s.db")).expect("opens");
        let migrations = [Migration {
            version: 1,
            name: "things",
            sql: "CREATE TABLE things (id BIGINT PRIMARY KEY, name TEXT)",
        }];
        migrate(&db, &migrations).await.expect("first");
        migrate(&db, &migrations).await.expect("second is a no-op");
        {
            let mut tx = db.begin().await.expect("begin");
            tx.execute(
                "INSERT INTO things VALUES ($1, $2)",
                &[1.into(), "a".into()],
            )
            .await
            .expect("insert");
        }
        let mut tx = db.begin().await.expect("begin");
        let rows = tx
            .query("SELECT count(*) FROM things", &[])
            .await
            .expect("count");
        assert_eq!(rows[0].int(0), 0);
    }
}
