//! What the SQL database sources (postgres, mysql, sqlite) share: their
//! config, resolving the connection, and the incremental plan (which rows a
//! run reads, and the progress it commits).
//!
//! Incremental loads read `cursor > saved` (or `>= saved - lag`) up to a
//! high-water mark taken when the run starts, and commit that mark with the
//! data. Rows changed while a run reads are above the mark and are caught
//! by the next run; none is skipped, none read twice (lag aside).

use serde::{Deserialize, Serialize};

pub use crate::clients::{SslMode, Unsupported};
use crate::core::error::{Error, Result};

/// `[source]` of `kind = "postgres" | "mysql" | "sqlite"`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DatabaseSourceConfig {
    /// The name of a `[connections.<name>]` in `flowline.toml`, whose `url`
    /// is used. Give exactly one of `connection` and `url`.
    #[serde(default)]
    pub connection: Option<String>,
    /// The URL, instead of `connection`: `postgres://user:password@host:5432/db`,
    /// `mysql://user:password@host:3306/db`, `sqlite://data/app.db`
    /// (relative to the project folder). For MariaDB, `mysql://` and
    /// `mariadb://` both work. Prefer `connection` with `${VAR}`.
    #[serde(default)]
    pub url: Option<String>,
    /// The table (or view) to copy: `schema.table` or `table`. For MySQL,
    /// the schema is a database name. Give exactly one of `table` and `query`.
    #[serde(default)]
    pub table: Option<String>,
    /// A `SELECT` whose rows are copied, in the database's own dialect.
    /// flowline wraps it as `(query) AS flowline_q`, so a cursor or split
    /// column must be one of its output columns.
    #[serde(default)]
    pub query: Option<String>,
    /// `{ cursor = "column", lag = ..., initial = ... }`: read only the rows
    /// whose `cursor` is past the value saved by the last run. Default: every
    /// run reads everything.
    #[serde(default)]
    pub incremental: Option<IncrementalConfig>,
    /// Rows per Arrow batch, at most (at least 1). A PostgreSQL batch also
    /// closes once it holds `batch_bytes` of data, so wide rows keep memory
    /// bounded.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// PostgreSQL only: a batch also closes once it holds this many bytes of
    /// source data (default 4 MiB): with a few batches in flight, a load
    /// stays within about 250 MB whatever the table's width.
    #[serde(default = "default_batch_bytes")]
    pub batch_bytes: usize,
    /// PostgreSQL only: read in this many ranges of an integer column at
    /// once, one `COPY` and connection each. Used when the table's primary
    /// key is one integer column, or with `split_by`. `1` reads in one
    /// piece. Default: the machine's cores.
    #[serde(default)]
    pub parallel: Option<usize>,
    /// PostgreSQL only: the integer column whose range is split for
    /// `parallel`. Needed to split a `query`. Default: the primary key, when
    /// it is one integer column.
    #[serde(default)]
    pub split_by: Option<String>,
    /// What to do with a column of a type flowline cannot map: `error` fails
    /// the run, naming table, column and type; `text` loads it as text.
    #[serde(default)]
    pub unsupported: Unsupported,
}

impl DatabaseSourceConfig {
    /// What it reads, for column lineage: `connection:table`, or the
    /// connection and its query; `dialect` names the database's SQL and
    /// stands for the connection when the source gives a `url`.
    pub fn origin(&self, dialect: &'static str) -> Option<super::Origin> {
        let database = self
            .connection
            .clone()
            .unwrap_or_else(|| dialect.to_string());
        match (&self.table, &self.query) {
            (Some(table), _) => Some(super::Origin {
                name: format!("{database}:{table}"),
                query: None,
            }),
            (None, Some(query)) => Some(super::Origin {
                name: database,
                query: Some((query.clone(), dialect)),
            }),
            (None, None) => None,
        }
    }
}

fn default_batch_size() -> usize {
    65_536
}

fn default_batch_bytes() -> usize {
    4 << 20
}

