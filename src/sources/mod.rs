//! Sources: where data comes from. Each kind lives in its own module, its
//! `[source]` config type implements [`SourceConnector`], and [`connectors`]
//! is the one explicit list of kinds. Nothing else in the tree names a kind.
//!
//! The contract every source keeps:
//! - it sends a stream of Arrow batches, bounded by `batch_size` rows, and
//!   never buffers a whole table or file;
//! - a batch may carry a checkpoint: the source's complete progress state
//!   once that batch (and every batch before it) is committed. The engine
//!   commits it atomically with the data, and hands it back on the next run;
//! - a row it cannot convert becomes a [`DeadLetter`] on the batch, never an
//!   error that stops the run.
//! - it may offer a whole file for the warehouse to read itself instead
//!   ([`crate::core::scan`]), and reads the file as batches when the offer
//!   is declined.
//!
//! A stream source keeps the [`stream::StreamSource`] contract instead:
//! messages are acknowledged only after the commit that holds them.

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

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeValue, ValueDeserializer};

use crate::core::diagnostic::SpannedError;
use crate::core::error::{Error, Result};
use crate::core::schema::{SchemaFn, merge_keys, object_schema, with_kind};
use crate::core::{Mode, Workspace};

pub use crate::core::{BatchSender, ChildTable, DeadLetter, SourceBatch};
pub use database::TableInfo;

/// Every source connector, in the order `flowline` lists them. Adding a
/// source is one module, one line here, its docs page and its tests.
pub fn connectors() -> Vec<Registration> {
    vec![
        Registration::of::<file::FileSourceConfig>(),
        Registration::of::<postgres::PostgresSourceConfig>(),
        Registration::of::<mysql::MysqlSourceConfig>(),
        Registration::of::<sqlite::SqliteSourceConfig>(),
        Registration::of::<http::HttpSourceConfig>(),
        Registration::of::<scrape::ScrapeSourceConfig>(),
        Registration::of::<rabbitmq::RabbitMqSourceConfig>(),
        Registration::of::<kafka::KafkaSourceConfig>(),
        Registration::of::<nats::NatsSourceConfig>(),
        Registration::of::<mqtt::MqttSourceConfig>(),
        Registration::of::<webhook::WebhookSourceConfig>(),
    ]
}

