//! DuckDB reading a newline-delimited JSON file through flowline
//! (`flowline_read_ndjson`): a table function that DuckDB's threads call in
//! parallel, each taking the next lines of the file and reading every
//! record into the output vectors by flowline's own rules
//! ([`json_record`]), so the rows are converted and compressed on all of
//! DuckDB's threads. DuckDB's `read_json` cannot take its place: it
//! rewrites numbers as it parses them (`2.50` becomes `2.5`) and skips keys
//! outside the declared columns. A line the batch path would not load as
//! it is fails the query, and the file is then read by flowline.

use std::error::Error as StdError;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::sync::Mutex;

use duckdb::core::{DataChunkHandle, Inserter, LogicalTypeHandle, LogicalTypeId};
use duckdb::vtab::{BindInfo, InitInfo, TableFunctionInfo, VTab};

use crate::core::FileScan;
use crate::core::error::{Error, Result};
use crate::data::json_record::{Cell, Kind, RecordColumns, read_record};
use crate::data::types::quote_literal;

/// The table function's name.
const FUNCTION: &str = "flowline_read_ndjson";

/// Registers `flowline_read_ndjson(path, columns)` on the database of `conn`.
pub(super) fn register(conn: &duckdb::Connection) -> Result<()> {
    conn.register_table_function::<ReadNdjson>(FUNCTION)
        .map_err(|e| Error::warehouse("registering flowline's NDJSON reader", e))
}

/// The query reading the NDJSON file `scan`; `None` when a column's type
/// is not one records are read into.
pub(super) fn select(scan: &FileScan) -> Option<String> {
    let spec = scan
        .columns
        .iter()
        .map(|(name, data_type)| Some((name.as_str(), logical_type(Kind::of(data_type)?).1)))
        .collect::<Option<Vec<_>>>()?;
    let spec = serde_json::to_string(&spec).ok()?;
    Some(format!(
        "SELECT * FROM {FUNCTION}({path}, {spec})",
        path = quote_literal(&scan.path.to_string_lossy()),
        spec = quote_literal(&spec),
    ))
}

/// DuckDB's type of a column kind, and its name.
fn logical_type(kind: Kind) -> (LogicalTypeId, &'static str) {
    match kind {
        Kind::Bigint => (LogicalTypeId::Bigint, "BIGINT"),
        Kind::Double => (LogicalTypeId::Double, "DOUBLE"),
        Kind::Boolean => (LogicalTypeId::Boolean, "BOOLEAN"),
        Kind::Text => (LogicalTypeId::Varchar, "VARCHAR"),
    }
}

/// The column kind DuckDB's type `name` is.
fn kind_named(name: &str) -> Option<Kind> {
    [Kind::Bigint, Kind::Double, Kind::Boolean, Kind::Text]
        .into_iter()
        .find(|kind| logical_type(*kind).1 == name)
}

/// The table function.
struct ReadNdjson;

/// What a call reads: the file and its columns.
struct Bound {
    path: PathBuf,
    columns: RecordColumns,
}

/// The file, shared by DuckDB's threads: each takes the next lines in turn.
struct Opened {
    lines: Mutex<Lines>,
}

/// The file's lines, and the number of the last one read (1 = the first).
struct Lines {
    input: BufReader<File>,
    number: u64,
}

impl VTab for ReadNdjson {
    type BindData = Bound;
    type InitData = Opened;

    fn bind(bind: &BindInfo) -> std::result::Result<Bound, Box<dyn StdError>> {
        let path = PathBuf::from(bind.get_parameter(0).to_string());
        let spec: Vec<(String, String)> = serde_json::from_str(&bind.get_parameter(1).to_string())?;
        let mut columns = Vec::with_capacity(spec.len());
        for (name, type_name) in spec {
            let kind =
                kind_named(&type_name).ok_or_else(|| format!("no column type {type_name}"))?;
            bind.add_result_column(&name, LogicalTypeHandle::from(logical_type(kind).0));
            columns.push((name, kind));
        }
        let columns = RecordColumns::new(columns);
        Ok(Bound { path, columns })
    }

    fn init(init: &InitInfo) -> std::result::Result<Opened, Box<dyn StdError>> {
        // SAFETY: the bind data of this function is a `Bound`, alive while
        // the query runs.
        let bound = unsafe { &*init.get_bind_data::<Bound>() };
        let file = File::open(&bound.path)
            .map_err(|e| format!("opening {}: {e}", bound.path.display()))?;
        // Every thread DuckDB has may read: DuckDB caps it at its own.
        init.set_max_threads(64);
        Ok(Opened {
            lines: Mutex::new(Lines {
                input: BufReader::with_capacity(1 << 20, file),
                number: 0,
            }),
        })
    }

