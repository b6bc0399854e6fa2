//! The module map of `src/lib.rs` holds: every module imports only the
//! layers below its own, so no module imports upward and there is no cycle.
//! A scan of `crate::` paths is enough to keep it so.

use std::path::Path;

/// The layers, lowest first. A module may use its own module and any
/// module of a lower layer; modules of one layer do not use each other.
const LAYERS: &[&[&str]] = &[
    &["core"],
    &["data"],
    &["clients"],
    &["transforms", "sources", "destinations", "jobs"],
    &["config"],
    &["state", "models"],
    &["engine", "lineage"],
    &["orchestrator"],
    &["server"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `crate::<module>` a file's code (not its comments) names.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push((number + 1, name));
            }
            rest = after;
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src is readable") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_imports_a_module_above_its_own_layer() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut violations = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src");
        let Some(module) = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs").to_string())
        else {
            continue;
        };
        let Some(own) = layer_of(&module) else {
            assert!(
                ["lib", "main"].contains(&module.as_str()),
                "src/{module} is in no layer: add it to LAYERS here and to the map in src/lib.rs"
            );
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable");
        for (line, used) in crate_paths(&text) {
            if used == module {
                continue;
            }
            match layer_of(&used) {
                Some(layer) if layer < own => {}
                Some(_) => violations.push(format!(
                    "src/{}:{line}: {module} uses crate::{used}, which is not below it",
                    relative.display()
                )),
                None => violations.push(format!(
                    "src/{}:{line}: crate::{used} is in no layer",
                    relative.display()
                )),
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
}

#[test]
fn the_scan_sees_paths_in_code_and_not_in_comments() {
    let text = "use crate::core::Error; // crate::cli\nlet x = crate::data::json::f();\n";
    let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(names, ["core", "data"]);
}
