//! What the stream sources (RabbitMQ, NATS JetStream, MQTT, webhooks)
//! share: the [`StreamSource`] contract, the message they hand over, and
//! decoding message payloads into Arrow batches.
//!
//! The contract: a stream source hands messages to the stream runner one
//! at a time, each with a sequence number; once the runner has committed
//! the batch holding messages up to sequence `n`, it calls `ack(n)` and the
//! source acknowledges them to the broker. A crash before that commit means
//! the broker delivers them again, so nothing is lost. Sources reconnect by
//! themselves, with backoff, and say so in the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::DataType;
use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::DeValue;

use super::DeadLetter;
use crate::core::Workspace;
use crate::core::diagnostic::SpannedError;
use crate::core::error::{Error, Result};
use crate::core::tables::SplitTable;
use crate::data::json::JsonDecoder;
use crate::data::types::parse_type;

/// One message from a broker (or one webhook request).
#[derive(Debug, Clone)]
pub struct Message {
    /// The payload as received.
    pub payload: Bytes,
    /// Where it came from, for dead letters (`rabbitmq:clicks#17`).
    pub origin: Arc<str>,
    /// When it was published, in milliseconds since the epoch, when the
    /// broker (or publisher) says.
    pub published_ms: Option<i64>,
    /// The source's sequence number; `ack(seq)` acknowledges this message
    /// and every one before it.
    pub seq: u64,
}

/// A continuous source.
#[async_trait::async_trait]
pub trait StreamSource: Send {
    /// Waits for the next message. Cancel-safe: the runner races it against
    /// its batch deadline. `None` when the source has ended for good.
    async fn recv(&mut self) -> Result<Option<Message>>;

    /// Acknowledges every message up to and including `seq`: the batch
    /// holding them is committed.
    async fn ack(&mut self, seq: u64) -> Result<()>;

    /// The progress to commit with the batch holding every message up to
    /// and including `seq`, as the pipeline's state; the runner commits it
    /// in the same transaction as the rows, before `ack(seq)`, and hands it
    /// back to `start_stream` on the next start. `None` for sources whose
    /// broker keeps the position (the runner then commits a message count).
    fn checkpoint(&self, seq: u64) -> Option<serde_json::Value> {
        let _ = seq;
        None
    }

    /// Finishes what is in flight (acknowledgements being sent) before the
    /// source is dropped.
    async fn close(&mut self) {}

    /// The consumer lag the broker reports (messages waiting), if it does.
    async fn lag(&mut self) -> Option<u64> {
        None
    }
}

/// How message payloads are read.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// A JSON object per message (an array of objects, or NDJSON lines, is
    /// several records).
    #[default]
    Json,
    /// The payload as text, in a column `value`.
    Text,
    /// One CSV line per message, in the columns `columns` names.
    Csv,
}

/// `connection` or `url`: where a stream source connects, the same two
/// keys for every broker.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Endpoint {
    /// A `[connections.<name>]` of flowline.toml whose `url` is the
    /// broker's (`amqp://user:pass@host:5672/vhost`, `kafka://host:9092`,
    /// `nats://host:4222`, `mqtt://host:1883`).
    #[serde(default)]
    pub connection: Option<String>,
    /// The broker URL inline (prefer `connection` with `${VAR}`).
    #[serde(default)]
    pub url: Option<String>,
}

impl Endpoint {
    /// The keys this piece reads.
    pub const KEYS: &'static [&'static str] = &["connection", "url"];

    /// The URL to connect to: inline, or the named connection's.
    pub fn resolve(&self, workspace: &Workspace) -> Result<String> {
        workspace
            .connections
            .resolve("[source]", self.url.as_ref(), self.connection.as_ref())
    }
}

/// `format`, `schema`, `columns`, `delimiter`: how a stream source reads
/// message payloads, the same keys for every stream source.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PayloadOptions {
    /// `json` (default): a JSON object per message (an array of objects, or
    /// NDJSON lines, is several records); `text`: the payload as text in a
    /// column `value`; `csv`: one CSV line per message.
    #[serde(default)]
    pub format: Format,
    /// Declared column types (`{ ts = "timestamp" }`); the others are inferred.
    #[serde(default)]
    pub schema: BTreeMap<String, String>,
    /// CSV: the column names, in order (required with `format = "csv"`).
    #[serde(default)]
    pub columns: Vec<String>,
    /// CSV: the separator, one ASCII character. Default `,`.
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
}

fn default_delimiter() -> char {
    ','
}

impl Default for PayloadOptions {
    fn default() -> Self {
        PayloadOptions {
            format: Format::default(),
            schema: BTreeMap::new(),
            columns: Vec::new(),
            delimiter: default_delimiter(),
        }
    }
}

/// The shared pieces a broker source's `[source]` holds, for its schema.
pub fn broker_schemas() -> Vec<crate::core::schema::SchemaFn> {
    use schemars::JsonSchema;
    vec![Endpoint::json_schema, PayloadOptions::json_schema]
}

