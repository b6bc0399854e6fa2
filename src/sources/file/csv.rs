//! CSV: column types inferred from a sample, then read in batches of text
//! columns converted to their types. Null markers (`NA`, `NULL`, ...) are
//! nulls; a value that contradicts an inferred type widens its column, one
//! that contradicts a declared type makes its row a dead letter, and a line
//! that opens a quote it never closes is a dead letter of its own (see
//! [`super::quotes`]).

use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::mpsc;

use arrow::array::{Array, StringArray, StringBuilder};

use super::quotes::{MAX_RECORD_LINES, QuoteGuard};
use super::{Chunk, Chunks, ReadOptions, open};
use crate::core::error::{Error, Result};
use crate::core::{DeadLetter, FileScan, ScanFormat};
use crate::data::convert::{TextTarget, text_to_typed};
use crate::data::infer::SchemaInference;
use crate::data::types::duckdb_type;

/// The file as the CSV parser reads it.
type Guarded = QuoteGuard<BufReader<Box<dyn Read + Send>>>;

/// Reads the CSV file at `path` as a stream of batches. A file with no
/// columns (0 bytes) gives none.
pub(crate) fn read(path: &Path, name: &str, options: &ReadOptions) -> Result<Chunks> {
    let targets = infer_schema(path, name, options)?;
    if targets.is_empty() {
        return Ok(Box::new(std::iter::empty()));
    }
    let nulls = targets
        .iter()
        .map(|t| NullMarkers::new(options.null_values_of(&t.name)))
        .collect();
    let (tx, letters) = mpsc::channel();
    let reader = reader_builder(options).from_reader(guarded(path, name, options, tx)?);
    Ok(Box::new(CsvChunks {
        reader,
        letters,
        targets,
        nulls,
        options: options.clone(),
        name: name.to_string(),
        record: csv::ByteRecord::new(),
        done: false,
    }))
}

/// The CSV file at `path` described for the warehouse to read itself (see
/// [`crate::core::scan`]): its columns and inferred or declared types.
/// `None` when the description could not say how flowline reads it: a
/// compressed file, null markers per column, a header spanning lines, or
/// no row at all (an empty file loads nothing, creating no table).
pub(crate) fn scan(path: &Path, name: &str, options: &ReadOptions) -> Result<Option<FileScan>> {
    let compressed = path.extension().is_some_and(|e| e == "gz");
    if compressed || !options.column_null_values.is_empty() {
        return Ok(None);
    }
    if !options.header && starts_with_bom(path)? {
        // The warehouse drops the mark from the first value; flowline keeps it.
        return Ok(None);
    }
    let targets = infer_schema(path, name, options)?;
    if targets.is_empty() {
        return Ok(None);
    }
    if !(plain_lines(path, options, targets.len() == 1)?) {
        return Ok(None);
    }
    let mut rows = reader_builder(options).from_reader(open(path)?);
    if !matches!(rows.read_byte_record(&mut csv::ByteRecord::new()), Ok(true)) {
        return Ok(None);
    }
    Ok(Some(FileScan {
        path: path.to_path_buf(),
        name: name.to_string(),
        format: ScanFormat::Csv {
            delimiter: options.delimiter,
            quote: options.quote,
            header: options.header,
            null_values: options.null_values.clone(),
            // A row of more lines holds at least as many bytes.
            max_row_bytes: MAX_RECORD_LINES,
        },
        columns: targets.into_iter().map(|t| (t.name, t.data_type)).collect(),
    }))
}

fn reader_builder(options: &ReadOptions) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(options.delimiter)
        .quote(options.quote)
        .has_headers(options.header)
        .flexible(true)
        .buffer_capacity(1 << 16);
    builder
}

