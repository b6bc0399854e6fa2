//! Sources: where data comes from. Each kind lives in its own module and
//! implements [`Source`]; [`SourceConfig`] is the one explicit list of kinds.
//!
//! The contract every source keeps:
//! - it sends a stream of Arrow batches, bounded by `batch_size` rows, and
//!   never buffers a whole table or file;
//! - a batch may carry a checkpoint: the source's complete progress state
//!   once that batch (and every batch before it) is committed. The engine
//!   commits it atomically with the data, and hands it back on the next run;
//! - a row it cannot convert becomes a [`DeadLetter`] on the batch, never an
//!   error that stops the run.

pub mod catalog;
pub mod database;
pub mod file;
pub mod http;
pub mod kafka;
pub mod mqtt;
pub mod mysql;
pub mod nats;
pub mod postgres;
pub mod rabbitmq;
pub mod scrape;
pub mod sqlite;
pub mod stream;
pub mod webhook;

use std::path::PathBuf;

use arrow::record_batch::RecordBatch;
use serde::Deserialize;
use tokio::sync::mpsc;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use crate::config::Project;
use crate::config::diagnostic::SpannedError;
use crate::error::Result;

/// The URL a source connects to: `url` inline, or the `url` of the
/// `[connections.<connection>]` it names.
pub fn connection_url(
    url: Option<&String>,
    connection: Option<&String>,
    connections: &std::collections::BTreeMap<String, crate::config::ConnectionConfig>,
) -> Result<String> {
    use crate::error::Error;
    match (url, connection) {
        (Some(url), None) => Ok(url.clone()),
        (None, Some(name)) => {
            let connection = connections.get(name).ok_or_else(|| {
                let known: Vec<&str> = connections.keys().map(String::as_str).collect();
                Error::Config(format!(
                    "[source] connection = \"{name}\": no [connections.{name}] in flowline.toml (known: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ))
            })?;
            connection
                .url
                .clone()
                .ok_or_else(|| Error::Config(format!("[connections.{name}] has no url")))
        }
        (Some(_), Some(_)) => Err(Error::Config(
            "[source] takes either connection or url, not both".into(),
        )),
        (None, None) => Err(Error::Config(
            "[source] needs connection = \"name\" (see [connections.name] in flowline.toml) or url"
                .into(),
        )),
    }
}

/// `a`, `b` as serde lists expected names.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[source]`: which connector reads the data, chosen by `kind`.
///
/// This enum and [`SourceConfig::from_toml`] are the registry of source
/// kinds: adding one is one module, one variant and one line there.
#[derive(Debug, Clone)]
pub enum SourceConfig {
    /// Local files: CSV, NDJSON, JSON documents, Parquet.
    File(file::FileSourceConfig),
    /// A Postgres table or query, over binary COPY.
    Postgres(database::DatabaseSourceConfig),
    /// A MySQL or MariaDB table or query.
    Mysql(database::DatabaseSourceConfig),
    /// A SQLite table or query.
    Sqlite(database::DatabaseSourceConfig),
    /// A REST API resource.
    Http(http::HttpSourceConfig),
    /// Rows scraped from HTML pages.
    Scrape(scrape::ScrapeSourceConfig),
    /// A RabbitMQ queue, consumed continuously.
    Rabbitmq(rabbitmq::RabbitMqSourceConfig),
    /// A Kafka topic, consumed continuously, its offsets kept in the pipeline's state.
    Kafka(kafka::KafkaSourceConfig),
    /// A NATS JetStream stream, consumed continuously by a durable pull consumer.
    Nats(nats::NatsSourceConfig),
    /// An MQTT topic filter, subscribed to continuously.
    Mqtt(mqtt::MqttSourceConfig),
    /// An HTTP endpoint that records are POSTed to, served continuously.
    Webhook(webhook::WebhookSourceConfig),
}

/// The kinds that are read continuously, by `flowline stream`.
pub const STREAM_KINDS: &[&str] = &["rabbitmq", "nats", "mqtt", "kafka", "webhook"];

/// Every `kind` a source can have.
pub const SOURCE_KINDS: &[&str] = &[
    "file", "postgres", "mysql", "sqlite", "http", "scrape", "rabbitmq", "kafka", "nats", "mqtt",
    "webhook",
];

impl SourceConfig {
    /// Reads a `[source]` table: its `kind`, then the rest as that kind's
    /// config struct, straight from the spanned document so that errors
    /// keep their exact position.
    pub fn from_toml(value: Spanned<DeValue<'_>>) -> Result<SourceConfig, SpannedError> {
        let span = value.span();
        let DeValue::Table(mut table) = value.into_inner() else {
            return Err(SpannedError {
                message: "[source] must be a table with a `kind`".into(),
                span: Some(span),
            });
        };
        let Some(kind) = table.remove("kind") else {
            return Err(SpannedError {
                message: format!(
                    "missing field `kind` in [source] (one of {})",
                    quoted(SOURCE_KINDS)
                ),
                span: Some(span),
            });
        };
        let kind_span = kind.span();
        let rest = ValueDeserializer::from(Spanned::new(span, DeValue::Table(table)));
        match kind.get_ref().as_str() {
            Some("file") => Ok(SourceConfig::File(file::FileSourceConfig::deserialize(
                rest,
            )?)),
            Some("postgres") => Ok(SourceConfig::Postgres(
                database::DatabaseSourceConfig::deserialize(rest)?,
            )),
            Some("mysql") => Ok(SourceConfig::Mysql(
                database::DatabaseSourceConfig::deserialize(rest)?,
            )),
            Some("sqlite") => Ok(SourceConfig::Sqlite(
                database::DatabaseSourceConfig::deserialize(rest)?,
            )),
            Some("http") => Ok(SourceConfig::Http(http::HttpSourceConfig::deserialize(
                rest,
            )?)),
            Some("rabbitmq") => Ok(SourceConfig::Rabbitmq(
                rabbitmq::RabbitMqSourceConfig::deserialize(rest)?,
            )),
            Some("kafka") => Ok(SourceConfig::Kafka(kafka::KafkaSourceConfig::deserialize(
                rest,
            )?)),
            Some("nats") => Ok(SourceConfig::Nats(nats::NatsSourceConfig::deserialize(
                rest,
            )?)),
            Some("mqtt") => Ok(SourceConfig::Mqtt(mqtt::MqttSourceConfig::deserialize(
                rest,
            )?)),
            Some("webhook") => Ok(SourceConfig::Webhook(
                webhook::WebhookSourceConfig::deserialize(rest)?,
            )),
            Some("scrape") => Ok(SourceConfig::Scrape(
                scrape::ScrapeSourceConfig::deserialize(rest)?,
            )),
            Some(other) => Err(SpannedError {
                message: format!(
                    "unknown variant `{other}`, expected one of {}",
                    quoted(SOURCE_KINDS)
                ),
                span: Some(kind_span),
            }),
            None => Err(SpannedError {
                message: "`kind` must be a string".into(),
                span: Some(kind_span),
            }),
        }
    }

    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        match self {
            SourceConfig::File(_) => "file",
            SourceConfig::Postgres(_) => "postgres",
            SourceConfig::Mysql(_) => "mysql",
            SourceConfig::Sqlite(_) => "sqlite",
            SourceConfig::Http(_) => "http",
            SourceConfig::Scrape(_) => "scrape",
            SourceConfig::Rabbitmq(_) => "rabbitmq",
            SourceConfig::Kafka(_) => "kafka",
            SourceConfig::Nats(_) => "nats",
            SourceConfig::Mqtt(_) => "mqtt",
            SourceConfig::Webhook(_) => "webhook",
        }
    }

    /// Whether this is a continuous source, run by `flowline stream`.
    pub fn is_stream(&self) -> bool {
        STREAM_KINDS.contains(&self.kind())
    }

    /// How a stream source's payloads are read; `None` for batch sources.
    pub fn payload_options(&self) -> Option<stream::PayloadOptions> {
        match self {
            SourceConfig::Rabbitmq(config) => Some(config.payload()),
            SourceConfig::Kafka(config) => Some(config.payload()),
            SourceConfig::Nats(config) => Some(config.payload()),
            SourceConfig::Mqtt(config) => Some(config.payload()),
            SourceConfig::Webhook(config) => Some(config.payload()),
            _ => None,
        }
    }

    /// Connects a stream source for the pipeline named `pipeline`; `state`
    /// is the state its last committed batch saved (see
    /// [`stream::StreamSource::checkpoint`]). Fails for batch sources.
    pub async fn start_stream(
        &self,
        project: &Project,
        pipeline: &str,
        state: Option<&serde_json::Value>,
    ) -> Result<Box<dyn stream::StreamSource>> {
        let connections = &project.settings.connections;
        let url = |url: &Option<String>, connection: &Option<String>| {
            connection_url(url.as_ref(), connection.as_ref(), connections)
        };
        match self {
            SourceConfig::Rabbitmq(config) => Ok(Box::new(
                rabbitmq::RabbitMqSource::start(
                    config.clone(),
                    url(&config.url, &config.connection)?,
                )
                .await?,
            )),
            SourceConfig::Kafka(config) => Ok(Box::new(
                kafka::KafkaSource::start(
                    config.clone(),
                    url(&config.url, &config.connection)?,
                    pipeline,
                    state,
                )
                .await?,
            )),
            SourceConfig::Nats(config) => Ok(Box::new(
                nats::NatsSource::start(config.clone(), url(&config.url, &config.connection)?)
                    .await?,
            )),
            SourceConfig::Mqtt(config) => Ok(Box::new(
                mqtt::MqttSource::start(
                    config.clone(),
                    url(&config.url, &config.connection)?,
                    &project.settings.project.name,
                    pipeline,
                )
                .await?,
            )),
            SourceConfig::Webhook(config) => Ok(Box::new(
                webhook::WebhookSource::start(config.clone(), pipeline).await?,
            )),
            other => Err(crate::error::Error::Config(format!(
                "kind = \"{}\" is read in batches: run it with `flowline run`",
                other.kind()
            ))),
        }
    }

    /// The tables this source fills besides the pipeline's own (child
    /// resources, unnested arrays): each lands in `<table>__<name>`.
    pub fn child_tables(&self) -> Vec<ChildTable> {
        match self {
            SourceConfig::Http(config) => config.child_tables(),
            _ => Vec::new(),
        }
    }

    /// Builds the source this config describes; `project` resolves named
    /// connections and relative paths.
    pub fn build(&self, project: &Project) -> Result<Box<dyn Source>> {
        let connections = &project.settings.connections;
        Ok(match self {
            SourceConfig::File(config) => Box::new(file::FileSource::new(config.clone())),
            SourceConfig::Postgres(config) => Box::new(postgres::PostgresSource::new(
                config.clone(),
                config.resolve_url(connections)?,
            )),
            SourceConfig::Mysql(config) => Box::new(mysql::MysqlSource::new(
                config.clone(),
                config.resolve_url(connections)?,
            )),
            SourceConfig::Sqlite(config) => Box::new(sqlite::SqliteSource::new(
                config.clone(),
                sqlite::database_path(&config.resolve_url(connections)?, &project.dir),
            )),
            SourceConfig::Http(config) => Box::new(http::HttpSource::new(config.clone())),
            SourceConfig::Scrape(config) => Box::new(scrape::ScrapeSource::new(config.clone())),
            SourceConfig::Rabbitmq(_)
            | SourceConfig::Kafka(_)
            | SourceConfig::Nats(_)
            | SourceConfig::Mqtt(_)
            | SourceConfig::Webhook(_) => {
                return Err(crate::error::Error::Config(format!(
                    "kind = \"{}\" is a stream source: run it with `flowline stream`",
                    self.kind()
                )));
            }
        })
    }
}

/// A table a source fills besides the pipeline's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildTable {
    /// Its name; the table is `<pipeline table>__<name>`.
    pub name: String,
    /// The columns identifying its rows, for `merge` pipelines; when empty,
    /// a merge pipeline appends to it.
    pub primary_key: Vec<String>,
}

