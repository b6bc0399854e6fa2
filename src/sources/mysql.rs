//! `kind = "mysql"` (MySQL and MariaDB): a table or query streamed over the
//! binary protocol into Arrow batches, incremental on a cursor column. The
//! session runs in UTC so TIMESTAMP columns arrive as UTC instants. The URL's
//! `sslmode` (libpq's names) or `ssl-mode` (MySQL's) and `sslrootcert` choose
//! TLS (rustls): see `TlsSettings`.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, TimeUnit};
use chrono::NaiveDate;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable;

use super::database::{
    DatabaseSourceConfig, Dialect, TableInfo, Unsupported, last_batch, parse_decimal,
};
use super::{BatchSender, DeadLetter, Source, SourceBatch, SourceContext};
use crate::clients::mysql::{connect, my_err};
use crate::core::error::{Error, Result};
use crate::core::{Mode, Workspace};
use crate::data::builders::{BatchBuilder, Value};
use crate::sources::SourceConnector;

/// The `character_set` of binary strings (BLOB, BINARY, VARBINARY).
const BINARY_CHARSET: u16 = 63;

/// Reads a MySQL or MariaDB table or query.
pub struct MysqlSource {
    config: DatabaseSourceConfig,
    url: String,
}

impl MysqlSource {
    /// A source reading `config` from the server at `url`.
    pub fn new(config: DatabaseSourceConfig, url: String) -> Self {
        MysqlSource {
            config,
            url: mysql_url(url),
        }
    }
}

/// `mariadb://` URLs as the MySQL client takes them.
fn mysql_url(url: String) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url,
    }
}

