//! `sensor = {...}`: waits until a condition holds. Each poke is a short
//! attempt; between pokes the step waits in the queue without a worker
//! slot. Conditions: `file` (a glob matches a file), `sql` (a query returns
//! a row), `http` (a URL answers 2xx), `queue` (a RabbitMQ queue holds
//! messages), `table_fresh` (a table holds data up to the interval's end).

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::{Outcome, Poke, StepAction, StepContext, StepKind, check_template};
use crate::jobs::ProjectRefs;
use crate::jobs::schedule::parse_duration;

/// `sensor = { file = "...", poke = "30s", timeout = "6h" }`: one
/// condition and how to wait for it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorStep {
    /// A glob, relative to the project, a template: met when it matches a file.
    #[serde(default)]
    pub file: Option<String>,
    /// A query in the warehouse, a template: met when it returns a row.
    #[serde(default)]
    pub sql: Option<String>,
    /// A URL, a template: met when a GET answers 2xx.
    #[serde(default)]
    pub http: Option<String>,
    /// A RabbitMQ queue: met when it holds messages. Needs `connection`.
    #[serde(default)]
    pub queue: Option<String>,
    /// The `[connections.<name>]` of `queue` (an `amqp://` URL).
    #[serde(default)]
    pub connection: Option<String>,
    /// A warehouse table: met when `max(column)` reaches the data
    /// interval's end, or lies within `max_age` of now when that is set.
    #[serde(default)]
    pub table_fresh: Option<String>,
    /// The time column of `table_fresh`.
    #[serde(default)]
    pub column: Option<String>,
    /// For `table_fresh`: how old its newest row may be (`"1h"`).
    #[serde(default)]
    pub max_age: Option<String>,
    /// Time between checks. Default `30s`.
    #[serde(default = "thirty_seconds")]
    pub poke: String,
    /// Time from the first check until the step fails. Default `24h`.
    #[serde(default = "a_day")]
    pub timeout: String,
}

fn thirty_seconds() -> String {
    "30s".into()
}

fn a_day() -> String {
    "24h".into()
}

impl StepKind for SensorStep {
    const KEY: &'static str = "sensor";
    const SUMMARY: &'static str = "wait for a file, a row, a URL, queued messages or fresh data";
}

