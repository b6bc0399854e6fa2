//! Postgres as the warehouse: batches loaded with binary `COPY FROM STDIN`
//! into staging tables, `replace` by swapping a freshly built table, `merge`
//! by delete-and-insert on the key, the pipeline's state row in the same
//! transaction, and schema evolution as for DuckDB.

mod copy;

use std::sync::OnceLock;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use bytes::BytesMut;
use futures_util::SinkExt;
use tokio_postgres::Client;

use super::WarehouseConnector;
use super::{
    Destination, KeySql, LoadSpec, QueryResult, SavedState, SchemaPolicy, TableName, Warehouse,
    WriteMode,
};
use crate::clients::postgres::{connect, describe_error, query_arrow};
use crate::core::DeadLetter;
use crate::core::Workspace;
use crate::core::error::{Error, Result};
use crate::data::evolve::{Change, plan};
use serde::Deserialize;

/// Tables flowline keeps in the warehouse.
const INTERNAL_TABLES: &str = "
CREATE TABLE IF NOT EXISTS public._flowline_state (
    pipeline text PRIMARY KEY, state text, run_id text, updated_at timestamptz);
CREATE TABLE IF NOT EXISTS public._flowline_dead_letter (
    pipeline text, run_id text, origin text, reason text, raw text, loaded_at timestamptz);
";

/// Name of the per-load staging table (temporary, per connection).
const STAGE: &str = "_flowline_stage";

/// The runtime that drives warehouse connections. The `Warehouse` and
/// `Destination` interfaces are blocking (DuckDB is), so the Postgres one
/// runs its async client here and waits for it.
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("flowline-pg")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the Postgres runtime: {e}"))
    })
}

/// Runs `future` to completion from blocking code, inside or outside tokio.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    if tokio::runtime::Handle::try_current().is_ok() {
        tokio::task::block_in_place(|| runtime().block_on(future))
    } else {
        runtime().block_on(future)
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn qualified(table: &TableName) -> String {
    let schema = if table.schema == "main" {
        "public"
    } else {
        &table.schema
    };
    format!("{}.{}", quote(schema), quote(&table.table))
}

fn schema_of(table: &TableName) -> &str {
    if table.schema == "main" {
        "public"
    } else {
        &table.schema
    }
}

fn pg_err(context: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| {
        Error::client(
            format!("postgres warehouse: {context}"),
            describe_error(&e),
            e,
        )
    }
}

/// A canonical type name (as DuckDB spells it, which schema evolution
/// compares) for a column Postgres describes.
fn canonical(data_type: &str, udt: &str, precision: Option<i32>, scale: Option<i32>) -> String {
    match data_type {
        "smallint" => "SMALLINT".into(),
        "integer" => "INTEGER".into(),
        "bigint" => "BIGINT".into(),
        "real" => "FLOAT".into(),
        "double precision" => "DOUBLE".into(),
        "numeric" => match (precision, scale) {
            (Some(p), Some(s)) => format!("DECIMAL({p},{s})"),
            _ => "DOUBLE".into(),
        },
        "boolean" => "BOOLEAN".into(),
        "date" => "DATE".into(),
        "time without time zone" => "TIME".into(),
        "timestamp without time zone" => "TIMESTAMP".into(),
        "timestamp with time zone" => "TIMESTAMP WITH TIME ZONE".into(),
        "interval" => "INTERVAL".into(),
        "bytea" => "BLOB".into(),
        "ARRAY" => format!(
            "{}[]",
            canonical(udt.trim_start_matches('_'), "", None, None)
        ),
        "int2" => "SMALLINT".into(),
        "int4" => "INTEGER".into(),
        "int8" => "BIGINT".into(),
        "float8" => "DOUBLE".into(),
        "bool" => "BOOLEAN".into(),
        _ => "VARCHAR".into(),
    }
}

/// The Postgres spelling of a canonical type.
fn pg_type_of(canonical: &str) -> String {
    match canonical {
        "TINYINT" | "UTINYINT" | "SMALLINT" => "smallint".into(),
        "USMALLINT" | "INTEGER" => "integer".into(),
        "UINTEGER" | "BIGINT" => "bigint".into(),
        "UBIGINT" | "HUGEINT" => "numeric(39,0)".into(),
        "FLOAT" => "real".into(),
        "DOUBLE" => "double precision".into(),
        "BOOLEAN" => "boolean".into(),
        "DATE" => "date".into(),
        "TIME" => "time".into(),
        "INTERVAL" => "interval".into(),
        "BLOB" => "bytea".into(),
        t if t.starts_with("TIMESTAMP WITH") => "timestamptz".into(),
        t if t.starts_with("TIMESTAMP") => "timestamp".into(),
        t if t.starts_with("DECIMAL") => t.replacen("DECIMAL", "numeric", 1),
        _ => "text".into(),
    }
}

/// The columns of a batch as (name, canonical type), as loaded into Postgres.
fn batch_columns(schema: &Schema) -> Vec<(String, String)> {
    schema
        .fields()
        .iter()
        .map(|f| {
            let (pg, _) = copy::pg_type(f.data_type());
            let canonical = match pg.as_str() {
                "smallint" => "SMALLINT".to_string(),
                "integer" => "INTEGER".into(),
                "bigint" => "BIGINT".into(),
                "real" => "FLOAT".into(),
                "double precision" => "DOUBLE".into(),
                "boolean" => "BOOLEAN".into(),
                "bytea" => "BLOB".into(),
                "date" => "DATE".into(),
                "time" => "TIME".into(),
                "timestamp" => "TIMESTAMP".into(),
                "timestamptz" => "TIMESTAMP WITH TIME ZONE".into(),
                "interval" => "INTERVAL".into(),
                p if p.starts_with("numeric") => p.replacen("numeric", "DECIMAL", 1),
                _ => "VARCHAR".into(),
            };
            (f.name().clone(), canonical)
        })
        .collect()
}

/// `[warehouse] kind = "postgres"`: a Postgres database.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresWarehouseConfig {
    /// The database URL, `postgres://user:password@host:5432/dbname`,
    /// instead of `connection`. Write it as `"${SOME_URL}"`.
    #[serde(default)]
    pub url: Option<String>,
    /// The name of a `[connections.<name>]` whose `url` is the warehouse
    /// database. Give exactly one of `connection` and `url`.
    #[serde(default)]
    pub connection: Option<String>,
}

