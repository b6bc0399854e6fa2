//! `kind = "sqlite"`: a SQLite table or query, read in batches. Column types
//! come from the declared types (SQLite's affinity rules, plus BOOLEAN,
//! DATE, DATETIME/TIMESTAMP and DECIMAL(p,s)); a value that does not convert
//! to its column's type makes its row a dead letter.

use std::path::{Path, PathBuf};

use arrow::datatypes::{DataType, Field, TimeUnit};
use chrono::{DateTime, NaiveDate, NaiveDateTime};
use rusqlite::types::ValueRef;

use super::database::{DatabaseSourceConfig, Dialect, TableInfo, last_batch, parse_decimal};
use super::{BatchSender, DeadLetter, Source, SourceBatch, SourceContext};
use crate::core::error::{ConnectionFailure, Error, Result};
use crate::core::{Mode, Workspace};
use crate::data::builders::{BatchBuilder, Value};
use crate::sources::SourceConnector;

/// The file a `sqlite://path` URL (or plain path) names, relative to the project.
pub fn database_path(url: &str, project_dir: &Path) -> PathBuf {
    let path = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        project_dir.join(path)
    }
}

/// Reads a SQLite table or query.
pub struct SqliteSource {
    config: DatabaseSourceConfig,
    path: PathBuf,
}

impl SqliteSource {
    /// A source reading `config` from the database file at `path`.
    pub fn new(config: DatabaseSourceConfig, path: PathBuf) -> Self {
        SqliteSource { config, path }
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn sqlite_err(context: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::client(format!("sqlite: {context}"), e.to_string(), e)
}

/// The Arrow type for a declared column type, by SQLite's affinity rules.
fn declared_type(decl: &str) -> Option<DataType> {
    let d = decl.to_ascii_uppercase();
    let compact: String = d.chars().filter(|c| !c.is_whitespace()).collect();
    if let Some(args) = compact
        .strip_prefix("DECIMAL(")
        .or_else(|| compact.strip_prefix("NUMERIC("))
        .and_then(|a| a.strip_suffix(')'))
    {
        let (p, s) = args.split_once(',').unwrap_or((args, "0"));
        if let (Ok(p), Ok(s)) = (p.parse::<u8>(), s.parse::<i8>())
            && (1..=38).contains(&p)
            && (0..=p as i8).contains(&s)
        {
            return Some(DataType::Decimal128(p, s));
        }
    }
    Some(if d.contains("BOOL") {
        DataType::Boolean
    } else if d.contains("INT") {
        DataType::Int64
    } else if d.contains("CHAR") || d.contains("CLOB") || d.contains("TEXT") {
        DataType::Utf8
    } else if d.contains("BLOB") {
        DataType::Binary
    } else if d.contains("REAL") || d.contains("FLOA") || d.contains("DOUB") {
        DataType::Float64
    } else if d == "DATE" {
        DataType::Date32
    } else if d.contains("DATETIME") || d.contains("TIMESTAMP") {
        DataType::Timestamp(TimeUnit::Microsecond, None)
    } else if d.is_empty() {
        return None;
    } else {
        DataType::Float64
    })
}

/// The Arrow type of an undeclared column, from a value of it.
fn value_type(value: ValueRef<'_>) -> DataType {
    match value {
        ValueRef::Integer(_) => DataType::Int64,
        ValueRef::Real(_) => DataType::Float64,
        ValueRef::Blob(_) => DataType::Binary,
        ValueRef::Null | ValueRef::Text(_) => DataType::Utf8,
    }
}

fn parse_timestamp(text: &str) -> Option<i64> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.timestamp_micros());
    }
    [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%d",
    ]
    .iter()
    .find_map(|f| {
        NaiveDateTime::parse_from_str(text, f).ok().or_else(|| {
            NaiveDate::parse_from_str(text, f)
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
        })
    })
    .map(|t| t.and_utc().timestamp_micros())
}

