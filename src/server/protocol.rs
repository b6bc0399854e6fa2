//! The bytes on the local control socket.
//!
//! Every message is one frame: a fixed 16-byte prefix, a JSON header and an
//! optional binary payload.
//!
//! ```text
//! "FLW1" | header length: u32 big-endian | payload length: u64 big-endian | header | payload
//! ```
//!
//! The header is a [`Request`] or a [`Response`]. Query results travel in the
//! payload as an Arrow IPC stream, so the client gets the very schema and
//! batches a local query returns and prints them the same way. A connection
//! carries one exchange after another: the client sends a request and reads
//! the answer (for `run`, one `run_record` frame per pipeline as it finishes,
//! then `run_done`) before it sends the next request. `FLW1` also names the
//! protocol's version: a flowline that speaks another one fails with a
//! message saying so instead of misreading the frames.

use std::io::{self, Read};

use arrow::datatypes::SchemaRef;
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Owner;
use crate::core::error::{Error, Result};
use crate::destinations::{QueryResult, SavedState};
use crate::state::{RunRecord, RunStatus, StreamStats};

/// The first bytes of every frame: the protocol and its version.
const MAGIC: [u8; 4] = *b"FLW1";

/// Magic, header length and payload length.
const PREFIX_LEN: usize = 16;

/// The largest header accepted. Headers are small JSON documents; anything
/// bigger is a corrupt or foreign frame.
const MAX_HEADER: u32 = 64 << 20;

/// The largest payload accepted (a query result as Arrow IPC).
const MAX_PAYLOAD: u64 = 1 << 40;

/// What a client asks the owning process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Who are you and what are you doing? Answered with [`Response::Pong`].
    Ping,
    /// Run SQL in the warehouse. Answered with [`Response::QueryResult`].
    Query {
        /// The statement(s), in the warehouse's dialect.
        sql: String,
    },
    /// Run statements in one transaction, all or none. Answered with
    /// [`Response::Executed`].
    Execute {
        /// The statements, in order, in the warehouse's dialect.
        statements: Vec<String>,
    },
    /// The state a pipeline last committed. Answered with [`Response::SavedState`].
    SavedState {
        /// The pipeline.
        pipeline: String,
    },
    /// Forget the state a pipeline committed. Answered with
    /// [`Response::StateReset`]; refused while the pipeline runs in the owner.
    ResetState {
        /// The pipeline.
        pipeline: String,
    },
    /// Whether a table exists. Answered with [`Response::TableExists`].
    TableExists {
        /// Its schema.
        schema: String,
        /// Its name.
        table: String,
    },
    /// Run pipelines one after another. Answered with one
    /// [`Response::RunRecord`] per pipeline, then [`Response::RunDone`].
    Run {
        /// The pipelines, by name.
        pipelines: Vec<String>,
        /// Ignore saved progress and rebuild the tables.
        full_refresh: bool,
    },
}

/// What the owning process answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "response", rename_all = "snake_case")]
pub enum Response {
    /// The owner describes itself.
    Pong(Owner),
    /// A query's result; the payload is an Arrow IPC stream.
    QueryResult,
    /// The statements of an `execute` were committed.
    Executed,
    /// A pipeline's committed state.
    SavedState {
        /// `None` when the pipeline has committed nothing.
        saved: Option<WireSavedState>,
    },
    /// A pipeline's committed state is gone.
    StateReset {
        /// Whether there was one.
        existed: bool,
    },
    /// Whether the table exists.
    TableExists {
        /// It does.
        exists: bool,
    },
    /// One pipeline of a `run` finished.
    RunRecord {
        /// How it went.
        record: WireRun,
    },
    /// Every pipeline of a `run` finished.
    RunDone,
    /// The request failed; the message is phrased for the user, secrets redacted.
    Error {
        /// What went wrong.
        message: String,
    },
}

/// [`SavedState`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireSavedState {
    /// The source's state.
    pub state: serde_json::Value,
    /// The run that committed it.
    pub run_id: String,
    /// When, as text.
    pub updated_at: String,
}

impl From<SavedState> for WireSavedState {
    fn from(saved: SavedState) -> Self {
        WireSavedState {
            state: saved.state,
            run_id: saved.run_id,
            updated_at: saved.updated_at,
        }
    }
}