/// `incremental = { cursor = "updated_at", lag = "5 minutes", initial = "2024-01-01" }`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IncrementalConfig {
    /// A column whose value grows whenever a row is added or changed:
    /// `updated_at`, or an id that only grows. After a change to another
    /// column, the next run warns, ignores the saved value and loads from
    /// the start (or from `initial`).
    pub cursor: String,
    /// Re-read this far behind the saved value, to catch rows committed
    /// late: runs after the first read `cursor >= saved - lag`. A number for
    /// a numeric cursor; for a time cursor, an interval `"<count> <unit>"`
    /// of a whole count and one unit, such as `"10 minutes"`. Units:
    /// `seconds`, `minutes`, `hours`, `days`, `weeks`, `months`, `years`,
    /// singular or plural (`sec`, `min`, `mins` work too). Pair it with
    /// `write = "merge"` so re-read rows are deduped.
    #[serde(default)]
    #[schemars(with = "Option<crate::core::schema::Scalar>")]
    pub lag: Option<toml::Value>,
    /// Where the first run (and a `--full-refresh`) starts:
    /// `cursor >= initial`, for example `"2024-01-01"` or `50000`. Default:
    /// everything.
    #[serde(default)]
    #[schemars(with = "Option<crate::core::schema::Scalar>")]
    pub initial: Option<toml::Value>,
}

/// A table found by `flowline discover`.
#[derive(Debug, Clone, Serialize)]
pub struct TableInfo {
    /// Schema (or database) name.
    pub schema: String,
    /// Table name.
    pub table: String,
    /// The database's estimate of its row count.
    pub rows: Option<i64>,
    /// Columns as (name, type).
    pub columns: Vec<(String, String)>,
    /// Primary key columns.
    pub primary_key: Vec<String>,
}

/// The progress a database source commits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CursorState {
    /// The cursor column.
    pub cursor: String,
    /// The highest cursor value loaded, as the database prints it.
    pub value: String,
}

/// A literal for a cursor value: a number as is, anything else quoted.
pub fn literal(value: &str) -> String {
    if value.parse::<f64>().is_ok() && !value.contains(['e', 'E', 'n', 'N', 'i', 'I']) {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "''"))
    }
}

/// Decimal text (`-12.5`) as an integer scaled by 10^`scale`; extra
/// fraction digits are cut.
pub fn parse_decimal(text: &str, scale: i8) -> Option<i128> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.chars().chain(frac.chars()).all(|c| c.is_ascii_digit())
    {
        return None;
    }
    let mut frac: String = frac.chars().take(scale as usize).collect();
    while frac.len() < scale as usize {
        frac.push('0');
    }
    let value: i128 = format!("{}{frac}", if int.is_empty() { "0" } else { int })
        .parse()
        .ok()?;
    Some(if negative { -value } else { value })
}

/// How far `lag` reaches back: a number (integer cursors) or an interval
/// such as `"10 minutes"` (time cursors).
#[derive(Debug, Clone, PartialEq)]
pub enum Lag {
    /// Subtracted as a number.
    Number(String),
    /// An interval: a count of a unit.
    Interval(u64, TimeUnit),
}

/// Units an interval `lag` may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeUnit {
    /// Seconds.
    Second,
    /// Minutes.
    Minute,
    /// Hours.
    Hour,
    /// Days.
    Day,
    /// Weeks (7 days).
    Week,
    /// Months.
    Month,
    /// Years.
    Year,
}

impl TimeUnit {
    fn parse(text: &str) -> Option<Self> {
        let t = text.to_ascii_lowercase();
        let t = t.strip_suffix('s').unwrap_or(&t);
        Some(match t {
            "second" | "sec" => TimeUnit::Second,
            "minute" | "min" => TimeUnit::Minute,
            "hour" => TimeUnit::Hour,
            "day" => TimeUnit::Day,
            "week" => TimeUnit::Week,
            "month" => TimeUnit::Month,
            "year" => TimeUnit::Year,
            _ => return None,
        })
    }

