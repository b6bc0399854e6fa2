//! The key tables of `docs/configuration.md`, rendered from the JSON Schema
//! (so from the config structs' doc comments): one Markdown table
//! `| key | type | default | description |` per section, written between
//! marker comments:
//!
//! ```text
//! <!-- generated: source.kafka -->
//! | key | type | default | description |
//! ...
//! <!-- end generated -->
//! ```
//!
//! A section is `project`, `warehouse.<kind>`, `state`, `connections`,
//! `pipeline` (a pipeline file's top-level keys), `source.<kind>` (or
//! `source.<kind>,<kind>` for kinds that take the same keys), `transform`,
//! `destination` or `batch`. [`update`] rewrites every table of a document;
//! the test `tests/schema.rs` fails when the doc differs from what it
//! renders (`FLOWLINE_BLESS=1` rewrites it).

use std::collections::BTreeSet;

use serde_json::Value;

use super::schema::Document;
use crate::core::schema::lower_first;

/// Opens a generated table; the section name follows.
pub const BEGIN: &str = "<!-- generated: ";
/// Closes a generated table.
pub const END: &str = "<!-- end generated -->";

/// `markdown` with every generated table rendered anew.
pub fn update(markdown: &str) -> Result<String, String> {
    let schemas = Schemas::new();
    let mut out = String::with_capacity(markdown.len());
    let mut rest = markdown;
    while let Some(start) = rest.find(BEGIN) {
        let after = &rest[start + BEGIN.len()..];
        let close = after
            .find("-->")
            .ok_or_else(|| format!("unclosed marker: {BEGIN}{}", first_line(after)))?;
        let section = after[..close].trim();
        let body = &after[close + 3..];
        let end = body
            .find(END)
            .ok_or_else(|| format!("{BEGIN}{section} --> has no {END}"))?;
        out.push_str(&rest[..start]);
        out.push_str(&format!("{BEGIN}{section} -->\n"));
        out.push_str(&schemas.table(section)?);
        out.push_str(END);
        rest = &body[end + END.len()..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The sections the marker comments of `markdown` name.
pub fn sections_in(markdown: &str) -> Vec<String> {
    markdown
        .split(BEGIN)
        .skip(1)
        .filter_map(|part| part.split("-->").next())
        .map(|section| section.trim().to_string())
        .collect()
}

/// Every section the schemas have: what a complete reference documents.
/// Kinds that share one table (`source.postgres,mysql,sqlite`) are listed
/// one by one.
pub fn all_sections() -> Vec<String> {
    let schemas = Schemas::new();
    let mut all = vec!["project".to_string()];
    all.extend(
        schemas
            .kinds(&schemas.project, "warehouse")
            .into_iter()
            .map(|k| format!("warehouse.{k}")),
    );
    all.extend(["state", "connections", "pipeline"].map(String::from));
    all.extend(
        schemas
            .kinds(&schemas.pipeline, "source")
            .into_iter()
            .map(|k| format!("source.{k}")),
    );
    all.extend(["transform", "destination", "batch"].map(String::from));
    all
}

/// A section's name split into the sections it stands for:
/// `source.postgres,mysql` is `source.postgres` and `source.mysql`.
pub fn expand(section: &str) -> Vec<String> {
    match section.split_once('.') {
        Some((table, kinds)) => kinds
            .split(',')
            .map(|kind| format!("{table}.{}", kind.trim()))
            .collect(),
        None => vec![section.to_string()],
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Both documents' schemas.
struct Schemas {
    project: Value,
    pipeline: Value,
}

/// One line of a table.
struct Row {
    key: String,
    kind: String,
    default: String,
    description: String,
}

impl Schemas {
    fn new() -> Self {
        Schemas {
            project: Document::Project.schema(),
            pipeline: Document::Pipeline.schema(),
        }
    }

    /// The Markdown table of `section`, ending with a newline.
    fn table(&self, section: &str) -> Result<String, String> {
        let rows = match section.split_once('.') {
            None => self.plain_section(section)?,
            Some(("warehouse", kinds)) => self.kind_section(&self.project, "warehouse", kinds)?,
            Some(("source", kinds)) => self.kind_section(&self.pipeline, "source", kinds)?,
            Some(_) => return Err(unknown(section)),
        };
        let mut table = String::from("| key | type | default | description |\n|---|---|---|---|\n");
        for row in rows {
            table.push_str(&format!(
                "| {} | {} | {} | {} |\n",
                row.key,
                row.kind,
                cell(&row.default),
                cell(&row.description)
            ));
        }
        Ok(table)
    }

    fn plain_section(&self, section: &str) -> Result<Vec<Row>, String> {
        let mut rows = Vec::new();
        match section {
            "pipeline" => {
                let walk = Walk {
                    root: &self.pipeline,
                    nested: false,
                    headers: true,
                };
                walk.object(&self.pipeline, "", "", &mut Vec::new(), &mut rows);
            }
            "project" | "state" => {
                let schema = self.property(&self.project, section)?;
                Walk::nested(&self.project).object(schema, "", "", &mut Vec::new(), &mut rows);
            }
            "connections" => {
                let map = self.property(&self.project, section)?;
                let schema = resolve(&self.project, &map["additionalProperties"]);
                Walk::nested(&self.project).object(schema, "", "", &mut Vec::new(), &mut rows);
            }
            "destination" | "batch" => {
                let schema = self.property(&self.pipeline, section)?;
                Walk::nested(&self.pipeline).object(schema, "", "", &mut Vec::new(), &mut rows);
            }
            "transform" => {
                let array = self.property(&self.pipeline, section)?;
                let steps = resolve(&self.pipeline, &array["items"]);
                let walk = Walk::nested(&self.pipeline);
                let mut seen = BTreeSet::new();
                for step in steps["oneOf"].as_array().into_iter().flatten() {
                    let mut found = Vec::new();
                    walk.object(step, "", "", &mut Vec::new(), &mut found);
                    for mut row in found {
                        if row.default == "required" {
                            // The key that names the step: there is no default to speak of.
                            row.default = "—".into();
                        }
                        if seen.insert(row.key.clone()) {
                            rows.push(row);
                        }
                    }
                }
            }
            _ => return Err(unknown(section)),
        }
        Ok(rows)
    }

    /// The table of one kind of `[warehouse]` or `[source]`, or of several
    /// that take the same keys.
    fn kind_section(&self, root: &Value, table: &str, kinds: &str) -> Result<Vec<Row>, String> {
        let names: Vec<&str> = kinds.split(',').map(str::trim).collect();
        let mut variants = Vec::new();
        for name in &names {
            variants.push(self.variant(root, table, name)?);
        }
        let walk = Walk::nested(root);
        let mut rows = Vec::new();
        walk.object(variants[0], "", "", &mut Vec::new(), &mut rows);
        for (name, variant) in names.iter().zip(&variants).skip(1) {
            let mut other = Vec::new();
            walk.object(variant, "", "", &mut Vec::new(), &mut other);
            let keys = |rows: &[Row]| -> Vec<String> {
                rows.iter()
                    .filter(|r| r.key != "`kind`")
                    .map(|r| format!("{} {} {}", r.key, r.kind, r.description))
                    .collect()
            };
            if keys(&rows) != keys(&other) {
                return Err(format!(
                    "{table}.{kinds}: kind {name} does not take the same keys as {}; give it a table of its own",
                    names[0]
                ));
            }
        }
        if names.len() > 1
            && let Some(kind) = rows.iter_mut().find(|r| r.key == "`kind`")
        {
            kind.kind = names
                .iter()
                .map(|n| format!("`\"{n}\"`"))
                .collect::<Vec<_>>()
                .join(", ");
            kind.description = format!(
                "Selects the {table}: {}.",
                names
                    .iter()
                    .zip(&variants)
                    .map(|(n, v)| format!(
                        "`{n}`, {}",
                        lower_first(v["description"].as_str().unwrap_or_default())
                    ))
                    .collect::<Vec<_>>()
                    .join("; ")
            );
        }
        Ok(rows)
    }

    /// The variant of `[table]` whose `kind` is `name`.
    fn variant<'a>(
        &'a self,
        root: &'a Value,
        table: &str,
        name: &str,
    ) -> Result<&'a Value, String> {
        let schema = self.property(root, table)?;
        schema["oneOf"]
            .as_array()
            .and_then(|all| {
                all.iter()
                    .find(|v| v["properties"]["kind"]["const"] == name)
            })
            .ok_or_else(|| {
                format!(
                    "{table}.{name}: no such kind (known: {})",
                    self.kinds(root, table).join(", ")
                )
            })
    }

    /// The kinds `[table]` offers.
    fn kinds(&self, root: &Value, table: &str) -> Vec<String> {
        self.property(root, table)
            .ok()
            .and_then(|s| s["oneOf"].as_array())
            .into_iter()
            .flatten()
            .filter_map(|v| v["properties"]["kind"]["const"].as_str())
            .map(String::from)
            .collect()
    }

    /// The schema of a top-level key of `root`, resolved.
    fn property<'a>(&self, root: &'a Value, name: &str) -> Result<&'a Value, String> {
        root["properties"]
            .get(name)
            .map(|p| resolve(root, p))
            .ok_or_else(|| unknown(name))
    }
}

fn unknown(section: &str) -> String {
    format!(
        "unknown section {section:?} (known: {})",
        all_sections().join(", ")
    )
}

/// How an object's keys become rows.
struct Walk<'a> {
    /// The document, for `$ref`s.
    root: &'a Value,
    /// Whether nested tables get rows of their own (`incremental.cursor`).
    nested: bool,
    /// Whether tables are shown as TOML headers (`[destination]`).
    headers: bool,
}