/// The file at `path`, with lines holding unterminated quotes dropped and
/// sent to `letters`.
fn guarded(
    path: &Path,
    name: &str,
    options: &ReadOptions,
    letters: mpsc::Sender<DeadLetter>,
) -> Result<Guarded> {
    Ok(QuoteGuard::new(
        BufReader::new(open(path)?),
        name,
        options.delimiter,
        options.quote,
        letters,
    ))
}

fn csv_error(name: &str, e: csv::Error) -> Error {
    Error::source_data(name, e.to_string())
}

/// Whether the lines of the file at `path` are read alike by flowline and
/// the warehouse: a header is one line ending in `\n` or `\r\n` and
/// holding no quote (the warehouse skips it as a line); with
/// `every_line`, also every other line ends so, and none is empty (flowline
/// skips an empty line; DuckDB reads one as a NULL in a file of one column,
/// and stops at a stray `\r` in a file of more, so those need no pass).
/// Line breaks inside quoted values count too: such a file may just as
/// well be read by flowline.
fn plain_lines(path: &Path, options: &ReadOptions, every_line: bool) -> Result<bool> {
    if !every_line && !options.header {
        return Ok(true);
    }
    let mut file = open(path)?;
    let mut buffer = vec![0u8; 1 << 20];
    // The two bytes before the buffer; the file starts as a line does.
    let mut before = [0u8, b'\n'];
    let mut in_header = options.header;
    let mut carriage_return = false;
    loop {
        let read = file.read(&mut buffer).map_err(|e| Error::io(path, e))?;
        let chunk = &buffer[..read];
        if carriage_return && chunk.first() != Some(&b'\n') {
            return Ok(false);
        }
        if read == 0 {
            return Ok(true);
        }
        if in_header {
            let end = memchr::memchr(b'\n', chunk).unwrap_or(chunk.len());
            let line = &chunk[..end];
            let stray_cr = memchr::memchr(b'\r', line).is_some_and(|at| at + 1 != end);
            if stray_cr || memchr::memchr(options.quote, line).is_some() {
                return Ok(false);
            }
            in_header = end == chunk.len();
            if !in_header && !every_line {
                return Ok(true);
            }
        }
        let byte = |at: usize, back: usize| match at.checked_sub(back) {
            Some(i) => chunk[i],
            None => before[2 + at - back],
        };
        carriage_return = false;
        for at in memchr::memchr2_iter(b'\n', b'\r', chunk) {
            if chunk[at] == b'\r' {
                match chunk.get(at + 1) {
                    Some(b'\n') => {}
                    Some(_) => return Ok(false),
                    None => carriage_return = true,
                }
            } else if byte(at, 1) == b'\n' || (byte(at, 1) == b'\r' && byte(at, 2) == b'\n') {
                return Ok(false);
            }
        }
        before = [byte(read, 2), byte(read, 1)];
    }
}

/// Whether the file starts with a UTF-8 byte-order mark.
fn starts_with_bom(path: &Path) -> Result<bool> {
    let mut start = Vec::with_capacity(3);
    open(path)?
        .take(3)
        .read_to_end(&mut start)
        .map_err(|e| Error::io(path, e))?;
    Ok(start == [0xEF, 0xBB, 0xBF])
}

/// Whether the file starts with an empty line (a non-empty file only).
fn first_line_is_empty(path: &Path) -> Result<bool> {
    use std::io::Read as _;
    let mut start = [0u8; 2];
    let mut read = 0;
    let mut file = open(path)?;
    while read < start.len() {
        match file.read(&mut start[read..]) {
            Ok(0) => break,
            Ok(n) => read += n,
            Err(e) => return Err(Error::io(path, e)),
        }
    }
    Ok(matches!(&start[..read], [b'\n', ..] | [b'\r', b'\n']))
}

