//! Postgres as the warehouse: connecting, queries and saved state, and what
//! the load core ([`super::load`]) needs of Postgres: binary
//! `COPY FROM STDIN`, Postgres's type names and SQL spelling, the state-row
//! upsert, and whether the server runs MERGE (15 and later; before, a merge
//! deletes and inserts the keys' rows). `replace` keeps an existing table
//! and refills it, so views and grants on it survive.

mod copy;

use std::sync::OnceLock;

use arrow::datatypes::Schema;
use arrow::record_batch::RecordBatch;
use bytes::BytesMut;
use futures_util::SinkExt;
use tokio_postgres::Client;

use serde::Deserialize;

use super::load::{Columns, Dialect, Load, STAGE, SqlConnection, Target};
use super::{
    Destination, KeySql, LoadSpec, QueryResult, SavedState, TableName, Warehouse,
    WarehouseConnector,
};
use crate::clients::postgres::{connect, describe_error, query_arrow};
use crate::core::error::{Error, Result};
use crate::core::{DeadLetter, Workspace};

/// Tables flowline keeps in the warehouse.
const INTERNAL_TABLES: &str = "
CREATE TABLE IF NOT EXISTS public._flowline_state (
    pipeline text PRIMARY KEY, state text, run_id text, updated_at timestamptz);
CREATE TABLE IF NOT EXISTS public._flowline_dead_letter (
    pipeline text, run_id text, origin text, reason text, raw text, loaded_at timestamptz);
";

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

