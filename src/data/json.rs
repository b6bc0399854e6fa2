//! JSON records to Arrow: following a dotted path to the records in a
//! document, and decoding objects into batches whose schema is inferred and
//! widened as new fields and types arrive. Shared by the file, HTTP and
//! stream sources.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::json::ReaderBuilder;
use arrow::json::reader::infer_json_schema_from_iterator;
use arrow::record_batch::RecordBatch;
use serde_json::Value;

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
}

impl JsonDecoder {
    /// A decoder with per-column type overrides.
    pub fn new(overrides: HashMap<String, DataType>) -> Self {
        JsonDecoder {
            schema: None,
            overrides,
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
            && let Ok(Some(batch)) = decode_values(&schema, &only_values, true)
        {
            return Ok((batch, Vec::new()));
        }
        let inferred = infer_json_schema_from_iterator(
            values
                .iter()
                .map(|(_, v)| Ok::<_, arrow::error::ArrowError>(v)),
        )
        .map_err(|e| Error::arrow("inferring JSON schema", e))?;
        let schema = self.widen(inferred);
        if let Ok(Some(batch)) = decode_all(&schema, &only_values) {
            return Ok((batch, Vec::new()));
        }
        // Some record does not fit: find it, keep the rest.
        let mut good = Vec::new();
        let mut bad = Vec::new();
        for (origin, value) in &values {
            match decode_all(&schema, &[value]) {
                Ok(_) => good.push(value),
                Err(e) => bad.push(DeadLetter {
                    origin: origin.clone(),
                    reason: e.to_string(),
                    raw: value.to_string(),
                }),
            }
        }
        let batch =
            decode_all(&schema, &good)?.unwrap_or_else(|| RecordBatch::new_empty(schema.clone()));
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
        if let Some(schema) = self.schema.clone()
            && let Ok(Some(batch)) = decode_text(&schema, text, rows)
            && batch.num_rows() == rows
        {
            return Ok((batch, Vec::new()));
        }
        let mut values = Vec::with_capacity(rows);
        let mut bad = Vec::new();
        let lines = text.split(|b| *b == b'\n').filter(|l| !l.is_empty());
        for (i, line) in lines.enumerate() {
            match serde_json::from_slice::<Value>(line) {
                Ok(value) => values.push((origin_of(i), value)),
                Err(e) => bad.push(DeadLetter {
                    origin: origin_of(i),
                    reason: format!("invalid JSON: {e}"),
                    raw: String::from_utf8_lossy(line).into_owned(),
                }),
            }
        }
        let (batch, more_bad) = self.decode(values)?;
        bad.extend(more_bad);
        Ok((batch, bad))
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

fn merge_types(a: &DataType, b: &DataType) -> DataType {
    match (a, b) {
        (a, b) if a == b => a.clone(),
        (DataType::Int64, DataType::Float64) | (DataType::Float64, DataType::Int64) => {
            DataType::Float64
        }
        (a, DataType::Utf8) if !a.is_nested() => DataType::Utf8,
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
        (existing, _) if existing.is_nested() => existing.clone(),
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

/// Decodes JSON text strictly into one batch of `schema`.
fn decode_text(schema: &SchemaRef, text: &[u8], rows: usize) -> Result<Option<RecordBatch>> {
    let mut decoder = ReaderBuilder::new(schema.clone())
        .with_coerce_primitive(true)
        .with_strict_mode(true)
        .with_batch_size(rows.max(1))
        .build_decoder()
        .map_err(|e| Error::arrow("building JSON decoder", e))?;
    let mut rest = text;
    while !rest.is_empty() {
        let read = decoder
            .decode(rest)
            .map_err(|e| Error::arrow("decoding JSON", e))?;
        if read == 0 {
            break;
        }
        rest = &rest[read..];
    }
    decoder
        .flush()
        .map_err(|e| Error::arrow("decoding JSON", e))
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
}