/// What a source connector is. Implemented by the connector's `[source]`
/// config type, which serde reads (with `deny_unknown_fields`) from the
/// pipeline file, so errors keep their file, line and column. The same type
/// derives `JsonSchema`: its doc comments are the `[source]` reference.
///
/// A batch connector overrides [`SourceConnector::batch_reader`], a stream
/// connector [`SourceConnector::stream_reader`]; [`Registration`] calls the
/// one its [`SourceConnector::mode`] names.
#[async_trait::async_trait]
pub trait SourceConnector: fmt::Debug + Send + Sync + 'static {
    /// The `kind` that selects this connector.
    fn kind() -> &'static str
    where
        Self: Sized;

    /// Whether it is read in runs (`batch`) or continuously (`stream`).
    fn mode() -> Mode
    where
        Self: Sized;

    /// What it reads, in a few words, for listings and error messages.
    fn summary() -> &'static str
    where
        Self: Sized;

    /// Reads the connector's config from its `[source]` table (`kind`
    /// removed). The default deserializes `Self`; a connector built of
    /// shared pieces reads each (see [`stream::read_config`]).
    fn parse(table: Spanned<DeValue<'_>>) -> Result<Self, SpannedError>
    where
        Self: Sized + DeserializeOwned,
    {
        Ok(Self::deserialize(ValueDeserializer::from(table))?)
    }

    /// The schemas of the shared pieces [`SourceConnector::parse`] reads
    /// besides `Self` (e.g. [`stream::Endpoint`], [`stream::PayloadOptions`]):
    /// their keys are merged into the `[source]` schema of this kind. The
    /// default, for a connector that reads only `Self`, is none.
    fn shared_schemas() -> Vec<SchemaFn>
    where
        Self: Sized,
    {
        Vec::new()
    }

    /// URL schemes of the `[connections.<name>]` it reads, for
    /// `flowline connections test` and `flowline discover`.
    fn schemes() -> &'static [&'static str]
    where
        Self: Sized,
    {
        &[]
    }

    /// Connects to `url`, the URL of `[connections.<name>]` (its other
    /// options are in `workspace`), and says what answered (a server's
    /// version), or precisely why nothing did.
    fn test_connection(
        name: String,
        url: String,
        workspace: Workspace,
    ) -> BoxFuture<'static, Result<String>>
    where
        Self: Sized,
    {
        let _ = (name, url, workspace);
        Box::pin(async move {
            Err(Error::Config(format!(
                "kind = \"{}\" connections cannot be tested yet",
                Self::kind()
            )))
        })
    }

    /// Lists the tables behind `url` (databases only).
    fn discover(url: String, workspace: Workspace) -> BoxFuture<'static, Result<Vec<TableInfo>>>
    where
        Self: Sized,
    {
        let _ = (url, workspace);
        Box::pin(async move {
            Err(Error::Config(format!(
                "kind = \"{}\" has no tables to discover",
                Self::kind()
            )))
        })
    }

    /// Checks the config against the project without connecting: named
    /// connections exist, keys that depend on each other agree, paths
    /// exist. Returns warnings.
    fn validate(&self, workspace: &Workspace, pipeline: &str) -> Result<Vec<String>>;

    /// The reader of one batch run.
    fn batch_reader(&self, workspace: &Workspace) -> Result<Box<dyn Source>> {
        let _ = workspace;
        Err(Error::Config(
            "this source is read continuously: run it with `flowline stream`".into(),
        ))
    }

    /// Connects a stream source for the pipeline named `pipeline`; `state`
    /// is what its last committed batch saved (see
    /// [`stream::StreamSource::checkpoint`]).
    async fn stream_reader(
        &self,
        workspace: &Workspace,
        pipeline: &str,
        state: Option<&serde_json::Value>,
    ) -> Result<Box<dyn stream::StreamSource>> {
        let _ = (workspace, pipeline, state);
        Err(Error::Config(
            "this source is read in batches: run it with `flowline run`".into(),
        ))
    }

    /// How a stream source's payloads are read; `None` for batch sources.
    fn payload_options(&self) -> Option<stream::PayloadOptions> {
        None
    }

    /// The tables this source fills besides the pipeline's own (child
    /// resources, unnested arrays): each lands in `<table>__<name>`.
    fn child_tables(&self) -> Vec<ChildTable> {
        Vec::new()
    }

    /// What it reads, named for column lineage; `None` (the default) for
    /// a source whose columns lineage does not follow.
    fn origin(&self) -> Option<Origin> {
        None
    }
}

/// What a source reads, as column lineage names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// Its name: `shop:public.orders` (connection and table),
    /// `data/orders/*.csv`, `https://api.example.com/items`.
    pub name: String,
    /// The query it runs, when it runs one, with the dialect it is
    /// written in (`postgres`, `mysql`, `sqlite`): its columns are
    /// followed through it to the tables it reads.
    pub query: Option<(String, &'static str)>,
}

/// Parses a `[source]` table into connector `T`.
type Parse = for<'a> fn(Spanned<DeValue<'a>>) -> Result<Arc<dyn SourceConnector>, SpannedError>;
/// Tests a named connection and its URL.
type TestConnection = fn(String, String, Workspace) -> BoxFuture<'static, Result<String>>;
/// Lists the tables behind a connection URL.
type Discover = fn(String, Workspace) -> BoxFuture<'static, Result<Vec<TableInfo>>>;

/// One entry of [`connectors`]: a connector's identity and how to read its
/// config, taken from its [`SourceConnector`] implementation.
#[derive(Clone, Copy)]
pub struct Registration {
    /// The `kind` that selects it.
    pub kind: &'static str,
    /// Batch or stream.
    pub mode: Mode,
    /// What it reads.
    pub summary: &'static str,
    /// URL schemes of its connections.
    pub schemes: &'static [&'static str],
    parse: Parse,
    schema: SchemaFn,
    test: TestConnection,
    discover: Discover,
}

