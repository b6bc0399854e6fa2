//! The Postgres client every part of flowline uses: connecting (with TLS at
//! libpq's `sslmode` levels), phrasing errors by their cause, and reading
//! query results through binary `COPY ... TO STDOUT` straight into Arrow.

use std::error::Error as StdError;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use futures_util::{StreamExt, pin_mut};
use tokio_postgres::types::{Kind, Type};
use tokio_postgres::{Client, NoTls};

use super::Unsupported;
use crate::core::error::{ConnectionFailure, Error, Result};
use crate::core::{BatchSender, DeadLetter, SourceBatch};
use crate::data::builders::BatchBuilder;

mod copy;
pub mod tls;

use copy::CopyReader;

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
        Error::Config(format!("postgres: bad connection URL: {e}{cause}"))
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
        let (failure, message) = classify(&e);
        Error::connection(
            format!("postgres at {host}:{port}"),
            failure,
            message,
            Some(Box::new(e)),
        )
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
    classify(e).1
}

/// The kind of a client error and its cause in the user's words.
pub fn classify(e: &tokio_postgres::Error) -> (ConnectionFailure, String) {
    if let Some(db) = e.as_db_error() {
        let (failure, what) = match db.code().code() {
            "28P01" | "28000" => (ConnectionFailure::Auth, "authentication failed"),
            "3D000" => (ConnectionFailure::NotFound, "database does not exist"),
            _ => (ConnectionFailure::Server, "server error"),
        };
        return (failure, format!("{what}: {}", db.message()));
    }
    let mut source = e.source();
    while let Some(inner) = source {
        if let Some(tls) = inner.downcast_ref::<rustls::Error>() {
            return (ConnectionFailure::Tls, tls::describe(tls));
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>()
            && let Some(tls) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
        {
            return (ConnectionFailure::Tls, tls::describe(tls));
        }
        if let Some(io) = inner.downcast_ref::<std::io::Error>() {
            return match io.kind() {
                std::io::ErrorKind::ConnectionRefused => (
                    ConnectionFailure::Refused,
                    "connection refused: is the server running and listening there?".to_string(),
                ),
                _ if io.to_string().contains("failed to lookup")
                    || io.to_string().contains("resolve") =>
                {
                    (
                        ConnectionFailure::HostNotFound,
                        format!("host name not found ({io})"),
                    )
                }
                _ => (ConnectionFailure::Network, format!("network error ({io})")),
            };
        }
        source = inner.source();
    }
    (ConnectionFailure::Server, e.to_string())
}

pub fn pg_err(context: &str) -> impl Fn(tokio_postgres::Error) -> Error + '_ {
    move |e| Error::client(format!("postgres: {context}"), describe_error(&e), e)
}

pub fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// How one column is read from COPY rows.
#[derive(Debug, Clone)]
pub enum Decode {
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
pub struct Column {
    pub field: Field,
    pub select: String,
    pub decode: Decode,
    pub sql_type: Type,
}

/// Maps a Postgres type to its decoder and Arrow type; `None` when unmapped.
pub fn map_type(ty: &Type, numeric: Option<(u8, i8)>) -> Option<(Decode, DataType)> {
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
pub async fn numeric_precisions(client: &Client, table: &str) -> Result<Vec<(String, u8, i8)>> {
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
pub async fn describe(
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
                return Err(Error::Config(format!(
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
    reader.await.map_err(Error::task("query"))??;
    Ok((schema, batches))
}

/// Streams the rows of one COPY query into batches.
pub async fn copy_range(
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
                failure.take().unwrap_or_else(|| {
                    Error::client(format!("postgres: reading {origin}"), e.to_string(), e)
                })
            })?;
        if builder.rows() >= batch_size || (bytes as usize >= batch_bytes && builder.rows() > 0) {
            closed.push(builder.finish()?);
        }
        for batch in closed.drain(..) {
            let taken = (
                std::mem::take(&mut bytes),
                std::mem::take(&mut dead_letters),
            );
            if let Some(batch) = SourceBatch::closing(Some(batch), taken.0, taken.1, None)
                && out.send(batch).await.is_err()
            {
                return Ok(());
            }
        }
    }
    reader
        .finish()
        .map_err(|e| Error::client(format!("postgres: reading {origin}"), e.to_string(), e))?;
    let rows = if builder.rows() > 0 {
        Some(builder.finish()?)
    } else {
        None
    };
    if let Some(last) = SourceBatch::closing(rows, bytes, dead_letters, None) {
        let _ = out.send(last).await;
    }
    Ok(())
}