impl From<WireSavedState> for SavedState {
    fn from(saved: WireSavedState) -> Self {
        SavedState {
            state: saved.state,
            run_id: saved.run_id,
            updated_at: saved.updated_at,
        }
    }
}

/// [`RunRecord`] on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WireRun {
    /// Unique, time-ordered id.
    pub run_id: String,
    /// The pipeline run.
    pub pipeline: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub ended_at: Option<DateTime<Utc>>,
    /// How it ended, as stored (`succeeded`, `failed`, ...).
    pub status: String,
    /// Rows loaded.
    pub rows: u64,
    /// Rows left out as duplicates.
    #[serde(default)]
    pub duplicates: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Rows sent to the dead-letter table.
    pub bad_rows: u64,
    /// Why it failed.
    pub error: Option<String>,
    /// A stream session's numbers.
    #[serde(default)]
    pub stream: Option<StreamStats>,
}

impl From<&RunRecord> for WireRun {
    fn from(run: &RunRecord) -> Self {
        WireRun {
            run_id: run.run_id.clone(),
            pipeline: run.pipeline.clone(),
            started_at: run.started_at,
            ended_at: run.ended_at,
            status: run.status.as_str().to_string(),
            rows: run.rows,
            duplicates: run.duplicates,
            bytes: run.bytes,
            bad_rows: run.bad_rows,
            error: run.error.clone(),
            stream: run.stream,
        }
    }
}

impl From<WireRun> for RunRecord {
    fn from(run: WireRun) -> Self {
        RunRecord {
            run_id: run.run_id,
            pipeline: run.pipeline,
            started_at: run.started_at,
            ended_at: run.ended_at,
            status: RunStatus::parse(&run.status),
            rows: run.rows,
            duplicates: run.duplicates,
            bytes: run.bytes,
            bad_rows: run.bad_rows,
            error: run.error,
            stream: run.stream,
        }
    }
}

/// One message as read from the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The JSON header.
    pub header: Vec<u8>,
    /// The payload; empty when there is none.
    pub payload: Vec<u8>,
}

impl Frame {
    /// The header as a request or response.
    pub fn decode<T: DeserializeOwned>(&self) -> io::Result<T> {
        serde_json::from_slice(&self.header).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unreadable message: {e}"),
            )
        })
    }
}

/// A frame's bytes: `header` as JSON, then `payload`.
pub fn encode<T: Serialize>(header: &T, payload: &[u8]) -> io::Result<Vec<u8>> {
    let json = serde_json::to_vec(header).map_err(io::Error::other)?;
    let header_len = u32::try_from(json.len())
        .ok()
        .filter(|len| *len <= MAX_HEADER)
        .ok_or_else(|| io::Error::other(format!("message header of {} bytes", json.len())))?;
    let payload_len = payload.len() as u64;
    if payload_len > MAX_PAYLOAD {
        return Err(io::Error::other(format!(
            "a result of {payload_len} bytes is more than the {MAX_PAYLOAD} bytes one message carries; \
             narrow the query"
        )));
    }
    let mut bytes = Vec::with_capacity(PREFIX_LEN + json.len() + payload.len());
    bytes.extend_from_slice(&MAGIC);
    bytes.extend_from_slice(&header_len.to_be_bytes());
    bytes.extend_from_slice(&payload_len.to_be_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(payload);
    Ok(bytes)
}

/// The header and payload lengths a prefix announces.
fn parse_prefix(prefix: &[u8; PREFIX_LEN]) -> io::Result<(u64, u64)> {
    let invalid = |message: String| io::Error::new(io::ErrorKind::InvalidData, message);
    if prefix[..4] != MAGIC {
        return Err(invalid(format!(
            "the other side does not speak flowline's local protocol {} (it sent {:?}); \
             is it another flowline version?",
            String::from_utf8_lossy(&MAGIC),
            String::from_utf8_lossy(&prefix[..4])
        )));
    }
    let mut header = [0u8; 4];
    header.copy_from_slice(&prefix[4..8]);
    let header = u32::from_be_bytes(header);
    let mut payload = [0u8; 8];
    payload.copy_from_slice(&prefix[8..16]);
    let payload = u64::from_be_bytes(payload);
    if header > MAX_HEADER || payload > MAX_PAYLOAD {
        return Err(invalid(format!(
            "a frame announces {header} header and {payload} payload bytes, more than allowed"
        )));
    }
    Ok((u64::from(header), payload))
}

/// Whether the bytes read so far end the stream cleanly (`Ok(false)`),
/// part-way through a prefix (an error), or not at all.
fn prefix_complete(filled: usize) -> io::Result<bool> {
    match filled {
        0 => Ok(false),
        PREFIX_LEN => Ok(true),
        _ => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a message",
        )),
    }
}