impl Registration {
    /// The registration of connector `T`.
    pub fn of<T: SourceConnector + DeserializeOwned + JsonSchema>() -> Self {
        fn parse<T: SourceConnector + DeserializeOwned>(
            config: Spanned<DeValue<'_>>,
        ) -> Result<Arc<dyn SourceConnector>, SpannedError> {
            Ok(Arc::new(T::parse(config)?))
        }
        fn schema<T: SourceConnector + JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
            let mut schema = object_schema::<T>(generator);
            for piece in T::shared_schemas() {
                merge_keys(generator, &mut schema, piece);
            }
            schema
        }
        Registration {
            kind: T::kind(),
            mode: T::mode(),
            summary: T::summary(),
            schemes: T::schemes(),
            parse: parse::<T>,
            schema: schema::<T>,
            test: T::test_connection,
            discover: T::discover,
        }
    }

    /// The JSON Schema of a `[source]` of this kind: `kind`, the
    /// connector's own keys and those of the shared pieces it reads.
    pub fn schema(&self, generator: &mut SchemaGenerator) -> Schema {
        let mut schema = (self.schema)(generator);
        with_kind(&mut schema, self.kind, self.summary, false);
        schema
    }

    /// Connects to `url`, the URL of `[connections.<name>]`, and says what
    /// answered.
    pub async fn test_connection(
        &self,
        name: &str,
        url: &str,
        workspace: &Workspace,
    ) -> Result<String> {
        (self.test)(name.to_string(), url.to_string(), workspace.clone()).await
    }

    /// Lists the tables behind `url`.
    pub async fn discover(&self, url: &str, workspace: &Workspace) -> Result<Vec<TableInfo>> {
        (self.discover)(url.to_string(), workspace.clone()).await
    }
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("kind", &self.kind)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// The connector of `kind`, if there is one.
pub fn connector(kind: &str) -> Option<Registration> {
    connectors().into_iter().find(|c| c.kind == kind)
}

/// The connector that reads connections of `url`'s scheme, or an error
/// naming the schemes flowline knows.
pub fn connector_for_url(url: &str) -> Result<Registration> {
    let scheme = crate::core::connections::scheme(url);
    let all = connectors();
    if let Some(found) = all.iter().find(|c| c.schemes.contains(&scheme.as_str())) {
        return Ok(*found);
    }
    let known: Vec<String> = all
        .iter()
        .flat_map(|c| c.schemes.iter().map(|s| format!("{s}://")))
        .collect();
    Err(Error::Config(format!(
        "cannot tell the kind of connection from the URL scheme {scheme:?} (known: {})",
        known.join(", ")
    )))
}

/// The kinds of a mode, for messages.
pub fn kinds(mode: Option<Mode>) -> Vec<&'static str> {
    connectors()
        .into_iter()
        .filter(|c| mode.is_none_or(|m| c.mode == m))
        .map(|c| c.kind)
        .collect()
}

