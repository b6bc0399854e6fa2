//! A project's models, parsed: every `models/**/*.sql` rendered once to
//! learn its refs, sources and config, the sources it may read (`sources:`
//! blocks, and every pipeline's destination table), and the ref graph,
//! checked for cycles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::config::{ConfigValues, Materialized, ModelConfig};
use super::datatest::{self, DataTest};
use super::graph::Graph;
use super::jinja::{Macros, Render, Renderer, Resolver};
use super::layout::{DBT_PROJECT_FILE, Layout};
use super::properties;
use super::relation::{Relation, RelationValue};
use super::seed::{self, Seed};
use super::snapshot;
use crate::config::{PROJECT_FILE, Project};
use crate::core::error::{Error, Result};

/// The schema names stand for while parsing, before the warehouse is asked
/// its default.
const PARSE_SCHEMA: &str = "main";

/// The prefix of the CTE an ephemeral model is inlined as.
pub const CTE_PREFIX: &str = "__flowline_cte__";

/// One model.
#[derive(Debug, Clone)]
pub struct Model {
    /// Its name: the file name without `.sql`.
    pub name: String,
    /// Its file, relative to the project.
    pub file: PathBuf,
    /// Its folders below the model path (`marts/finance`).
    pub folders: Vec<String>,
    /// The template as written.
    pub text: String,
    /// Its config: folder configs, its properties, then its `config()`.
    pub config: ModelConfig,
    /// The models it reads.
    pub refs: Vec<String>,
    /// The source tables it reads.
    pub sources: Vec<(String, String)>,
}

impl Model {
    /// Its dotted name: project, folders, name.
    pub fn fqn(&self, project: &str) -> Vec<String> {
        let mut fqn = vec![project.to_string()];
        fqn.extend(self.folders.iter().cloned());
        fqn.push(self.name.clone());
        fqn
    }

    /// Where it is built, with `default_schema` when its config names none.
    pub fn relation(&self, default_schema: &str) -> Relation {
        self.config.relation(&self.name, default_schema)
    }

    /// What `ref()` to it gives: its relation, or its CTE when ephemeral.
    pub fn reference(&self, default_schema: &str) -> RelationValue {
        match self.config.materialized {
            Materialized::Ephemeral => RelationValue::Cte(format!("{CTE_PREFIX}{}", self.name)),
            _ => RelationValue::Relation(self.relation(default_schema)),
        }
    }
}

/// A source table: where `source('name', 'table')` points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceTable {
    /// Its schema; `None`: the warehouse's default (a pipeline table
    /// without a schema).
    pub schema: Option<String>,
    /// Its name.
    pub identifier: String,
}

/// A project's models, parsed and checked.
#[derive(Debug, Clone)]
pub struct ModelProject {
    /// Folders and settings.
    pub layout: Layout,
    /// The enabled models, sorted by name; a model's index is its node in
    /// [`ModelProject::graph`].
    pub models: Vec<Model>,
    /// Source tables by (source, table).
    pub sources: BTreeMap<(String, String), SourceTable>,
    /// The project's macros.
    pub macros: Arc<Macros>,
    /// The ref graph.
    pub graph: Graph,
    /// The models in build order, parents first.
    pub order: Vec<usize>,
    /// The warehouse kind, for `target.type`.
    pub warehouse_kind: String,
    /// The data tests: generic ones from properties files, singular ones
    /// from the test folders.
    pub tests: Vec<DataTest>,
    /// The seeds, which models `ref()` like models.
    pub seeds: Vec<Seed>,
}

/// The project in `dir` as models see it: a flowline project when it has
/// `flowline.toml`; a dbt project (with the embedded DuckDB warehouse at
/// `.flowline/warehouse.duckdb` there) when it has only `dbt_project.yml`.
pub fn project_at(dir: &Path) -> Result<Project> {
    if dir.join(PROJECT_FILE).exists() {
        return Project::load(dir);
    }
    if dir.join(DBT_PROJECT_FILE).exists() {
        let layout = Layout::load(dir, "project")?;
        return Ok(Project::defaults(dir, &layout.name));
    }
    Err(Error::Config(format!(
        "{} has neither {PROJECT_FILE} nor {DBT_PROJECT_FILE}: point --project at a flowline \
         or dbt project",
        dir.display()
    )))
}

