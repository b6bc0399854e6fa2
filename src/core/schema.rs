//! JSON Schema pieces the registries share: a config type's object schema,
//! the `kind` key that selects a connector, and the keys of shared pieces
//! (see [`super::tables`]) merged into the table of the connector that
//! reads them. `allOf` cannot combine them: each piece denies the others'
//! keys (`additionalProperties: false`), so their properties are merged.

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{Map, Value, json};

/// Builds the schema of one config type: its `JsonSchema::json_schema`.
pub type SchemaFn = fn(&mut SchemaGenerator) -> Schema;

/// The object schema of `T`, with its keys: a transparent newtype's `$ref`
/// to the type it wraps is resolved.
pub fn object_schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    let schema = T::json_schema(generator);
    resolve(generator, schema)
}

/// `schema` itself, or when it is a `$ref` to one of the generator's
/// definitions, that definition (with `schema`'s other keywords on top).
fn resolve(generator: &SchemaGenerator, schema: Schema) -> Schema {
    let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
        return schema;
    };
    let name = reference.rsplit('/').next().unwrap_or_default();
    let Some(Value::Object(definition)) = generator.definitions().get(name) else {
        return schema;
    };
    let mut resolved = definition.clone();
    if let Some(overlay) = schema.as_object() {
        for (key, value) in overlay {
            if key != "$ref" {
                resolved.insert(key.clone(), value.clone());
            }
        }
    }
    Schema::from(resolved)
}

/// Adds the keys of a shared piece (`piece`'s object schema) to `schema`,
/// the object schema of the table that holds them. A key both define keeps
/// `schema`'s description, the more specific one.
pub fn merge_keys(generator: &mut SchemaGenerator, schema: &mut Schema, piece: SchemaFn) {
    let piece = piece(generator);
    let piece = resolve(generator, piece);
    let object = schema.ensure_object();
    if let Some(Value::Object(keys)) = piece.get("properties") {
        let properties = object
            .entry("properties")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(properties) = properties {
            for (key, value) in keys {
                properties
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
        }
    }
    if let Some(Value::Array(keys)) = piece.get("required") {
        let required = object
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(required) = required {
            for key in keys {
                if !required.contains(key) {
                    required.push(key.clone());
                }
            }
        }
    }
}

/// Makes `schema` the variant of a connector chosen by `kind = "<kind>"`:
/// a `kind` key with that one value (required unless `default`), and
/// `summary` as the variant's description.
pub fn with_kind(schema: &mut Schema, kind: &str, summary: &str, default: bool) {
    let object = schema.ensure_object();
    let mut key = json!({
        "type": "string",
        "const": kind,
        "description": format!("Selects this kind: {}.", lower_first(summary)),
    });
    if default {
        key["default"] = json!(kind);
    }
    let properties = object
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()));
    if let Value::Object(properties) = properties {
        properties.insert("kind".into(), key);
    }
    if !default {
        let required = object
            .entry("required")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(required) = required {
            required.retain(|k| k != "kind");
            required.insert(0, json!("kind"));
        }
    }
    object.insert("title".into(), json!(format!("kind = \"{kind}\"")));
    object.insert("description".into(), json!(summary));
}

/// Adds `alias`, another name serde accepts for the key `of`
/// (`#[serde(alias = ...)]`, which schemars leaves out), to an object
/// schema. For `#[schemars(transform = ...)]` on the struct or variant.
pub fn alias(schema: &mut Schema, alias: &str, of: &str) {
    let Some(Value::Object(properties)) = schema.get_mut("properties") else {
        return;
    };
    let Some(Value::Object(original)) = properties.get(of) else {
        return;
    };
    let mut copy = original.clone();
    copy.remove("default");
    copy.insert(
        "description".into(),
        json!(format!("Another name for `{of}`.")),
    );
    properties.insert(alias.into(), Value::Object(copy));
    // A required key may be given by either name: `anyOf` the names.
    let object = schema.ensure_object();
    let required = match object.get_mut("required") {
        Some(Value::Array(required)) => required,
        _ => return,
    };
    let was_required = required.iter().any(|k| k == of);
    required.retain(|k| k != of);
    let alternatives = object.get_mut("anyOf").and_then(Value::as_array_mut);
    match alternatives {
        Some(names) if names.first() == Some(&json!({ "required": [of] })) => {
            names.push(json!({ "required": [alias] }));
        }
        _ if was_required => {
            object.insert(
                "anyOf".into(),
                json!([{ "required": [of] }, { "required": [alias] }]),
            );
        }
        _ => {}
    }
}

/// A value written as a number or a string (a cursor value, a lag): the
/// schema of a `toml::Value` field whose parser takes either.
pub struct Scalar;

impl JsonSchema for Scalar {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Scalar".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({ "type": ["number", "string"] })
    }
}

/// A size in bytes, written as a number or a string with a unit (`"10MB"`,
/// `"512KB"`): the schema of a field a size parser reads.
pub struct ByteSize;

impl JsonSchema for ByteSize {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ByteSize".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        schemars::json_schema!({
            "type": ["integer", "string"],
            "minimum": 0,
            "pattern": "^\\s*[0-9]+\\s*([KkMmGg]([Ii]?[Bb])?|[Bb])?\\s*$",
        })
    }
}

/// `text` with its first letter in lower case, unless it starts an
/// acronym (`CSV`): for a sentence continued after a colon.
pub fn lower_first(text: &str) -> String {
    let mut chars = text.chars();
    match (chars.next(), text.chars().nth(1)) {
        (Some(first), second) if !second.is_some_and(char::is_uppercase) => {
            first.to_lowercase().chain(chars).collect()
        }
        _ => text.to_string(),
    }
}

/// The property names of an object schema.
pub fn keys(schema: &Schema) -> Vec<String> {
    match schema.get("properties") {
        Some(Value::Object(properties)) => properties.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Own {
        /// The connector's own url.
        url: String,
    }

    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shared {
        /// The shared url.
        #[serde(default)]
        url: Option<String>,
        /// A format.
        format: String,
    }

    #[derive(schemars::JsonSchema, serde::Deserialize)]
    #[serde(transparent)]
    #[allow(dead_code)]
    struct Wrapper(Own);

    #[test]
    fn shared_keys_are_merged_and_the_own_description_wins() {
        let mut generator = SchemaGenerator::default();
        let mut schema = object_schema::<Own>(&mut generator);
        merge_keys(&mut generator, &mut schema, Shared::json_schema);
        assert_eq!(keys(&schema), ["format", "url"]);
        assert_eq!(
            schema.pointer("/properties/url/description"),
            Some(&json!("The connector's own url."))
        );
        assert_eq!(schema.get("required"), Some(&json!(["url", "format"])));
        assert_eq!(schema.get("additionalProperties"), Some(&json!(false)));
    }

    #[test]
    fn a_transparent_newtype_has_the_keys_of_what_it_wraps() {
        let mut generator = SchemaGenerator::default();
        let mut schema = object_schema::<Wrapper>(&mut generator);
        assert_eq!(keys(&schema), ["url"]);
        with_kind(&mut schema, "x", "An x", false);
        assert_eq!(schema.get("required"), Some(&json!(["kind", "url"])));
        assert_eq!(schema.pointer("/properties/kind/const"), Some(&json!("x")));
    }
}
