//! `kind = "postgres"`: tables and queries streamed with the binary
//! `COPY (query) TO STDOUT` protocol straight into Arrow builders, optionally
//! split into ranges of an integer key read in parallel, and incremental on
//! a cursor column.

use std::error::Error as StdError;

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures_util::{StreamExt, pin_mut};
use tokio_postgres::types::{Kind, Type};
use tokio_postgres::{Client, NoTls};

use super::database::{DatabaseSourceConfig, Dialect, TableInfo, Unsupported, last_batch};
use super::{BatchSender, DeadLetter, Source, SourceContext};
use crate::data::builders::BatchBuilder;
use crate::error::{Error, Result};

mod copy;
mod tls;

use copy::CopyReader;

/// Reads a Postgres table or query.
pub struct PostgresSource {
    config: DatabaseSourceConfig,
    url: String,
}

impl PostgresSource {
    /// A source reading `config` from the database at `url`.
    pub fn new(config: DatabaseSourceConfig, url: String) -> Self {
        PostgresSource { config, url }
    }
}

/// Connects and drives the connection in the background. `sslmode=prefer`
/// (the default) tries TLS first; `require` insists on it; `disable` never
/// uses it. As with libpq, `prefer` and `require` encrypt without checking
/// the server's certificate; `verify-ca` checks that it chains to a trusted
/// root (`sslrootcert`), and `verify-full` also that it names the host.
pub async fn connect(url: &str) -> Result<Client> {
    let (url, tls_settings) = tls::split_url(url)?;
    let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
        // The cause ("invalid value for option `sslmode`") is in the source.
        let cause = e.source().map(|c| format!(": {c}")).unwrap_or_default();
        Error::Other(format!("postgres: bad connection URL: {e}{cause}"))
    })?;
    let host = config
        .get_hosts()
        .first()
        .map(|h| match h {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let failed = |e: tokio_postgres::Error| {
        Error::Other(format!("postgres at {host}:{port}: {}", describe_error(&e)))
    };
    let client = if config.get_ssl_mode() == tokio_postgres::config::SslMode::Disable {
        let (client, connection) = config.connect(NoTls).await.map_err(failed)?;
        tokio::spawn(drive(connection));
        client
    } else {
        let (client, connection) = config
            .connect(tls::connector(&tls_settings)?)
            .await
            .map_err(failed)?;
        tokio::spawn(drive(connection));
        client
    };
    Ok(client)
}

async fn drive<F: std::future::Future<Output = std::result::Result<(), tokio_postgres::Error>>>(
    connection: F,
) {
    if let Err(e) = connection.await {
        tracing::debug!("postgres connection closed: {e}");
    }
}

/// A connection error phrased by its cause: refused, DNS, auth, database.
pub fn describe_error(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let what = match db.code().code() {
            "28P01" | "28000" => "authentication failed",
            "3D000" => "database does not exist",
            _ => "server error",
        };
        return format!("{what}: {}", db.message());
    }
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return tls::describe(tls);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return tls::describe(tls);
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => {
                    "connection refused: is the server running and listening there?".to_string()
                }
                _ if io.to_string().contains("failed to lookup")
                    || io.to_string().contains("resolve") =>
                {
                    format!("host name not found ({io})")
                }
                _ => format!("network error ({io})"),
            };
        }
        source = inner.source();
    }
    e.to_string()
}