impl ModelProject {
    /// Reads and parses the models of `project`.
    pub fn load(project: &Project) -> Result<ModelProject> {
        Self::load_with_vars(project, BTreeMap::new())
    }

    /// Like [`ModelProject::load`], with `vars` over those of
    /// `dbt_project.yml` (`--vars`).
    pub fn load_with_vars(
        project: &Project,
        vars: BTreeMap<String, serde_json::Value>,
    ) -> Result<ModelProject> {
        let mut layout = Layout::load(&project.dir, &project.settings.project.name)?;
        layout.vars.extend(vars);
        let macros = Arc::new(Macros::load(&layout)?);
        let properties = properties::load(&layout)?;
        let sources = sources(project, &properties);
        let seeds = seed::discover(&layout, &properties)?;
        let mut yml_configs: BTreeMap<String, ConfigValues> = BTreeMap::new();
        for (_, file) in &properties {
            for model in &file.models {
                let values = yml_configs.entry(model.name.clone()).or_default();
                for (k, v) in &model.config {
                    values.set(k, v.clone());
                }
            }
        }

        // Every model file and snapshot block, with its folder configs.
        let mut found: Vec<(String, PathBuf, Vec<String>, String, ConfigValues)> = Vec::new();
        let mut templates = Vec::new();
        for (in_root, file) in layout.files(&layout.model_paths, &["sql"])? {
            let name = in_root
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let folders = super::layout::folders_of(&in_root);
            let full = layout.dir.join(&file);
            let text = std::fs::read_to_string(&full).map_err(|e| Error::io(&full, e))?;
            let values = layout.folders.resolve(&folders, &name);
            templates.push((name, file, folders, text, values));
        }
        for (in_root, file) in layout.files(&layout.snapshot_paths, &["sql"])? {
            let folders = super::layout::folders_of(&in_root);
            let full = layout.dir.join(&file);
            let text = std::fs::read_to_string(&full).map_err(|e| Error::io(&full, e))?;
            for block in snapshot::blocks(&file, &text)? {
                let mut values = layout.snapshot_folders.resolve(&folders, &block.name);
                values.set("materialized", "snapshot".into());
                templates.push((
                    block.name,
                    file.clone(),
                    folders.clone(),
                    block.body,
                    values,
                ));
            }
        }
        for (name, file, folders, text, mut values) in templates {
            if let Some((_, other, ..)) = found.iter().find(|(n, ..)| *n == name) {
                return Err(Error::Config(format!(
                    "{}: a model or snapshot named {name} exists already in {}; names must be \
                     unique",
                    file.display(),
                    other.display()
                )));
            }
            if let Some(yml) = yml_configs.get(&name) {
                values.merge(yml);
            }
            found.push((name, file, folders, text, values));
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));

        // Parse: render each once with stand-in relations.
        let mut resolver = Resolver {
            vars: layout.vars.clone(),
            target: target(PARSE_SCHEMA, project.settings.warehouse.kind()),
            ..Resolver::default()
        };
        for (name, ..) in &found {
            resolver.models.insert(
                name.clone(),
                RelationValue::Relation(Relation::new(PARSE_SCHEMA, name.clone())),
            );
        }
        for seed in &seeds {
            if let Some((_, file, ..)) = found.iter().find(|(n, ..)| *n == seed.name) {
                return Err(Error::Config(format!(
                    "{}: a model has the name of seed {}; names must be unique",
                    file.display(),
                    seed.file.display()
                )));
            }
            resolver.models.insert(
                seed.name.clone(),
                RelationValue::Relation(seed.relation(PARSE_SCHEMA)),
            );
        }
        resolver.sources = resolve_sources(&sources, PARSE_SCHEMA);
        let renderer = Renderer::new(resolver, macros.clone());
        let mut models = Vec::new();
        for (name, file, folders, text, mut values) in found {
            let rendered = renderer.render(Render {
                file: &file,
                text: &text,
                this: RelationValue::Relation(Relation::new(PARSE_SCHEMA, name.clone())),
                is_incremental: false,
            })?;
            let snapshot = values.get("materialized") == Some(&"snapshot".into());
            values.merge(&rendered.config);
            if snapshot {
                // A snapshot stays one whatever its config() says.
                values.set("materialized", "snapshot".into());
            }
            let config = ModelConfig::from_values(&values)
                .map_err(|e| Error::Config(format!("{}: {e}", file.display())))?;
            if !config.enabled {
                continue;
            }
            models.push(Model {
                name,
                file,
                folders,
                text,
                config,
                refs: rendered.refs,
                sources: rendered.sources,
            });
        }