fn quote(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// The Arrow type of a result column; `None` when unmapped.
fn map_column(column: &mysql_async::Column) -> Option<DataType> {
    let unsigned = column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.character_set() == BINARY_CHARSET;
    Some(match column.column_type() {
        ColumnType::MYSQL_TYPE_TINY if column.column_length() == 1 => DataType::Boolean,
        ColumnType::MYSQL_TYPE_TINY | ColumnType::MYSQL_TYPE_YEAR => DataType::Int16,
        ColumnType::MYSQL_TYPE_SHORT => DataType::Int32,
        ColumnType::MYSQL_TYPE_INT24 => DataType::Int32,
        ColumnType::MYSQL_TYPE_LONG if unsigned => DataType::Int64,
        ColumnType::MYSQL_TYPE_LONG => DataType::Int32,
        ColumnType::MYSQL_TYPE_LONGLONG if unsigned => DataType::UInt64,
        ColumnType::MYSQL_TYPE_LONGLONG => DataType::Int64,
        ColumnType::MYSQL_TYPE_BIT => DataType::Int64,
        ColumnType::MYSQL_TYPE_FLOAT => DataType::Float32,
        ColumnType::MYSQL_TYPE_DOUBLE => DataType::Float64,
        ColumnType::MYSQL_TYPE_DECIMAL | ColumnType::MYSQL_TYPE_NEWDECIMAL => {
            let scale = column.decimals();
            let precision =
                column.column_length() as i64 - i64::from(scale > 0) - i64::from(!unsigned);
            if !(1..=38).contains(&precision) {
                return None;
            }
            DataType::Decimal128(precision as u8, scale as i8)
        }
        ColumnType::MYSQL_TYPE_DATE | ColumnType::MYSQL_TYPE_NEWDATE => DataType::Date32,
        ColumnType::MYSQL_TYPE_DATETIME | ColumnType::MYSQL_TYPE_DATETIME2 => {
            DataType::Timestamp(TimeUnit::Microsecond, None)
        }
        ColumnType::MYSQL_TYPE_TIMESTAMP | ColumnType::MYSQL_TYPE_TIMESTAMP2 => {
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        }
        ColumnType::MYSQL_TYPE_TIME | ColumnType::MYSQL_TYPE_TIME2 => {
            DataType::Time64(TimeUnit::Microsecond)
        }
        ColumnType::MYSQL_TYPE_JSON | ColumnType::MYSQL_TYPE_ENUM | ColumnType::MYSQL_TYPE_SET => {
            DataType::Utf8
        }
        ColumnType::MYSQL_TYPE_VARCHAR
        | ColumnType::MYSQL_TYPE_VAR_STRING
        | ColumnType::MYSQL_TYPE_STRING
        | ColumnType::MYSQL_TYPE_TINY_BLOB
        | ColumnType::MYSQL_TYPE_MEDIUM_BLOB
        | ColumnType::MYSQL_TYPE_LONG_BLOB
        | ColumnType::MYSQL_TYPE_BLOB => {
            if binary {
                DataType::Binary
            } else {
                DataType::Utf8
            }
        }
        _ => return None,
    })
}

/// Converts a driver value to the column's type.
fn convert(value: mysql_async::Value, dt: &DataType) -> std::result::Result<Value, String> {
    use mysql_async::Value as M;
    Ok(match (value, dt) {
        (M::NULL, _) => Value::Null,
        (M::Int(i), DataType::Boolean) => Value::Bool(i != 0),
        (M::Int(i), DataType::Float32 | DataType::Float64) => Value::Float(i as f64),
        (M::Int(i), _) => Value::Int(i),
        (M::UInt(u), DataType::Boolean) => Value::Bool(u != 0),
        (M::UInt(u), DataType::UInt64) => Value::UInt(u),
        (M::UInt(u), _) => {
            Value::Int(i64::try_from(u).map_err(|_| format!("{u} overflows BIGINT"))?)
        }
        (M::Float(f), _) => Value::Float(f.into()),
        (M::Double(f), _) => Value::Float(f),
        (M::Bytes(b), DataType::Binary) => Value::Bytes(b),
        (M::Bytes(b), DataType::Int64) => {
            // BIT(n) arrives as big-endian bytes.
            Value::Int(
                b.iter()
                    .fold(0i64, |acc, byte| (acc << 8) | i64::from(*byte)),
            )
        }
        (M::Bytes(b), DataType::Decimal128(_, s)) => {
            let text = String::from_utf8_lossy(&b).to_string();
            Value::Decimal(
                parse_decimal(&text, *s)
                    .ok_or_else(|| format!("cannot read {text:?} as a decimal"))?,
            )
        }
        (M::Bytes(b), DataType::Utf8) => {
            Value::Text(String::from_utf8(b).map_err(|_| "invalid UTF-8".to_string())?)
        }
        (M::Bytes(b), other) => {
            let text = String::from_utf8_lossy(&b).to_string();
            return Err(format!("cannot convert {text:?} to {other}"));
        }
        (M::Date(0, 0, 0, ..), _) => Value::Null,
        (M::Date(y, mo, d, h, mi, s, us), DataType::Date32) => {
            let date =
                NaiveDate::from_ymd_opt(y.into(), mo.into(), d.into()).ok_or("invalid date")?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("bad epoch")?;
            let _ = (h, mi, s, us);
            Value::Date((date - epoch).num_days() as i32)
        }
        (M::Date(y, mo, d, h, mi, s, us), DataType::Timestamp(..)) => {
            let t = NaiveDate::from_ymd_opt(y.into(), mo.into(), d.into())
                .and_then(|d| d.and_hms_micro_opt(h.into(), mi.into(), s.into(), us))
                .ok_or("invalid date-time")?;
            Value::Timestamp(t.and_utc().timestamp_micros())
        }
        (M::Time(negative, days, h, m, s, us), DataType::Time64(_)) => {
            if negative || days > 0 {
                return Err("TIME outside 00:00:00..24:00:00".into());
            }
            Value::Time(
                ((i64::from(h) * 60 + i64::from(m)) * 60 + i64::from(s)) * 1_000_000
                    + i64::from(us),
            )
        }
        (v, other) => return Err(format!("cannot convert {v:?} to {other}")),
    })
}

impl MysqlSource {
    /// The cursor's current maximum, as text: this run's high-water mark.
    async fn high_water_mark(
        &self,
        conn: &mut mysql_async::Conn,
        cursor: &str,
    ) -> Result<Option<String>> {
        let relation = self.config.relation(quote);
        let upper: Option<Option<String>> = conn
            .query_first(format!(
                "SELECT CAST(MAX({}) AS CHAR) FROM {relation}",
                quote(cursor)
            ))
            .await
            .map_err(my_err("reading the cursor's high-water mark"))?;
        Ok(upper.flatten())
    }
}

/// Connects and returns the server's version, for `flowline connections test`.
pub async fn server_version(url: &str) -> Result<String> {
    let mut conn = connect(url).await?;
    let version: Option<String> = conn
        .query_first("SELECT VERSION()")
        .await
        .map_err(my_err("asking the version"))?;
    let _ = conn.disconnect().await;
    Ok(version.unwrap_or_default())
}

/// Every table of the connection's database, with columns, key and estimated rows.
pub async fn discover(url: &str) -> Result<Vec<TableInfo>> {
    let mut conn = connect(url).await?;
    let tables: Vec<(String, String, Option<i64>)> = conn
        .query(
            "SELECT table_schema, table_name, CAST(table_rows AS SIGNED) FROM information_schema.tables \
             WHERE table_schema = DATABASE() ORDER BY table_name",
        )
        .await
        .map_err(my_err("listing tables"))?;
    let columns: Vec<(String, String, String, i64)> = conn
        .query(
            "SELECT table_name, column_name, column_type, CAST(column_key = 'PRI' AS SIGNED) \
             FROM information_schema.columns WHERE table_schema = DATABASE() \
             ORDER BY table_name, ordinal_position",
        )
        .await
        .map_err(my_err("listing columns"))?;
    let _ = conn.disconnect().await;
    Ok(tables
        .into_iter()
        .map(|(schema, table, rows)| {
            let own: Vec<&(String, String, String, i64)> =
                columns.iter().filter(|c| c.0 == table).collect();
            TableInfo {
                columns: own.iter().map(|c| (c.1.clone(), c.2.clone())).collect(),
                primary_key: own
                    .iter()
                    .filter(|c| c.3 == 1)
                    .map(|c| c.1.clone())
                    .collect(),
                rows,
                schema,
                table,
            }
        })
        .collect())
}

#[async_trait::async_trait]
impl Source for MysqlSource {
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()> {
        self.config.check()?;
        let mut conn = connect(&self.url).await?;
        let relation = self.config.relation(quote);
        let upper = match &self.config.incremental {
            Some(incremental) => self.high_water_mark(&mut conn, &incremental.cursor).await?,
            None => None,
        };
        let (filter, checkpoint) = self.config.incremental_plan(
            ctx.state.as_ref(),
            upper,
            Dialect::Mysql,
            quote,
            |l| l.to_string(),
        )?;
        let sql = format!("SELECT * FROM {relation}{filter}");
        let mut result = conn
            .exec_iter(sql.as_str(), ())
            .await
            .map_err(my_err(&format!("reading {}", self.config.describe())))?;
        let columns = result.columns().unwrap_or_else(|| Arc::from(Vec::new()));
        let mut fields = Vec::new();
        for column in columns.iter() {
            let name = column.name_str().to_string();
            let dt = match map_column(column) {
                Some(dt) => dt,
                None if self.config.unsupported == Unsupported::Text => DataType::Utf8,
                None => {
                    return Err(Error::Config(format!(
                        "{}: column \"{name}\" has type {:?} that flowline cannot map; \
                         set unsupported = \"text\" in [source] to load it as text, or cast it in a query",
                        self.config.describe(),
                        column.column_type()
                    )));
                }
            };
            fields.push(Field::new(name, dt, true));
        }
        let mut builder = BatchBuilder::new(fields.clone(), self.config.batch_size.min(65_536))?;
        let mut dead_letters = Vec::new();
        let mut bytes = 0u64;
        let mut row_number = 0u64;
        while let Some(row) = result.next().await.map_err(my_err("reading rows"))? {
            row_number += 1;
            let raw = row.unwrap();
            let mut values = Vec::with_capacity(raw.len());
            let mut problem = None;
            for (value, field) in raw.iter().zip(&fields) {
                bytes += match value {
                    mysql_async::Value::Bytes(b) => b.len() as u64,
                    _ => 8,
                };
                match convert(value.clone(), field.data_type()) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        problem = Some(format!("column \"{}\": {e}", field.name()));
                        break;
                    }
                }
            }
            if let Some(reason) = problem {
                dead_letters.push(DeadLetter {
                    origin: format!("{}#{row_number}", self.config.describe()),
                    reason,
                    raw: format!("{raw:?}"),
                });
                continue;
            }
            for (i, v) in values.into_iter().enumerate() {
                builder.append(i, v)?;
            }
            builder.end_row();
            if builder.rows() >= self.config.batch_size {
                let batch = SourceBatch {
                    batch: builder.finish()?,
                    bytes: std::mem::take(&mut bytes),
                    dead_letters: std::mem::take(&mut dead_letters),
                    checkpoint: None,
                    table: None,
                    offer: None,
                };
                if out.send(batch).await.is_err() {
                    return Ok(());
                }
            }
        }
        drop(result);
        let rows = if builder.rows() > 0 {
            Some(builder.finish()?)
        } else {
            None
        };
        if let Some(last) = last_batch(rows, bytes, dead_letters, checkpoint)? {
            let _ = out.send(last).await;
        }
        let _ = conn.disconnect().await;
        Ok(())
    }

    fn check(&self, _ctx: &SourceContext) -> Result<Vec<String>> {
        self.config.check()?;
        Ok(Vec::new())
    }
}

