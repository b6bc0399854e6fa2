//! Where a project keeps its models, macros, seeds and tests, and the
//! settings `dbt_project.yml` gives them: its name, `model-paths`,
//! `seed-paths`, `test-paths`, `macro-paths`, `snapshot-paths`, `vars`,
//! and model, seed and snapshot configs by folder (`+materialized: table`,
//! with or without the `+`).
//!
//! Without `dbt_project.yml` the dbt defaults hold: `models/`, `seeds/`,
//! `tests/`, `macros/`, `snapshots/` beside `pipelines/`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

use super::config::{ConfigValues, is_config_name};
use crate::core::error::{Error, Result};

/// The dbt project file's name.
pub const DBT_PROJECT_FILE: &str = "dbt_project.yml";

/// The folders and project-wide settings of a models project.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The project folder.
    pub dir: PathBuf,
    /// The project's name: the first part of every model's dotted name, and
    /// the key of its folder configs in `dbt_project.yml`.
    pub name: String,
    /// Folders holding `*.sql` models (and `*.yml` properties).
    pub model_paths: Vec<String>,
    /// Folders holding `*.csv` seeds.
    pub seed_paths: Vec<String>,
    /// Folders holding singular tests (`*.sql`).
    pub test_paths: Vec<String>,
    /// Folders holding macros (`*.sql`).
    pub macro_paths: Vec<String>,
    /// Folders holding snapshots (`*.sql` with `{% snapshot %}` blocks).
    pub snapshot_paths: Vec<String>,
    /// `vars:`, read by `var('name')`.
    pub vars: BTreeMap<String, Value>,
    /// `models:`, the configs by folder.
    pub folders: FolderConfigs,
    /// `seeds:`, the seeds' configs by folder.
    pub seed_folders: FolderConfigs,
    /// `snapshots:`, the snapshots' configs by folder.
    pub snapshot_folders: FolderConfigs,
}

/// `dbt_project.yml` as far as flowline reads it; other keys are ignored,
/// as dbt's profile and packages settings have no meaning here.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct DbtProjectFile {
    name: Option<String>,
    model_paths: Option<Vec<String>>,
    seed_paths: Option<Vec<String>>,
    test_paths: Option<Vec<String>>,
    macro_paths: Option<Vec<String>>,
    snapshot_paths: Option<Vec<String>>,
    #[serde(default)]
    vars: BTreeMap<String, Value>,
    #[serde(default)]
    models: serde_json::Map<String, Value>,
    #[serde(default)]
    seeds: serde_json::Map<String, Value>,
    #[serde(default)]
    snapshots: serde_json::Map<String, Value>,
}

impl Layout {
    /// The layout of the project in `dir`: read from its `dbt_project.yml`
    /// when there is one, dbt's defaults otherwise (`fallback_name` names
    /// the project then).
    pub fn load(dir: &Path, fallback_name: &str) -> Result<Layout> {
        let file = dir.join(DBT_PROJECT_FILE);
        let parsed: DbtProjectFile = if file.exists() {
            let text = std::fs::read_to_string(&file).map_err(|e| Error::io(&file, e))?;
            serde_yaml_ng::from_str(&text).map_err(|e| yaml_error(&file, &e))?
        } else {
            DbtProjectFile::default()
        };
        let name = parsed.name.unwrap_or_else(|| fallback_name.to_string());
        let folders = FolderConfigs::parse(&name, &parsed.models)
            .map_err(|message| Error::Config(format!("{}: models: {message}", file.display())))?;
        let seed_folders = FolderConfigs::parse(&name, &parsed.seeds)
            .map_err(|message| Error::Config(format!("{}: seeds: {message}", file.display())))?;
        let snapshot_folders =
            FolderConfigs::parse(&name, &parsed.snapshots).map_err(|message| {
                Error::Config(format!("{}: snapshots: {message}", file.display()))
            })?;
        Ok(Layout {
            dir: dir.to_path_buf(),
            name,
            model_paths: parsed.model_paths.unwrap_or_else(|| vec!["models".into()]),
            seed_paths: parsed.seed_paths.unwrap_or_else(|| vec!["seeds".into()]),
            test_paths: parsed.test_paths.unwrap_or_else(|| vec!["tests".into()]),
            macro_paths: parsed.macro_paths.unwrap_or_else(|| vec!["macros".into()]),
            snapshot_paths: parsed
                .snapshot_paths
                .unwrap_or_else(|| vec!["snapshots".into()]),
            vars: parsed.vars,
            folders,
            seed_folders,
            snapshot_folders,
        })
    }

    /// Every file under `paths` (relative to the project) whose extension is
    /// one of `extensions`, sorted, as (path relative to its root folder,
    /// path relative to the project).
    pub fn files(&self, paths: &[String], extensions: &[&str]) -> Result<Vec<(PathBuf, PathBuf)>> {
        let mut found = Vec::new();
        for root in paths {
            let root_dir = self.dir.join(root);
            if !root_dir.is_dir() {
                continue;
            }
            let mut stack = vec![root_dir.clone()];
            while let Some(folder) = stack.pop() {
                let entries = std::fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))?;
                for entry in entries {
                    let path = entry.map_err(|e| Error::io(&folder, e))?.path();
                    if path.is_dir() {
                        stack.push(path);
                    } else if path
                        .extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| extensions.contains(&e))
                    {
                        let in_root = path.strip_prefix(&root_dir).unwrap_or(&path).to_path_buf();
                        let in_project =
                            path.strip_prefix(&self.dir).unwrap_or(&path).to_path_buf();
                        found.push((in_root, in_project));
                    }
                }
            }
        }
        found.sort_by(|a, b| a.1.cmp(&b.1));
        Ok(found)
    }
}