    fn func(
        func: &TableFunctionInfo<Self>,
        output: &mut DataChunkHandle,
    ) -> std::result::Result<(), Box<dyn StdError>> {
        let bound = func.get_bind_data();
        // SAFETY: a constant of the library, with nothing to uphold.
        let capacity = usize::try_from(unsafe { duckdb::ffi::duckdb_vector_size() })?;
        let batch = func.get_init_data().next_lines(capacity)?;
        let mut cells = Vec::with_capacity(bound.columns.kinds().len());
        let mut vectors: Vec<_> = (0..bound.columns.kinds().len())
            .map(|c| output.flat_vector(c))
            .collect();
        let text = batch.text()?;
        for (row, (start, end, number)) in batch.lines.iter().copied().enumerate() {
            // Lines start and end next to ASCII blanks or the batch's ends:
            // on character boundaries.
            let line = &text[start..end];
            read_record(line, &bound.columns, &mut cells)
                .map_err(|reason| format!("line {number}: {reason}"))?;
            for (vector, cell) in vectors.iter_mut().zip(cells.drain(..)) {
                write(vector, row, cell);
            }
        }
        output.set_len(batch.lines.len());
        Ok(())
    }

    fn parameters() -> Option<Vec<LogicalTypeHandle>> {
        Some(vec![
            LogicalTypeHandle::from(LogicalTypeId::Varchar),
            LogicalTypeHandle::from(LogicalTypeId::Varchar),
        ])
    }
}

/// Up to a vector's worth of a file's lines that hold something.
struct LineBatch {
    text: Vec<u8>,
    /// Each line's start and end in `text`, and its number in the file.
    lines: Vec<(usize, usize, u64)>,
}

impl LineBatch {
    /// The lines' text, checked to be UTF-8 at once; the error names the
    /// first line that is not.
    fn text(&self) -> std::result::Result<&str, String> {
        std::str::from_utf8(&self.text).map_err(|e| {
            let bad = self.lines.iter().find(|(_, end, _)| *end > e.valid_up_to());
            match bad {
                Some((_, _, number)) => format!("line {number} is not UTF-8"),
                None => "a line is not UTF-8".to_string(),
            }
        })
    }
}

impl Opened {
    /// The next `capacity` lines that are not blank (none at the end).
    fn next_lines(&self, capacity: usize) -> std::result::Result<LineBatch, Box<dyn StdError>> {
        let mut batch = LineBatch {
            text: Vec::with_capacity(capacity * 256),
            lines: Vec::with_capacity(capacity),
        };
        let mut lines = self.lines.lock().map_err(|_| "a reading thread failed")?;
        while batch.lines.len() < capacity {
            let start = batch.text.len();
            if !read_line(&mut lines.input, &mut batch.text)? {
                break;
            }
            lines.number += 1;
            let line = &batch.text[start..];
            let blank_start = line.len() - line.trim_ascii_start().len();
            let length = line.trim_ascii().len();
            if length == 0 {
                batch.text.truncate(start);
                continue;
            }
            batch.lines.push((
                start + blank_start,
                start + blank_start + length,
                lines.number,
            ));
        }
        Ok(batch)
    }
}

/// Appends the next line of `input` (its newline too, if it has one) to
/// `text`; false at the end of the input. (`read_until`, with the memchr
/// crate's vectorised search.)
fn read_line(input: &mut BufReader<File>, text: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut read = false;
    loop {
        let buffer = input.fill_buf()?;
        if buffer.is_empty() {
            return Ok(read);
        }
        read = true;
        let (length, ended) = match memchr::memchr(b'\n', buffer) {
            Some(newline) => (newline + 1, true),
            None => (buffer.len(), false),
        };
        text.extend_from_slice(&buffer[..length]);
        input.consume(length);
        if ended {
            return Ok(true);
        }
    }
}