        // Two models may not be built as one relation.
        let mut built_as: BTreeMap<(Option<&str>, &str), &Path> = BTreeMap::new();
        for model in &models {
            if model.config.materialized == Materialized::Ephemeral {
                continue;
            }
            let key = (
                model.config.schema.as_deref(),
                model.config.alias.as_deref().unwrap_or(&model.name),
            );
            if let Some(other) = built_as.insert(key, &model.file) {
                return Err(Error::Config(format!(
                    "{}: builds the same relation ({}) as {}; give one of them another alias or schema",
                    model.file.display(),
                    key.1,
                    other.display()
                )));
            }
        }
        let index: BTreeMap<&str, usize> = models
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name.as_str(), i))
            .collect();
        let mut parents = Vec::with_capacity(models.len());
        for model in &models {
            let mut list = Vec::new();
            for r in model
                .refs
                .iter()
                .filter(|r| !seeds.iter().any(|s| &s.name == *r))
            {
                let parent = index.get(r.as_str()).ok_or_else(|| {
                    Error::Config(format!(
                        "{}: ref('{r}'): model {r} is disabled (enabled = false)",
                        model.file.display()
                    ))
                })?;
                list.push(*parent);
            }
            parents.push(list);
        }
        let mut tests = Vec::new();
        for (file, properties) in &properties {
            tests.extend(datatest::generic_tests(file, properties)?);
        }
        for (_, file) in layout.files(&layout.test_paths, &["sql"])? {
            let full = layout.dir.join(&file);
            let text = std::fs::read_to_string(&full).map_err(|e| Error::io(&full, e))?;
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let rendered = renderer.render(Render {
                file: &file,
                text: &text,
                this: RelationValue::Cte(name),
                is_incremental: false,
            })?;
            let warn = rendered
                .config
                .get("severity")
                .and_then(|s| s.as_str())
                .is_some_and(|s| s.eq_ignore_ascii_case("warn"));
            tests.push(datatest::singular(&file, &text, rendered.refs, warn));
        }
        // Two tests of one name (the same test with other arguments) are
        // told apart by a number.
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for test in &mut tests {
            let n = seen.entry(test.name.clone()).or_insert(0);
            *n += 1;
            if *n > 1 {
                test.name = format!("{}_{n}", test.name);
            }
        }
        for test in &tests {
            if let Some(missing) = test
                .depends_on
                .iter()
                .find(|m| !index.contains_key(m.as_str()))
            {
                return Err(Error::Config(format!(
                    "{}: test {} is on model {missing}, which does not exist or is disabled",
                    test.file.display(),
                    test.name
                )));
            }
        }
        let graph = Graph::new(models.iter().map(|m| m.name.clone()).collect(), parents);
        let order = graph.order().map_err(|cycle| {
            Error::Config(format!(
                "the models' refs go round in a cycle: {}; a model cannot read itself, \
                 directly or through others",
                cycle.join(" -> ")
            ))
        })?;
        Ok(ModelProject {
            layout,
            models,
            sources,
            macros,
            graph,
            order,
            warehouse_kind: project.settings.warehouse.kind().to_string(),
            tests,
            seeds,
        })
    }

    /// The seeds the `chosen` models read; every seed when `all`.
    pub fn seeds_of(&self, chosen: &std::collections::BTreeSet<usize>, all: bool) -> Vec<&Seed> {
        self.seeds
            .iter()
            .filter(|s| {
                all || chosen
                    .iter()
                    .any(|&i| self.models[i].refs.contains(&s.name))
            })
            .collect()
    }

    /// The tests on the `chosen` models: those that read any of them.
    pub fn tests_of(&self, chosen: &std::collections::BTreeSet<usize>) -> Vec<&DataTest> {
        self.tests
            .iter()
            .filter(|t| {
                t.depends_on
                    .iter()
                    .any(|m| self.index_of(m).is_some_and(|i| chosen.contains(&i)))
            })
            .collect()
    }

    /// The batch pipelines that load the source tables the `chosen`
    /// models read, in the project's order: what `build --load-upstream`
    /// runs first.
    pub fn upstream_pipelines<'a>(
        &self,
        project: &'a Project,
        chosen: &std::collections::BTreeSet<usize>,
    ) -> Vec<&'a crate::config::Pipeline> {
        let read: Vec<&SourceTable> = chosen
            .iter()
            .flat_map(|&i| &self.models[i].sources)
            .filter_map(|key| self.sources.get(key))
            .collect();
        project
            .pipelines
            .iter()
            .filter(|p| p.config.mode != crate::core::Mode::Stream)
            .filter(|p| p.config.destination.connection.is_none())
            .filter(|p| {
                crate::core::TableName::parse(p.config.destination.table.get_ref()).is_ok_and(
                    |table| {
                        read.iter().any(|source| {
                            source.identifier == table.table
                                && source.schema.as_deref().unwrap_or(PARSE_SCHEMA) == table.schema
                        })
                    },
                )
            })
            .collect()
    }

    /// The model called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.models.iter().position(|m| m.name == name)
    }

    /// A renderer that resolves names as they are in the warehouse whose
    /// default schema is `default_schema`.
    pub fn renderer(&self, default_schema: &str) -> Renderer {
        let resolver = Resolver {
            models: self
                .models
                .iter()
                .map(|m| (m.name.clone(), m.reference(default_schema)))
                .chain(self.seeds.iter().map(|s| {
                    (
                        s.name.clone(),
                        RelationValue::Relation(s.relation(default_schema)),
                    )
                }))
                .collect(),
            sources: resolve_sources(&self.sources, default_schema),
            vars: self.layout.vars.clone(),
            target: target(default_schema, &self.warehouse_kind),
        };
        Renderer::new(resolver, self.macros.clone())
    }
}

