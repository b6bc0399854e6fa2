//! The JSON Schema of `flowline.toml` and of a pipeline file, built from
//! the config structs (their doc comments become the descriptions) and the
//! connector registries (`[source]`, `[warehouse]` and `[[transform]]` are a
//! `oneOf` over the registered kinds). `flowline schema` prints them,
//! `schema/*.schema.json` hold them for editors, and the key tables of
//! `docs/configuration.md` are rendered from them (see [`super::reference`]).
//!
//! The schemas follow JSON Schema draft-07, which editors' TOML plugins
//! (Taplo, Even Better TOML) validate with. TOML has no null, so `null`
//! is left out of them.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

use super::pipeline::PipelineBody;
use super::project::ProjectFile;
use crate::core::schema::object_schema;
use crate::destinations::WarehouseConfig;
use crate::sources::SourceConfig;
use crate::transforms::TransformConfig;

/// The two documents a project holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// `flowline.toml`.
    Project,
    /// `pipelines/<name>.toml`.
    Pipeline,
}

impl Document {
    /// Both, in the order the docs list them.
    pub const ALL: [Document; 2] = [Document::Project, Document::Pipeline];

    /// The file the schema is checked in as, under `schema/`.
    pub fn file_name(self) -> &'static str {
        match self {
            Document::Project => "flowline.schema.json",
            Document::Pipeline => "pipeline.schema.json",
        }
    }

    /// The document's JSON Schema.
    pub fn schema(self) -> Value {
        let generator = SchemaSettings::draft07().into_generator();
        let schema = match self {
            Document::Project => generator.into_root_schema_for::<ProjectDocument>(),
            Document::Pipeline => generator.into_root_schema_for::<PipelineDocument>(),
        };
        let mut value = schema.to_value();
        without_null(&mut value);
        value
    }

    /// The schema as the checked-in file holds it: pretty JSON, one
    /// trailing newline.
    pub fn schema_text(self) -> String {
        let text = serde_json::to_string_pretty(&self.schema()).unwrap_or_default();
        format!("{text}\n")
    }
}

/// `flowline.toml`: [`ProjectFile`], whose `[warehouse]` is read
/// separately, plus the `oneOf` of the warehouse kinds.
struct ProjectDocument;

impl JsonSchema for ProjectDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ProjectDocument".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = object_schema::<ProjectFile>(generator);
        let warehouse = generator.subschema_for::<WarehouseConfig>();
        insert_property(&mut schema, "warehouse", warehouse.to_value(), false);
        schema.insert("title".into(), json!("flowline.toml"));
        schema.insert(
            "description".into(),
            json!("A flowline project: its name, warehouse, state store and connections."),
        );
        schema
    }
}

/// `pipelines/<name>.toml`: [`PipelineBody`], plus `[source]` and
/// `[[transform]]`, which are read separately.
struct PipelineDocument;

impl JsonSchema for PipelineDocument {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "PipelineDocument".into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let mut schema = object_schema::<PipelineBody>(generator);
        let source = generator.subschema_for::<SourceConfig>();
        insert_property(&mut schema, "source", source.to_value(), true);
        let step = generator.subschema_for::<TransformConfig>();
        let transform = json!({
            "description": "`[[transform]]`: in-flight steps applied to every batch, in order. Each table holds one step, named by its key.",
            "type": "array",
            "items": step.to_value(),
        });
        insert_property(&mut schema, "transform", transform, false);
        schema.insert("title".into(), json!("flowline pipeline"));
        schema.insert(
            "description".into(),
            json!("One pipeline of pipelines/: source -> transforms -> destination."),
        );
        schema
    }
}

/// Adds property `name` to an object schema.
fn insert_property(schema: &mut Schema, name: &str, property: Value, required: bool) {
    let object = schema.ensure_object();
    if let Value::Object(properties) = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
    {
        properties.insert(name.into(), property);
    }
    if required
        && let Value::Array(keys) = object
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()))
    {
        keys.push(json!(name));
    }
}

