//! Records out of a response body: selecting them by path, flattening
//! nested objects into `a__b` columns, unnesting arrays of objects into
//! child rows, and following the incremental cursor's highest value.

use std::cmp::Ordering;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// Follows a dotted path (`data.items`, `pages.0.rows`) into `value`.
pub fn lookup<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    let mut at = value;
    for part in path.split('.').filter(|p| !p.is_empty()) {
        at = match at {
            Value::Object(map) => map.get(part)?,
            Value::Array(items) => items.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(at)
}

/// Takes the records out of `body`, leaving the rest of it (totals,
/// cursors, links) for pagination: at `path` when given; otherwise the body
/// when it is an array, else the first field holding an array of objects
/// (`data`, `items`, `results`...), else the body itself as one record.
pub fn extract(body: &mut Value, path: Option<&str>) -> Result<Vec<Value>, String> {
    let selected = match path {
        Some(path) => {
            let pointer: String = path
                .split('.')
                .filter(|p| !p.is_empty())
                .map(|p| format!("/{}", p.replace('~', "~0").replace('/', "~1")))
                .collect();
            body.pointer_mut(&pointer)
                .map(std::mem::take)
                .ok_or_else(|| format!("records path {path:?} is not in the response"))?
        }
        None => match body {
            Value::Object(map) => {
                let key = map
                    .iter()
                    .find(|(_, v)| {
                        v.as_array()
                            .is_some_and(|items| items.first().is_none_or(Value::is_object))
                    })
                    .map(|(k, _)| k.clone());
                match key.and_then(|k| map.get_mut(&k)) {
                    Some(items) => std::mem::take(items),
                    None => body.clone(),
                }
            }
            other => std::mem::take(other),
        },
    };
    Ok(match selected {
        Value::Array(items) => items,
        Value::Null => Vec::new(),
        other => vec![other],
    })
}

/// A page's records as raw JSON text, with the rest of the body parsed.
pub struct RawRecords<'a> {
    /// The body without the records (totals, cursors, links).
    pub rest: Value,
    /// Each record's JSON text, as it is in the body.
    pub records: Vec<&'a RawValue>,
}

/// Like [`extract`], but leaves the records as text so that they can be
/// decoded straight into Arrow. `None` when the body is not JSON or the
/// records are not where `path` says (the caller then takes the slow path,
/// which explains what is wrong).
pub fn extract_raw<'a>(body: &'a [u8], path: Option<&str>) -> Option<RawRecords<'a>> {
    let parts: Vec<&str> = path
        .map(|p| p.split('.').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    let mut rest = Value::Null;
    let mut slot = &mut rest;
    let mut current: &'a RawValue = serde_json::from_slice(body).ok()?;
    for part in &parts {
        let fields: Vec<(&'a str, &'a RawValue)> = object_fields(current)?;
        let mut map = Map::new();
        let mut next = None;
        for (key, value) in fields {
            if key == *part {
                next = Some(value);
            } else {
                map.insert(key.to_string(), serde_json::from_str(value.get()).ok()?);
            }
        }
        *slot = Value::Object(map);
        current = next?;
        let Value::Object(map) = slot else {
            return None;
        };
        slot = map.entry(part.to_string()).or_insert(Value::Null);
    }
    let text = current.get().trim_start();
    if parts.is_empty() && text.starts_with('{') {
        // No path: the first field holding an array of objects, as `extract` does.
        let fields = object_fields(current)?;
        let mut map = Map::new();
        let mut records = None;
        for (key, value) in fields {
            let v = value.get().trim_start();
            if records.is_none() && v.starts_with('[') {
                let items: Vec<&'a RawValue> = serde_json::from_str(v).ok()?;
                if items
                    .first()
                    .is_none_or(|i| i.get().trim_start().starts_with('{'))
                {
                    records = Some(items);
                    continue;
                }
            }
            map.insert(key.to_string(), serde_json::from_str(value.get()).ok()?);
        }
        return match records {
            Some(records) => Some(RawRecords {
                rest: Value::Object(map),
                records,
            }),
            None => Some(RawRecords {
                rest: Value::Null,
                records: vec![current],
            }),
        };
    }
    let records = if text.starts_with('[') {
        serde_json::from_str(current.get()).ok()?
    } else if text == "null" {
        Vec::new()
    } else {
        vec![current]
    };
    Some(RawRecords { rest, records })
}

/// The fields of a JSON object, values left as text; `None` if not an object.
fn object_fields(raw: &RawValue) -> Option<Vec<(&str, &RawValue)>> {
    if !raw.get().trim_start().starts_with('{') {
        return None;
    }
    let map: Vec<(&str, &RawValue)> = serde_json::from_str::<BorrowedMap>(raw.get()).ok()?.0;
    Some(map)
}

/// An object read into its fields in order, keys and values borrowed.
struct BorrowedMap<'a>(Vec<(&'a str, &'a RawValue)>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for BorrowedMap<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Fields<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Fields<'a> {
            type Value = BorrowedMap<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Self::Value, M::Error> {
                let mut fields = Vec::new();
                while let Some((k, v)) = map.next_entry::<&'de str, &'de RawValue>()? {
                    fields.push((k, v));
                }
                Ok(BorrowedMap(fields))
            }
        }
        deserializer.deserialize_map(Fields(std::marker::PhantomData))
    }
}