/// dbt's `target` for templates.
fn target(schema: &str, kind: &str) -> serde_json::Value {
    serde_json::json!({ "name": "flowline", "schema": schema, "type": kind })
}

/// Every source table: each pipeline's destination table in the project's
/// warehouse (`source('raw', 'orders')` for `raw.orders`), then the
/// `sources:` blocks, which win.
fn sources(
    project: &Project,
    properties: &[(PathBuf, properties::PropertiesFile)],
) -> BTreeMap<(String, String), SourceTable> {
    let mut sources = BTreeMap::new();
    for pipeline in &project.pipelines {
        let destination = &pipeline.config.destination;
        if destination.connection.is_some() {
            continue;
        }
        let Ok(table) = crate::core::TableName::parse(destination.table.get_ref()) else {
            continue;
        };
        let schema = (table.schema != PARSE_SCHEMA).then(|| table.schema.clone());
        sources.insert(
            (table.schema.clone(), table.table.clone()),
            SourceTable {
                schema,
                identifier: table.table.clone(),
            },
        );
    }
    for (_, file) in properties {
        for block in &file.sources {
            for table in &block.tables {
                sources.insert(
                    (block.name.clone(), table.name.clone()),
                    SourceTable {
                        schema: Some(block.schema.clone().unwrap_or_else(|| block.name.clone())),
                        identifier: table
                            .identifier
                            .clone()
                            .unwrap_or_else(|| table.name.clone()),
                    },
                );
            }
        }
    }
    sources
}

fn resolve_sources(
    sources: &BTreeMap<(String, String), SourceTable>,
    default_schema: &str,
) -> BTreeMap<(String, String), Relation> {
    sources
        .iter()
        .map(|(key, table)| {
            let schema = table
                .schema
                .clone()
                .unwrap_or_else(|| default_schema.to_string());
            (key.clone(), Relation::new(schema, table.identifier.clone()))
        })
        .collect()
}
