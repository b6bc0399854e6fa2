//! JSON: newline-delimited records, or a document with a path to its array
//! of records. Types are inferred batch by batch and widened as new fields
//! and values appear; a line that is not a JSON object is a dead letter.
//!
//! Newline-delimited files go to the decoder as text, a batch of lines at a
//! time ([`JsonDecoder::decode_ndjson`]): lines that fit the schema so far
//! become Arrow without building a JSON value per record, and each value
//! lands as the file wrote it (a number in a text column keeps its digits;
//! a line that is not UTF-8 is a dead letter, never a lossy load).

use serde_json::Value;
use std::io::BufRead;
use std::path::Path;

use super::{Chunk, Chunks, ReadOptions, open};
use crate::core::error::{Error, Result};
use crate::core::{DeadLetter, FileScan, ScanFormat};
use crate::data::json::{JsonDecoder, kind_of, select};

/// One record read from a document, or why it could not be read.
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
    Ok(Box::new(NdjsonChunks::open(path, name, options)?))
}

/// The newline-delimited JSON file at `path` described for a warehouse to
/// read itself (see [`crate::core::scan`]), with the columns its first
/// batch is read into. `None` for a compressed file, and for one whose
/// first batch holds no rows or rejects lines: flowline reads those.
///
/// When the first batch's records are flat, its columns are read off its
/// text without decoding it (see [`JsonDecoder::first_flat_schema`]); a
/// value the batch path would reject (by a declared type) fails the
/// warehouse's read at its line, and flowline reads the file instead, so
/// the result is the same either way.
pub(crate) fn scan(path: &Path, name: &str, options: &ReadOptions) -> Result<Option<FileScan>> {
    if path.extension().is_some_and(|e| e == "gz") {
        return Ok(None);
    }
    let mut chunks = NdjsonChunks::open(path, name, options)?;
    let lines = chunks.read_lines()?;
    if lines.numbers.is_empty() || !lines.dead_letters.is_empty() {
        return Ok(None);
    }
    let schema = match chunks.decoder.first_flat_schema(&lines.text) {
        Some(schema) => schema,
        None => {
            let Some(first) = chunks.decode(lines)? else {
                return Ok(None);
            };
            if first.batch.num_rows() == 0 || !first.dead_letters.is_empty() {
                return Ok(None);
            }
            first.batch.schema()
        }
    };
    if schema.fields().is_empty() {
        return Ok(None);
    }
    Ok(Some(FileScan {
        path: path.to_path_buf(),
        name: name.to_string(),
        format: ScanFormat::Ndjson,
        columns: schema
            .fields()
            .iter()
            .map(|f| (f.name().clone(), f.data_type().clone()))
            .collect(),
    }))
}

/// Newline-delimited JSON read as batches of lines.
struct NdjsonChunks {
    input: std::io::BufReader<Box<dyn std::io::Read + Send>>,
    name: String,
    decoder: JsonDecoder,
    batch_size: usize,
    /// The number of the last line read (1 = the first).
    line_number: u64,
    done: bool,
}

/// The lines of one batch: their text, one per line, and where each came from.
#[derive(Default)]
struct Lines {
    text: Vec<u8>,
    numbers: Vec<u64>,
    bytes: u64,
    dead_letters: Vec<DeadLetter>,
}

impl NdjsonChunks {
    fn open(path: &Path, name: &str, options: &ReadOptions) -> Result<Self> {
        Ok(NdjsonChunks {
            input: std::io::BufReader::with_capacity(1 << 20, open(path)?),
            name: name.to_string(),
            decoder: JsonDecoder::new(options.overrides.clone()),
            batch_size: options.batch_size,
            line_number: 0,
            done: false,
        })
    }