fn pg_err(context: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| Error::Other(format!("postgres: {context}: {}", describe_error(&e)))
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How one column is read from COPY rows.
#[derive(Debug, Clone)]
enum Decode {
    Bool,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Numeric(i8),
    Text,
    Json,
    Jsonb,
    Bytea,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Oid,
    Array(Box<Decode>),
}

/// A column as read: its Arrow field, the SELECT expression and decoder.
#[derive(Debug, Clone)]
struct Column {
    field: Field,
    select: String,
    decode: Decode,
    sql_type: Type,
}

/// Maps a Postgres type to its decoder and Arrow type; `None` when unmapped.
fn map_type(ty: &Type, numeric: Option<(u8, i8)>) -> Option<(Decode, DataType)> {
    let mapped = match *ty {
        Type::BOOL => (Decode::Bool, DataType::Boolean),
        Type::INT2 => (Decode::Int16, DataType::Int16),
        Type::INT4 => (Decode::Int32, DataType::Int32),
        Type::INT8 => (Decode::Int64, DataType::Int64),
        Type::OID => (Decode::Oid, DataType::Int64),
        Type::FLOAT4 => (Decode::Float32, DataType::Float32),
        Type::FLOAT8 => (Decode::Float64, DataType::Float64),
        Type::NUMERIC => {
            let (p, s) = numeric.unwrap_or((38, 9));
            (Decode::Numeric(s), DataType::Decimal128(p, s))
        }
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::CHAR | Type::UNKNOWN => {
            (Decode::Text, DataType::Utf8)
        }
        Type::JSON => (Decode::Json, DataType::Utf8),
        Type::JSONB => (Decode::Jsonb, DataType::Utf8),
        Type::BYTEA => (Decode::Bytea, DataType::Binary),
        Type::DATE => (Decode::Date, DataType::Date32),
        Type::TIME => (Decode::Time, DataType::Time64(TimeUnit::Microsecond)),
        Type::TIMESTAMP => (
            Decode::Timestamp,
            DataType::Timestamp(TimeUnit::Microsecond, None),
        ),
        Type::TIMESTAMPTZ => (
            Decode::TimestampTz,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        ),
        Type::INTERVAL => (
            Decode::Interval,
            DataType::Interval(arrow::datatypes::IntervalUnit::MonthDayNano),
        ),
        Type::UUID => (Decode::Uuid, DataType::Utf8),
        _ => match ty.kind() {
            Kind::Enum(_) => (Decode::Text, DataType::Utf8),
            Kind::Domain(inner) => return map_type(inner, numeric),
            Kind::Array(item) => {
                let (decode, dt) = map_type(item, None)?;
                let supported = matches!(
                    decode,
                    Decode::Bool
                        | Decode::Int16
                        | Decode::Int32
                        | Decode::Int64
                        | Decode::Float32
                        | Decode::Float64
                        | Decode::Text
                );
                if !supported || !matches!(item.kind(), Kind::Simple) {
                    return None;
                }
                (
                    Decode::Array(Box::new(decode)),
                    DataType::List(std::sync::Arc::new(Field::new("item", dt, true))),
                )
            }
            _ => return None,
        },
    };
    Some(mapped)
}

/// Precision and scale of the numeric columns of a table.
async fn numeric_precisions(client: &Client, table: &str) -> Result<Vec<(String, u8, i8)>> {
    let (schema, name) = table.split_once('.').unwrap_or(("public", table));
    let rows = client
        .query(
            "SELECT column_name::text, numeric_precision::int4, numeric_scale::int4 \
             FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 \
             AND data_type = 'numeric' AND numeric_precision IS NOT NULL",
            &[&schema, &name],
        )
        .await
        .map_err(pg_err("reading column precisions"))?;
    Ok(rows
        .iter()
        .map(|r| {
            let p: i32 = r.get(1);
            let s: i32 = r.get(2);
            (
                r.get::<_, String>(0),
                p.clamp(1, 38) as u8,
                s.clamp(0, 38) as i8,
            )
        })
        .collect())
}

/// The columns of `relation` (a quoted table or `(query) AS q`), with how
/// each is read; `table` gives numeric precisions, `name` is for messages.
async fn describe(
    client: &Client,
    relation: &str,
    table: Option<&str>,
    unsupported: Unsupported,
    name: &str,
) -> Result<Vec<Column>> {
    let statement = client
        .prepare(&format!("SELECT * FROM {relation} LIMIT 0"))
        .await
        .map_err(pg_err(&format!("describing {name}")))?;
    let precisions = match table {
        Some(table) => numeric_precisions(client, table).await?,
        None => Vec::new(),
    };
    let mut columns = Vec::new();
    for column in statement.columns() {
        let column_name = column.name().to_string();
        let numeric = precisions
            .iter()
            .find(|(n, _, _)| *n == column_name)
            .map(|(_, p, s)| (*p, *s));
        let (decode, dt, select, sql_type) = match map_type(column.type_(), numeric) {
            Some((decode, dt)) => (decode, dt, quote(&column_name), column.type_().clone()),
            None if unsupported == Unsupported::Text => (
                Decode::Text,
                DataType::Utf8,
                format!("{}::text", quote(&column_name)),
                Type::TEXT,
            ),
            None => {
                return Err(Error::Other(format!(
                    "{name}: column \"{column_name}\" has type {} that flowline cannot map; \
                     set unsupported = \"text\" in [source] to load it as text, or cast it in a query",
                    column.type_().name()
                )));
            }
        };
        columns.push(Column {
            field: Field::new(&column_name, dt, true),
            select,
            decode,
            sql_type,
        });
    }
    Ok(columns)
}

/// Runs `sql` and returns its rows as Arrow (for `flowline sql` on a Postgres
/// warehouse): queries go through binary COPY, other statements just run.
pub async fn query_arrow(url: &str, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
    let client = connect(url).await?;
    let sql = sql.trim().trim_end_matches(';');
    let statement = client.prepare(sql).await.map_err(pg_err("query"))?;
    if statement.columns().is_empty() {
        client.batch_execute(sql).await.map_err(pg_err("query"))?;
        return Ok((Arc::new(Schema::empty()), Vec::new()));
    }
    let relation = format!("({sql}) AS flowline_q");
    let columns = describe(&client, &relation, None, Unsupported::Text, "query").await?;
    let schema = Arc::new(Schema::new(
        columns.iter().map(|c| c.field.clone()).collect::<Vec<_>>(),
    ));
    let select: Vec<&str> = columns.iter().map(|c| c.select.as_str()).collect();
    let copy = format!(
        "COPY (SELECT {} FROM {relation}) TO STDOUT (FORMAT binary)",
        select.join(", ")
    );
    let (tx, mut rx) = tokio::sync::mpsc::channel(4);
    let reader = tokio::spawn(copy_range(
        url.to_string(),
        "query".into(),
        copy,
        columns,
        (65_536, 4 << 20),
        tx,
    ));
    let mut batches = Vec::new();
    while let Some(batch) = rx.recv().await {
        batches.push(batch.batch);
    }
    reader
        .await
        .map_err(|e| Error::Other(format!("query stopped: {e}")))??;
    Ok((schema, batches))
}

impl PostgresSource {
    /// The columns of what this source reads, with how each is read.
    async fn columns(&self, client: &Client) -> Result<Vec<Column>> {
        describe(
            client,
            &self.config.relation(quote),
            self.config.table.as_deref(),
            self.config.unsupported,
            &self.config.describe(),
        )
        .await
    }

    /// The cursor's current maximum, as text: this run's high-water mark.
    async fn high_water_mark(&self, client: &Client, cursor: &str) -> Result<Option<String>> {
        let relation = self.config.relation(quote);
        let row = client
            .query_one(
                &format!("SELECT max({})::text FROM {relation}", quote(cursor)),
                &[],
            )
            .await
            .map_err(pg_err("reading the cursor's high-water mark"))?;
        Ok(row.get(0))
    }

    /// The integer column to split ranges on, if any.
    async fn split_column(&self, client: &Client, columns: &[Column]) -> Result<Option<String>> {
        if let Some(column) = &self.config.split_by {
            return Ok(Some(column.clone()));
        }
        let Some(table) = &self.config.table else {
            return Ok(None);
        };
        let rows = client
            .query(
                "SELECT a.attname::text FROM pg_index i \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indrelid = $1::text::regclass AND i.indisprimary",
                &[&self.config.relation(quote)],
            )
            .await
            .map_err(pg_err(&format!("reading the primary key of {table}")))?;
        if rows.len() != 1 {
            return Ok(None);
        }
        let key: String = rows[0].get(0);
        let is_int = columns.iter().any(|c| {
            c.field.name() == &key
                && matches!(c.decode, Decode::Int16 | Decode::Int32 | Decode::Int64)
        });
        Ok(is_int.then_some(key))
    }

    /// Range predicates splitting the rows of `filter` on `column` into `n` parts.
    async fn ranges(
        &self,
        client: &Client,
        column: &str,
        filter: &str,
        n: usize,
    ) -> Result<Vec<String>> {
        let relation = self.config.relation(quote);
        let q = quote(column);
        let row = client
            .query_one(
                &format!("SELECT min({q})::int8, max({q})::int8 FROM {relation}{filter}"),
                &[],
            )
            .await
            .map_err(pg_err("reading the split range"))?;
        let (Some(min), Some(max)) = (row.get::<_, Option<i64>>(0), row.get::<_, Option<i64>>(1))
        else {
            return Ok(vec![String::new()]);
        };
        let span = (max as i128 - min as i128 + 1) as u128;
        let n = (n as u128).min(span).max(1);
        let step = span.div_ceil(n);
        let mut ranges = Vec::new();
        for k in 0..n {
            let lo = min as i128 + (k * step) as i128;
            let hi = lo + step as i128;
            let mut predicate = format!("{q} >= {lo} AND {q} < {hi}");
            if k == 0 {
                predicate = format!("({predicate} OR {q} IS NULL)");
            }
            ranges.push(predicate);
        }
        Ok(ranges)
    }
}

/// Streams the rows of one COPY query into batches.
async fn copy_range(
    url: String,
    origin: String,
    query: String,
    columns: Vec<Column>,
    (batch_size, batch_bytes): (usize, usize),
    out: BatchSender,
) -> Result<()> {
    let client = connect(&url).await?;
    let fields: Vec<Field> = columns.iter().map(|c| c.field.clone()).collect();
    let mut builder = BatchBuilder::new(fields, batch_size.min(65_536))?;
    let stream = client
        .copy_out(query.as_str())
        .await
        .map_err(pg_err("starting COPY"))?;
    pin_mut!(stream);
    let mut reader = CopyReader::default();
    let mut bytes = 0u64;
    let mut dead_letters = Vec::new();
    let mut row_number = 0u64;
    // Batches closed (full, or early by a bad row), waiting to be sent.
    let mut closed = Vec::new();
    let mut failure = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(pg_err("reading rows"))?;
        bytes += chunk.len() as u64;
        reader
            .feed(&chunk, |row| {
                row_number += 1;
                if let Err(reason) = copy::append_row(&columns, row, &mut builder) {
                    // The row is a dead letter; the values of it already
                    // appended go with the batch closed here.
                    dead_letters.push(DeadLetter {
                        origin: format!("{origin}#{row_number}"),
                        reason,
                        raw: copy::describe_row(row),
                    });
                    match builder.finish() {
                        Ok(batch) => closed.push(batch),
                        Err(e) => {
                            failure = Some(e);
                            return Err("stopped".into());
                        }
                    }
                }
                Ok(())
            })
            .map_err(|e| {
                failure
                    .take()
                    .unwrap_or_else(|| Error::Other(format!("postgres: reading {origin}: {e}")))
            })?;
        if builder.rows() >= batch_size || (bytes as usize >= batch_bytes && builder.rows() > 0) {
            closed.push(builder.finish()?);
        }
        for batch in closed.drain(..) {
            let taken = (
                std::mem::take(&mut bytes),
                std::mem::take(&mut dead_letters),
            );
            if let Some(batch) = last_batch(Some(batch), taken.0, taken.1, None)?
                && out.send(batch).await.is_err()
            {
                return Ok(());
            }
        }
    }
    reader
        .finish()
        .map_err(|e| Error::Other(format!("postgres: reading {origin}: {e}")))?;
    let rows = if builder.rows() > 0 {
        Some(builder.finish()?)
    } else {
        None
    };
    if let Some(last) = last_batch(rows, bytes, dead_letters, None)? {
        let _ = out.send(last).await;
    }
    Ok(())
}

