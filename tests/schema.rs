//! The published JSON Schemas and the key tables of
//! `docs/configuration.md` are what the config structs say: these tests fail
//! when a checked-in file differs from what the code generates.
//!
//! After changing a config struct or its doc comments, regenerate them with
//!
//! ```text
//! FLOWLINE_BLESS=1 cargo test --test schema
//! ```
//!
//! which rewrites `schema/*.schema.json` and the tables between the
//! `<!-- generated: ... -->` markers of `docs/configuration.md`.

mod common;

use std::path::{Path, PathBuf};

use flowline::config::reference;
use flowline::config::schema::Document;
use serde_json::Value;

/// Whether the run rewrites the checked-in files instead of comparing.
fn bless() -> bool {
    std::env::var_os("FLOWLINE_BLESS").is_some_and(|v| !v.is_empty() && v != "0")
}

fn repo(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Compares `path` with `expected`, or writes it in bless mode.
fn check_file(path: &Path, expected: &str) {
    if bless() {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(path, expected).expect("write");
        return;
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    if actual != expected {
        let line = actual
            .lines()
            .zip(expected.lines())
            .position(|(a, e)| a != e)
            .map_or_else(
                || actual.lines().count().min(expected.lines().count()) + 1,
                |i| i + 1,
            );
        panic!(
            "{} is not what the code generates (first difference at line {line}); \
             regenerate it with FLOWLINE_BLESS=1 cargo test --test schema",
            path.display()
        );
    }
}

#[test]
fn the_checked_in_schemas_are_what_the_code_generates() {
    for document in Document::ALL {
        let path = repo(&format!("schema/{}", document.file_name()));
        check_file(&path, &document.schema_text());
    }
}

#[test]
fn the_reference_tables_of_configuration_md_are_what_the_schema_says() {
    let path = repo("docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/configuration.md");
    let updated = reference::update(&doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    check_file(&path, &updated);
}

#[test]
fn every_section_and_kind_has_a_reference_table() {
    let doc = std::fs::read_to_string(repo("docs/configuration.md")).expect("read");
    let documented: Vec<String> = reference::sections_in(&doc)
        .iter()
        .flat_map(|s| reference::expand(s))
        .collect();
    let missing: Vec<String> = reference::all_sections()
        .into_iter()
        .filter(|s| !documented.contains(s))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md has no generated table for {missing:?}: add \
         `<!-- generated: SECTION -->` `<!-- end generated -->` where it belongs \
         and run FLOWLINE_BLESS=1 cargo test --test schema"
    );
}

#[test]
fn flowline_schema_prints_the_checked_in_schemas() {
    let project = common::TestProject::new();
    assert_eq!(
        project.ok(&["schema", "pipeline"]),
        Document::Pipeline.schema_text()
    );
    assert_eq!(
        project.ok(&["schema", "project"]),
        Document::Project.schema_text()
    );
    let err = project.fails(&["schema", "job"]);
    assert!(err.contains("possible values: project, pipeline"), "{err}");
}

/// The keys a `[source]` of `kind` has in the pipeline schema.
fn schema_keys(schema: &Value, kind: &str) -> Vec<String> {
    let source = &schema["properties"]["source"];
    let source = match source["$ref"]
        .as_str()
        .or(source["allOf"][0]["$ref"].as_str())
    {
        Some(r) => schema.pointer(&r[1..]).expect("definition"),
        None => source,
    };
    let variant = source["oneOf"]
        .as_array()
        .and_then(|all| {
            all.iter()
                .find(|v| v["properties"]["kind"]["const"] == kind)
        })
        .unwrap_or_else(|| panic!("no variant for {kind}"));
    let mut keys: Vec<String> = variant["properties"]
        .as_object()
        .map(|p| p.keys().filter(|k| *k != "kind").cloned().collect())
        .unwrap_or_default();
    keys.sort();
    keys
}

/// The keys a `[source]` of `kind` accepts, as its unknown-key error
/// lists them: what `parse` really reads, shared pieces included.
fn parsed_keys(kind: &str) -> Vec<String> {
    let text = format!("kind = \"{kind}\"\nzz_not_a_key = 1\n");
    let doc = toml::de::DeTable::parse(&text).expect("toml");
    let span = doc.span();
    let table = toml::Spanned::new(span, toml::de::DeValue::Table(doc.into_inner()));
    let error = match flowline::sources::SourceConfig::from_toml(table) {
        Ok(_) => panic!("{kind}: an unknown key was accepted"),
        Err(e) => e.message,
    };
    let expected = error
        .split_once("expected")
        .map(|(_, list)| list)
        .unwrap_or_else(|| panic!("{kind}: {error}"));
    let mut keys: Vec<String> = expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(String::from)
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[test]
fn every_source_schema_has_exactly_the_keys_its_parser_reads() {
    let schema = Document::Pipeline.schema();
    for connector in flowline::sources::connectors() {
        assert_eq!(
            schema_keys(&schema, connector.kind),
            parsed_keys(connector.kind),
            "[source] kind = \"{}\": the schema's keys (left) differ from what parse reads (right); \
             a shared piece read in `parse` belongs in `shared_schemas` too",
            connector.kind
        );
    }
}