impl PostgresWarehouseConfig {
    fn url(&self, workspace: &Workspace) -> Result<String> {
        match (&self.url, &self.connection) {
            (Some(url), None) => Ok(url.clone()),
            (None, Some(name)) => workspace.connections.url(name),
            _ => Err(Error::Config(
                "[warehouse] kind = \"postgres\" needs either url or connection".into(),
            )),
        }
    }
}

impl WarehouseConnector for PostgresWarehouseConfig {
    fn kind() -> &'static str {
        "postgres"
    }

    fn summary() -> &'static str {
        "A Postgres database, loaded with binary COPY"
    }

    fn schemes() -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn open_url(url: &str) -> Result<Box<dyn Warehouse>> {
        Ok(Box::new(PostgresWarehouse::open(url)?))
    }

    fn check(&self, workspace: &Workspace) -> Result<()> {
        self.url(workspace).map(|_| ())
    }

    fn open(&self, workspace: &Workspace) -> Result<Box<dyn Warehouse>> {
        Self::open_url(&self.url(workspace)?)
    }
}

/// A Postgres database as the warehouse.
pub struct PostgresWarehouse {
    url: String,
    /// The connection for state and catalog look-ups; loads get their own.
    client: Client,
}

impl PostgresWarehouse {
    /// Connects to `url` and creates flowline's tables.
    pub fn open(url: &str) -> Result<Self> {
        let client = block_on(async {
            let client = connect(url).await?;
            client
                .batch_execute(INTERNAL_TABLES)
                .await
                .map_err(pg_err("creating flowline's tables"))?;
            Ok::<_, Error>(client)
        })?;
        Ok(PostgresWarehouse {
            url: url.to_string(),
            client,
        })
    }
}

impl Warehouse for PostgresWarehouse {
    fn destination(&self, load: LoadSpec) -> Result<Box<dyn Destination>> {
        let client = block_on(connect(&self.url))?;
        Ok(Box::new(PostgresDestination {
            client,
            load,
            in_transaction: false,
            columns: None,
            replace_started: false,
            server_version: None,
        }))
    }

    fn query(&self, sql: &str) -> Result<QueryResult> {
        let (schema, batches) = block_on(query_arrow(&self.url, sql))?;
        Ok(QueryResult { schema, batches })
    }

