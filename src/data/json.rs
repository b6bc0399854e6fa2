//! JSON records to Arrow: following a dotted path to the records in a
//! document, and decoding objects into batches whose schema is inferred and
//! widened as new fields and types arrive. Shared by the file, HTTP and
//! stream sources.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{BooleanArray, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::json::reader::Decoder;
use arrow::json::reader::infer_json_schema_from_iterator;
use arrow::record_batch::RecordBatch;
use serde_json::Value;

use super::{json_record, numbers};
use crate::core::DeadLetter;
use crate::core::error::{Error, Result};

/// Follows a dotted path (`data.items`, `pages.0.rows`) into a document.
pub fn select(mut value: Value, path: &str) -> Option<Value> {
    for part in path.split('.').filter(|p| !p.is_empty()) {
        value = match value {
            Value::Object(mut map) => map.remove(part)?,
            Value::Array(mut items) => {
                let index: usize = part.parse().ok()?;
                if index >= items.len() {
                    return None;
                }
                items.swap_remove(index)
            }
            _ => return None,
        };
    }
    Some(value)
}

/// What kind of JSON value this is, for messages ("an array").
pub fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Turns JSON objects into Arrow batches, keeping one schema that widens as
/// records with new fields or types arrive.
pub struct JsonDecoder {
    schema: Option<SchemaRef>,
    overrides: HashMap<String, DataType>,
    /// arrow's decoder of newline-delimited text, kept between batches.
    text: Option<TextDecoder>,
}

impl JsonDecoder {
    /// A decoder with per-column type overrides.
    pub fn new(overrides: HashMap<String, DataType>) -> Self {
        JsonDecoder {
            schema: None,
            overrides,
            text: None,
        }
    }