impl<'a> Walk<'a> {
    fn nested(root: &'a Value) -> Self {
        Walk {
            root,
            nested: true,
            headers: false,
        }
    }

    /// Rows for the keys of `object`: `kind` first, then the required keys,
    /// then the others, each group by name. `prefix` goes before each key
    /// (`incremental.`), `note` before each description; `path` holds the
    /// definitions being expanded, so a recursive one stops.
    fn object(
        &self,
        object: &'a Value,
        prefix: &str,
        note: &str,
        path: &mut Vec<&'a str>,
        rows: &mut Vec<Row>,
    ) {
        let object = resolve(self.root, object);
        let Some(properties) = object["properties"].as_object() else {
            return;
        };
        let mut required: Vec<&str> = object["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        // A required key with other names: `anyOf` of the names, the first
        // the key's own.
        if let Some(first) = object["anyOf"][0]["required"][0].as_str() {
            required.push(first);
        }
        let mut names: Vec<&String> = properties.keys().collect();
        names.sort_by_key(|name| {
            (
                name.as_str() != "kind",
                !required.contains(&name.as_str()),
                name.as_str(),
            )
        });
        for name in names {
            let property = &properties[name.as_str()];

            let schema = resolve(self.root, property);
            let is_required = required.contains(&name.as_str());
            let key = format!("{prefix}{name}");
            let (shown, kind) = if self.headers && is_table(self.root, schema) {
                (format!("`[{key}]`"), "table".to_string())
            } else if self.headers && is_table_array(self.root, schema) {
                (format!("`[[{key}]]`"), "array of tables".to_string())
            } else {
                (format!("`{key}`"), type_name(self.root, property))
            };
            let description = description(property, schema);
            let description = description
                .strip_prefix(&format!("`[{key}]`: "))
                .or_else(|| description.strip_prefix(&format!("`[[{key}]]`: ")))
                .map_or_else(|| description.clone(), upper_first);
            let (default, description) = default_of(property, schema, is_required, &description);
            rows.push(Row {
                key: shown,
                kind,
                default,
                description: format!("{note}{description}"),
            });
            if self.nested {
                self.children(property, &key, note, path, rows);
            }
        }
        if let Some(other) = object
            .get("additionalProperties")
            .filter(|other| other.is_object())
        {
            rows.push(Row {
                key: "any other key".into(),
                kind: type_name(self.root, other),
                default: "none".into(),
                description: format!("{note}{}", description(other, other)),
            });
        }
    }

    /// Rows for what a key holds: a table's keys (`key.sub`), an array of
    /// tables' keys (`key[].sub`), or each form of a table with a `kind`.
    fn children(
        &self,
        property: &'a Value,
        key: &str,
        note: &str,
        path: &mut Vec<&'a str>,
        rows: &mut Vec<Row>,
    ) {
        let reference = definition_name(property);
        if let Some(name) = reference {
            if path.contains(&name) {
                return;
            }
            path.push(name);
        }
        let schema = resolve(self.root, property);
        if schema["properties"].is_object() {
            self.object(schema, &format!("{key}."), note, path, rows);
        } else if let Some(items) = schema
            .get("items")
            .filter(|_| is_table_array(self.root, schema))
        {
            self.children_of_items(items, key, note, path, rows);
        } else if let Some(forms) = tagged_forms(self.root, schema) {
            for form in forms {
                let kind = form["properties"]["kind"]["const"]
                    .as_str()
                    .unwrap_or_default();
                let mut found = Vec::new();
                self.object(form, &format!("{key}."), "", path, &mut found);
                for mut row in found {
                    if row.key == format!("`{key}.kind`") {
                        continue;
                    }
                    row.description = format!(
                        "{note}With `kind = \"{kind}\"`: {}",
                        lower_first(&row.description)
                    );
                    rows.push(row);
                }
            }
        }
        if reference.is_some() {
            path.pop();
        }
    }

    fn children_of_items(
        &self,
        items: &'a Value,
        key: &str,
        note: &str,
        path: &mut Vec<&'a str>,
        rows: &mut Vec<Row>,
    ) {
        let reference = definition_name(items);
        if let Some(name) = reference {
            if path.contains(&name) {
                return;
            }
            path.push(name);
        }
        let schema = resolve(self.root, items);
        if schema["properties"].is_object() {
            self.object(schema, &format!("{key}[]."), note, path, rows);
        }
        if reference.is_some() {
            path.pop();
        }
    }
}

/// The definition a `$ref` (or a single-element `allOf` of one) names.
fn definition_name(schema: &Value) -> Option<&str> {
    let reference = schema
        .get("$ref")
        .or_else(|| schema["allOf"].get(0).and_then(|s| s.get("$ref")))?;
    reference.as_str()?.rsplit('/').next()
}

/// `schema` with its `$ref` followed (also through a one-element `allOf`,
/// which is how draft-07 gives a `$ref` a description).
fn resolve<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    let target = schema
        .get("$ref")
        .or_else(|| match schema.get("allOf").and_then(Value::as_array) {
            Some(all) if all.len() == 1 => all[0].get("$ref"),
            _ => None,
        })
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .and_then(|pointer| root.pointer(pointer));
    match target {
        Some(found) => resolve(root, found),
        None => schema,
    }
}