    fn saved_state(&self, pipeline: &str) -> Result<Option<SavedState>> {
        block_on(async {
            let row = self
                .client
                .query_opt(
                    "SELECT state, run_id, updated_at::text FROM public._flowline_state WHERE pipeline = $1",
                    &[&pipeline],
                )
                .await
                .map_err(pg_err("reading saved state"))?;
            let Some(row) = row else { return Ok(None) };
            let text: Option<String> = row.get(0);
            let state: serde_json::Value = match text {
                Some(t) => serde_json::from_str(&t).map_err(|e| {
                    Error::Other(format!("saved state of {pipeline} is corrupt: {e}"))
                })?,
                None => serde_json::Value::Null,
            };
            if state.is_null() {
                return Ok(None);
            }
            Ok(Some(SavedState {
                state,
                run_id: row.get(1),
                updated_at: row.get(2),
            }))
        })
    }

    fn table_exists(&self, table: &TableName) -> Result<bool> {
        block_on(async {
            let row = self
                .client
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&qualified(table)])
                .await
                .map_err(pg_err("looking up a table"))?;
            Ok(row.get(0))
        })
    }
}

/// One load into one Postgres table.
pub struct PostgresDestination {
    client: Client,
    load: LoadSpec,
    in_transaction: bool,
    columns: Option<Vec<(String, String)>>,
    replace_started: bool,
    server_version: Option<i32>,
}

/// `MERGE` of the rows of `latest` (one per key) into `target`: a row whose
/// key is there updates it in place, its other columns (those the batch does
/// not have) kept; a new key is inserted.
fn merge_sql(
    target: &str,
    latest: &str,
    keys: &KeySql,
    source: &[(String, String)],
    key_columns: &[String],
) -> String {
    let list: Vec<String> = source.iter().map(|(n, _)| quote(n)).collect();
    let values: Vec<String> = list.iter().map(|c| format!("s.{c}")).collect();
    let updates: Vec<String> = source
        .iter()
        .filter(|(n, _)| !key_columns.contains(n))
        .map(|(n, _)| format!("{c} = s.{c}", c = quote(n)))
        .collect();
    let matched = if updates.is_empty() {
        "DO NOTHING".to_string()
    } else {
        format!("UPDATE SET {}", updates.join(", "))
    };
    format!(
        "MERGE INTO {target} AS t USING ({latest}) AS s ON {join} \
         WHEN MATCHED THEN {matched} \
         WHEN NOT MATCHED THEN INSERT ({columns}) VALUES ({values})",
        join = keys.join,
        columns = list.join(", "),
        values = values.join(", ")
    )
}

impl PostgresDestination {
    /// The server's `server_version_num` (150000 for 15.0), asked once.
    fn server_version(&mut self) -> Result<i32> {
        if let Some(version) = self.server_version {
            return Ok(version);
        }
        let row = block_on(self.client.query_one("SHOW server_version_num", &[]))
            .map_err(pg_err("reading the server version"))?;
        let version = row.get::<_, String>(0).parse().unwrap_or(0);
        self.server_version = Some(version);
        Ok(version)
    }

    fn exec(&self, sql: &str, what: &str) -> Result<()> {
        block_on(self.client.batch_execute(sql)).map_err(|e| {
            Error::client(
                format!("postgres warehouse: {what} ({})", self.load.table),
                describe_error(&e),
                e,
            )
        })
    }

    fn begin(&mut self) -> Result<()> {
        if !self.in_transaction {
            // On its own, before the load's transaction: loads of several
            // tables in one schema (a pipeline's child tables) would
            // otherwise wait on each other's uncommitted schema.
            let schema = schema_of(&self.load.table).to_string();
            self.exec(
                &format!("CREATE SCHEMA IF NOT EXISTS {}", quote(&schema)),
                "creating the schema",
            )?;
            self.exec("BEGIN", "starting a transaction")?;
            self.in_transaction = true;
        }
        Ok(())
    }