    /// Decodes `values`; records that do not fit the schema become dead letters.
    pub fn decode(
        &mut self,
        values: Vec<(String, Value)>,
    ) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        if values.is_empty() {
            return Ok((
                RecordBatch::new_empty(Arc::new(Schema::empty())),
                Vec::new(),
            ));
        }
        let only_values: Vec<&Value> = values.iter().map(|(_, v)| v).collect();
        // Most batches fit the schema so far: decoding strictly (unknown
        // fields are errors) proves it without inferring anything.
        if let Some(schema) = self.schema.clone()
            && !schema.fields().is_empty()
            && let Ok(Some(batch)) = decode_values(&as_text(&schema), &only_values, true)
        {
            return self.finish(batch, &|i| describe_value(&values[i]));
        }
        let schema = as_text(&self.infer(&values)?);
        if schema.fields().is_empty() {
            // Empty objects, and no column known to hold their NULLs.
            return Ok((RecordBatch::new_empty(schema), no_columns(values)));
        }
        let values = with_nested_as_text(values, &schema);
        let only_values: Vec<&Value> = values.iter().map(|(_, v)| v).collect();
        if let Ok(Some(batch)) = decode_all(&schema, &only_values) {
            return self.finish(batch, &|i| describe_value(&values[i]));
        }
        // Some record does not fit: find it, keep the rest.
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (origin, value) in &values {
            match decode_all(&schema, &[value]) {
                Ok(_) => good.push((origin.clone(), value.clone())),
                Err(e) => bad.push(DeadLetter {
                    origin: origin.clone(),
                    reason: e.to_string(),
                    raw: value.to_string(),
                }),
            }
        }
        let good_values: Vec<&Value> = good.iter().map(|(_, v)| v).collect();
        let batch = decode_all(&schema, &good_values)?
            .unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
        let (batch, more) = self.finish(batch, &|i| describe_value(&good[i]))?;
        bad.extend(more);
        Ok((batch, bad))
    }

    /// Decodes newline-delimited JSON objects; `origin_of(i)` names the
    /// i-th for dead letters. Text that fits the schema so far goes straight
    /// into Arrow without building JSON values.
    pub fn decode_ndjson(
        &mut self,
        text: &[u8],
        rows: usize,
        origin_of: &dyn Fn(usize) -> String,
    ) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        // The lines are split only if a row is rejected.
        let lines: std::cell::OnceCell<Vec<&[u8]>> = std::cell::OnceCell::new();
        let line = |i: usize| {
            let lines = lines.get_or_init(|| {
                text.split(|b| *b == b'\n')
                    .filter(|l| !l.is_empty())
                    .collect()
            });
            (
                origin_of(i),
                lines
                    .get(i)
                    .map(|l| String::from_utf8_lossy(l).into_owned())
                    .unwrap_or_default(),
            )
        };
        if let Some(schema) = self.schema.clone()
            && !schema.fields().is_empty()
            && let Ok(Some(batch)) = decode_text(&mut self.text, as_text(&schema), text, rows)
            && batch.num_rows() == rows
        {
            return self.finish(batch, &line);
        }
        // Flat records of valid JSON (most files): the schema widened with
        // the types their text holds, then the text decoded with it.
        if let Some(schema) = self.widen_to_flat_records(text) {
            let schema = as_text(&schema);
            if !schema.fields().is_empty()
                && let Ok(Some(batch)) = decode_text(&mut self.text, schema, text, rows)
                && batch.num_rows() == rows
            {
                return self.finish(batch, &line);
            }
        }
        let mut values = Vec::with_capacity(rows);
        let mut valid = Vec::with_capacity(text.len());
        let mut bad = Vec::new();
        let lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        for (i, line) in lines.enumerate() {
            match serde_json::from_slice::<Value>(line) {
                Ok(value) => {
                    values.push((origin_of(i), value));
                    valid.extend_from_slice(line);
                    valid.push(b'\n');
                }
                Err(e) => bad.push(DeadLetter {
                    origin: origin_of(i),
                    reason: format!("invalid JSON: {e}"),
                    raw: String::from_utf8_lossy(line).into_owned(),
                }),
            }
        }
        // The schema widened to hold the lines, then their text decoded
        // with it: a number keeps the text the file wrote (a JSON value
        // holds it as a double: `-7.90` would land as `-7.9`, and
        // `0.1000000000000000055511151231257827` as `0.1`).
        if !values.is_empty() {
            let schema = as_text(&self.infer(&values)?);
            if !schema.fields().is_empty()
                && let Ok(Some(batch)) = decode_text(&mut self.text, schema, &valid, values.len())
                && batch.num_rows() == values.len()
            {
                let (batch, more_bad) = self.finish(batch, &|i| describe_value(&values[i]))?;
                bad.extend(more_bad);
                return Ok((batch, bad));
            }
        }
        let (batch, more_bad) = self.decode(values)?;
        bad.extend(more_bad);
        Ok((batch, bad))
    }

    /// Widens the running schema to hold the newline-delimited records of
    /// `text`, their types read off the text, when they are flat records
    /// of valid JSON (see [`json_record::infer_flat_schema`]): the schema
    /// they are then decoded with, before their numbers are converted
    /// exactly. `None`, the schema unchanged, for other records.
    fn widen_to_flat_records(&mut self, text: &[u8]) -> Option<SchemaRef> {
        let columns = json_record::infer_flat_schema(text)?;
        Some(self.widen_to_flat_columns(&columns))
    }

    fn widen_to_flat_columns(&mut self, columns: &[json_record::FlatColumn]) -> SchemaRef {
        let inferred = Schema::new(
            columns
                .iter()
                .map(|c| Field::new(&c.name, c.data_type.clone(), true))
                .collect::<Vec<_>>(),
        );
        self.widen(inferred)
    }

    /// The schema the first batch of the newline-delimited records of
    /// `text` lands with, read off the text without decoding it, when the
    /// records are flat: as [`Self::decode_ndjson`] widens it, and then a
    /// DOUBLE column holding a number a double cannot hold exactly is
    /// text, as the batch's exact conversion makes it (unless declared).
    /// Only for a decoder that has read nothing yet.
    pub fn first_flat_schema(&mut self, text: &[u8]) -> Option<SchemaRef> {
        let columns = json_record::infer_flat_schema(text)?;
        let schema = self.widen_to_flat_columns(&columns);
        let fields: Vec<Field> = schema
            .fields()
            .iter()
            .map(|field| {
                let inexact = columns
                    .iter()
                    .any(|c| &c.name == field.name() && !c.exact_in_double);
                let widened = field.data_type() == &DataType::Float64
                    && inexact
                    && !self.overrides.contains_key(field.name());
                if widened {
                    Field::new(field.name(), DataType::Utf8, true)
                } else {
                    field.as_ref().clone()
                }
            })
            .collect();
        Some(Arc::new(Schema::new(fields)))
    }

    /// Widens the running schema to hold `values`. A key whose records
    /// disagree (an object here, a number there) becomes text.
    fn infer(&mut self, values: &[(String, Value)]) -> Result<SchemaRef> {
        let all = values
            .iter()
            .map(|(_, v)| Ok::<_, arrow::error::ArrowError>(v));
        if let Ok(inferred) = infer_json_schema_from_iterator(all) {
            return Ok(self.widen(inferred));
        }
        // Arrow refuses to merge some types: infer record by record and
        // merge here, naming the record if one cannot be read at all.
        let mut schema = None;
        for (origin, value) in values {
            let one = infer_json_schema_from_iterator(std::iter::once(Ok::<
                _,
                arrow::error::ArrowError,
            >(value)))
            .map_err(|e| Error::source_data(origin, format!("cannot read the record: {e}")))?;
            schema = Some(self.widen(one));
        }
        Ok(schema.unwrap_or_else(|| Arc::new(Schema::empty())))
    }

    /// Merges newly inferred fields into the running schema.
    fn widen(&mut self, inferred: Schema) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .schema
            .as_ref()
            .map(|s| s.fields().iter().map(|f| f.as_ref().clone()).collect())
            .unwrap_or_default();
        for new in inferred.fields() {
            let new_type = match new.data_type() {
                DataType::Null => DataType::Utf8,
                other => other.clone(),
            };
            match fields.iter_mut().find(|f| f.name() == new.name()) {
                Some(existing) => {
                    let merged = merge_types(existing.data_type(), &new_type);
                    *existing = Field::new(existing.name(), merged, true);
                }
                None => fields.push(Field::new(new.name(), new_type, true)),
            }
        }
        for field in &mut fields {
            if let Some(dt) = self.overrides.get(field.name()) {
                *field = Field::new(field.name(), dt.clone(), true);
            }
        }
        let schema = Arc::new(Schema::new(fields));
        self.schema = Some(schema.clone());
        schema
    }
}

