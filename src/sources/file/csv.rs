//! CSV: schema inferred from a sample, then read in batches of text columns
//! converted to their types; a row that does not parse is a dead letter.

use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, StringArray, StringBuilder};
use arrow::datatypes::{Field, Schema, SchemaRef};

use super::{Chunk, Chunks, ReadOptions, open};
use crate::core::DeadLetter;
use crate::core::error::{Error, Result};
use crate::data::convert::text_to_batch;
use crate::data::infer::SchemaInference;

/// Reads the CSV file at `path` as a stream of batches.
pub(crate) fn read(path: &Path, name: &str, options: &ReadOptions) -> Result<Chunks> {
    let schema = infer_schema(path, name, options)?;
    let reader = reader_builder(options).from_reader(open(path)?);
    Ok(Box::new(CsvChunks {
        reader,
        schema,
        options: options.clone(),
        name: name.to_string(),
        record: csv::ByteRecord::new(),
        done: false,
    }))
}

fn reader_builder(options: &ReadOptions) -> csv::ReaderBuilder {
    let mut builder = csv::ReaderBuilder::new();
    builder
        .delimiter(options.delimiter)
        .quote(options.quote)
        .has_headers(options.header)
        .flexible(true);
    builder
}

fn csv_error(name: &str, e: csv::Error) -> Error {
    Error::source_data(name, e.to_string())
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

/// Column names from the header (made unique and non-empty) and types from
/// the first `infer_rows` rows, with the config's overrides applied.
fn infer_schema(path: &Path, name: &str, options: &ReadOptions) -> Result<SchemaRef> {
    let mut reader = reader_builder(options).from_reader(open(path)?);
    let mut record = csv::ByteRecord::new();
    let names: Vec<String> = if options.header {
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
        unique_names(
            headers
                .iter()
                .map(|h| String::from_utf8_lossy(h).trim().to_string()),
        )
    } else {
        let mut peek = reader_builder(options).from_reader(open(path)?);
        let n = if peek
            .read_byte_record(&mut record)
            .map_err(|e| csv_error(name, e))?
        {
            record.len()
        } else {
            0
        };
        (1..=n).map(|i| format!("column_{i}")).collect()
    };
    let mut inference = SchemaInference::new(names.clone());
    let mut sampled = 0;
    while sampled < options.infer_rows {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if record.len() != names.len() {
                    continue;
                }
                inference.observe(record.iter().map(|field| {
                    std::str::from_utf8(field)
                        .ok()
                        .filter(|v| !options.null_values.iter().any(|n| n == v))
                }));
                sampled += 1;
            }
            Err(e) if e.is_io_error() => return Err(csv_error(name, e)),
            Err(_) => continue,
        }
    }
    let inferred = inference.schema();
    let fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| match options.overrides.get(f.name()) {
            Some(dt) => Field::new(f.name(), dt.clone(), true),
            None => f.as_ref().clone(),
        })
        .collect();
    Ok(Arc::new(Schema::new(fields)))
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

struct CsvChunks {
    reader: csv::Reader<Box<dyn Read + Send>>,
    schema: SchemaRef,
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
        let width = self.schema.fields().len();
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
                    let fields: std::result::Result<Vec<&str>, _> =
                        self.record.iter().map(std::str::from_utf8).collect();
                    let Ok(fields) = fields else {
                        dead_letters.push(DeadLetter {
                            origin: format!("{}:{line}", self.name),
                            reason: "invalid UTF-8".into(),
                            raw: self.raw_line(&self.record),
                        });
                        continue;
                    };
                    for (builder, value) in builders.iter_mut().zip(fields) {
                        if self.options.null_values.iter().any(|n| n == value) {
                            builder.append_null();
                        } else {
                            builder.append_value(value);
                        }
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
        if lines.is_empty() && dead_letters.is_empty() {
            return Ok(None);
        }
        let columns: Vec<StringArray> = builders.iter_mut().map(|b| b.finish()).collect();
        let (batch, bad) = text_to_batch(&self.schema, columns.clone())?;
        let sep = (self.options.delimiter as char).to_string();
        for row in bad {
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
            batch,
            bytes: self.reader.position().byte() - start,
            dead_letters,
        }))
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

    #[test]
    fn header_names_are_made_unique() {
        let names = unique_names(["id", "", "id", "x"].into_iter().map(String::from));
        assert_eq!(names, ["id", "column_2", "id_2", "x"]);
    }
}