    fn table_columns(&self, table: &TableName) -> Result<Option<Vec<(String, String)>>> {
        let rows = block_on(self.client.query(
            "SELECT column_name::text, data_type::text, udt_name::text, numeric_precision::int4, numeric_scale::int4 \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema_of(table), &table.table],
        ))
        .map_err(pg_err("reading table columns"))?;
        let columns: Vec<(String, String)> = rows
            .iter()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    canonical(r.get(1), r.get(2), r.get(3), r.get(4)),
                )
            })
            .collect();
        Ok((!columns.is_empty()).then_some(columns))
    }

    fn prepare_table(
        &mut self,
        table: &TableName,
        schema: &Schema,
    ) -> Result<Vec<(String, String)>> {
        let existing = match self.columns.take() {
            Some(columns) => Some(columns),
            None => self.table_columns(table)?,
        };
        let source = batch_columns(schema);
        let name = qualified(table);
        let Some(mut columns) = existing else {
            let definitions: Vec<String> = source
                .iter()
                .map(|(n, t)| format!("{} {}", quote(n), pg_type_of(t)))
                .collect();
            self.exec(
                &format!("CREATE TABLE {name} ({})", definitions.join(", ")),
                "creating the table",
            )?;
            self.columns = Some(source.clone());
            return Ok(source);
        };
        let allow_widening =
            self.load.write == WriteMode::Replace || self.load.schema == SchemaPolicy::Evolve;
        let changes = plan(
            &mut columns,
            &source,
            allow_widening,
            &self.load.table.to_string(),
        )
        .map_err(|message| Error::pipeline(&self.load.pipeline, message))?;
        for change in changes {
            let sql = match &change {
                Change::Add { column, sql_type } => {
                    format!(
                        "ALTER TABLE {name} ADD COLUMN {} {}",
                        quote(column),
                        pg_type_of(sql_type)
                    )
                }
                Change::Widen { column, to, .. } => {
                    let to = pg_type_of(to);
                    format!(
                        "ALTER TABLE {name} ALTER COLUMN {c} TYPE {to} USING {c}::{to}",
                        c = quote(column)
                    )
                }
            };
            self.exec(&sql, "changing the table")?;
            tracing::info!(pipeline = %self.load.pipeline, "{}: {change:?}", self.load.table);
        }
        self.columns = Some(columns.clone());
        Ok(columns)
    }

    /// Streams `batch` with binary COPY into `target` (`table (cols)`).
    fn copy_in(&self, target: &str, batch: &RecordBatch) -> Result<()> {
        let mut buffer = BytesMut::with_capacity(1 << 20);
        buffer.extend_from_slice(copy::HEADER);
        copy::encode(batch, &mut buffer)?;
        buffer.extend_from_slice(copy::TRAILER);
        block_on(async {
            let sink = self
                .client
                .copy_in::<_, bytes::Bytes>(&format!("COPY {target} FROM STDIN (FORMAT binary)"))
                .await
                .map_err(pg_err("starting COPY"))?;
            futures_util::pin_mut!(sink);
            sink.send(buffer.freeze())
                .await
                .map_err(pg_err("sending rows"))?;
            sink.finish().await.map_err(pg_err("finishing COPY"))?;
            Ok(())
        })
    }
}

impl Destination for PostgresDestination {
    fn write(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.begin()?;
        let table = self.load.write_table();
        if self.load.write == WriteMode::Replace && !self.replace_started {
            self.exec(
                &format!("DROP TABLE IF EXISTS {}", qualified(&table)),
                "clearing the new table",
            )?;
            self.columns = None;
            self.replace_started = true;
        }
        let schema = batch.schema();
        self.load.check_keys(&schema)?;
        let columns = self.prepare_table(&table, &schema)?;
        let source = batch_columns(&schema);
        let names: Vec<String> = source.iter().map(|(n, _)| quote(n)).collect();
        let list = names.join(", ");
        let target = qualified(&table);
        let exact = source
            .iter()
            .all(|(n, t)| columns.iter().any(|(c, ct)| c == n && ct == t));
        if exact && !self.load.upserts() && !self.load.dedupes() {
            return self.copy_in(&format!("{target} ({list})"), &batch);
        }
        let definitions: Vec<String> = source
            .iter()
            .map(|(n, t)| format!("{} {}", quote(n), pg_type_of(t)))
            .collect();
        self.exec(
            &format!(
                "DROP TABLE IF EXISTS {STAGE}; CREATE TEMP TABLE {STAGE} ({})",
                definitions.join(", ")
            ),
            "creating the staging table",
        )?;
        self.copy_in(&format!("{STAGE} ({list})"), &batch)?;
        if self.load.upserts() {
            let keys = KeySql::new(&self.load.primary_key, quote);
            // The last row of a key in the batch wins.
            let latest = format!(
                "SELECT DISTINCT ON ({k}) {list} FROM {STAGE} ORDER BY {k}, ctid DESC",
                k = keys.list
            );
            if self.server_version()? >= 150_000 {
                self.exec(
                    &merge_sql(&target, &latest, &keys, &source, &self.load.primary_key),
                    "merging",
                )
            } else {
                // Before MERGE (PostgreSQL 15): replace the keys' rows.
                self.exec(
                    &format!("DELETE FROM {target} t USING {STAGE} s WHERE {}", keys.join),
                    "merging (delete)",
                )?;
                self.exec(
                    &format!("INSERT INTO {target} ({list}) {latest}"),
                    "merging (insert)",
                )
            }
        } else if self.load.dedupes() {
            let keys = KeySql::new(&self.load.dedupe_key, quote);
            self.exec(
                &format!(
                    "INSERT INTO {target} ({list}) SELECT DISTINCT ON ({k}) {list} FROM {STAGE} s \
                     WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {m}) ORDER BY {k}, ctid",
                    k = keys.list,
                    m = keys.join
                ),
                "inserting new rows",
            )
        } else {
            self.exec(
                &format!("INSERT INTO {target} ({list}) SELECT {list} FROM {STAGE}"),
                "inserting staged rows",
            )
        }
    }