impl JsonDecoder {
    /// Turns the numeric columns of `batch` (decoded as their JSON text,
    /// see [`as_text`]) into numbers, exactly: a value a column's type
    /// cannot hold exactly widens the column (integer -> double -> text),
    /// or, when the type was declared, makes its row a dead letter.
    /// `row(i)` gives the origin and raw text of row `i`.
    fn finish(
        &mut self,
        batch: RecordBatch,
        row: &dyn Fn(usize) -> (String, String),
    ) -> Result<(RecordBatch, Vec<DeadLetter>)> {
        let Some(schema) = self.schema.clone() else {
            return Ok((batch, Vec::new()));
        };
        let mut columns = Vec::with_capacity(batch.num_columns());
        let mut fields = Vec::with_capacity(batch.num_columns());
        let mut rejected: Vec<(usize, String)> = Vec::new();
        let mut widened = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let target = schema
                .field_with_name(field.name())
                .map(|f| f.data_type().clone())
                .unwrap_or_else(|_| field.data_type().clone());
            if !is_number(&target) {
                fields.push(field.as_ref().clone());
                columns.push(column.clone());
                continue;
            }
            let text = column
                .as_any()
                .downcast_ref::<StringArray>()
                .ok_or_else(|| {
                    Error::Other(format!("column \"{}\" was not read as text", field.name()))
                })?;
            let declared = self.overrides.contains_key(field.name());
            let (data_type, array) = match numbers::exact(text, &target) {
                numbers::Exact::Fits(array) => (target, array),
                numbers::Exact::Misfits(rows) if declared => {
                    for i in rows {
                        let value = text.value(i).to_string();
                        rejected.push((
                            i,
                            format!(
                                "column \"{}\": {value} does not fit its declared type {target} exactly",
                                field.name()
                            ),
                        ));
                    }
                    let array = numbers::exact_or_null(text, &target)?;
                    (target, array)
                }
                numbers::Exact::Misfits(_) => {
                    let (wider, array) = numbers::widest(text)?;
                    widened.push((field.name().clone(), wider.clone()));
                    (wider, array)
                }
            };
            fields.push(Field::new(field.name(), data_type, true));
            columns.push(array);
        }
        for (name, wider) in widened {
            tracing::info!("column \"{name}\" holds values its type cannot: widened to {wider}");
            self.set_type(&name, wider);
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
            .map_err(|e| Error::arrow("building a batch", e))?;
        if rejected.is_empty() {
            return Ok((batch, Vec::new()));
        }
        rejected.sort_by_key(|(i, _)| *i);
        rejected.dedup_by_key(|(i, _)| *i);
        let mut keep = vec![true; batch.num_rows()];
        let letters = rejected
            .into_iter()
            .map(|(i, reason)| {
                keep[i] = false;
                let (origin, raw) = row(i);
                DeadLetter {
                    origin,
                    reason,
                    raw,
                }
            })
            .collect();
        let batch = arrow::compute::filter_record_batch(&batch, &BooleanArray::from(keep))
            .map_err(|e| Error::arrow("dropping rejected rows", e))?;
        Ok((batch, letters))
    }