/// The column names, from the header (made unique and non-empty) or
/// numbered, and the number of columns; none for an empty file.
fn column_names(path: &Path, name: &str, options: &ReadOptions) -> Result<Vec<String>> {
    let (tx, _) = mpsc::channel();
    let mut reader = reader_builder(options).from_reader(guarded(path, name, options, tx)?);
    if options.header {
        if first_line_is_empty(path)? {
            // The CSV reader skips blank lines: the first row of data
            // would silently become the header.
            return Err(Error::source_data(
                name,
                "the first line is empty, so the file has no header: remove the empty line, \
                 or set header = false in [source]",
            ));
        }
        let headers = reader.byte_headers().map_err(|e| csv_error(name, e))?;
        return Ok(unique_names(
            headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_string()),
        ));
    }
    let mut record = csv::ByteRecord::new();
    let n = if reader
        .read_byte_record(&mut record)
        .map_err(|e| csv_error(name, e))?
    {
        record.len()
    } else {
        0
    };
    Ok((1..=n).map(|i| format!("column_{i}")).collect())
}

/// Each column's type: declared in the config, or the narrowest that holds
/// the first `infer_rows` rows' values (null markers left out).
fn infer_schema(path: &Path, name: &str, options: &ReadOptions) -> Result<Vec<TextTarget>> {
    let names = column_names(path, name, options)?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let nulls: Vec<&[String]> = names.iter().map(|n| options.null_values_of(n)).collect();
    let (tx, _) = mpsc::channel();
    let mut reader = reader_builder(options).from_reader(guarded(path, name, options, tx)?);
    let mut record = csv::ByteRecord::new();
    let mut inference = SchemaInference::new(names.clone());
    let mut sampled = 0;
    while sampled < options.infer_rows {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if record.len() != names.len() {
                    continue;
                }
                inference.observe(record.iter().zip(&nulls).map(|(field, nulls)| {
                    std::str::from_utf8(field)
                        .ok()
                        .filter(|v| !nulls.iter().any(|n| n == v))
                }));
                sampled += 1;
            }
            Err(e) if e.is_io_error() => return Err(csv_error(name, e)),
            Err(_) => continue,
        }
    }
    let inferred = inference.schema();
    Ok(inferred
        .fields()
        .iter()
        .map(|f| match options.overrides.get(f.name()) {
            Some(dt) => TextTarget {
                name: f.name().clone(),
                data_type: dt.clone(),
                declared: true,
            },
            None => TextTarget {
                name: f.name().clone(),
                data_type: f.data_type().clone(),
                declared: false,
            },
        })
        .collect())
}

/// Header names with blanks replaced by `column_N` and repeats suffixed `_2`, `_3`.
fn unique_names(raw: impl Iterator<Item = String>) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for (i, name) in raw.enumerate() {
        let base = if name.is_empty() {
            format!("column_{}", i + 1)
        } else {
            name
        };
        let mut candidate = base.clone();
        let mut n = 2;
        while names.contains(&candidate) {
            candidate = format!("{base}_{n}");
            n += 1;
        }
        names.push(candidate);
    }
    names
}

/// The values of one column read as NULL.
struct NullMarkers {
    markers: Vec<String>,
    /// The longest marker's length: longer values need no comparing.
    longest: usize,
}

impl NullMarkers {
    fn new(markers: &[String]) -> Self {
        NullMarkers {
            markers: markers.to_vec(),
            longest: markers.iter().map(String::len).max().unwrap_or(0),
        }
    }

    fn matches(&self, value: &str) -> bool {
        value.len() <= self.longest && self.markers.iter().any(|m| m == value)
    }
}