/// [`super::SourceConnector::validate`] of a stream source: the broker
/// named (when it names one) resolves, and the payload options make sense.
pub fn validate(
    endpoint: Option<&Endpoint>,
    payload: &PayloadOptions,
    workspace: &Workspace,
) -> Result<Vec<String>> {
    if let Some(endpoint) = endpoint {
        endpoint.resolve(workspace)?;
    }
    payload.overrides()?;
    Ok(Vec::new())
}

/// Reads a stream source's `[source]` table: the [`Endpoint`] keys (when
/// the source has them), the [`PayloadOptions`] keys, and the rest into the
/// connector's own struct `T`.
pub fn read_config<T: DeserializeOwned>(
    value: Spanned<DeValue<'_>>,
    with_endpoint: bool,
) -> std::result::Result<(Endpoint, PayloadOptions, T), SpannedError> {
    let mut table = SplitTable::new(value, "[source]")?;
    let endpoint = if with_endpoint {
        table.take(Endpoint::KEYS)?
    } else {
        Endpoint::default()
    };
    let payload = table.take(PayloadOptions::KEYS)?;
    Ok((endpoint, payload, table.rest()?))
}

impl PayloadOptions {
    /// The keys this piece reads.
    pub const KEYS: &'static [&'static str] = &["format", "schema", "columns", "delimiter"];

    /// The options of `format`, `schema`, `columns` and `delimiter`.
    pub fn new(
        format: Format,
        schema: &BTreeMap<String, String>,
        columns: &[String],
        delimiter: char,
    ) -> Self {
        PayloadOptions {
            format,
            schema: schema.clone(),
            columns: columns.to_vec(),
            delimiter,
        }
    }

    /// CSV: the separator as the byte the CSV reader takes.
    pub fn delimiter_byte(&self) -> u8 {
        u8::try_from(self.delimiter).unwrap_or(b',')
    }

    /// Checks the options and turns declared types into Arrow types.
    pub fn overrides(&self) -> Result<HashMap<String, DataType>> {
        if self.format == Format::Csv && self.columns.is_empty() {
            return Err(Error::Config(
                "[source] format = \"csv\" needs columns = [\"name\", ...]".into(),
            ));
        }
        if !self.delimiter.is_ascii() {
            return Err(Error::Config(format!(
                "[source] delimiter must be one ASCII character, not {:?}",
                self.delimiter
            )));
        }
        self.schema
            .iter()
            .map(|(column, type_name)| {
                parse_type(type_name)
                    .map(|dt| (column.clone(), dt))
                    .map_err(|e| Error::Config(format!("[source] schema.{column}: {e}")))
            })
            .collect()
    }
}

/// Turns message payloads into batches: JSON straight into Arrow, with the
/// schema inferred and widened as messages arrive.
pub struct PayloadDecoder {
    options: PayloadOptions,
    decoder: JsonDecoder,
}

impl PayloadDecoder {
    /// A decoder for `options`.
    pub fn new(options: PayloadOptions) -> Result<Self> {
        let overrides = options.overrides()?;
        Ok(PayloadDecoder {
            options,
            decoder: JsonDecoder::new(overrides),
        })
    }

    /// Decodes `messages`; a payload that cannot be read is a dead letter
    /// with the reason and the payload.
    pub fn decode(&mut self, messages: &[Message]) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        let mut text = Vec::with_capacity(messages.iter().map(|m| m.payload.len() + 1).sum());
        let mut origins: Vec<(usize, usize)> = Vec::with_capacity(messages.len());
        let mut dead_letters = Vec::new();
        for (index, message) in messages.iter().enumerate() {
            match self.options.format {
                Format::Json => {
                    let mut part = 0;
                    for record in json_records(&message.payload) {
                        match record {
                            Ok(line) => {
                                text.extend_from_slice(line);
                                text.push(b'\n');
                                origins.push((index, part));
                                part += 1;
                            }
                            Err(reason) => dead_letters.push(letter(message, reason)),
                        }
                    }
                }
                Format::Text => match std::str::from_utf8(&message.payload) {
                    Ok(s) => {
                        let line = serde_json::json!({ "value": s }).to_string();
                        text.extend_from_slice(line.as_bytes());
                        text.push(b'\n');
                        origins.push((index, 0));
                    }
                    Err(e) => dead_letters.push(letter(message, format!("not UTF-8 text: {e}"))),
                },
                Format::Csv => match self.csv_record(&message.payload) {
                    Ok(line) => {
                        text.extend_from_slice(line.as_bytes());
                        text.push(b'\n');
                        origins.push((index, 0));
                    }
                    Err(reason) => dead_letters.push(letter(message, reason)),
                },
            }
        }
        let (batch, bad) = self.decoder.decode_ndjson(&text, origins.len(), &|i| {
            origins.get(i).map_or_else(String::new, |(m, part)| {
                if *part == 0 {
                    messages[*m].origin.to_string()
                } else {
                    format!("{}.{part}", messages[*m].origin)
                }
            })
        })?;
        dead_letters.extend(bad);
        Ok((batch, dead_letters))
    }

    /// One CSV line as a JSON object of the declared columns.
    fn csv_record(&self, payload: &[u8]) -> std::result::Result<String, String> {
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(self.options.delimiter_byte())
            .from_reader(payload);
        let record = reader
            .records()
            .next()
            .ok_or_else(|| "empty CSV line".to_string())?
            .map_err(|e| format!("invalid CSV: {e}"))?;
        if record.len() != self.options.columns.len() {
            return Err(format!(
                "{} fields, expected {} ({})",
                record.len(),
                self.options.columns.len(),
                self.options.columns.join(", ")
            ));
        }
        let object: serde_json::Map<String, serde_json::Value> = self
            .options
            .columns
            .iter()
            .zip(record.iter())
            .map(|(name, value)| {
                let value = if value.is_empty() {
                    serde_json::Value::Null
                } else {
                    serde_json::Value::String(value.to_string())
                };
                (name.clone(), value)
            })
            .collect();
        Ok(serde_json::Value::Object(object).to_string())
    }
}