    fn singular(self) -> &'static str {
        match self {
            TimeUnit::Second => "second",
            TimeUnit::Minute => "minute",
            TimeUnit::Hour => "hour",
            TimeUnit::Day => "day",
            TimeUnit::Week => "week",
            TimeUnit::Month => "month",
            TimeUnit::Year => "year",
        }
    }
}

/// SQL dialects, for the parts of a query that differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL and MariaDB.
    Mysql,
    /// SQLite.
    Sqlite,
}

/// Reads `incremental.lag`.
pub fn parse_lag(lag: &toml::Value) -> Result<Lag> {
    match lag {
        toml::Value::Integer(n) => Ok(Lag::Number(n.to_string())),
        toml::Value::Float(f) => Ok(Lag::Number(f.to_string())),
        toml::Value::String(s) => {
            let mut parts = s.split_whitespace();
            let count = parts.next().and_then(|c| c.parse::<u64>().ok());
            let unit = parts.next().and_then(TimeUnit::parse);
            match (count, unit, parts.next()) {
                (Some(count), Some(unit), None) => Ok(Lag::Interval(count, unit)),
                _ => Err(Error::Config(format!(
                    "incremental.lag {s:?} is not an interval: write \"<count> <unit>\" with a unit of \
                     seconds, minutes, hours, days, weeks, months or years"
                ))),
            }
        }
        other => Err(Error::Config(format!(
            "incremental.lag must be a number or an interval like \"10 minutes\", not {other}"
        ))),
    }
}

impl Lag {
    /// `bound` moved back by this lag, in `dialect`.
    pub fn subtract_from(&self, bound: &str, dialect: Dialect) -> String {
        let (count, unit) = match self {
            Lag::Number(n) => return format!("{bound} - {n}"),
            Lag::Interval(count, unit) => (*count, *unit),
        };
        let (count, unit) = match (dialect, unit) {
            (Dialect::Sqlite, TimeUnit::Week) => (count * 7, TimeUnit::Day),
            _ => (count, unit),
        };
        let name = unit.singular();
        match dialect {
            Dialect::Postgres => format!("{bound} - INTERVAL '{count} {name}s'"),
            // If SQLite cannot move the bound it yields NULL; fall back to the
            // bound itself so a run never skips rows.
            Dialect::Sqlite => format!("COALESCE(datetime({bound}, '-{count} {name}s'), {bound})"),
            Dialect::Mysql => format!("{bound} - INTERVAL {count} {}", name.to_ascii_uppercase()),
        }
    }
}