/// Converts a SQLite value to the column's type.
fn convert(value: ValueRef<'_>, dt: &DataType) -> std::result::Result<Value, String> {
    let text = |v: ValueRef<'_>| -> String {
        match v {
            ValueRef::Integer(i) => i.to_string(),
            ValueRef::Real(f) => f.to_string(),
            ValueRef::Text(t) => String::from_utf8_lossy(t).to_string(),
            ValueRef::Blob(b) => String::from_utf8_lossy(b).to_string(),
            ValueRef::Null => String::new(),
        }
    };
    let bad = |v: ValueRef<'_>| format!("cannot convert {:?} to {dt}", text(v));
    Ok(match (value, dt) {
        (ValueRef::Null, _) => Value::Null,
        (ValueRef::Integer(i), DataType::Int64) => Value::Int(i),
        (ValueRef::Integer(i), DataType::Float64) => Value::Float(i as f64),
        (ValueRef::Real(f), DataType::Float64) => Value::Float(f),
        (ValueRef::Integer(i), DataType::Boolean) => Value::Bool(i != 0),
        (ValueRef::Integer(i), DataType::Timestamp(..)) => {
            Value::Timestamp(i.saturating_mul(1_000_000))
        }
        (ValueRef::Blob(b), DataType::Binary) => Value::Bytes(b.to_vec()),
        (v, DataType::Utf8) => Value::Text(text(v)),
        (v, DataType::Binary) => Value::Bytes(text(v).into_bytes()),
        (v @ ValueRef::Text(_), DataType::Int64) => {
            Value::Int(text(v).trim().parse().map_err(|_| bad(v))?)
        }
        (v @ ValueRef::Text(_), DataType::Float64) => {
            Value::Float(text(v).trim().parse().map_err(|_| bad(v))?)
        }
        (v @ ValueRef::Real(_), DataType::Int64) => {
            let f = text(v).parse::<f64>().map_err(|_| bad(v))?;
            if f.fract() != 0.0 {
                return Err(bad(v));
            }
            Value::Int(f as i64)
        }
        (v, DataType::Boolean) => match text(v).to_ascii_lowercase().as_str() {
            "true" | "t" | "yes" | "1" => Value::Bool(true),
            "false" | "f" | "no" | "0" => Value::Bool(false),
            _ => return Err(bad(v)),
        },
        (v, DataType::Date32) => {
            let d = NaiveDate::parse_from_str(text(v).trim(), "%Y-%m-%d").map_err(|_| bad(v))?;
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).ok_or("bad epoch")?;
            Value::Date((d - epoch).num_days() as i32)
        }
        (v, DataType::Timestamp(..)) => {
            Value::Timestamp(parse_timestamp(text(v).trim()).ok_or_else(|| bad(v))?)
        }
        (v, DataType::Decimal128(_, s)) => {
            Value::Decimal(parse_decimal(&text(v), *s).ok_or_else(|| bad(v))?)
        }
        (v, _) => return Err(bad(v)),
    })
}

impl SqliteSource {
    fn read_blocking(&self, ctx: SourceContext, out: BatchSender) -> Result<()> {
        self.config.check()?;
        let conn = open(&self.path)?;
        let relation = self.config.relation(quote);
        let upper: Option<String> = match &self.config.incremental {
            Some(incremental) => conn
                .query_row(
                    &format!(
                        "SELECT CAST(max({}) AS TEXT) FROM {relation}",
                        quote(&incremental.cursor)
                    ),
                    [],
                    |row| row.get(0),
                )
                .map_err(sqlite_err("reading the cursor's high-water mark"))?,
            None => None,
        };
        let (filter, checkpoint) = self.config.incremental_plan(
            ctx.state.as_ref(),
            upper,
            Dialect::Sqlite,
            quote,
            |l| l.to_string(),
        )?;
        let sql = format!("SELECT * FROM {relation}{filter}");
        let mut stmt = conn
            .prepare(&sql)
            .map_err(sqlite_err(&format!("reading {}", self.config.describe())))?;
        let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
        let declared: Vec<Option<DataType>> = stmt
            .columns()
            .map(|c| c.decl_type().and_then(declared_type))
            .collect();
        let mut rows = stmt.query([]).map_err(sqlite_err("reading rows"))?;
        let mut builder: Option<BatchBuilder> = None;
        let mut dead_letters = Vec::new();
        let mut bytes = 0u64;
        let mut row_number = 0u64;
        while let Some(row) = rows.next().map_err(sqlite_err("reading rows"))? {
            row_number += 1;
            let b = match &mut builder {
                Some(b) => b,
                None => {
                    let fields = names
                        .iter()
                        .zip(&declared)
                        .enumerate()
                        .map(|(i, (name, dt))| {
                            let dt = dt.clone().unwrap_or_else(|| {
                                value_type(row.get_ref(i).unwrap_or(ValueRef::Null))
                            });
                            Field::new(name, dt, true)
                        })
                        .collect();
                    builder.insert(BatchBuilder::new(
                        fields,
                        self.config.batch_size.min(65_536),
                    )?)
                }
            };
            let schema = b.schema().clone();
            let mut values = Vec::with_capacity(names.len());
            let mut problem = None;
            for (i, field) in schema.fields().iter().enumerate() {
                let raw = row.get_ref(i).map_err(sqlite_err("reading a value"))?;
                bytes += match raw {
                    ValueRef::Text(t) | ValueRef::Blob(t) => t.len() as u64,
                    _ => 8,
                };
                match convert(raw, field.data_type()) {
                    Ok(v) => values.push(v),
                    Err(e) => {
                        problem = Some(format!("column \"{}\": {e}", field.name()));
                        break;
                    }
                }
            }
            if let Some(reason) = problem {
                let raw: Vec<String> = (0..names.len())
                    .map(|i| match row.get_ref(i) {
                        Ok(ValueRef::Null) | Err(_) => "NULL".to_string(),
                        Ok(ValueRef::Integer(v)) => v.to_string(),
                        Ok(ValueRef::Real(v)) => v.to_string(),
                        Ok(ValueRef::Text(t)) | Ok(ValueRef::Blob(t)) => {
                            String::from_utf8_lossy(t).to_string()
                        }
                    })
                    .collect();
                dead_letters.push(DeadLetter {
                    origin: format!("{}#{row_number}", self.config.describe()),
                    reason,
                    raw: raw.join(","),
                });
                continue;
            }
            for (i, v) in values.into_iter().enumerate() {
                b.append(i, v)?;
            }
            b.end_row();
            if b.rows() >= self.config.batch_size {
                let batch = SourceBatch {
                    batch: b.finish()?,
                    bytes: std::mem::take(&mut bytes),
                    dead_letters: std::mem::take(&mut dead_letters),
                    checkpoint: None,
                    table: None,
                    offer: None,
                };
                if out.blocking_send(batch).is_err() {
                    return Ok(());
                }
            }
        }
        let rows = match builder.as_mut() {
            Some(b) if b.rows() > 0 => Some(b.finish()?),
            _ => None,
        };
        if let Some(last) = last_batch(rows, bytes, dead_letters, checkpoint)? {
            let _ = out.blocking_send(last);
        }
        Ok(())
    }
}

