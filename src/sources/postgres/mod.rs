//! `kind = "postgres"`: tables and queries streamed with the binary
//! `COPY (query) TO STDOUT` protocol straight into Arrow builders, optionally
//! split into ranges of an integer key read in parallel, and incremental on
//! a cursor column.

use tokio_postgres::Client;

use super::database::{DatabaseSourceConfig, Dialect, TableInfo, last_batch};
use super::{BatchSender, Source, SourceContext};
use crate::clients::postgres::{Column, Decode, connect, copy_range, describe, pg_err, quote};
use crate::core::error::{Error, Result};
use crate::core::{Mode, Workspace};
use crate::sources::SourceConnector;

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
            task.await.map_err(Error::task("postgres reader"))??;
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

/// `[source] kind = "postgres"`: the keys every database source has.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct PostgresSourceConfig(pub DatabaseSourceConfig);

impl SourceConnector for PostgresSourceConfig {
    fn kind() -> &'static str {
        "postgres"
    }

    fn mode() -> Mode {
        Mode::Batch
    }

    fn summary() -> &'static str {
        "A Postgres table or query, over binary COPY"
    }

    fn origin(&self) -> Option<super::Origin> {
        self.0.origin("postgres")
    }

    fn schemes() -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    fn test_connection(
        _name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = workspace;
        Box::pin(async move { server_version(&url).await })
    }

    fn discover(
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<Vec<TableInfo>>> {
        let _ = workspace;
        Box::pin(async move { discover(&url).await })
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
        Ok(Box::new(PostgresSource::new(self.0.clone(), url)))
    }
}