    fn write_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        if letters.is_empty() {
            return Ok(());
        }
        self.begin()?;
        self.insert_dead_letters(letters)
    }

    fn commit(&mut self, state: Option<&serde_json::Value>) -> Result<()> {
        self.begin()?;
        if self.load.write == WriteMode::Replace {
            let target = qualified(&self.load.table);
            if self.replace_started {
                self.swap_in_new_table(&target)?;
            } else if self.table_columns(&self.load.table)?.is_some() {
                self.exec(&format!("DELETE FROM {target}"), "emptying the table")?;
            }
        }
        if let Some(state) = state {
            let text = state.to_string();
            block_on(self.client.execute(
                "INSERT INTO public._flowline_state VALUES ($1, $2, $3, clock_timestamp()) \
                 ON CONFLICT (pipeline) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, \
                 updated_at = EXCLUDED.updated_at",
                &[&self.load.pipeline, &text, &self.load.run_id],
            ))
            .map_err(pg_err("saving state"))?;
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

    fn keep_dead_letters(&mut self, letters: &[DeadLetter]) -> Result<()> {
        self.rollback()?;
        if letters.is_empty() {
            return Ok(());
        }
        self.exec("BEGIN", "starting a transaction")?;
        self.in_transaction = true;
        self.insert_dead_letters(letters)?;
        self.exec("COMMIT", "committing dead letters")?;
        self.in_transaction = false;
        Ok(())
    }
}

impl PostgresDestination {
    /// `replace`: makes the freshly built table the target. A new target is
    /// renamed into place; an existing one is emptied and refilled in the
    /// same transaction, so views, grants and indexes on it survive.
    fn swap_in_new_table(&mut self, target: &str) -> Result<()> {
        let new_table = self.load.write_table();
        let new = qualified(&new_table);
        let Some(mut existing) = self.table_columns(&self.load.table)? else {
            return self.exec(
                &format!(
                    "ALTER TABLE {new} RENAME TO {}",
                    quote(&self.load.table.table)
                ),
                "replacing the table",
            );
        };
        let incoming = self.table_columns(&new_table)?.unwrap_or_default();
        let changes = plan(&mut existing, &incoming, true, &self.load.table.to_string())
            .map_err(|message| Error::pipeline(&self.load.pipeline, message))?;
        for change in changes {
            let sql = match &change {
                Change::Add { column, sql_type } => {
                    format!(
                        "ALTER TABLE {target} ADD COLUMN {} {}",
                        quote(column),
                        pg_type_of(sql_type)
                    )
                }
                Change::Widen { column, to, .. } => {
                    let to = pg_type_of(to);
                    format!(
                        "ALTER TABLE {target} ALTER COLUMN {c} TYPE {to} USING {c}::{to}",
                        c = quote(column)
                    )
                }
            };
            self.exec(&sql, "changing the table")?;
        }
        let list: Vec<String> = incoming.iter().map(|(n, _)| quote(n)).collect();
        let list = list.join(", ");
        self.exec(
            &format!("TRUNCATE {target}; INSERT INTO {target} ({list}) SELECT {list} FROM {new}; DROP TABLE {new}"),
            "replacing the table's rows",
        )
    }

    fn insert_dead_letters(&self, letters: &[DeadLetter]) -> Result<()> {
        block_on(async {
            let statement = self
                .client
                .prepare(
                    "INSERT INTO public._flowline_dead_letter VALUES ($1, $2, $3, $4, $5, now())",
                )
                .await
                .map_err(pg_err("recording dead letters"))?;
            for letter in letters {
                self.client
                    .execute(
                        &statement,
                        &[
                            &self.load.pipeline,
                            &self.load.run_id,
                            &letter.origin,
                            &letter.reason,
                            &letter.raw,
                        ],
                    )
                    .await
                    .map_err(pg_err("recording dead letters"))?;
            }
            Ok(())
        })
    }
}

impl Drop for PostgresDestination {
    fn drop(&mut self) {
        let _ = self.rollback();
    }
}
