//! JSON: newline-delimited records, or a document with a path to its array
//! of records. Types are inferred batch by batch and widened as new fields
//! and values appear; a line that is not a JSON object is a dead letter.

use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

use super::{Chunk, Chunks, ReadOptions, open};
use crate::core::DeadLetter;
use crate::core::error::{Error, Result};
use crate::data::json::{JsonDecoder, kind_of, select};

/// One record read from a file, or why it could not be read.
enum Record {
    Ok {
        origin: String,
        value: Value,
        bytes: u64,
    },
    Bad {
        letter: DeadLetter,
        bytes: u64,
    },
}

/// Reads newline-delimited JSON.
pub(crate) fn read_lines(path: &Path, name: &str, options: &ReadOptions) -> Result<Chunks> {
    let reader = std::io::BufReader::new(open(path)?);
    let err_name = name.to_string();
    let records = reader
        .split(b'\n')
        .enumerate()
        .map(move |(i, line)| -> Result<Option<Record>> {
            let line = line.map_err(|e| Error::io(err_name.to_string(), e))?;
            let bytes = line.len() as u64 + 1;
            let text = String::from_utf8_lossy(&line);
            let trimmed = text.trim();
            if trimmed.is_empty() {
                return Ok(None);
            }
            let origin = format!("{err_name}:{}", i + 1);
            Ok(Some(match serde_json::from_str::<Value>(trimmed) {
                Ok(value @ Value::Object(_)) => Record::Ok {
                    origin,
                    value,
                    bytes,
                },
                Ok(_) => Record::Bad {
                    letter: DeadLetter {
                        origin,
                        reason: "expected a JSON object".into(),
                        raw: trimmed.to_string(),
                    },
                    bytes,
                },
                Err(e) => Record::Bad {
                    letter: DeadLetter {
                        origin,
                        reason: format!("invalid JSON: {e}"),
                        raw: trimmed.to_string(),
                    },
                    bytes,
                },
            }))
        })
        .filter_map(|r| r.transpose());
    Ok(Box::new(JsonChunks::new(Box::new(records), options)))
}

/// Reads a JSON document and the records at `options.records`.
pub(crate) fn read_document(path: &Path, name: &str, options: &ReadOptions) -> Result<Chunks> {
    let size = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let document: Value = serde_json::from_reader(open(path)?)
        .map_err(|e| Error::source_data(name, format!("invalid JSON document: {e}")))?;
    let selected = match &options.records {
        Some(records_path) => select(document, records_path).ok_or_else(|| {
            Error::source_data(
                name,
                format!("records path {records_path:?} not found in the document"),
            )
        })?,
        None => document,
    };
    let items = match selected {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        other => {
            return Err(Error::source_data(
                name,
                format!(
                    "expected an array of records or an object, found {}",
                    kind_of(&other)
                ),
            ));
        }
    };
    let per_record = size / (items.len().max(1) as u64);
    let name_owned = name.to_string();
    let records = items.into_iter().enumerate().map(move |(i, value)| {
        let origin = format!("{name_owned}#{i}");
        Ok(match value {
            value @ Value::Object(_) => Record::Ok {
                origin,
                value,
                bytes: per_record,
            },
            other => Record::Bad {
                letter: DeadLetter {
                    origin,
                    reason: format!("expected a JSON object, found {}", kind_of(&other)),
                    raw: other.to_string(),
                },
                bytes: per_record,
            },
        })
    });
    Ok(Box::new(JsonChunks::new(Box::new(records), options)))
}

struct JsonChunks {
    records: Box<dyn Iterator<Item = Result<Record>> + Send>,
    decoder: JsonDecoder,
    batch_size: usize,
}

impl JsonChunks {
    fn new(
        records: Box<dyn Iterator<Item = Result<Record>> + Send>,
        options: &ReadOptions,
    ) -> Self {
        JsonChunks {
            records,
            decoder: JsonDecoder::new(options.overrides.clone()),
            batch_size: options.batch_size,
        }
    }
}

impl Iterator for JsonChunks {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut values = Vec::new();
        let mut dead_letters = Vec::new();
        let mut bytes = 0;
        while values.len() < self.batch_size {
            match self.records.next() {
                None => break,
                Some(Err(e)) => return Some(Err(e)),
                Some(Ok(Record::Ok {
                    origin,
                    value,
                    bytes: b,
                })) => {
                    bytes += b;
                    values.push((origin, value));
                }
                Some(Ok(Record::Bad { letter, bytes: b })) => {
                    bytes += b;
                    dead_letters.push(letter);
                }
            }
        }
        if values.is_empty() && dead_letters.is_empty() {
            return None;
        }
        Some(self.decoder.decode(values).map(|(batch, bad)| {
            dead_letters.extend(bad);
            Chunk {
                batch,
                bytes,
                dead_letters,
            }
        }))
    }
}