/// A YAML error with the file, line and column it points at.
pub fn yaml_error(file: &Path, e: &serde_yaml_ng::Error) -> Error {
    match e.location() {
        Some(at) => Error::Config(format!(
            "{}:{}:{}: {e}",
            file.display(),
            at.line(),
            at.column()
        )),
        None => Error::Config(format!("{}: {e}", file.display())),
    }
}

/// `models:` of `dbt_project.yml`: configs set on folders (and on single
/// models), inherited by everything below them.
#[derive(Debug, Clone, Default)]
pub struct FolderConfigs {
    /// The configs set at this level.
    here: ConfigValues,
    /// Sub-folders (or model names) by name.
    below: BTreeMap<String, FolderConfigs>,
}

impl FolderConfigs {
    /// Reads the `models:` block of project `project`. Its top-level keys
    /// are the project's name (other packages' settings are ignored) or
    /// configs that apply to every model.
    pub fn parse(
        project: &str,
        models: &serde_json::Map<String, Value>,
    ) -> std::result::Result<FolderConfigs, String> {
        let mut root = FolderConfigs::default();
        for (key, value) in models {
            if let Some(config) = config_key(key, value) {
                root.here.set(config, value.clone());
            } else if key == project {
                let Value::Object(inner) = value else {
                    return Err(format!("{key}: expected a mapping of folders and configs"));
                };
                let project_level = FolderConfigs::parse_level(inner, key)?;
                root.here.merge(&project_level.here);
                root.below = project_level.below;
            }
        }
        Ok(root)
    }

    fn parse_level(
        map: &serde_json::Map<String, Value>,
        at: &str,
    ) -> std::result::Result<FolderConfigs, String> {
        let mut level = FolderConfigs::default();
        for (key, value) in map {
            if let Some(config) = config_key(key, value) {
                level.here.set(config, value.clone());
            } else if let Value::Object(inner) = value {
                let below = FolderConfigs::parse_level(inner, &format!("{at}.{key}"))?;
                level.below.insert(key.clone(), below);
            } else {
                return Err(format!(
                    "{at}.{key}: not a known config and not a folder; write +{key} for a config"
                ));
            }
        }
        Ok(level)
    }

    /// The configs that apply to the model whose folders (below its model
    /// path) are `folders` and whose name is `name`, outermost first.
    pub fn resolve(&self, folders: &[String], name: &str) -> ConfigValues {
        let mut values = self.here.clone();
        let mut level = self;
        for part in folders.iter().map(String::as_str).chain([name]) {
            match level.below.get(part) {
                Some(next) => {
                    values.merge(&next.here);
                    level = next;
                }
                None => break,
            }
        }
        values
    }
}

/// The config a `models:` key sets, if it is one: `+name`, or a known
/// config name whose value is not a mapping.
fn config_key<'a>(key: &'a str, value: &Value) -> Option<&'a str> {
    if let Some(name) = key.strip_prefix('+') {
        return Some(name);
    }
    (is_config_name(key) && !value.is_object()).then_some(key)
}

/// The folders of a file's path inside its root (`marts/finance` for
/// `marts/finance/revenue.sql`), which folder configs are matched on.
pub fn folders_of(in_root: &Path) -> Vec<String> {
    in_root
        .parent()
        .map(|p| {
            p.components()
                .map(|c| c.as_os_str().to_string_lossy().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folders(yaml: &str) -> FolderConfigs {
        let models: serde_json::Map<String, Value> = serde_yaml_ng::from_str(yaml).expect("yaml");
        FolderConfigs::parse("shop", &models).expect("parses")
    }

    #[test]
    fn folder_configs_apply_below_their_folder_with_or_without_plus() {
        let configs = folders(
            "shop:\n  +materialized: view\n  marts:\n    materialized: table\n    +tags: [daily]\n    finance:\n      +schema: finance\nother_package:\n  +materialized: table\n",
        );
        let top = configs.resolve(&[], "stg_orders");
        assert_eq!(top.get("materialized"), Some(&Value::from("view")));
        let mart = configs.resolve(&["marts".into()], "orders");
        assert_eq!(mart.get("materialized"), Some(&Value::from("table")));
        assert_eq!(mart.tags(), ["daily"]);
        let finance = configs.resolve(&["marts".into(), "finance".into()], "revenue");
        assert_eq!(finance.get("schema"), Some(&Value::from("finance")));
        assert_eq!(finance.tags(), ["daily"], "tags are inherited");
    }

    #[test]
    fn an_unknown_plain_key_with_a_scalar_value_is_an_error() {
        let models: serde_json::Map<String, Value> =
            serde_yaml_ng::from_str("shop:\n  materialised: table\n").expect("yaml");
        let error = FolderConfigs::parse("shop", &models).expect_err("unknown key");
        assert!(error.contains("shop.materialised"), "{error}");
    }
}