    /// Changes the type of column `name` for every later batch.
    fn set_type(&mut self, name: &str, data_type: DataType) {
        if let Some(schema) = &self.schema {
            let fields: Vec<Field> = schema
                .fields()
                .iter()
                .map(|f| {
                    if f.name() == name {
                        Field::new(name, data_type.clone(), true)
                    } else {
                        f.as_ref().clone()
                    }
                })
                .collect();
            self.schema = Some(Arc::new(Schema::new(fields)));
        }
    }
}

/// The records with every object or array in a text column replaced by
/// its JSON text (the column mixes them with other values).
fn with_nested_as_text(values: Vec<(String, Value)>, schema: &SchemaRef) -> Vec<(String, Value)> {
    let text_columns: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| f.data_type() == &DataType::Utf8)
        .map(|f| f.name().as_str())
        .collect();
    if text_columns.is_empty() {
        return values;
    }
    values
        .into_iter()
        .map(|(origin, mut value)| {
            if let Value::Object(map) = &mut value {
                for column in &text_columns {
                    if let Some(v) = map.get_mut(*column)
                        && (v.is_object() || v.is_array())
                    {
                        *v = Value::String(v.to_string());
                    }
                }
            }
            (origin, value)
        })
        .collect()
}

/// The dead letters of records that hold no key while no column is known:
/// a table needs a column to hold a row.
fn no_columns(values: Vec<(String, Value)>) -> Vec<DeadLetter> {
    values
        .into_iter()
        .map(|(origin, value)| DeadLetter {
            origin,
            reason: "an object with no keys, and no column known yet to load it into".into(),
            raw: value.to_string(),
        })
        .collect()
}

/// A record's origin and raw text, for a dead letter.
fn describe_value((origin, value): &(String, Value)) -> (String, String) {
    (origin.clone(), value.to_string())
}