/// `a`, `b` as serde lists expected names.
fn quoted(names: &[&str]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `[source]`: the connector `kind` chose, with its config.
#[derive(Debug, Clone)]
pub struct SourceConfig {
    registration: Registration,
    connector: Arc<dyn SourceConnector>,
}

impl JsonSchema for SourceConfig {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "SourceConfig".into()
    }

    /// One of the registered kinds, each an object with its `kind`.
    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let variants: Vec<serde_json::Value> = connectors()
            .iter()
            .map(|c| c.schema(generator).to_value())
            .collect();
        schemars::json_schema!({
            "description": "`[source]`: where the data comes from; `kind` picks the connector.",
            "type": "object",
            "required": ["kind"],
            "properties": { "kind": { "enum": kinds(None) } },
            "oneOf": variants,
        })
    }
}

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
                    quoted(&kinds(None))
                ),
                span: Some(span),
            });
        };
        let kind_span = kind.span();
        let Some(name) = kind.get_ref().as_str() else {
            return Err(SpannedError {
                message: "`kind` must be a string".into(),
                span: Some(kind_span),
            });
        };
        let Some(registration) = connector(name) else {
            return Err(SpannedError {
                message: format!(
                    "unknown variant `{name}`, expected one of {}",
                    quoted(&kinds(None))
                ),
                span: Some(kind_span),
            });
        };
        let connector = (registration.parse)(Spanned::new(span, DeValue::Table(table)))?;
        Ok(SourceConfig {
            registration,
            connector,
        })
    }

    /// The `kind` as written in the config.
    pub fn kind(&self) -> &'static str {
        self.registration.kind
    }

    /// Batch or stream.
    pub fn mode(&self) -> Mode {
        self.registration.mode
    }

    /// Whether this is a continuous source, run by `flowline stream`.
    pub fn is_stream(&self) -> bool {
        self.mode() == Mode::Stream
    }

    /// The connector's config.
    pub fn connector(&self) -> &dyn SourceConnector {
        self.connector.as_ref()
    }

    /// How a stream source's payloads are read; `None` for batch sources.
    pub fn payload_options(&self) -> Option<stream::PayloadOptions> {
        self.connector.payload_options()
    }

    /// What it reads, named for column lineage.
    pub fn origin(&self) -> Option<Origin> {
        self.connector.origin()
    }

    /// The tables this source fills besides the pipeline's own.
    pub fn child_tables(&self) -> Vec<ChildTable> {
        self.connector.child_tables()
    }

    /// Checks the config without connecting; returns warnings.
    pub fn validate(&self, workspace: &Workspace, pipeline: &str) -> Result<Vec<String>> {
        self.connector.validate(workspace, pipeline)
    }

    /// Builds the reader of one batch run.
    pub fn build(&self, workspace: &Workspace) -> Result<Box<dyn Source>> {
        if self.is_stream() {
            return Err(Error::Config(format!(
                "kind = \"{}\" is a stream source: run it with `flowline stream`",
                self.kind()
            )));
        }
        self.connector.batch_reader(workspace)
    }

    /// Connects a stream source for the pipeline named `pipeline`.
    pub async fn start_stream(
        &self,
        workspace: &Workspace,
        pipeline: &str,
        state: Option<&serde_json::Value>,
    ) -> Result<Box<dyn stream::StreamSource>> {
        if !self.is_stream() {
            return Err(Error::Config(format!(
                "kind = \"{}\" is read in batches: run it with `flowline run`",
                self.kind()
            )));
        }
        self.connector
            .stream_reader(workspace, pipeline, state)
            .await
    }
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
    /// Whether the loader may take whole files for the warehouse to read
    /// itself (see [`crate::core::scan`]): only then is offering one worth
    /// the source's while.
    pub takes_files: bool,
}

impl SourceContext {
    /// The context `flowline validate` checks a source in: no saved state.
    pub fn for_validation(workspace: &Workspace, pipeline: &str) -> Self {
        SourceContext {
            pipeline: pipeline.to_string(),
            project_dir: workspace.dir.clone(),
            state: None,
            takes_files: false,
        }
    }
}

/// A batch source's reader.
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

/// [`SourceConnector::validate`] of a batch connector: build its reader
/// (which connects to nothing) and check it.
pub fn validate_batch(
    connector: &dyn SourceConnector,
    workspace: &Workspace,
    pipeline: &str,
) -> Result<Vec<String>> {
    connector
        .batch_reader(workspace)?
        .check(&SourceContext::for_validation(workspace, pipeline))
}

/// A connector's config from TOML text, as a pipeline file's `[source]`
/// would give it (for tests).
#[cfg(test)]
pub fn parse_for_test<T: SourceConnector + DeserializeOwned>(
    text: &str,
) -> std::result::Result<T, SpannedError> {
    let doc = toml::de::DeTable::parse(text).map_err(SpannedError::from)?;
    let span = doc.span();
    T::parse(Spanned::new(span, DeValue::Table(doc.into_inner())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_is_listed_once_and_every_scheme_has_one_connector() {
        let all = connectors();
        let mut kinds: Vec<&str> = all.iter().map(|c| c.kind).collect();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), all.len(), "a kind is listed twice");
        let mut schemes: Vec<&str> = all.iter().flat_map(|c| c.schemes.iter().copied()).collect();
        let before = schemes.len();
        schemes.sort_unstable();
        schemes.dedup();
        assert_eq!(schemes.len(), before, "a scheme belongs to two connectors");
    }

    #[test]
    fn an_unknown_kind_names_the_known_ones() {
        let doc = toml::de::DeTable::parse("kind = \"ftp\"\n").expect("toml");
        let span = doc.span();
        let value = Spanned::new(span, DeValue::Table(doc.into_inner()));
        let e = SourceConfig::from_toml(value).expect_err("unknown");
        assert!(e.message.contains("`rabbitmq`"), "{}", e.message);
        assert_eq!(e.span, Some(7..12));
    }
}