/// Flattens nested objects into `parent__child` fields; arrays stay as they are.
pub fn flatten(record: Value) -> Value {
    let Value::Object(map) = record else {
        return record;
    };
    let mut flat = Map::with_capacity(map.len());
    flatten_into(&mut flat, "", map);
    Value::Object(flat)
}

fn flatten_into(flat: &mut Map<String, Value>, prefix: &str, map: Map<String, Value>) {
    for (key, value) in map {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}__{key}")
        };
        match value {
            Value::Object(inner) if !inner.is_empty() => flatten_into(flat, &name, inner),
            other => {
                flat.insert(name, other);
            }
        }
    }
}

/// Removes the array of objects at `field` from `record` and returns its
/// items, each with `_parent_<key>` (the parent's `parent_key` value) and
/// `_index` (its position) added.
pub fn unnest(record: &mut Value, field: &str, parent_key: &str) -> Vec<Value> {
    let Value::Object(map) = record else {
        return Vec::new();
    };
    let parent_value = map.get(parent_key).cloned().unwrap_or(Value::Null);
    let Some(Value::Array(items)) = map.remove(field) else {
        return Vec::new();
    };
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            let mut child = match item {
                Value::Object(m) => m,
                scalar => {
                    let mut m = Map::new();
                    m.insert("value".into(), scalar);
                    m
                }
            };
            child.insert(format!("_parent_{parent_key}"), parent_value.clone());
            child.insert("_index".into(), Value::from(index as u64));
            Value::Object(child)
        })
        .collect()
}

/// Orders cursor values: numbers by value, strings (ISO timestamps, ids)
/// as text; `None` for values that do not compare.
pub fn compare_cursor(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A cursor value as a query parameter.
pub fn cursor_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_records_without_a_path() {
        let mut body = json!({"count": 2, "results": [{"id": 1}, {"id": 2}]});
        assert_eq!(extract(&mut body, None).expect("records").len(), 2);
        assert_eq!(body["count"], 2, "the rest stays for pagination");
        let mut body = json!([{"id": 1}]);
        assert_eq!(extract(&mut body, None).expect("records").len(), 1);
        let mut body = json!({"id": 7});
        assert_eq!(
            extract(&mut body, None).expect("records"),
            vec![json!({"id": 7})]
        );
        let mut body = json!({"data": {"items": [{"id": 1}], "next": "x"}});
        assert_eq!(
            extract(&mut body, Some("data.items"))
                .expect("records")
                .len(),
            1
        );
        assert_eq!(body["data"]["next"], "x");
        assert!(extract(&mut json!({"a": 1}), Some("data.items")).is_err());
    }

    #[test]
    fn raw_records_keep_the_rest_of_the_body() {
        let body = br#"{"data": {"items": [{"id": 1}, {"id": 2}], "next": "x"}, "total": 5}"#;
        let raw = extract_raw(body, Some("data.items")).expect("found");
        assert_eq!(raw.records.len(), 2);
        assert_eq!(raw.records[1].get(), r#"{"id": 2}"#);
        assert_eq!(raw.rest["total"], 5);
        assert_eq!(raw.rest["data"]["next"], "x");
        let raw = extract_raw(br#"{"n": 1, "results": [{"id": 1}]}"#, None).expect("found");
        assert_eq!(raw.records.len(), 1);
        assert_eq!(raw.rest["n"], 1);
        assert_eq!(
            extract_raw(br#"[{"id": 1}]"#, None).map(|r| r.records.len()),
            Some(1)
        );
        assert!(extract_raw(b"{oops", None).is_none());
        assert!(extract_raw(br#"{"a": 1}"#, Some("data.items")).is_none());
    }

    #[test]
    fn flattens_nested_objects() {
        let flat =
            flatten(json!({"id": 1, "user": {"name": "a", "geo": {"lat": 1.5}}, "tags": [1]}));
        assert_eq!(
            flat,
            json!({"id": 1, "user__name": "a", "user__geo__lat": 1.5, "tags": [1]})
        );
    }

    #[test]
    fn unnests_arrays_with_the_parent_key() {
        let mut record = json!({"id": 9, "lines": [{"sku": "a"}, {"sku": "b"}]});
        let children = unnest(&mut record, "lines", "id");
        assert_eq!(record, json!({"id": 9}));
        assert_eq!(
            children[1],
            json!({"sku": "b", "_parent_id": 9, "_index": 1})
        );
    }

    #[test]
    fn cursor_values_compare() {
        assert_eq!(
            compare_cursor(&json!("2024-01-02"), &json!("2024-01-10")),
            Some(Ordering::Less)
        );
        assert_eq!(
            compare_cursor(&json!(10), &json!(9.5)),
            Some(Ordering::Greater)
        );
        assert_eq!(compare_cursor(&json!(1), &json!("1")), None);
    }
}