    /// Reads up to `batch_size` records' lines. Blank lines are skipped; a
    /// line that does not start an object is a dead letter at once. Each
    /// line is read straight into the batch's text, then trimmed there.
    fn read_lines(&mut self) -> Result<Lines> {
        let mut lines = Lines::default();
        while lines.numbers.len() < self.batch_size {
            let start = lines.text.len();
            let read = self
                .input
                .read_until(b'\n', &mut lines.text)
                .map_err(|e| Error::io(self.name.clone(), e))?;
            if read == 0 {
                self.done = true;
                break;
            }
            self.line_number += 1;
            lines.bytes += read as u64 + u64::from(!lines.text.ends_with(b"\n"));
            let line = &lines.text[start..];
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                lines.text.truncate(start);
                continue;
            }
            if !trimmed.starts_with(b"{") {
                let origin = format!("{}:{}", self.name, self.line_number);
                lines.dead_letters.push(not_an_object(origin, trimmed));
                lines.text.truncate(start);
                continue;
            }
            if trimmed.len() + 1 != line.len() || !line.ends_with(b"\n") {
                // Leading or trailing blanks, or the file's last line: keep
                // the object alone on its line.
                let offset = line.len() - line.trim_ascii_start().len();
                let length = trimmed.len();
                lines
                    .text
                    .copy_within(start + offset..start + offset + length, start);
                lines.text.truncate(start + length);
                lines.text.push(b'\n');
            }
            lines.numbers.push(self.line_number);
        }
        Ok(lines)
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let lines = self.read_lines()?;
        self.decode(lines)
    }

    /// The batch of `lines`, with their dead letters; `None` if there were
    /// none.
    fn decode(&mut self, lines: Lines) -> Result<Option<Chunk>> {
        let Lines {
            text,
            numbers,
            bytes,
            mut dead_letters,
        } = lines;
        if numbers.is_empty() && dead_letters.is_empty() {
            return Ok(None);
        }
        let name = &self.name;
        let (batch, bad) = self.decoder.decode_ndjson(&text, numbers.len(), &|i| {
            format!("{name}:{}", numbers.get(i).copied().unwrap_or_default())
        })?;
        dead_letters.extend(bad);
        Ok(Some(Chunk {
            batch,
            bytes,
            dead_letters,
        }))
    }
}

/// The dead letter for a line that is no JSON object: invalid JSON, or
/// another kind of value.
fn not_an_object(origin: String, line: &[u8]) -> DeadLetter {
    let reason = match serde_json::from_slice::<Value>(line) {
        Ok(_) => "expected a JSON object".to_string(),
        Err(e) => format!("invalid JSON: {e}"),
    };
    DeadLetter {
        origin,
        reason,
        raw: String::from_utf8_lossy(line).into_owned(),
    }
}

impl Iterator for NdjsonChunks {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.next_chunk().transpose()
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, StringArray};

    fn options() -> ReadOptions {
        ReadOptions {
            batch_size: 2,
            infer_rows: 1000,
            overrides: Default::default(),
            delimiter: b',',
            quote: b'"',
            header: true,
            null_values: Vec::new(),
            column_null_values: Default::default(),
            records: None,
        }
    }

    /// Reads `bytes` as the NDJSON file `t.ndjson`.
    fn read_bytes(bytes: &[u8]) -> Vec<Chunk> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.ndjson");
        std::fs::write(&path, bytes).expect("write");
        read_lines(&path, "t.ndjson", &options())
            .expect("opens")
            .collect::<Result<_>>()
            .expect("reads")
    }

    fn text_column(chunks: &[Chunk], name: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for chunk in chunks {
            let Ok(index) = chunk.batch.schema().index_of(name) else {
                continue;
            };
            let column = chunk.batch.column(index);
            let text = column.as_any().downcast_ref::<StringArray>().expect("text");
            out.extend(text.iter().map(|v| v.map(String::from)));
        }
        out
    }

    #[test]
    fn a_line_that_is_not_utf8_is_a_dead_letter_not_a_lossy_value() {
        let chunks = read_bytes(b"{\"s\":\"a\"}\n{\"s\":\"b\"}\n{\"s\":\"\xff\"}\n{\"s\":\"d\"}\n");
        let letters: Vec<&DeadLetter> = chunks.iter().flat_map(|c| &c.dead_letters).collect();
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].origin, "t.ndjson:3");
        assert_eq!(
            text_column(&chunks, "s"),
            [Some("a".into()), Some("b".into()), Some("d".into())]
        );
    }

    #[test]
    fn a_number_in_a_text_column_keeps_its_digits() {
        let chunks = read_bytes(b"{\"s\":\"a\"}\n{\"s\":\"b\"}\n{\"s\":1.50}\n");
        assert!(chunks.iter().all(|c| c.dead_letters.is_empty()));
        assert_eq!(text_column(&chunks, "s")[2].as_deref(), Some("1.50"));
    }

    #[test]
    fn blank_lines_are_skipped_and_other_values_are_dead_letters() {
        let chunks = read_bytes(b"  {\"s\":\"a\"}  \r\n\n   \n[1]\nnope\n{\"s\":\"b\"}");
        let letters: Vec<(&str, &str)> = chunks
            .iter()
            .flat_map(|c| &c.dead_letters)
            .map(|l| (l.origin.as_str(), l.reason.as_str()))
            .collect();
        assert_eq!(letters.len(), 2, "{letters:?}");
        assert_eq!(letters[0], ("t.ndjson:4", "expected a JSON object"));
        assert_eq!(letters[1].0, "t.ndjson:5");
        assert!(letters[1].1.starts_with("invalid JSON"), "{letters:?}");
        assert_eq!(
            text_column(&chunks, "s"),
            [Some("a".into()), Some("b".into())]
        );
        let bytes: u64 = chunks.iter().map(|c| c.bytes).sum();
        assert_eq!(
            bytes, 39,
            "every byte of the file, a newline for the last line"
        );
    }
}