/// Appends the fields of `record` to the column `builders`, null markers
/// as nulls. The record's text is checked as UTF-8 once, as a whole, and
/// each field must then start and end on a character's boundary; `false`
/// (and nothing appended) when it is not text.
fn append_record(
    record: &csv::ByteRecord,
    builders: &mut [StringBuilder],
    nulls: &[NullMarkers],
) -> bool {
    let Ok(text) = std::str::from_utf8(record.as_slice()) else {
        return false;
    };
    let mut fields = Vec::with_capacity(0);
    let ascii = text.is_ascii();
    if !ascii {
        // Checked before anything is appended, so a bad record leaves the
        // columns as they were.
        fields.extend((0..record.len()).map(|i| record.range(i).and_then(|r| text.get(r))));
        if fields.iter().any(Option::is_none) {
            return false;
        }
    }
    for (i, (builder, nulls)) in builders.iter_mut().zip(nulls).enumerate() {
        let value = if ascii {
            record.range(i).and_then(|r| text.get(r))
        } else {
            fields[i]
        };
        match value {
            Some(value) if !nulls.matches(value) => builder.append_value(value),
            _ => builder.append_null(),
        }
    }
    true
}

struct CsvChunks {
    reader: csv::Reader<Guarded>,
    /// Lines dropped for unterminated quotes.
    letters: mpsc::Receiver<DeadLetter>,
    /// Each column's type; an inferred one widens for the rest of the file
    /// when a batch needs it.
    targets: Vec<TextTarget>,
    /// Each column's null markers.
    nulls: Vec<NullMarkers>,
    options: ReadOptions,
    name: String,
    record: csv::ByteRecord,
    done: bool,
}

impl CsvChunks {
    fn raw_line(&self, record: &csv::ByteRecord) -> String {
        let sep = (self.options.delimiter as char).to_string();
        record
            .iter()
            .map(|f| String::from_utf8_lossy(f).to_string())
            .collect::<Vec<_>>()
            .join(&sep)
    }

    fn next_chunk(&mut self) -> Result<Option<Chunk>> {
        let width = self.targets.len();
        let batch_size = self.options.batch_size;
        let mut builders: Vec<StringBuilder> = (0..width)
            .map(|_| {
                StringBuilder::with_capacity(batch_size.min(65_536), 16 * batch_size.min(65_536))
            })
            .collect();
        let mut lines: Vec<u64> = Vec::new();
        let mut dead_letters = Vec::new();
        let start = self.reader.position().byte();
        while lines.len() < batch_size {
            match self.reader.read_byte_record(&mut self.record) {
                Ok(false) => {
                    self.done = true;
                    break;
                }
                Ok(true) => {
                    let line = self.record.position().map_or(0, |p| p.line());
                    if self.record.len() != width {
                        dead_letters.push(DeadLetter {
                            origin: format!("{}:{line}", self.name),
                            reason: format!("expected {width} fields, found {}", self.record.len()),
                            raw: self.raw_line(&self.record),
                        });
                        continue;
                    }
                    if !append_record(&self.record, &mut builders, &self.nulls) {
                        dead_letters.push(DeadLetter {
                            origin: format!("{}:{line}", self.name),
                            reason: "invalid UTF-8".into(),
                            raw: self.raw_line(&self.record),
                        });
                        continue;
                    }
                    lines.push(line);
                }
                Err(e) if e.is_io_error() => return Err(csv_error(&self.name, e)),
                Err(e) => {
                    let line = e.position().map_or(0, |p| p.line());
                    dead_letters.push(DeadLetter {
                        origin: format!("{}:{line}", self.name),
                        reason: e.to_string(),
                        raw: String::new(),
                    });
                }
            }
        }
        dead_letters.extend(self.letters.try_iter());
        if lines.is_empty() && dead_letters.is_empty() {
            return Ok(None);
        }
        let columns: Vec<StringArray> = builders.iter_mut().map(|b| b.finish()).collect();
        let typed = text_to_typed(&self.targets, columns.clone())?;
        for (index, wider) in typed.widened {
            self.widen(index, wider);
        }
        let sep = (self.options.delimiter as char).to_string();
        for row in typed.bad {
            let raw: Vec<&str> = columns
                .iter()
                .map(|c| {
                    if c.is_null(row.row) {
                        ""
                    } else {
                        c.value(row.row)
                    }
                })
                .collect();
            dead_letters.push(DeadLetter {
                origin: format!("{}:{}", self.name, lines[row.row]),
                reason: row.reason,
                raw: raw.join(&sep),
            });
        }
        Ok(Some(Chunk {
            batch: typed.batch,
            bytes: self.reader.position().byte() - start,
            dead_letters,
        }))
    }