/// A Postgres error with what flowline was doing.
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
        Ok(Box::new(Load::new(PgConnection { client }, load)))
    }

    fn query(&self, sql: &str) -> Result<QueryResult> {
        let (schema, batches) = block_on(query_arrow(&self.url, sql))?;
        Ok(QueryResult { schema, batches })
    }

    fn execute(&self, statements: &[String]) -> Result<()> {
        block_on(async {
            let mut client = connect(&self.url).await?;
            let transaction = client
                .transaction()
                .await
                .map_err(pg_err("starting a transaction"))?;
            for statement in statements {
                transaction
                    .batch_execute(statement)
                    .await
                    .map_err(pg_err("running a statement"))?;
            }
            transaction.commit().await.map_err(pg_err("committing"))
        })
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
                run_id: row.get(1),
                updated_at: row.get(2),
            }))
        })
    }

    fn reset_state(&self, pipeline: &str) -> Result<bool> {
        block_on(async {
            let deleted = self
                .client
                .execute(
                    "DELETE FROM public._flowline_state WHERE pipeline = $1",
                    &[&pipeline],
                )
                .await
                .map_err(pg_err("resetting saved state"))?;
            Ok(deleted > 0)
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

/// A Postgres connection running one load: binary COPY, Postgres's
/// spelling of SQL, and the server's MERGE support.
struct PgConnection {
    client: Client,
}

impl Dialect for PgConnection {
    fn quote(&self, name: &str) -> String {
        quote(name)
    }

    fn schema(&self, table: &TableName) -> String {
        quote(schema_of(table))
    }

    fn batch_columns(&self, schema: &Schema) -> Columns {
        batch_columns(schema)
    }

    fn type_sql(&self, canonical: &str) -> String {
        pg_type_of(canonical)
    }

    fn create_stage(&self, definitions: &str) -> String {
        format!("DROP TABLE IF EXISTS {STAGE}; CREATE TEMP TABLE {STAGE} ({definitions})")
    }

    fn widen_column(&self, qualified: &str, column: &str, _from: &str, to: &str) -> String {
        // Nested values are jsonb here: as text they are JSON already.
        format!(
            "ALTER TABLE {qualified} ALTER COLUMN {c} TYPE {to} USING {c}::{to}",
            c = quote(column)
        )
    }

    fn latest_per_key(&self, keys: &KeySql, list: &str) -> String {
        format!(
            "SELECT DISTINCT ON ({k}) {list} FROM {STAGE} ORDER BY {k}, ctid DESC",
            k = keys.list
        )
    }

    fn insert_new(&self, target: &str, keys: &KeySql, list: &str) -> String {
        format!(
            "INSERT INTO {target} ({list}) SELECT DISTINCT ON ({k}) {list} FROM {STAGE} s \
             WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {m}) ORDER BY {k}, ctid",
            k = keys.list,
            m = keys.join
        )
    }

    fn appends_by_name(&self) -> bool {
        // COPY names the batch's columns.
        true
    }

    fn refills_on_replace(&self) -> bool {
        true
    }
}

impl SqlConnection for PgConnection {
    fn execute(&self, sql: &str, context: &str) -> Result<()> {
        block_on(self.client.batch_execute(sql)).map_err(pg_err(context))
    }

    fn execute_counting(&self, sql: &str, context: &str) -> Result<u64> {
        block_on(self.client.execute(sql, &[])).map_err(pg_err(context))
    }

    fn any_row(&self, sql: &str, context: &str) -> Result<bool> {
        let row = block_on(self.client.query_opt(sql, &[])).map_err(pg_err(context))?;
        Ok(row.is_some())
    }

    fn columns(&self, table: &TableName) -> Result<Option<Columns>> {
        let rows = block_on(self.client.query(
            "SELECT column_name::text, data_type::text, udt_name::text, numeric_precision::int4, numeric_scale::int4 \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
            &[&schema_of(table), &table.table],
        ))
        .map_err(pg_err(&format!("reading the columns of {table}")))?;
        let columns: Columns = rows
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

    /// Streams `batch` with binary COPY, naming its columns.
    fn append(&self, target: Target<'_>, batch: RecordBatch) -> Result<()> {
        let table = match target {
            Target::Table(table) => qualified(table),
            Target::Stage => STAGE.to_string(),
        };
        let columns: Vec<String> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| quote(f.name()))
            .collect();
        let mut buffer = BytesMut::with_capacity(1 << 20);
        buffer.extend_from_slice(copy::HEADER);
        copy::encode(&batch, &mut buffer)?;
        buffer.extend_from_slice(copy::TRAILER);
        let sql = format!(
            "COPY {table} ({}) FROM STDIN (FORMAT binary)",
            columns.join(", ")
        );
        block_on(async {
            let sink = self
                .client
                .copy_in::<_, bytes::Bytes>(&sql)
                .await
                .map_err(pg_err(&format!("starting COPY into {table}")))?;
            futures_util::pin_mut!(sink);
            sink.send(buffer.freeze())
                .await
                .map_err(pg_err(&format!("sending rows to {table}")))?;
            sink.finish()
                .await
                .map_err(pg_err(&format!("finishing COPY into {table}")))?;
            Ok(())
        })
    }

    /// `server_version_num` 150000 (PostgreSQL 15.0) and later. A server
    /// whose version is not a number merges by delete and insert, which
    /// every version runs.
    fn supports_merge(&self) -> Result<bool> {
        let row = block_on(self.client.query_one("SHOW server_version_num", &[]))
            .map_err(pg_err("reading the server version"))?;
        let text = row.get::<_, String>(0);
        match text.parse::<i32>() {
            Ok(version) => Ok(version >= 150_000),
            Err(_) => {
                tracing::warn!(
                    "postgres warehouse: server_version_num is {text:?}; merging by delete and insert"
                );
                Ok(false)
            }
        }
    }

    fn save_state(&self, pipeline: &str, run_id: &str, state: &str) -> Result<()> {
        block_on(self.client.execute(
            "INSERT INTO public._flowline_state VALUES ($1, $2, $3, clock_timestamp()) \
             ON CONFLICT (pipeline) DO UPDATE SET state = EXCLUDED.state, run_id = EXCLUDED.run_id, \
             updated_at = EXCLUDED.updated_at",
            &[&pipeline, &state, &run_id],
        ))
        .map_err(pg_err(&format!("saving the state of {pipeline}")))?;
        Ok(())
    }

    fn insert_dead_letters(
        &self,
        pipeline: &str,
        run_id: &str,
        letters: &[DeadLetter],
    ) -> Result<()> {
        let context = format!("recording the dead letters of {pipeline}");
        block_on(async {
            let statement = self
                .client
                .prepare(
                    "INSERT INTO public._flowline_dead_letter VALUES ($1, $2, $3, $4, $5, now())",
                )
                .await
                .map_err(pg_err(&context))?;
            for letter in letters {
                self.client
                    .execute(
                        &statement,
                        &[
                            &pipeline,
                            &run_id,
                            &letter.origin,
                            &letter.reason,
                            &letter.raw,
                        ],
                    )
                    .await
                    .map_err(pg_err(&context))?;
            }
            Ok(())
        })
    }
}