/// Readies a generated schema for TOML and editors. Removes `null`: an
/// `Option` field is a key left out, as TOML has no null.
/// `"type": ["string", "null"]` becomes `"string"`,
/// `anyOf: [X, {"type": "null"}]` becomes X, and a `null` default goes. A
/// `$ref` with other keywords beside it moves into `allOf`, where draft-07
/// reads them. A description's paragraphs become one line each.
fn without_null(value: &mut Value) {
    match value {
        Value::Object(object) => {
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|t| t != "null");
                if types.len() == 1 {
                    let single = types.remove(0);
                    object.insert("type".into(), single);
                }
            }
            if let Some(Value::Array(values)) = object.get_mut("enum") {
                values.retain(|v| !v.is_null());
            }
            if object.get("default").is_some_and(Value::is_null) {
                object.remove("default");
            }
            for keyword in ["anyOf", "oneOf"] {
                let Some(Value::Array(options)) = object.get_mut(keyword) else {
                    continue;
                };
                options.retain(|o| o != &json!({ "type": "null" }));
                if options.len() == 1
                    && let Value::Object(only) = options.remove(0)
                {
                    object.remove(keyword);
                    for (key, value) in only {
                        object.entry(key).or_insert(value);
                    }
                }
            }
            if object.len() > 1
                && let Some(reference) = object.remove("$ref")
                && let Value::Array(all) = object.entry("allOf").or_insert_with(|| json!([]))
            {
                all.insert(0, json!({ "$ref": reference }));
            }
            if let Some(Value::String(text)) = object.get_mut("description") {
                *text = paragraphs(text);
            }
            for child in object.values_mut() {
                without_null(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(without_null),
        _ => {}
    }
}

/// A doc comment's text with the lines of each paragraph joined.
fn paragraphs(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `kind`s a `oneOf` offers, in order.
    fn kinds(variants: &Value) -> Vec<String> {
        variants
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|v| v.pointer("/properties/kind/const"))
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The definition a `$ref` names, or the schema itself.
    fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference
                .strip_prefix('#')
                .and_then(|pointer| root.pointer(pointer))
                .unwrap_or(schema),
            None => schema,
        }
    }

    #[test]
    fn every_source_kind_is_a_variant_of_source() {
        let schema = Document::Pipeline.schema();
        let source = resolve(&schema, &schema["properties"]["source"]);
        let registered: Vec<&str> = crate::sources::connectors()
            .iter()
            .map(|c| c.kind)
            .collect();
        assert_eq!(kinds(&source["oneOf"]), registered);
        assert_eq!(schema["required"], json!(["destination", "source"]));
    }

    #[test]
    fn every_warehouse_kind_is_a_variant_and_the_first_needs_no_kind() {
        let schema = Document::Project.schema();
        let warehouse = resolve(&schema, &schema["properties"]["warehouse"]);
        let registered: Vec<&str> = crate::destinations::warehouses()
            .iter()
            .map(|w| w.kind)
            .collect();
        assert_eq!(kinds(&warehouse["oneOf"]), registered);
        let first = &warehouse["oneOf"][0];
        assert!(
            !first["required"]
                .as_array()
                .is_some_and(|r| r.contains(&json!("kind"))),
            "{first}"
        );
        assert_eq!(warehouse["oneOf"][1]["required"][0], json!("kind"));
    }

    #[test]
    fn every_transform_step_is_a_variant_holding_its_key() {
        let schema = Document::Pipeline.schema();
        let step = resolve(&schema, &schema["properties"]["transform"]["items"]);
        let variants = step["oneOf"].as_array().cloned().unwrap_or_default();
        let keys: Vec<&str> = crate::transforms::steps().iter().map(|s| s.key).collect();
        assert_eq!(variants.len(), keys.len());
        for (variant, key) in variants.iter().zip(keys) {
            assert!(
                variant["required"]
                    .as_array()
                    .is_some_and(|r| r.contains(&json!(key))),
                "{key}: {variant}"
            );
        }
    }

    #[test]
    fn stream_and_web_sources_have_their_shared_keys() {
        let schema = Document::Pipeline.schema();
        let source = resolve(&schema, &schema["properties"]["source"]);
        let variant = |kind: &str| {
            source["oneOf"]
                .as_array()
                .and_then(|all| {
                    all.iter()
                        .find(|v| v["properties"]["kind"]["const"] == kind)
                })
                .cloned()
                .unwrap_or_default()
        };
        for key in [
            "connection",
            "url",
            "format",
            "schema",
            "columns",
            "delimiter",
            "queue",
        ] {
            assert!(
                variant("rabbitmq")["properties"].get(key).is_some(),
                "rabbitmq {key}"
            );
        }
        assert!(variant("webhook")["properties"].get("connection").is_none());
        for key in ["timeout", "retries", "headers", "rows", "fields"] {
            assert!(
                variant("scrape")["properties"].get(key).is_some(),
                "scrape {key}"
            );
        }
        assert_eq!(variant("kafka")["additionalProperties"], json!(false));
    }

    /// Where `value` holds a JSON null or a `null` type, as a path.
    fn nulls_in(value: &Value, path: &str, found: &mut Vec<String>) {
        match value {
            Value::Null => found.push(path.to_string()),
            Value::Object(object) => {
                for (key, v) in object {
                    let is_null_type = key == "type"
                        && (v == "null"
                            || v.as_array().is_some_and(|t| t.contains(&json!("null"))));
                    if is_null_type {
                        found.push(format!("{path}/type"));
                    }
                    nulls_in(v, &format!("{path}/{key}"), found);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    nulls_in(v, &format!("{path}/{i}"), found);
                }
            }
            _ => {}
        }
    }

    /// No null value and no `null` type (the string "null", a default CSV
    /// null marker, is a value like any other).
    #[test]
    fn the_schema_holds_no_null() {
        for document in Document::ALL {
            let mut found = Vec::new();
            nulls_in(&document.schema(), "", &mut found);
            assert!(found.is_empty(), "{}: {found:?}", document.file_name());
        }
    }
}