/// `initial` as text.
pub fn initial_value(initial: &toml::Value) -> String {
    match initial {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl DatabaseSourceConfig {
    /// Checks the keys that depend on each other.
    pub fn check(&self) -> Result<()> {
        match (&self.table, &self.query) {
            (Some(_), Some(_)) => Err(Error::Config(
                "[source] takes either table or query, not both".into(),
            )),
            (None, None) => Err(Error::Config(
                "[source] needs table = \"schema.table\" or query = \"select ...\"".into(),
            )),
            _ if self.batch_size == 0 => Err(Error::Config(
                "[source] batch_size must be at least 1".into(),
            )),
            _ => Ok(()),
        }
    }

    /// What the source reads, as an SQL relation: the quoted table or `(query) AS q`.
    pub fn relation(&self, quote: impl Fn(&str) -> String) -> String {
        match (&self.table, &self.query) {
            (Some(table), _) => table.split('.').map(&quote).collect::<Vec<_>>().join("."),
            (None, Some(query)) => {
                format!("({}) AS flowline_q", query.trim().trim_end_matches(';'))
            }
            (None, None) => String::new(),
        }
    }

    /// The table name for messages.
    pub fn describe(&self) -> String {
        self.table.clone().unwrap_or_else(|| "query".into())
    }
}

/// The incremental bounds of one run.
#[derive(Debug, Clone, PartialEq)]
pub struct CursorBounds {
    /// `cursor > lower` (or `>=` with lag), from saved state or `initial`.
    pub lower: Option<(String, bool)>,
    /// `cursor <= upper`: the high-water mark when the run started.
    pub upper: Option<String>,
}

impl CursorBounds {
    /// The state to commit once the rows within these bounds are loaded:
    /// the high-water mark, or the saved value when there is nothing new.
    pub fn state(&self, cursor: &str) -> Option<CursorState> {
        let value = self.upper.clone().or(self
            .lower
            .as_ref()
            .filter(|(_, inclusive)| !inclusive)
            .map(|(v, _)| v.clone()))?;
        Some(CursorState {
            cursor: cursor.to_string(),
            value,
        })
    }
}

impl DatabaseSourceConfig {
    /// Where this run starts: after the saved cursor value, or at `initial`.
    pub fn lower_bound(&self, state: Option<&serde_json::Value>) -> Result<Option<(String, bool)>> {
        match state {
            Some(state) => {
                let saved: CursorState =
                    serde_json::from_value(state.clone()).map_err(|e| Error::StateUnreadable {
                        what: "the saved state".into(),
                        message: format!("not a cursor: {e}"),
                    })?;
                let cursor = self.incremental.as_ref().map(|i| i.cursor.as_str());
                if cursor != Some(saved.cursor.as_str()) {
                    tracing::warn!(
                        "incremental.cursor changed from {} to {}: loading from the start",
                        saved.cursor,
                        cursor.unwrap_or("none")
                    );
                    return Ok(self.initial_bound());
                }
                Ok(Some((saved.value, false)))
            }
            None => Ok(self.initial_bound()),
        }
    }

    fn initial_bound(&self) -> Option<(String, bool)> {
        self.incremental
            .as_ref()
            .and_then(|i| i.initial.as_ref())
            .map(|v| (initial_value(v), true))
    }
}

impl DatabaseSourceConfig {
    /// The WHERE clause and the state to commit for an incremental run:
    /// from the saved state (or `initial`) up to `upper`, the cursor's
    /// maximum read when the run started. `cast` turns a literal into the
    /// cursor's type. Without `incremental`: no filter, no state.
    pub fn incremental_plan(
        &self,
        state: Option<&serde_json::Value>,
        upper: Option<String>,
        dialect: Dialect,
        quote: impl Fn(&str) -> String,
        cast: impl Fn(&str) -> String,
    ) -> Result<(String, Option<CursorState>)> {
        let Some(incremental) = &self.incremental else {
            return Ok((String::new(), None));
        };
        let bounds = CursorBounds {
            lower: self.lower_bound(state)?,
            upper,
        };
        let lag = incremental.lag.as_ref().map(parse_lag).transpose()?;
        let filter = where_clause(
            &quote(&incremental.cursor),
            &bounds,
            lag.as_ref().map(|l| (l, dialect)),
            cast,
        );
        Ok((filter, bounds.state(&incremental.cursor)))
    }
}

/// The last batch of a database source: the remaining rows (or an empty
/// batch), their dead letters and the cursor state, if any of them is there.
pub fn last_batch(
    rows: Option<arrow::record_batch::RecordBatch>,
    bytes: u64,
    dead_letters: Vec<super::DeadLetter>,
    state: Option<CursorState>,
) -> Result<Option<super::SourceBatch>> {
    let checkpoint = state
        .map(|s| serde_json::to_value(s).map_err(|e| Error::Other(e.to_string())))
        .transpose()?;
    Ok(super::SourceBatch::closing(
        rows,
        bytes,
        dead_letters,
        checkpoint,
    ))
}

/// The WHERE clause for `bounds` on `cursor` (already quoted), `cast` turning
/// a literal into the cursor's type.
pub fn where_clause(
    cursor: &str,
    bounds: &CursorBounds,
    lag: Option<(&Lag, Dialect)>,
    cast: impl Fn(&str) -> String,
) -> String {
    let mut parts = Vec::new();
    if let Some((value, inclusive)) = &bounds.lower {
        let mut bound = cast(&literal(value));
        // The lag re-reads behind a saved mark; an `initial` value is exact.
        let lag = lag.filter(|_| !inclusive);
        if let Some((lag, dialect)) = lag {
            bound = lag.subtract_from(&bound, dialect);
        }
        let op = if *inclusive || lag.is_some() {
            ">="
        } else {
            ">"
        };
        parts.push(format!("{cursor} {op} {bound}"));
    }
    match &bounds.upper {
        Some(upper) => parts.push(format!("{cursor} <= {}", cast(&literal(upper)))),
        None if bounds.lower.is_some() => parts.push("FALSE".into()),
        None => {}
    }
    if bounds.lower.is_none() && bounds.upper.is_some() {
        // A first load also takes the rows whose cursor is NULL.
        let only = parts.pop().unwrap_or_default();
        parts.push(format!("({only} OR {cursor} IS NULL)"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", parts.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> String {
        format!("\"{s}\"")
    }

    #[test]
    fn where_clauses_for_first_and_later_runs() {
        let cast = |l: &str| format!("CAST({l} AS timestamp)");
        let first = CursorBounds {
            lower: None,
            upper: Some("2024-01-02 00:00:00".into()),
        };
        assert_eq!(
            where_clause(&q("u"), &first, None, cast),
            " WHERE (\"u\" <= CAST('2024-01-02 00:00:00' AS timestamp) OR \"u\" IS NULL)"
        );
        let later = CursorBounds {
            lower: Some(("5".into(), false)),
            upper: Some("9".into()),
        };
        assert_eq!(
            where_clause(&q("id"), &later, None, |l| l.to_string()),
            " WHERE \"id\" > 5 AND \"id\" <= 9"
        );
        assert_eq!(
            where_clause(
                &q("id"),
                &later,
                Some((&Lag::Number("2".into()), Dialect::Postgres)),
                |l| l.to_string()
            ),
            " WHERE \"id\" >= 5 - 2 AND \"id\" <= 9"
        );
        let empty = CursorBounds {
            lower: Some(("5".into(), false)),
            upper: None,
        };
        assert_eq!(
            where_clause(&q("id"), &empty, None, |l| l.to_string()),
            " WHERE \"id\" > 5 AND FALSE"
        );
    }

    #[test]
    fn lag_intervals_in_each_dialect() {
        let lag = parse_lag(&toml::Value::String("10 minutes".into())).expect("lag");
        assert_eq!(
            lag.subtract_from("x", Dialect::Postgres),
            "x - INTERVAL '10 minutes'"
        );
        assert_eq!(
            lag.subtract_from("x", Dialect::Mysql),
            "x - INTERVAL 10 MINUTE"
        );
        assert_eq!(
            lag.subtract_from("x", Dialect::Sqlite),
            "COALESCE(datetime(x, '-10 minutes'), x)"
        );
        let week = parse_lag(&toml::Value::String("1 week".into())).expect("week");
        assert_eq!(
            week.subtract_from("x", Dialect::Sqlite),
            "COALESCE(datetime(x, '-7 days'), x)"
        );
        assert!(parse_lag(&toml::Value::String("5 mins".into())).is_ok());
        assert!(parse_lag(&toml::Value::String("5 fortnights".into())).is_err());
        assert!(parse_lag(&toml::Value::Boolean(true)).is_err());
    }

    #[test]
    fn decimals_parse_to_the_scale() {
        assert_eq!(parse_decimal("-12.345", 2), Some(-1234));
        assert_eq!(parse_decimal("7", 3), Some(7000));
        assert_eq!(parse_decimal("x", 1), None);
    }

    #[test]
    fn relation_quotes_tables_and_wraps_queries() {
        let mut c: DatabaseSourceConfig =
            toml::from_str("table = \"public.orders\"").expect("config");
        assert_eq!(c.relation(q), "\"public\".\"orders\"");
        c.table = None;
        c.query = Some("select 1;".into());
        assert_eq!(c.relation(q), "(select 1) AS flowline_q");
    }
}