    /// Gives column `index` the wider type `wider` for the rest of the file.
    fn widen(&mut self, index: usize, wider: arrow::datatypes::DataType) {
        let target = &mut self.targets[index];
        tracing::info!(
            file = %self.name,
            "column \"{}\" holds values {} cannot hold: read as {} from here on",
            target.name,
            duckdb_type(&target.data_type),
            duckdb_type(&wider)
        );
        target.data_type = wider;
    }
}

impl Iterator for CsvChunks {
    type Item = Result<Chunk>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.next_chunk().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{BooleanArray, Date32Array, Float64Array, Int64Array};
    use arrow::datatypes::DataType;
    use proptest::prelude::*;

    /// A generated column: its kind and its values (`None` = empty cell).
    #[derive(Debug, Clone)]
    enum Column {
        Int(Vec<Option<i64>>),
        Float(Vec<Option<f64>>),
        Bool(Vec<Option<bool>>),
        Date(Vec<Option<i32>>),
        Text(Vec<Option<String>>),
    }

    impl Column {
        fn cell(&self, row: usize) -> String {
            let date = |days: i32| {
                chrono::NaiveDate::from_num_days_from_ce_opt(719_163 + days)
                    .map(|d| d.format("%Y-%m-%d").to_string())
                    .unwrap_or_default()
            };
            match self {
                Column::Int(v) => v[row].map(|x| x.to_string()),
                Column::Float(v) => v[row].map(|x| format!("{x:.3}")),
                Column::Bool(v) => v[row].map(|x| x.to_string()),
                Column::Date(v) => v[row].map(date),
                Column::Text(v) => v[row].clone(),
            }
            .unwrap_or_default()
        }

        fn all_null(&self) -> bool {
            (0..self.len()).all(|r| self.cell(r).is_empty())
        }

        fn len(&self) -> usize {
            match self {
                Column::Int(v) => v.len(),
                Column::Float(v) => v.len(),
                Column::Bool(v) => v.len(),
                Column::Date(v) => v.len(),
                Column::Text(v) => v.len(),
            }
        }

        fn expected_type(&self) -> DataType {
            if self.all_null() {
                return DataType::Utf8;
            }
            match self {
                Column::Int(_) => DataType::Int64,
                Column::Float(_) => DataType::Float64,
                Column::Bool(_) => DataType::Boolean,
                Column::Date(_) => DataType::Date32,
                Column::Text(_) => DataType::Utf8,
            }
        }
    }