/// The one condition a sensor has.
enum Condition<'a> {
    File(&'a str),
    Sql(&'a str),
    Http(&'a str),
    Queue(&'a str),
    TableFresh(&'a str),
}

impl SensorStep {
    fn condition(&self) -> Result<Condition<'_>, String> {
        let set: Vec<Condition<'_>> = [
            self.file.as_deref().map(Condition::File),
            self.sql.as_deref().map(Condition::Sql),
            self.http.as_deref().map(Condition::Http),
            self.queue.as_deref().map(Condition::Queue),
            self.table_fresh.as_deref().map(Condition::TableFresh),
        ]
        .into_iter()
        .flatten()
        .collect();
        match set.len() {
            1 => set.into_iter().next().ok_or_else(String::new),
            0 => Err("sensor: set one of `file`, `sql`, `http`, `queue`, `table_fresh`".into()),
            _ => Err(
                "sensor: set only one of `file`, `sql`, `http`, `queue`, `table_fresh`; \
                      use one step per condition"
                    .into(),
            ),
        }
    }

    fn durations(&self) -> Result<(Duration, Duration), String> {
        let poke = parse_duration(&self.poke).map_err(|e| format!("sensor poke: {e}"))?;
        let timeout = parse_duration(&self.timeout).map_err(|e| format!("sensor timeout: {e}"))?;
        Ok((poke, timeout))
    }

    async fn file_exists(ctx: &StepContext, pattern: &str) -> Result<bool, String> {
        let pattern = ctx.render(pattern)?;
        let full = ctx.dir.join(&pattern);
        let found = glob::glob(&full.to_string_lossy())
            .map_err(|e| format!("sensor file \"{pattern}\": {e}"))?
            .flatten()
            .next();
        if let Some(path) = &found {
            ctx.log.flowline(format!("found {}", path.display()));
        }
        Ok(found.is_some())
    }

    async fn query_returns_a_row(ctx: &StepContext, sql: &str) -> Result<bool, String> {
        let sql = ctx.render(sql)?;
        Ok(ctx.host.query(&sql).await? > 0)
    }

    async fn url_answers(ctx: &StepContext, url: &str) -> Result<bool, String> {
        let (status, _) = super::http::send(
            ctx,
            "GET",
            url,
            &BTreeMap::new(),
            None,
            Duration::from_secs(30),
        )
        .await?;
        ctx.log.flowline(format!("answered {status}"));
        Ok(status.is_success())
    }

    async fn queue_holds_messages(&self, ctx: &StepContext, queue: &str) -> Result<bool, String> {
        let name = self
            .connection
            .as_deref()
            .ok_or("sensor queue: set connection = \"NAME\" of a [connections.NAME] amqp:// URL")?;
        let waiting = ctx.host.queue_depth(name, &ctx.render(queue)?).await?;
        ctx.log
            .flowline(format!("{waiting} messages waiting in {queue}"));
        Ok(waiting > 0)
    }

    async fn table_is_fresh(&self, ctx: &StepContext, table: &str) -> Result<bool, String> {
        let column = self
            .column
            .as_deref()
            .ok_or("sensor table_fresh: set column = \"...\", the table's time column")?;
        let threshold = match &self.max_age {
            Some(age) => {
                let age = parse_duration(age).map_err(|e| format!("sensor max_age: {e}"))?;
                (chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or_default())
                    .to_rfc3339()
            }
            None => ctx.vars.data_interval_end.clone(),
        };
        let table = crate::core::TableName::parse(table).map_err(|e| e.to_string())?;
        let sql = format!(
            "SELECT 1 FROM \"{}\".\"{}\" HAVING max(\"{}\") >= CAST('{}' AS TIMESTAMPTZ)",
            table.schema.replace('"', "\"\""),
            table.table.replace('"', "\"\""),
            column.replace('"', "\"\""),
            threshold
        );
        let fresh = Self::query_returns_a_row(ctx, &sql).await?;
        if !fresh {
            ctx.log.flowline(format!(
                "{table}: no rows with {column} at or after {threshold} yet"
            ));
        }
        Ok(fresh)
    }
}

#[async_trait::async_trait]
impl StepAction for SensorStep {
    fn kind(&self) -> &'static str {
        Self::KEY
    }

    fn describe(&self) -> String {
        match self.condition() {
            Ok(Condition::File(p)) => format!("sensor file {p}"),
            Ok(Condition::Sql(q)) => format!("sensor sql {q}"),
            Ok(Condition::Http(u)) => format!("sensor http {u}"),
            Ok(Condition::Queue(q)) => format!("sensor queue {q}"),
            Ok(Condition::TableFresh(t)) => format!("sensor table_fresh {t}"),
            Err(_) => "sensor".into(),
        }
    }

    fn check(&self, project: &ProjectRefs) -> Result<(), String> {
        self.durations()?;
        match self.condition()? {
            Condition::File(t) | Condition::Sql(t) | Condition::Http(t) => {
                check_template(Self::KEY, t)
            }
            Condition::Queue(_) => {
                let name = self.connection.as_deref().ok_or(
                    "sensor queue: set connection = \"NAME\" of a [connections.NAME] amqp:// URL",
                )?;
                project.expect("connection", name)
            }
            Condition::TableFresh(table) => {
                crate::core::TableName::parse(table).map_err(|e| e.to_string())?;
                if self.column.is_none() {
                    return Err(
                        "sensor table_fresh: set column = \"...\", the table's time column".into(),
                    );
                }
                Ok(())
            }
        }
    }

    fn poke(&self) -> Option<Poke> {
        let (every, timeout) = self.durations().ok()?;
        Some(Poke {
            every,
            timeout: Some(timeout),
        })
    }

    async fn run(&self, ctx: &StepContext) -> Result<Outcome, String> {
        let met = match self.condition()? {
            Condition::File(pattern) => Self::file_exists(ctx, pattern).await?,
            Condition::Sql(sql) => Self::query_returns_a_row(ctx, sql).await?,
            Condition::Http(url) => Self::url_answers(ctx, url).await?,
            Condition::Queue(queue) => self.queue_holds_messages(ctx, queue).await?,
            Condition::TableFresh(table) => self.table_is_fresh(ctx, table).await?,
        };
        Ok(if met { Outcome::Done } else { Outcome::NotYet })
    }
}