fn checked(bytes: Vec<u8>, expected: u64) -> io::Result<Vec<u8>> {
    if bytes.len() as u64 == expected {
        Ok(bytes)
    } else {
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the connection closed in the middle of a message",
        ))
    }
}

/// Reads one frame; `None` when the other side closed the connection
/// between frames.
pub fn read_frame<R: Read>(reader: &mut R) -> io::Result<Option<Frame>> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut filled = 0;
    while filled < PREFIX_LEN {
        match reader.read(&mut prefix[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    if !prefix_complete(filled)? {
        return Ok(None);
    }
    let (header_len, payload_len) = parse_prefix(&prefix)?;
    // Read through `take` so that memory grows with the bytes that arrive,
    // not with what a corrupt prefix claims.
    let mut header = Vec::new();
    reader.by_ref().take(header_len).read_to_end(&mut header)?;
    let mut payload = Vec::new();
    reader
        .by_ref()
        .take(payload_len)
        .read_to_end(&mut payload)?;
    Ok(Some(Frame {
        header: checked(header, header_len)?,
        payload: checked(payload, payload_len)?,
    }))
}

/// [`read_frame`] on an async reader.
pub async fn read_frame_async<R: AsyncRead + Unpin>(reader: &mut R) -> io::Result<Option<Frame>> {
    let mut prefix = [0u8; PREFIX_LEN];
    let mut filled = 0;
    while filled < PREFIX_LEN {
        match reader.read(&mut prefix[filled..]).await? {
            0 => break,
            n => filled += n,
        }
    }
    if !prefix_complete(filled)? {
        return Ok(None);
    }
    let (header_len, payload_len) = parse_prefix(&prefix)?;
    let mut header = Vec::new();
    (&mut *reader)
        .take(header_len)
        .read_to_end(&mut header)
        .await?;
    let mut payload = Vec::new();
    (&mut *reader)
        .take(payload_len)
        .read_to_end(&mut payload)
        .await?;
    Ok(Some(Frame {
        header: checked(header, header_len)?,
        payload: checked(payload, payload_len)?,
    }))
}

/// Writes one frame to an async writer.
pub async fn write_frame_async<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    header: &T,
    payload: &[u8],
) -> io::Result<()> {
    let bytes = encode(header, payload)?;
    writer.write_all(&bytes).await?;
    writer.flush().await
}

/// A query result as an Arrow IPC stream.
pub fn to_ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Result<Vec<u8>> {
    let mut writer = StreamWriter::try_new(Vec::new(), schema)
        .map_err(|e| Error::arrow("encoding the query result", e))?;
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::arrow("encoding the query result", e))?;
    }
    writer
        .into_inner()
        .map_err(|e| Error::arrow("encoding the query result", e))
}