    fn cells<T: std::fmt::Debug + Clone + 'static>(
        values: impl Strategy<Value = T>,
        rows: usize,
    ) -> impl Strategy<Value = Vec<Option<T>>> {
        proptest::collection::vec(proptest::option::weighted(0.85, values), rows)
    }

    fn column(rows: usize) -> impl Strategy<Value = Column> {
        prop_oneof![
            cells(any::<i64>(), rows).prop_map(Column::Int),
            cells(-1e9f64..1e9f64, rows).prop_map(Column::Float),
            cells(any::<bool>(), rows).prop_map(Column::Bool),
            cells(-25_000i32..50_000, rows).prop_map(Column::Date),
            cells("x[a-z ,\"']{0,10}", rows).prop_map(Column::Text),
        ]
    }

    fn table() -> impl Strategy<Value = Vec<Column>> {
        (1usize..40).prop_flat_map(|rows| proptest::collection::vec(column(rows), 1..6))
    }

    fn options() -> ReadOptions {
        ReadOptions {
            batch_size: 7,
            infer_rows: 1000,
            overrides: Default::default(),
            delimiter: b',',
            quote: b'"',
            header: true,
            null_values: vec![String::new()],
            column_null_values: Default::default(),
            records: None,
        }
    }

    #[test]
    fn a_csv_starting_with_an_empty_line_has_no_header_and_says_so() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "\nid,name\n1,a\n").expect("write");
        let e = infer_schema(&path, "t.csv", &options()).expect_err("no header");
        assert!(
            e.to_string().contains("t.csv: the first line is empty"),
            "{e}"
        );
        std::fs::write(&path, "id,name\n\n1,a\n").expect("write");
        assert!(infer_schema(&path, "t.csv", &options()).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever typed columns a CSV holds, inference finds their types
        /// and every value reads back unchanged.
        #[test]
        fn inferred_schema_round_trips_random_csvs(columns in table()) {
            let dir = tempfile::tempdir().expect("tmp");
            let path = dir.path().join("t.csv");
            let rows = columns[0].len();
            let mut writer = ::csv::Writer::from_path(&path).expect("writer");
            let header: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
            writer.write_record(&header).expect("header");
            for r in 0..rows {
                writer.write_record(columns.iter().map(|c| c.cell(r))).expect("row");
            }
            writer.flush().expect("flush");

            let chunks: Vec<Chunk> = read(&path, "t.csv", &options())
                .expect("opens")
                .collect::<Result<_>>()
                .expect("reads");
            let batches: Vec<_> = chunks.iter().map(|c| c.batch.clone()).collect();
            prop_assert!(chunks.iter().all(|c| c.dead_letters.is_empty()));
            prop_assert_eq!(batches.iter().map(|b| b.num_rows()).sum::<usize>(), rows);
            let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).expect("concat");
            for (i, column) in columns.iter().enumerate() {
                let expected = column.expected_type();
                let schema = batch.schema();
                prop_assert_eq!(schema.field(i).data_type(), &expected, "column {}", i);
                let array = batch.column(i);
                for r in 0..rows {
                    let cell = column.cell(r);
                    if cell.is_empty() {
                        prop_assert!(array.is_null(r));
                        continue;
                    }
                    let read_back = match &expected {
                        DataType::Int64 => array.as_any().downcast_ref::<Int64Array>().map(|a| a.value(r).to_string()),
                        DataType::Float64 => array.as_any().downcast_ref::<Float64Array>().map(|a| format!("{:.3}", a.value(r))),
                        DataType::Boolean => array.as_any().downcast_ref::<BooleanArray>().map(|a| a.value(r).to_string()),
                        DataType::Date32 => array.as_any().downcast_ref::<Date32Array>().map(|a| Column::Date(vec![Some(a.value(r))]).cell(0)),
                        _ => array.as_any().downcast_ref::<StringArray>().map(|a| a.value(r).to_string()),
                    };
                    prop_assert_eq!(read_back, Some(cell));
                }
            }
        }
    }

    /// Reads `text` as the CSV file `t.csv` with `options`.
    fn read_text(text: &str, options: &ReadOptions) -> Vec<Chunk> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).expect("write");
        read(&path, "t.csv", options)
            .expect("opens")
            .collect::<Result<_>>()
            .expect("reads")
    }

    fn rows(chunks: &[Chunk]) -> usize {
        chunks.iter().map(|c| c.batch.num_rows()).sum()
    }

    fn letters(chunks: &[Chunk]) -> Vec<&DeadLetter> {
        chunks.iter().flat_map(|c| &c.dead_letters).collect()
    }

    /// Column `name` of every chunk, as text (null as `None`).
    fn values(chunks: &[Chunk], name: &str) -> Vec<Option<String>> {
        let mut out = Vec::new();
        for chunk in chunks {
            let batch = &chunk.batch;
            let Ok(index) = batch.schema().index_of(name) else {
                continue;
            };
            let column = arrow::compute::cast(batch.column(index), &DataType::Utf8).expect("text");
            let column = column.as_any().downcast_ref::<StringArray>().expect("text");
            out.extend(column.iter().map(|v| v.map(String::from)));
        }
        out
    }

    fn types(chunk: &Chunk) -> Vec<DataType> {
        let schema = chunk.batch.schema();
        schema
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect()
    }

    #[test]
    fn an_unterminated_quote_costs_one_line_of_a_thousand() {
        let mut text = String::from("id,name,amount\n");
        for id in 1..=1000 {
            if id == 500 {
                text.push_str("500,\"unterminated,5000\n");
            } else {
                text.push_str(&format!("{id},\"n {id}\",{}\n", id * 10));
            }
        }
        let chunks = read_text(
            &text,
            &ReadOptions {
                batch_size: 64,
                ..options()
            },
        );
        assert_eq!(rows(&chunks), 999);
        let letters = letters(&chunks);
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert_eq!(letters[0].origin, "t.csv:501");
        assert!(
            letters[0].reason.contains("unterminated quote"),
            "{}",
            letters[0].reason
        );
        assert_eq!(letters[0].raw, "500,\"unterminated,5000");
        let ids = values(&chunks, "id");
        assert_eq!(ids[498].as_deref(), Some("499"));
        assert_eq!(ids[499].as_deref(), Some("501"));
    }

    #[test]
    fn quoted_values_may_span_lines() {
        let chunks = read_text("id,note\n1,\"two\nlines\"\n2,x\n", &options());
        assert!(letters(&chunks).is_empty());
        assert_eq!(
            values(&chunks, "note"),
            [Some("two\nlines".to_string()), Some("x".to_string())]
        );
    }

    fn default_nulls() -> ReadOptions {
        ReadOptions {
            null_values: ["", "NA", "N/A", "NULL", "null", "NaN", "#N/A", "\\N"]
                .map(String::from)
                .to_vec(),
            ..options()
        }
    }

    #[test]
    fn null_markers_are_nulls_and_inference_skips_them() {
        let chunks = read_text(
            "a,b,c,d\n1,NA,x,\\N\nNULL,2.5,#N/A,2024-01-02\nN/A,NaN,null,\n",
            &default_nulls(),
        );
        assert!(letters(&chunks).is_empty());
        assert_eq!(
            types(&chunks[0]),
            [
                DataType::Int64,
                DataType::Float64,
                DataType::Utf8,
                DataType::Date32
            ]
        );
        assert_eq!(values(&chunks, "a"), [Some("1".into()), None, None]);
        assert_eq!(values(&chunks, "c"), [Some("x".into()), None, None]);
    }

    #[test]
    fn column_null_values_replace_the_default_in_their_column() {
        let options = ReadOptions {
            column_null_values: [
                ("score".to_string(), vec!["-1".to_string()]),
                ("code".to_string(), vec![]),
            ]
            .into_iter()
            .collect(),
            ..default_nulls()
        };
        let chunks = read_text("code,score,n\nNA,-1,NA\nUS,7,1\n", &options);
        assert_eq!(
            values(&chunks, "code"),
            [Some("NA".into()), Some("US".into())]
        );
        assert_eq!(values(&chunks, "score"), [None, Some("7".into())]);
        assert_eq!(values(&chunks, "n"), [None, Some("1".into())]);
    }

    #[test]
    fn values_that_contradict_an_inferred_type_widen_the_column() {
        let options = ReadOptions {
            infer_rows: 1,
            batch_size: 2,
            ..default_nulls()
        };
        let chunks = read_text(
            "i,big,b,d\n1,1,true,2024-01-02\n2,2,false,2024-01-03\n2.5,9007199254740993,1,soon\n4,4,true,2024-01-04\n",
            &options,
        );
        assert!(letters(&chunks).is_empty());
        assert_eq!(rows(&chunks), 4);
        assert_eq!(
            types(&chunks[0]),
            [
                DataType::Int64,
                DataType::Int64,
                DataType::Boolean,
                DataType::Date32
            ]
        );
        assert_eq!(
            types(&chunks[1]),
            [
                DataType::Float64,
                DataType::Int64,
                DataType::Utf8,
                DataType::Utf8
            ],
            "each column as wide as this batch needs"
        );
        assert_eq!(values(&chunks, "i")[2].as_deref(), Some("2.5"));
        assert_eq!(
            values(&chunks, "big")[2].as_deref(),
            Some("9007199254740993"),
            "exact, never rounded"
        );
        assert_eq!(values(&chunks, "b")[2].as_deref(), Some("1"));
        assert_eq!(values(&chunks, "d")[2].as_deref(), Some("soon"));
    }

    #[test]
    fn a_double_column_keeps_a_value_no_double_holds_as_text() {
        let chunks = read_text("f\n1.5\n9007199254740993\n", &options());
        assert!(letters(&chunks).is_empty());
        assert_eq!(types(&chunks[0]), [DataType::Utf8]);
        assert_eq!(values(&chunks, "f")[1].as_deref(), Some("9007199254740993"));
    }

    #[test]
    fn a_declared_type_rejects_the_rows_it_cannot_hold() {
        let options = ReadOptions {
            overrides: [("n".to_string(), DataType::Int64)].into_iter().collect(),
            ..default_nulls()
        };
        let chunks = read_text("n,s\n1,a\n2.5,b\nNA,c\n", &options);
        assert_eq!(values(&chunks, "n"), [Some("1".into()), None]);
        let letters = letters(&chunks);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].origin, "t.csv:3");
        assert!(
            letters[0]
                .reason
                .contains("cannot convert \"2.5\" to BIGINT")
        );
    }

    #[test]
    fn an_empty_file_gives_no_batches() {
        assert!(read_text("", &options()).is_empty());
        assert!(read_text("id,name\n", &options()).is_empty());
    }

    #[test]
    fn header_names_are_made_unique() {
        let names = unique_names(["id", "", "id", "x"].into_iter().map(String::from));
        assert_eq!(names, ["id", "column_2", "id_2", "x"]);
    }

    /// `text` as a file, described for the warehouse to read.
    fn scan_text(text: &str, options: &ReadOptions) -> Option<FileScan> {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.csv");
        std::fs::write(&path, text).expect("write");
        scan(&path, "t.csv", options).expect("scans")
    }

    #[test]
    fn a_file_is_described_with_its_inferred_columns() {
        let scan = scan_text("id,name\r\n1,a\r\n2,b\r\n", &options()).expect("described");
        assert_eq!(
            scan.columns,
            [
                ("id".to_string(), DataType::Int64),
                ("name".to_string(), DataType::Utf8)
            ]
        );
        let without_header = ReadOptions {
            header: false,
            ..options()
        };
        assert!(scan_text("1,a\n", &without_header).is_some());
    }

    #[test]
    fn files_the_warehouse_would_read_differently_are_not_described() {
        assert!(scan_text("id,name\n", &options()).is_none(), "no row");
        assert!(
            scan_text("\"i\nd\",name\n1,a\n", &options()).is_none(),
            "header over two lines"
        );
        let without_header = ReadOptions {
            header: false,
            ..options()
        };
        assert!(
            scan_text("\u{feff}1,a\n", &without_header).is_none(),
            "a byte-order mark"
        );
        assert!(
            scan_text("v\na\n\nb\n", &options()).is_none(),
            "an empty line"
        );
        assert!(
            scan_text("v\r\na\r\n\r\nb\r\n", &options()).is_none(),
            "an empty CRLF line"
        );
        assert!(scan_text("v\na\rb\n", &options()).is_none(), "a lone CR");
        assert!(scan_text("v\na\r", &options()).is_none(), "a CR at the end");
        assert!(
            scan_text("v,w\r1,a\n", &options()).is_none(),
            "a CR in the header"
        );
    }
}