fn letter(message: &Message, reason: String) -> DeadLetter {
    DeadLetter {
        origin: message.origin.to_string(),
        reason,
        raw: String::from_utf8_lossy(&message.payload).into_owned(),
    }
}

/// The JSON records of one payload: an object, an array of objects, or
/// objects on separate lines; each as its text, or why it is not a record.
fn json_records(payload: &[u8]) -> Vec<std::result::Result<&[u8], String>> {
    let trimmed = payload.trim_ascii();
    if trimmed.is_empty() {
        return vec![Err("empty message".into())];
    }
    if trimmed.starts_with(b"{") && !trimmed.contains(&b'\n') {
        // The common case, one object: checked when the batch is decoded
        // (a bad one is found and dead-lettered there), not parsed twice.
        return vec![Ok(trimmed)];
    }
    if trimmed.starts_with(b"[") {
        return match serde_json::from_slice::<Vec<&serde_json::value::RawValue>>(trimmed) {
            Ok(items) => items
                .into_iter()
                .map(|item| {
                    let text = item.get();
                    if text.starts_with('{') {
                        Ok(text.as_bytes())
                    } else {
                        Err(format!("expected a JSON object, found {text}"))
                    }
                })
                .collect(),
            Err(e) => vec![Err(format!("invalid JSON: {e}"))],
        };
    }
    trimmed
        .split(|b| *b == b'\n')
        .map(|line| line.trim_ascii())
        .filter(|line| !line.is_empty())
        .map(
            |line| match serde_json::from_slice::<serde::de::IgnoredAny>(line) {
                Ok(_) if line.starts_with(b"{") => Ok(line),
                Ok(_) => Err("expected a JSON object".to_string()),
                Err(e) => Err(format!("invalid JSON: {e}")),
            },
        )
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64, payload: &str) -> Message {
        Message {
            payload: Bytes::from(payload.to_string()),
            origin: Arc::from(format!("test#{seq}")),
            published_ms: None,
            seq,
        }
    }

    #[test]
    fn a_delimiter_must_be_one_ascii_character() {
        let options = PayloadOptions::new(Format::Csv, &BTreeMap::new(), &["a".into()], '€');
        let err = PayloadDecoder::new(options).err().expect("refused");
        assert!(err.to_string().contains("ASCII"), "{err}");
        let options = PayloadOptions::new(Format::Csv, &BTreeMap::new(), &["a".into()], ';');
        assert_eq!(options.delimiter_byte(), b';');
    }

    #[test]
    fn json_payloads_decode_and_bad_ones_become_dead_letters() {
        let mut decoder = PayloadDecoder::new(PayloadOptions::default()).expect("decoder");
        let messages = vec![
            message(1, r#"{"id": 1, "page": "/a"}"#),
            message(2, "{oops"),
            message(3, r#"[{"id": 2}, {"id": 3}]"#),
            message(4, "42"),
        ];
        let (batch, letters) = decoder.decode(&messages).expect("decodes");
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(letters.len(), 2);
        let oops = letters
            .iter()
            .find(|l| l.origin == "test#2")
            .expect("the bad JSON is a dead letter");
        assert!(oops.reason.contains("invalid JSON"), "{}", oops.reason);
        assert_eq!(oops.raw, "{oops");
    }

    #[test]
    fn text_and_csv_payloads() {
        let mut text = PayloadDecoder::new(PayloadOptions {
            format: Format::Text,
            ..Default::default()
        })
        .expect("decoder");
        let (batch, _) = text.decode(&[message(1, "hello")]).expect("decodes");
        assert_eq!(batch.schema().field(0).name(), "value");

        let mut csv = PayloadDecoder::new(PayloadOptions {
            format: Format::Csv,
            columns: vec!["id".into(), "page".into()],
            schema: [("id".to_string(), "bigint".to_string())].into(),
            delimiter: ',',
        })
        .expect("decoder");
        let (batch, letters) = csv
            .decode(&[message(1, "7,/home"), message(2, "1,2,3")])
            .expect("decodes");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.schema().field(0).data_type(), &DataType::Int64);
        assert!(letters[0].reason.contains("3 fields, expected 2"));
    }
}