/// Whether JSON numbers of this type are read as text first and converted
/// exactly (see [`numbers`]).
fn is_number(data_type: &DataType) -> bool {
    data_type.is_integer() || matches!(data_type, DataType::Float64 | DataType::Float32)
}

/// `schema` with its numeric columns read as text: arrow's JSON reader
/// turns 2.5 into the integer 2 (and 2^53 + 1 into a different double), so
/// numbers are converted by [`numbers::exact`] instead.
fn as_text(schema: &SchemaRef) -> SchemaRef {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_number(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

fn merge_types(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (a, b) if a == b => a.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            DataType::Float64
        }
        (_, DataType::Utf8) | (DataType::Utf8, _) => DataType::Utf8,
        (DataType::Struct(x), DataType::Struct(y)) => {
            let mut fields: Vec<Field> = x.iter().map(|f| f.as_ref().clone()).collect();
            for f in y.iter() {
                match fields.iter_mut().find(|e| e.name() == f.name()) {
                    Some(e) => {
                        *e = Field::new(e.name(), merge_types(e.data_type(), f.data_type()), true)
                    }
                    None => fields.push(f.as_ref().clone()),
                }
            }
            DataType::Struct(fields.into())
        }
        // An object or array where a scalar was (or the other way round):
        // the column keeps each value as its JSON text.
        _ => DataType::Utf8,
    }
}

fn decode_all<V: serde::Serialize>(
    schema: &SchemaRef,
    values: &[V],
) -> Result<Option<RecordBatch>> {
    decode_values(schema, values, false)
}

/// Decodes `values` into one batch of `schema`; `strict` makes a field the
/// schema lacks an error instead of being dropped.
fn decode_values<V: serde::Serialize>(
    schema: &SchemaRef,
    values: &[V],
    strict: bool,
) -> Result<Option<RecordBatch>> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_coerce_primitive(true)
        .with_strict_mode(strict)
        .with_batch_size(values.len().max(1))
        .build_decoder()
        .map_err(|e| Error::arrow("building JSON decoder", e))?;
    decoder
        .serialize(values)
        .map_err(|e| Error::arrow("decoding JSON", e))?;
    decoder
        .flush()
        .map_err(|e| Error::arrow("decoding JSON", e))
}

/// arrow's decoder of newline-delimited text into batches of one schema,
/// kept from batch to batch so its buffers are allocated once, not grown
/// again for every batch.
struct TextDecoder {
    schema: SchemaRef,
    /// The most rows a batch it decodes can hold.
    capacity: usize,
    decoder: Decoder,
}