/// The forms of a table chosen by its `kind` (`auth`, `paginate`), if
/// `schema` is one.
fn tagged_forms<'a>(root: &'a Value, schema: &'a Value) -> Option<Vec<&'a Value>> {
    let forms: Vec<&Value> = schema["oneOf"]
        .as_array()?
        .iter()
        .map(|f| resolve(root, f))
        .collect();
    forms
        .iter()
        .all(|f| f["properties"]["kind"]["const"].is_string())
        .then_some(forms)
}

fn is_table(root: &Value, schema: &Value) -> bool {
    let schema = resolve(root, schema);
    schema["type"] == "object"
        && (schema["oneOf"].is_array()
            || schema.get("additionalProperties") != Some(&Value::Bool(true)))
}

fn is_table_array(root: &Value, schema: &Value) -> bool {
    let schema = resolve(root, schema);
    schema["type"] == "array" && {
        let items = resolve(root, &schema["items"]);
        items["type"] == "object" || items["oneOf"].is_array()
    }
}

/// What a key holds, in words: `string`, `"csv"`, `"json"`, `array of
/// strings`, `table`, ...
fn type_name(root: &Value, schema: &Value) -> String {
    let schema = resolve(root, schema);
    if let Some(value) = schema.get("const") {
        return literal(value);
    }
    if let Some(values) = schema["enum"].as_array() {
        return values.iter().map(literal).collect::<Vec<_>>().join(", ");
    }
    for keyword in ["oneOf", "anyOf"] {
        if let Some(options) = schema[keyword].as_array() {
            let options: Vec<&Value> = options.iter().map(|o| resolve(root, o)).collect();
            if options.iter().all(|o| o.get("const").is_some()) {
                return options
                    .iter()
                    .filter_map(|o| o.get("const"))
                    .map(literal)
                    .collect::<Vec<_>>()
                    .join(", ");
            }
            let kinds: Vec<String> = options
                .iter()
                .filter_map(|o| o["properties"]["kind"].get("const"))
                .map(literal)
                .collect();
            if !kinds.is_empty() && kinds.len() == options.len() {
                return format!("table with `kind` = {}", kinds.join(", "));
            }
            if schema["type"] == "object" || options.iter().all(|o| o["type"] == "object") {
                return "table".into();
            }
            let mut names: Vec<String> = Vec::new();
            for option in options {
                let name = type_name(root, option);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            return names.join(" or ");
        }
    }
    match &schema["type"] {
        Value::String(t) => single_type(root, t, schema),
        Value::Array(types) => types
            .iter()
            .filter_map(Value::as_str)
            .map(|t| single_type(root, t, schema))
            .collect::<Vec<_>>()
            .join(" or "),
        _ => "any value".into(),
    }
}

fn single_type(root: &Value, name: &str, schema: &Value) -> String {
    match name {
        "string" if schema["maxLength"] == 1 => "string, 1 character".into(),
        "array" => format!("array of {}", plural(&type_name(root, &schema["items"]))),
        "object" => match schema.get("additionalProperties") {
            Some(Value::Object(values)) if !schema["properties"].is_object() => {
                match type_name(root, &Value::Object(values.clone())).as_str() {
                    "any value" => "table".into(),
                    other => format!("table of {}", plural(other)),
                }
            }
            _ => "table".into(),
        },
        other => other.into(),
    }
}

fn plural(name: &str) -> String {
    name.split(" or ")
        .map(|one| match one {
            "any value" => "values".into(),
            "string" | "integer" | "number" | "boolean" | "table" => format!("{one}s"),
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A value as written in TOML, in backticks.
fn literal(value: &Value) -> String {
    let text = match value {
        Value::Object(map) if map.is_empty() => "{}".into(),
        other => other.to_string(),
    };
    format!("`{text}`")
}

/// The description of a key: its own, or the one of the type it refers to.
fn description(property: &Value, schema: &Value) -> String {
    property["description"]
        .as_str()
        .or_else(|| schema["description"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// The default column and the description without its "Default ..."
/// sentence: the schema's default, or failing that the sentence's text
/// (`Default: the machine's cores.`); `required` or `none` otherwise.
fn default_of(
    property: &Value,
    schema: &Value,
    required: bool,
    description: &str,
) -> (String, String) {
    let given = property.get("default").or_else(|| schema.get("default"));
    let (sentence, rest) = default_sentence(description);
    match (given, sentence) {
        (Some(value), Some(text)) if same(&literal(value), &text) => (literal(value), rest),
        (Some(value), _) => (literal(value), description.to_string()),
        (None, Some(text)) => (text, rest),
        (None, None) if required => ("required".into(), description.to_string()),
        (None, None) => ("none".into(), description.to_string()),
    }
}

/// Whether a schema default and a doc comment's default say the same.
fn same(literal: &str, text: &str) -> bool {
    let bare = |s: &str| s.replace(['`', '"'], "").trim().to_lowercase();
    bare(literal) == bare(text)
}

/// Splits `Default: x.` / `Default x.` out of a description: the default's
/// text and the description without the sentence.
fn default_sentence(description: &str) -> (Option<String>, String) {
    let text = description.trim();
    let mut start = None;
    for (i, _) in text.match_indices("Default") {
        let before = text[..i].trim_end();
        if before.is_empty() || before.ends_with('.') {
            start = Some(i);
            break;
        }
    }
    let Some(start) = start else {
        return (None, description.to_string());
    };
    let sentence = &text[start + "Default".len()..];
    let end = sentence_end(sentence);
    let value = sentence[..end]
        .trim_start_matches(':')
        .trim()
        .trim_end_matches('.')
        .trim();
    if value.is_empty() {
        return (None, description.to_string());
    }
    let after = sentence[end..].trim();
    let rest = format!("{} {after}", text[..start].trim());
    (Some(value.to_string()), rest.trim().to_string())
}

/// Where a sentence ends: after the first `.` outside backticks that ends
/// the text or is followed by whitespace.
fn sentence_end(text: &str) -> usize {
    let mut code = false;
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'`' => code = !code,
            b'.' if !code && bytes.get(i + 1).is_none_or(|n| n.is_ascii_whitespace()) => {
                return i + 1;
            }
            _ => {}
        }
    }
    text.len()
}

/// A description as one table cell.
fn cell(text: &str) -> String {
    text.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace('|', "\\|")
}

fn upper_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_default_sentence_moves_to_the_default_column() {
        let (value, rest) = default_sentence("Worker threads. Default: the machine's cores.");
        assert_eq!(value.as_deref(), Some("the machine's cores"));
        assert_eq!(rest, "Worker threads.");
        let (value, rest) =
            default_sentence("CSV: the separator. Default `\",\"` (`\"\\t\"` for `.tsv`). More.");
        assert_eq!(value.as_deref(), Some("`\",\"` (`\"\\t\"` for `.tsv`)"));
        assert_eq!(rest, "CSV: the separator. More.");
        let (value, _) = default_sentence("`json` (default): a JSON object per message.");
        assert_eq!(value, None);
    }

    #[test]
    fn a_schema_default_wins_and_a_matching_sentence_goes() {
        let property = serde_json::json!({ "default": 10000 });
        let (default, rest) = default_of(
            &property,
            &property,
            false,
            "Records per batch. Default 10000.",
        );
        assert_eq!(
            (default.as_str(), rest.as_str()),
            ("`10000`", "Records per batch.")
        );
        let property = serde_json::json!({ "default": false });
        let (default, rest) = default_of(
            &property,
            &property,
            false,
            "Flatten. Default false: they become struct columns.",
        );
        assert_eq!(default, "`false`");
        assert!(rest.contains("struct columns"), "{rest}");
    }

    #[test]
    fn markers_are_filled_and_the_prose_around_them_kept() {
        let doc = format!("intro\n{BEGIN}batch -->\nold\n{END}\noutro\n");
        let updated = update(&doc).expect("update");
        assert!(
            updated.starts_with("intro\n<!-- generated: batch -->\n| key |"),
            "{updated}"
        );
        assert!(updated.contains("`max_rows`"), "{updated}");
        assert!(updated.ends_with(&format!("{END}\noutro\n")), "{updated}");
        assert_eq!(update(&updated).expect("again"), updated);
    }

    #[test]
    fn an_unknown_section_names_the_known_ones() {
        let doc = format!("{BEGIN}source.ftp -->\n{END}\n");
        let e = update(&doc).expect_err("unknown kind");
        assert!(e.contains("known: file, postgres"), "{e}");
    }

    #[test]
    fn kinds_with_the_same_keys_share_a_table() {
        let doc = format!("{BEGIN}source.postgres,mysql,sqlite -->\n{END}\n");
        let table = update(&doc).expect("shared");
        assert!(
            table.contains("`\"postgres\"`, `\"mysql\"`, `\"sqlite\"`"),
            "{table}"
        );
        assert!(table.contains("`incremental.cursor`"), "{table}");
        let doc = format!("{BEGIN}source.file,kafka -->\n{END}\n");
        assert!(update(&doc).is_err());
    }
}