/// `[source] kind = "mysql"`: the keys every database source has.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct MysqlSourceConfig(pub DatabaseSourceConfig);

impl SourceConnector for MysqlSourceConfig {
    fn kind() -> &'static str {
        "mysql"
    }

    fn mode() -> Mode {
        Mode::Batch
    }

    fn summary() -> &'static str {
        "A MySQL or MariaDB table or query"
    }

    fn origin(&self) -> Option<super::Origin> {
        self.0.origin("mysql")
    }

    fn schemes() -> &'static [&'static str] {
        &["mysql", "mariadb"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = workspace;
        Box::pin(async move { server_version(&mysql_url(url)).await })
    }

    fn discover(
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<TableInfo>>> {
        let _ = workspace;
        Box::pin(async move { discover(&mysql_url(url)).await })
    }

    fn validate(&self, workspace: &Workspace, pipeline: &str) -> Result<Vec<String>> {
        crate::sources::validate_batch(self, workspace, pipeline)
    }

    fn batch_reader(&self, workspace: &Workspace) -> Result<Box<dyn Source>> {
        let url = workspace.connections.resolve(
            "[source]",
            self.0.url.as_ref(),
            self.0.connection.as_ref(),
        )?;
        Ok(Box::new(MysqlSource::new(self.0.clone(), url)))
    }
}