/// A query result from an Arrow IPC stream.
pub fn from_ipc(bytes: &[u8]) -> Result<QueryResult> {
    let reader = StreamReader::try_new(io::Cursor::new(bytes), None)
        .map_err(|e| Error::arrow("decoding the query result", e))?;
    let schema = reader.schema();
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::arrow("decoding the query result", e))?;
    Ok(QueryResult { schema, batches })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Decimal128Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn frames(bytes: &[u8]) -> Vec<Frame> {
        let mut reader = io::Cursor::new(bytes);
        let mut out = Vec::new();
        while let Some(frame) = read_frame(&mut reader).expect("frame") {
            out.push(frame);
        }
        out
    }

    #[test]
    fn frames_carry_header_and_payload_back_to_back() {
        let mut bytes = encode(&Request::Ping, &[]).expect("encode");
        bytes.extend(
            encode(
                &Request::Query {
                    sql: "select 1".into(),
                },
                b"\x00\x01payload",
            )
            .expect("encode"),
        );
        let read = frames(&bytes);
        assert_eq!(read.len(), 2);
        assert_eq!(read[0].decode::<Request>().expect("ping"), Request::Ping);
        assert!(read[0].payload.is_empty());
        assert_eq!(
            read[1].decode::<Request>().expect("query"),
            Request::Query {
                sql: "select 1".into()
            }
        );
        assert_eq!(read[1].payload, b"\x00\x01payload");
    }

    #[test]
    fn a_clean_close_between_frames_is_the_end_not_an_error() {
        assert!(frames(&[]).is_empty());
    }

    #[test]
    fn a_close_inside_a_frame_is_an_error() {
        let bytes = encode(&Response::RunDone, b"0123456789").expect("encode");
        for cut in [3, PREFIX_LEN, bytes.len() - 1] {
            let error = read_frame(&mut io::Cursor::new(&bytes[..cut])).expect_err("truncated");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof, "cut at {cut}");
        }
    }

    #[test]
    fn a_foreign_protocol_is_named_not_misread() {
        let mut bytes = encode(&Request::Ping, &[]).expect("encode");
        bytes[3] = b'9';
        let error = read_frame(&mut io::Cursor::new(bytes)).expect_err("foreign");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
        assert!(
            error.to_string().contains("another flowline version"),
            "{error}"
        );
    }

    #[test]
    fn absurd_lengths_are_refused_before_reading() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&u32::MAX.to_be_bytes());
        bytes.extend_from_slice(&0u64.to_be_bytes());
        let error = read_frame(&mut io::Cursor::new(bytes)).expect_err("too long");
        assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn async_and_blocking_readers_agree() {
        let bytes = encode(
            &Response::Error {
                message: "warehouse: query: no".into(),
            },
            b"xyz",
        )
        .expect("encode");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let from_async = runtime
            .block_on(read_frame_async(&mut bytes.as_slice()))
            .expect("read")
            .expect("frame");
        let from_blocking = read_frame(&mut bytes.as_slice())
            .expect("read")
            .expect("frame");
        assert_eq!(from_async, from_blocking);
        assert_eq!(from_async.payload, b"xyz");
    }

    #[test]
    fn messages_are_tagged_json() {
        let json = serde_json::to_value(Request::Run {
            pipelines: vec!["orders".into()],
            full_refresh: true,
        })
        .expect("json");
        assert_eq!(
            json,
            serde_json::json!({"request": "run", "pipelines": ["orders"], "full_refresh": true})
        );
        let pong = Response::Pong(Owner {
            pid: 7,
            project: "shop".into(),
            activity: "flowline serve".into(),
            running: vec![],
        });
        let text = serde_json::to_string(&pong).expect("json");
        assert_eq!(serde_json::from_str::<Response>(&text).expect("back"), pong);
    }

    #[test]
    fn run_records_survive_the_wire() {
        let record = RunRecord {
            run_id: "r1".into(),
            pipeline: "orders".into(),
            started_at: Utc::now(),
            ended_at: Some(Utc::now()),
            status: RunStatus::Failed,
            rows: 3,
            duplicates: 2,
            bytes: 40,
            bad_rows: 1,
            error: Some("boom".into()),
            stream: None,
        };
        let text = serde_json::to_string(&WireRun::from(&record)).expect("json");
        let back: RunRecord = serde_json::from_str::<WireRun>(&text).expect("back").into();
        assert_eq!(
            serde_json::to_value(&back).expect("json"),
            serde_json::to_value(&record).expect("json")
        );
    }

    #[test]
    fn query_results_round_trip_through_arrow_ipc() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
            Field::new("amount", DataType::Decimal128(10, 2), true),
        ]));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from(vec![1, 2])),
            Arc::new(StringArray::from(vec![Some("ada"), None])),
            Arc::new(
                Decimal128Array::from(vec![Some(1250), None])
                    .with_precision_and_scale(10, 2)
                    .expect("decimal"),
            ),
        ];
        let batch = RecordBatch::try_new(schema.clone(), columns).expect("batch");
        let empty = RecordBatch::new_empty(schema.clone());
        let bytes = to_ipc(&schema, &[batch.clone(), empty]).expect("encode");
        let back = from_ipc(&bytes).expect("decode");
        assert_eq!(back.schema, schema);
        assert_eq!(back.batches.len(), 2);
        assert_eq!(back.batches[0], batch);
        assert_eq!(back.batches[1].num_rows(), 0);
    }

    #[test]
    fn a_result_without_columns_stays_without_columns() {
        let schema = Arc::new(Schema::empty());
        let back = from_ipc(&to_ipc(&schema, &[]).expect("encode")).expect("decode");
        assert!(back.schema.fields().is_empty());
        assert!(back.batches.is_empty());
    }
}