/// What a source is given when a run starts.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The pipeline's name, for messages.
    pub pipeline: String,
    /// The project folder; relative paths resolve against it.
    pub project_dir: PathBuf,
    /// The state committed by the last successful run, `None` on a first
    /// run, a full refresh, or a `replace` load.
    pub state: Option<serde_json::Value>,
}

/// A row that could not be read, kept for the dead-letter table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Where the row came from, e.g. `data/orders.csv:17`.
    pub origin: String,
    /// Why it was rejected.
    pub reason: String,
    /// The raw row as read.
    pub raw: String,
}

/// One batch from a source, with its place in the source's progress.
#[derive(Debug, Clone)]
pub struct SourceBatch {
    /// The rows (may be empty when only a checkpoint or dead letters are sent).
    pub batch: RecordBatch,
    /// Bytes read from the source for this batch.
    pub bytes: u64,
    /// Rows rejected while reading this batch.
    pub dead_letters: Vec<DeadLetter>,
    /// The source's progress once this batch is committed, if this batch
    /// ends a unit that can be committed (a file, a page, a cursor value).
    pub checkpoint: Option<serde_json::Value>,
    /// The child table these rows go to (see [`SourceConfig::child_tables`]);
    /// `None` for the pipeline's own table.
    pub table: Option<String>,
}

impl SourceBatch {
    /// A batch with no rows, to carry a checkpoint.
    pub fn empty() -> Self {
        SourceBatch {
            batch: RecordBatch::new_empty(std::sync::Arc::new(arrow::datatypes::Schema::empty())),
            bytes: 0,
            dead_letters: Vec::new(),
            checkpoint: None,
            table: None,
        }
    }
}

/// The sending half of the bounded channel a source writes into. A full
/// channel makes the source wait: a slow destination slows the source down
/// instead of growing memory.
pub type BatchSender = mpsc::Sender<SourceBatch>;

/// A connector that reads data.
#[async_trait::async_trait]
pub trait Source: Send {
    /// Reads from where `ctx.state` left off and sends batches to `out` until
    /// the source is exhausted. Returns early, without error, when `out` is
    /// closed (the run stopped).
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()>;

    /// Checks the configuration against the world without reading data
    /// (paths exist, options make sense), for `flowline validate`.
    fn check(&self, ctx: &SourceContext) -> Result<Vec<String>>;
}