/// Connects and returns the server's version, for `flowline connections test`.
pub async fn server_version(url: &str) -> Result<String> {
    let client = connect(url).await?;
    let row = client
        .query_one("SELECT version()", &[])
        .await
        .map_err(pg_err("asking the version"))?;
    Ok(row.get(0))
}

/// Every user table with its columns, key and estimated rows.
pub async fn discover(url: &str) -> Result<Vec<TableInfo>> {
    let client = connect(url).await?;
    let tables = client
        .query(
            "SELECT n.nspname::text, c.relname::text, c.reltuples::int8 FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relkind IN ('r', 'p', 'v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg_err("listing tables"))?;
    let columns = client
        .query(
            "SELECT table_schema::text, table_name::text, column_name::text, \
             CASE WHEN data_type = 'USER-DEFINED' THEN udt_name ELSE data_type END::text \
             FROM information_schema.columns WHERE table_schema NOT IN ('pg_catalog', 'information_schema') \
             ORDER BY table_schema, table_name, ordinal_position",
            &[],
        )
        .await
        .map_err(pg_err("listing columns"))?;
    let keys = client
        .query(
            "SELECT n.nspname::text, c.relname::text, a.attname::text FROM pg_index i \
             JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
             WHERE i.indisprimary ORDER BY 1, 2, a.attnum",
            &[],
        )
        .await
        .map_err(pg_err("listing keys"))?;
    Ok(tables
        .iter()
        .map(|t| {
            let (schema, table): (String, String) = (t.get(0), t.get(1));
            let same = |r: &tokio_postgres::Row| {
                r.get::<_, String>(0) == schema && r.get::<_, String>(1) == table
            };
            TableInfo {
                rows: Some(t.get::<_, i64>(2)).filter(|n| *n >= 0),
                columns: columns
                    .iter()
                    .filter(|r| same(r))
                    .map(|r| (r.get(2), r.get(3)))
                    .collect(),
                primary_key: keys.iter().filter(|r| same(r)).map(|r| r.get(2)).collect(),
                schema,
                table,
            }
        })
        .collect())
}

#[async_trait::async_trait]
impl Source for PostgresSource {
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()> {
        self.config.check()?;
        let client = connect(&self.url).await?;
        let columns = self.columns(&client).await?;
        let relation = self.config.relation(quote);
        let (filter, checkpoint) = match &self.config.incremental {
            Some(incremental) => {
                let cursor_type = columns
                    .iter()
                    .find(|c| c.field.name() == &incremental.cursor)
                    .map(|c| c.sql_type.name().to_string())
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "incremental.cursor \"{}\" is not a column of {}",
                            incremental.cursor,
                            self.config.describe()
                        ))
                    })?;
                let upper = self.high_water_mark(&client, &incremental.cursor).await?;
                self.config.incremental_plan(
                    ctx.state.as_ref(),
                    upper,
                    Dialect::Postgres,
                    quote,
                    |l| format!("CAST({l} AS {cursor_type})"),
                )?
            }
            None => (String::new(), None),
        };

        let parallel = self
            .config
            .parallel
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        let split = if parallel > 1 {
            self.split_column(&client, &columns).await?
        } else {
            None
        };
        let ranges = match &split {
            Some(column) => self.ranges(&client, column, &filter, parallel).await?,
            None => vec![String::new()],
        };
        let select: Vec<&str> = columns.iter().map(|c| c.select.as_str()).collect();
        let mut tasks = Vec::new();
        for range in ranges {
            let predicate = match (filter.is_empty(), range.is_empty()) {
                (_, true) => filter.clone(),
                (true, false) => format!(" WHERE {range}"),
                (false, false) => format!("{filter} AND {range}"),
            };
            let query = format!(
                "COPY (SELECT {} FROM {relation}{predicate}) TO STDOUT (FORMAT binary)",
                select.join(", ")
            );
            tracing::debug!(pipeline = %ctx.pipeline, "{query}");
            tasks.push(tokio::spawn(copy_range(
                self.url.clone(),
                self.config.describe(),
                query,
                columns.clone(),
                (self.config.batch_size, self.config.batch_bytes),
                out.clone(),
            )));
        }
        for task in tasks {
            task.await
                .map_err(|e| Error::Other(format!("postgres reader stopped: {e}")))??;
        }
        if let Some(last) = last_batch(None, 0, Vec::new(), checkpoint)? {
            let _ = out.send(last).await;
        }
        Ok(())
    }

    fn check(&self, _ctx: &SourceContext) -> Result<Vec<String>> {
        self.config.check()?;
        Ok(Vec::new())
    }
}