/// Decodes JSON text strictly into one batch of `schema`, with the decoder
/// kept in `kept` when it fits (a decoder that failed is dropped).
fn decode_text(
    kept: &mut Option<TextDecoder>,
    schema: SchemaRef,
    text: &[u8],
    rows: usize,
) -> Result<Option<RecordBatch>> {
    let mut text_decoder = match kept.take() {
        Some(kept) if kept.schema == schema && kept.capacity >= rows => kept,
        _ => {
            let capacity = rows.max(1);
            let decoder = ReaderBuilder::new(schema.clone())
                .with_coerce_primitive(true)
                .with_strict_mode(true)
                .with_batch_size(capacity)
                .build_decoder()
                .map_err(|e| Error::arrow("building JSON decoder", e))?;
            TextDecoder {
                schema,
                capacity,
                decoder,
            }
        }
    };
    let mut rest = text;
    while !rest.is_empty() {
        let read = text_decoder
            .decoder
            .decode(rest)
            .map_err(|e| Error::arrow("decoding JSON", e))?;
        if read == 0 {
            break;
        }
        rest = &rest[read..];
    }
    let batch = text_decoder
        .decoder
        .flush()
        .map_err(|e| Error::arrow("decoding JSON", e))?;
    *kept = Some(text_decoder);
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selects_nested_records() {
        let doc = json!({"data": {"items": [{"id": 1}, {"id": 2}]}});
        let items = select(doc, "data.items").expect("found");
        assert_eq!(items.as_array().map(Vec::len), Some(2));
    }

    #[test]
    fn ndjson_text_decodes_fast_then_widens() {
        let mut decoder = JsonDecoder::new(Default::default());
        let origin = |i: usize| format!("#{i}");
        let (b1, _) = decoder
            .decode_ndjson(b"{\"id\": 1}\n{\"id\": 2}\n", 2, &origin)
            .expect("decodes");
        assert_eq!(b1.num_rows(), 2);
        let (b2, bad) = decoder
            .decode_ndjson(b"{\"id\": 3, \"x\": \"new\"}\n{oops\n", 2, &origin)
            .expect("decodes");
        assert_eq!(b2.num_rows(), 1);
        assert_eq!(b2.schema().fields().len(), 2, "the new field is kept");
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].origin, "#1");
    }

    #[test]
    fn a_first_flat_schema_is_the_one_its_batch_lands_with() {
        let origin = |i: usize| format!("#{i}");
        for text in [
            "{\"id\": 1, \"v\": 2.5, \"s\": null}\n{\"id\": 2, \"v\": 3}\n",
            "{\"v\": 0.1000000000000000055511151231257827, \"w\": 1.5}\n{\"v\": 1}\n",
            "{\"v\": 9007199254740993, \"w\": 9007199254740993}\n{\"v\": 0.5}\n",
            "{\"b\": true, \"z\": \"x\"}\n{\"b\": 1, \"a\": -0}\n",
        ] {
            let rows = text.lines().count();
            let (batch, bad) = JsonDecoder::new(Default::default())
                .decode_ndjson(text.as_bytes(), rows, &origin)
                .expect("decodes");
            assert!(bad.is_empty(), "{text}");
            let schema = JsonDecoder::new(Default::default())
                .first_flat_schema(text.as_bytes())
                .expect("flat");
            assert_eq!(schema, batch.schema(), "{text}");
        }
    }

    #[test]
    fn the_kept_text_decoder_decodes_batches_of_any_size_in_turn() {
        let mut decoder = JsonDecoder::new(Default::default());
        let origin = |i: usize| format!("#{i}");
        for (text, rows, first) in [
            (
                &b"{\"id\": 1, \"s\": \"a\"}\n{\"id\": 2, \"s\": \"b\"}\n"[..],
                2,
                1,
            ),
            (
                b"{\"id\": 3, \"s\": \"c\"}\n{\"id\": 4, \"s\": null}\n{\"id\": 5}\n",
                3,
                3,
            ),
            (b"{\"id\": 6, \"s\": \"f\"}\n", 1, 6),
            (
                b"{\"id\": 7, \"t\": true}\n{\"id\": 8, \"s\": \"h\"}\n",
                2,
                7,
            ),
        ] {
            let (batch, bad) = decoder.decode_ndjson(text, rows, &origin).expect("decodes");
            assert!(bad.is_empty());
            assert_eq!(batch.num_rows(), rows);
            let ids = batch
                .column_by_name("id")
                .and_then(|c| c.as_any().downcast_ref::<arrow::array::Int64Array>())
                .expect("ids");
            let expected: Vec<i64> = (first..first + rows as i64).collect();
            assert_eq!(ids.values().to_vec(), expected);
        }
    }

    #[test]
    fn numbers_keep_the_text_the_file_wrote_when_types_first_meet() {
        let mut decoder = JsonDecoder::new(Default::default());
        let origin = |i: usize| format!("#{i}");
        let (batch, bad) = decoder
            .decode_ndjson(
                b"{\"v\": -7.90, \"p\": 2.50}\n{\"v\": false, \"p\": 0.1000000000000000055511151231257827}\n",
                2,
                &origin,
            )
            .expect("decodes");
        assert!(bad.is_empty());
        for (column, expected) in [("v", "-7.90"), ("p", "2.50")] {
            let text = batch
                .column_by_name(column)
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .expect("text: the values do not fit one type exactly");
            assert_eq!(text.value(0), expected);
        }
    }

    #[test]
    fn empty_objects_before_any_column_are_dead_letters() {
        let mut decoder = JsonDecoder::new(Default::default());
        let origin = |i: usize| format!("#{i}");
        let (batch, bad) = decoder
            .decode_ndjson(b"{\"a\": 1e999}\n{}\n", 2, &origin)
            .expect("decodes");
        assert_eq!(batch.num_rows(), 0);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(bad[1].reason.contains("no column"), "{bad:?}");
        let (_, bad) = decoder.decode_ndjson(b"{}\n", 1, &origin).expect("decodes");
        assert_eq!(bad.len(), 1, "{bad:?}");
        let (batch, bad) = decoder
            .decode_ndjson(b"{\"a\": 1}\n{}\n", 2, &origin)
            .expect("decodes");
        assert!(bad.is_empty());
        assert_eq!(
            batch.num_rows(),
            2,
            "later, an empty object is a row of NULLs"
        );
    }

    #[test]
    fn schema_widens_across_batches() {
        let mut decoder = JsonDecoder::new(Default::default());
        let (b1, _) = decoder
            .decode(vec![("a".into(), json!({"id": 1}))])
            .expect("decodes");
        assert_eq!(b1.schema().field(0).data_type(), &DataType::Int64);
        let (b2, bad) = decoder
            .decode(vec![("b".into(), json!({"id": 1.5, "name": "x"}))])
            .expect("decodes");
        assert!(bad.is_empty());
        assert_eq!(b2.schema().field(0).data_type(), &DataType::Float64);
        assert_eq!(b2.schema().field(1).name(), "name");
    }

    #[test]
    fn a_float_after_integers_widens_the_column_and_keeps_every_value() {
        let mut decoder = JsonDecoder::new(Default::default());
        let origin = |i: usize| format!("#{i}");
        let (b1, _) = decoder
            .decode_ndjson(b"{\"id\":1,\"v\":1}\n{\"id\":2,\"v\":2}\n", 2, &origin)
            .expect("decodes");
        assert_eq!(b1.schema().field(1).data_type(), &DataType::Int64);
        let (b2, bad) = decoder
            .decode_ndjson(b"{\"id\":3,\"v\":2.5}\n{\"id\":4,\"v\":-7.9}\n", 2, &origin)
            .expect("decodes");
        assert!(bad.is_empty());
        assert_eq!(b2.schema().field(1).data_type(), &DataType::Float64);
        let v = b2
            .column(1)
            .as_any()
            .downcast_ref::<arrow::array::Float64Array>()
            .expect("doubles");
        assert_eq!((v.value(0), v.value(1)), (2.5, -7.9));
    }

    #[test]
    fn a_value_its_declared_type_cannot_hold_is_a_dead_letter() {
        let mut decoder = JsonDecoder::new([("v".to_string(), DataType::Int64)].into());
        let (batch, bad) = decoder
            .decode(vec![
                ("a".into(), json!({"v": 1})),
                ("b".into(), json!({"v": 1.5})),
            ])
            .expect("decodes");
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].origin, "b");
        assert!(bad[0].reason.contains("declared type"), "{}", bad[0].reason);
    }

    #[test]
    fn a_key_that_mixes_objects_and_scalars_keeps_its_json_text() {
        let mut decoder = JsonDecoder::new(Default::default());
        let (batch, bad) = decoder
            .decode(vec![
                ("a".into(), json!({"id": 1, "v": 1})),
                ("b".into(), json!({"id": 2, "v": {"x": 1}})),
                ("c".into(), json!({"id": 3, "v": [1, 2]})),
            ])
            .expect("decodes");
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(batch.num_rows(), 3);
        assert_eq!(batch.schema().field(1).data_type(), &DataType::Utf8);
        let v = batch
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("text");
        assert_eq!(v.value(1), "{\"x\":1}");
    }
}