/// Opens the database read-only and returns SQLite's version.
pub fn server_version(path: &Path) -> Result<String> {
    let conn = open(path)?;
    let version: String = conn
        .query_row("SELECT 'SQLite ' || sqlite_version()", [], |r| r.get(0))
        .map_err(sqlite_err("asking the version"))?;
    Ok(version)
}

fn open(path: &Path) -> Result<rusqlite::Connection> {
    if !path.exists() {
        return Err(Error::connection(
            "sqlite",
            ConnectionFailure::NotFound,
            format!("database {} does not exist", path.display()),
            None,
        ));
    }
    rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(sqlite_err(&format!("opening {}", path.display())))
}

/// Every table with its columns, key and row count.
pub fn discover(path: &Path) -> Result<Vec<TableInfo>> {
    let conn = open(path)?;
    let mut stmt = conn
        .prepare("SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")
        .map_err(sqlite_err("listing tables"))?;
    let names: Vec<String> = stmt
        .query_map([], |r| r.get(0))
        .map_err(sqlite_err("listing tables"))?
        .collect::<std::result::Result<_, _>>()
        .map_err(sqlite_err("listing tables"))?;
    let mut tables = Vec::new();
    for name in names {
        let mut info = conn
            .prepare(&format!("PRAGMA table_info({})", quote(&name)))
            .map_err(sqlite_err("reading columns"))?;
        let columns: Vec<(String, String, i64)> = info
            .query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(5)?)))
            .map_err(sqlite_err("reading columns"))?
            .collect::<std::result::Result<_, _>>()
            .map_err(sqlite_err("reading columns"))?;
        let rows: i64 = conn
            .query_row(&format!("SELECT count(*) FROM {}", quote(&name)), [], |r| {
                r.get(0)
            })
            .map_err(sqlite_err("counting rows"))?;
        tables.push(TableInfo {
            schema: "main".into(),
            table: name,
            rows: Some(rows),
            primary_key: columns
                .iter()
                .filter(|c| c.2 > 0)
                .map(|c| c.0.clone())
                .collect(),
            columns: columns.into_iter().map(|c| (c.0, c.1)).collect(),
        });
    }
    Ok(tables)
}

#[async_trait::async_trait]
impl Source for SqliteSource {
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()> {
        tokio::task::spawn_blocking(move || self.read_blocking(ctx, out))
            .await
            .map_err(Error::task("sqlite reader"))?
    }

    fn check(&self, _ctx: &SourceContext) -> Result<Vec<String>> {
        self.config.check()?;
        if !self.path.exists() {
            return Ok(vec![format!(
                "sqlite database {} does not exist yet",
                self.path.display()
            )]);
        }
        Ok(Vec::new())
    }
}

/// `[source] kind = "sqlite"`: the keys every database source has.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct SqliteSourceConfig(pub DatabaseSourceConfig);

impl SourceConnector for SqliteSourceConfig {
    fn kind() -> &'static str {
        "sqlite"
    }

    fn mode() -> Mode {
        Mode::Batch
    }

    fn summary() -> &'static str {
        "A SQLite table or query"
    }

    fn origin(&self) -> Option<super::Origin> {
        self.0.origin("sqlite")
    }

    fn schemes() -> &'static [&'static str] {
        &["sqlite"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        Box::pin(async move { server_version(&database_path(&url, &workspace.dir)) })
    }

    fn discover(
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<TableInfo>>> {
        Box::pin(async move { discover(&database_path(&url, &workspace.dir)) })
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
        Ok(Box::new(SqliteSource::new(
            self.0.clone(),
            database_path(&url, &workspace.dir),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_types_follow_affinity() {
        assert_eq!(declared_type("INTEGER"), Some(DataType::Int64));
        assert_eq!(declared_type("varchar(20)"), Some(DataType::Utf8));
        assert_eq!(
            declared_type("DECIMAL(10,2)"),
            Some(DataType::Decimal128(10, 2))
        );
        assert_eq!(declared_type("BOOLEAN"), Some(DataType::Boolean));
        assert_eq!(
            declared_type("DATETIME"),
            Some(DataType::Timestamp(TimeUnit::Microsecond, None))
        );
        assert_eq!(declared_type(""), None);
    }
}