/// Writes `cell` as row `row` of `vector` (a vector of the cell's kind).
fn write(vector: &mut duckdb::core::FlatVector<'_>, row: usize, cell: Cell<'_>) {
    // SAFETY (each slice): the vector's type is the cell's kind, stored as
    // DuckDB stores BIGINT (i64), DOUBLE (f64) and BOOLEAN (one byte), and
    // `row` is below the vector's capacity.
    match cell {
        Cell::Absent | Cell::Null => vector.set_null(row),
        Cell::Bigint(value) => unsafe { vector.as_mut_slice::<i64>()[row] = value },
        Cell::Double(value) => unsafe { vector.as_mut_slice::<f64>()[row] = value },
        Cell::Boolean(value) => unsafe { vector.as_mut_slice::<bool>()[row] = value },
        Cell::Text(value) => vector.insert(row, value.as_ref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ScanFormat;
    use arrow::datatypes::DataType;

    fn connection() -> duckdb::Connection {
        let conn = duckdb::Connection::open_in_memory().expect("in memory");
        register(&conn).expect("registers");
        conn
    }

    fn scan(path: PathBuf, columns: &[(&str, DataType)]) -> FileScan {
        FileScan {
            path,
            name: "t.ndjson".into(),
            format: ScanFormat::Ndjson,
            columns: columns
                .iter()
                .map(|(n, t)| (n.to_string(), t.clone()))
                .collect(),
        }
    }

    fn rows(conn: &duckdb::Connection, sql: &str) -> std::result::Result<Vec<String>, String> {
        let sql = format!("SELECT * FROM ({sql}) t ORDER BY ALL");
        let mut statement = conn.prepare(&sql).map_err(|e| e.to_string())?;
        let rows = statement
            .query_map([], |row| {
                let mut values = Vec::new();
                for i in 0..4 {
                    let value: duckdb::types::Value = row.get(i)?;
                    values.push(format!("{value:?}"));
                }
                Ok(values.join(" "))
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<std::result::Result<_, _>>()
            .map_err(|e| e.to_string())
    }

    const COLUMNS: [(&str, DataType); 4] = [
        ("id", DataType::Int64),
        ("v", DataType::Float64),
        ("ok", DataType::Boolean),
        ("s", DataType::Utf8),
    ];

    #[test]
    fn reads_every_line_as_flowline_reads_it() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("it's.ndjson");
        let mut text = String::new();
        for i in 0..5000 {
            text.push_str(&format!(
                "{{\"id\": {i}, \"v\": {i}.50, \"ok\": {}, \"s\": \"n\\u00e9 {i}\"}}\n",
                i % 2 == 0
            ));
        }
        text.push_str("\n  {\"s\": 2.50}  \r\n{}");
        std::fs::write(&path, text).expect("write");
        let conn = connection();
        let sql = select(&scan(path, &COLUMNS)).expect("a query");
        let rows = rows(&conn, &sql).expect("reads");
        assert_eq!(rows.len(), 5002);
        assert_eq!(
            rows[0],
            "BigInt(0) Double(0.5) Boolean(true) Text(\"né 0\")"
        );
        assert_eq!(
            rows[4999],
            "BigInt(4999) Double(4999.5) Boolean(false) Text(\"né 4999\")"
        );
        assert_eq!(rows[5000], "Null Null Null Text(\"2.50\")");
        assert_eq!(rows[5001], "Null Null Null Null");
    }

    #[test]
    fn a_line_flowline_would_not_load_as_it_is_fails_the_query() {
        let dir = tempfile::tempdir().expect("tmp");
        let conn = connection();
        for (line, reason) in [
            (
                "{\"id\": 2.5}",
                "line 2: key \"id\": 2.5 is not a BIGINT exactly",
            ),
            ("{\"new\": 1}", "line 2: key \"new\" is not a column"),
            ("[1]", "line 2:"),
            ("{\"s\": \"\u{1}\"}", "line 2:"),
        ] {
            let path = dir.path().join("t.ndjson");
            std::fs::write(&path, format!("{{\"id\": 1}}\n{line}\n")).expect("write");
            let error =
                rows(&conn, &select(&scan(path, &COLUMNS)).expect("a query")).expect_err(line);
            assert!(error.contains(reason), "{line}: {error}");
        }
        let path = dir.path().join("bad.ndjson");
        std::fs::write(&path, b"{\"s\": \"\xff\"}\n").expect("write");
        let error =
            rows(&conn, &select(&scan(path, &COLUMNS)).expect("a query")).expect_err("not UTF-8");
        assert!(error.contains("line 1 is not UTF-8"), "{error}");
    }

    #[test]
    fn files_with_columns_read_otherwise_are_left_to_flowline() {
        let columns = [("d", DataType::Date32)];
        assert_eq!(select(&scan(PathBuf::from("t"), &columns)), None);
    }
}
