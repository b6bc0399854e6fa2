//! Project files to typed structs: `flowline.toml` and `pipelines/*.toml`.
//!
//! Loading interpolates `${VAR}`, rejects unknown keys, and turns every
//! mistake into a diagnostic naming file, line and column. Loading never
//! stops at the first broken file: `flowline validate` reports them all.
//! The same structs give the files' JSON Schema ([`schema`]) and the key
//! tables of the configuration reference ([`mod@reference`]).

mod diagnostic;
pub mod env;
pub mod job;
mod pipeline;
mod project;
pub mod reference;
pub mod schema;

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

pub use job::{JOBS_DIR, JobConfig};
pub use pipeline::{BatchConfig, PipelineConfig};
pub use project::{ProjectFile, ProjectSection, ServerConfig, StateConfig, StateKind};

use crate::core::diagnostic::did_you_mean;
use crate::core::error::{Error, Result};
use crate::core::{ConnectionConfig, Workspace};
use env::{Interpolated, Variables};

/// Name of the project file at a project's root.
pub const PROJECT_FILE: &str = "flowline.toml";
/// Folder of pipeline files.
pub const PIPELINES_DIR: &str = "pipelines";

/// A loaded project: its folder, settings and pipelines.
#[derive(Debug, Clone)]
pub struct Project {
    /// The project's root folder.
    pub dir: PathBuf,
    /// `flowline.toml`.
    pub settings: ProjectFile,
    /// Every `pipelines/*.toml`, sorted by name.
    pub pipelines: Vec<Pipeline>,
    /// Every `jobs/*.toml`, sorted by name.
    pub jobs: Vec<Job>,
}

/// One job file.
#[derive(Debug, Clone)]
pub struct Job {
    /// The file name without `.toml`; what `flowline jobs run NAME` takes.
    pub name: String,
    /// Path of the file, relative to the project when possible.
    pub file: PathBuf,
    /// The parsed configuration.
    pub config: JobConfig,
}

/// One pipeline file.
#[derive(Debug, Clone)]
pub struct Pipeline {
    /// The file name without `.toml`; what `flowline run NAME` takes.
    pub name: String,
    /// Path of the file, relative to the project when possible.
    pub file: PathBuf,
    /// The parsed configuration.
    pub config: PipelineConfig,
}

impl Project {
    /// Loads and checks every file of the project in `dir`.
    pub fn load(dir: &Path) -> Result<Project> {
        Self::load_reporting(dir).map_err(|errors| Error::Config(errors.join("\n\n")))
    }

    /// A folder without `flowline.toml` (a dbt project), as a project named
    /// `name` with every default: the embedded DuckDB warehouse at
    /// `.flowline/warehouse.duckdb` there, no pipelines, no jobs.
    pub fn defaults(dir: &Path, name: &str) -> Project {
        Project {
            dir: dir.to_path_buf(),
            settings: ProjectFile {
                project: project::ProjectSection {
                    name: name.to_string(),
                    python: None,
                },
                warehouse: Default::default(),
                state: Default::default(),
                connections: Default::default(),
                pools: Default::default(),
                server: Default::default(),
            },
            pipelines: Vec::new(),
            jobs: Vec::new(),
        }
    }

    /// Like [`Project::load`], but reports every broken file separately.
    pub fn load_reporting(dir: &Path) -> std::result::Result<Project, Vec<String>> {
        let dir = dir.to_path_buf();
        let project_file = dir.join(PROJECT_FILE);
        if !project_file.exists() {
            return Err(vec![format!(
                "{} not found: {} is not a flowline project (create one with `flowline init`)",
                project_file.display(),
                dir.display()
            )]);
        }
        let vars = Variables::load(&dir).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();
        let settings = match ConfigFile::read(&project_file, &vars).and_then(|f| f.parse_project())
        {
            Ok(settings) => Some(settings),
            Err(e) => {
                errors.push(e.to_string());
                None
            }
        };

        let mut pipelines = Vec::new();
        for file in pipeline_files(&dir).map_err(|e| vec![e.to_string()])? {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let shown = file.strip_prefix(&dir).unwrap_or(&file).to_path_buf();
            let loaded = ConfigFile::read(&file, &vars).and_then(|f| {
                let config = f.parse_pipeline()?;
                config.check(&f)?;
                Ok(config)
            });
            match loaded {
                Ok(config) => pipelines.push(Pipeline {
                    name,
                    file: shown,
                    config,
                }),
                Err(e) => errors.push(e.to_string()),
            }
        }
        let mut jobs = Vec::new();
        let mut job_files = Vec::new();
        for file in toml_files(&dir, JOBS_DIR).map_err(|e| vec![e.to_string()])? {
            let name = file
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_default();
            let shown = file.strip_prefix(&dir).unwrap_or(&file).to_path_buf();
            match ConfigFile::read(&file, &vars).and_then(|f| {
                let config = f.parse_job()?;
                Ok((f, config))
            }) {
                Ok((f, config)) => {
                    job_files.push(f);
                    jobs.push(Job {
                        name,
                        file: shown,
                        config,
                    });
                }
                Err(e) => errors.push(e.to_string()),
            }
        }
        match settings {
            Some(settings) if errors.is_empty() => {
                let project = Project {
                    dir,
                    settings,
                    pipelines,
                    jobs,
                };
                // What a job names elsewhere in the project: pipelines,
                // other jobs, pools, connections.
                for (job, file) in project.jobs.iter().zip(&job_files) {
                    if let Err(e) = project.check_job(job, file) {
                        errors.push(e.to_string());
                    }
                }
                if errors.is_empty() {
                    Ok(project)
                } else {
                    Err(errors)
                }
            }
            _ => Err(errors),
        }
    }

    /// Checks what `job`'s steps name against the rest of the project.
    fn check_job(&self, job: &Job, file: &ConfigFile) -> Result<()> {
        for step in &job.config.steps {
            if let Some(pool) = &step.settings.pool
                && !self.settings.pools.contains_key(pool)
            {
                let known: Vec<&str> = self.settings.pools.keys().map(String::as_str).collect();
                let hint = did_you_mean(pool, &known)
                    .map(|n| format!("; did you mean \"{n}\"?"))
                    .unwrap_or_default();
                return Err(file.error_at(
                    step.span.clone(),
                    &format!(
                        "step \"{}\": pool \"{pool}\" is not in [pools] of flowline.toml \
                         (add {pool} = 2 there){hint}",
                        step.name()
                    ),
                ));
            }
            if let Err(e) = step.action.check(&self.refs()) {
                return Err(
                    file.error_at(step.span.clone(), &format!("step \"{}\": {e}", step.name()))
                );
            }
        }
        Ok(())
    }

    /// The names a job's steps may refer to.
    pub fn refs(&self) -> crate::jobs::ProjectRefs {
        crate::jobs::ProjectRefs {
            dir: self.dir.clone(),
            pipelines: self
                .pipelines
                .iter()
                .map(|p| (p.name.clone(), p.config.mode == crate::core::Mode::Stream))
                .collect(),
            jobs: self.jobs.iter().map(|j| j.name.clone()).collect(),
            connections: self
                .settings
                .connections
                .iter()
                .map(|(n, _)| n.clone())
                .collect(),
        }
    }

    /// The job called `name`, or an error listing the known ones.
    pub fn job(&self, name: &str) -> Result<&Job> {
        self.jobs.iter().find(|j| j.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.jobs.iter().map(|j| j.name.as_str()).collect();
            let hint = did_you_mean(name, &names)
                .map(|n| format!("; did you mean \"{n}\"?"))
                .unwrap_or_default();
            Error::Config(format!(
                "no job named \"{name}\" in {} (known: {}){hint}",
                self.dir.join(JOBS_DIR).display(),
                if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                }
            ))
        })
    }

    /// The pipeline called `name`, or an error listing the known ones.
    pub fn pipeline(&self, name: &str) -> Result<&Pipeline> {
        self.pipelines
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let names: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
                let hint = did_you_mean(name, &names)
                    .map(|n| format!("; did you mean \"{n}\"?"))
                    .unwrap_or_default();
                Error::Config(format!(
                    "no pipeline named \"{name}\" in {} (known: {}){hint}",
                    self.dir.join(PIPELINES_DIR).display(),
                    if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    }
                ))
            })
    }

    /// What connectors need of the project: its folder, name and connections.
    pub fn workspace(&self) -> Workspace {
        Workspace {
            dir: self.dir.clone(),
            name: self.settings.project.name.clone(),
            connections: self.settings.connections.clone(),
            python: self.settings.project.python.clone(),
        }
    }

    /// Opens the project's warehouse.
    pub fn open_warehouse(&self) -> Result<Box<dyn crate::destinations::Warehouse>> {
        self.settings.warehouse.open(&self.workspace())
    }

    /// `[connections.<name>]`, or an error listing the known names.
    pub fn connection(&self, name: &str) -> Result<&ConnectionConfig> {
        self.settings.connections.get(name)
    }

    /// `path` resolved against the project folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }

    /// The folder for flowline's own files (`.flowline/`), created on demand.
    pub fn work_dir(&self) -> Result<PathBuf> {
        let dir = self.dir.join(".flowline");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        Ok(dir)
    }
}

/// The error for a file that is not UTF-8, with where its first bad byte is.
fn not_utf8(path: &Path, e: &std::string::FromUtf8Error) -> Error {
    let bytes = e.as_bytes();
    let at = e.utf8_error().valid_up_to();
    let good = std::str::from_utf8(&bytes[..at]).unwrap_or_default();
    let (line, col) = crate::core::diagnostic::line_col(good, at);
    Error::Config(format!(
        "{}:{line}:{col}: not UTF-8 text (byte {at} is 0x{:02x}); save the file as UTF-8",
        path.display(),
        bytes[at]
    ))
}

/// A serde "unknown field `x`, expected one of `a`, `b`" message with
/// `extra` keys added to those expected (keys read apart from the struct).
fn also_expected(message: &str, extra: &[&str]) -> String {
    if !message.starts_with("unknown field") {
        return message.to_string();
    }
    let names: Vec<String> = extra.iter().map(|k| format!("`{k}`")).collect();
    let message = message.trim_end();
    if message.contains("expected one of") {
        format!("{message}, {}", names.join(", "))
    } else if let Some((head, expected)) = message.split_once(", expected ") {
        format!("{head}, expected one of {expected}, {}", names.join(", "))
    } else {
        message.to_string()
    }
}

/// `pipelines/*.toml`, sorted.
fn pipeline_files(dir: &Path) -> Result<Vec<PathBuf>> {
    toml_files(dir, PIPELINES_DIR)
}

/// `<dir>/<folder>/*.toml`, sorted.
fn toml_files(dir: &Path, folder: &str) -> Result<Vec<PathBuf>> {
    let folder = dir.join(folder);
    if !folder.exists() {
        return Ok(Vec::new());
    }
    let entries = std::fs::read_dir(&folder).map_err(|e| Error::io(&folder, e))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| Error::io(&folder, e))?.path();
        if path.extension().is_some_and(|ext| ext == "toml") {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// One project file's text, before and after interpolation, for diagnostics.
pub struct ConfigFile {
    path: PathBuf,
    original: String,
    interpolated: Interpolated,
}

impl ConfigFile {
    /// Reads and interpolates `path`.
    pub fn read(path: &Path, vars: &Variables) -> Result<ConfigFile> {
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let original = String::from_utf8(bytes).map_err(|e| not_utf8(path, &e))?;
        let interpolated = env::interpolate(path, &original, vars)?;
        Ok(ConfigFile {
            path: path.to_path_buf(),
            original,
            interpolated,
        })
    }

    /// Deserializes the file into `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T> {
        toml::from_str(&self.interpolated.text).map_err(|e| self.toml_error(&e))
    }

    /// Parses `flowline.toml`. `[warehouse]` is deserialized straight from
    /// the spanned document into the struct of its `kind`.
    pub fn parse_project(&self) -> Result<ProjectFile> {
        use serde::Deserialize;
        let root =
            toml::de::DeTable::parse(&self.interpolated.text).map_err(|e| self.toml_error(&e))?;
        let span = root.span();
        let mut table = root.into_inner();
        let warehouse = table.remove("warehouse");
        if let Some(value) = &warehouse {
            self.one_table("warehouse", value)?;
        }
        let mut project = ProjectFile::deserialize(toml::de::Deserializer::from(
            toml::Spanned::new(span, table),
        ))
        .map_err(|e| self.toml_error(&e))?;
        if let Some(warehouse) = warehouse {
            project.warehouse = crate::destinations::WarehouseConfig::from_toml(warehouse)
                .map_err(|e| self.located(&e.message, e.span))?;
        }
        Ok(project)
    }

    /// Parses a pipeline file. `[source]` is deserialized straight from the
    /// spanned document into the struct of its `kind`, so every error in it
    /// keeps its exact line and column.
    pub fn parse_pipeline(&self) -> Result<PipelineConfig> {
        use serde::Deserialize;
        let root =
            toml::de::DeTable::parse(&self.interpolated.text).map_err(|e| self.toml_error(&e))?;
        let span = root.span();
        let mut table = root.into_inner();
        let source = table.remove("source");
        let transforms = table.remove("transform");
        if let Some(value) = &source {
            self.one_table("source", value)?;
        }
        for name in ["destination", "batch"] {
            if let Some(value) = table.get(name) {
                self.one_table(name, value)?;
            }
        }
        let body = pipeline::PipelineBody::deserialize(toml::de::Deserializer::from(
            toml::Spanned::new(span, table),
        ))
        .map_err(|e| {
            // `[source]` and `[[transform]]` are read apart: name them too
            // among the keys of the file's top level (which has `destination`).
            let message = match e.message() {
                top if top.contains("`destination`") => {
                    also_expected(top, &["source", "transform"])
                }
                other => other.to_string(),
            };
            self.located(&message, e.span())
        })?;
        let Some(source) = source else {
            return Err(self.error_at(
                0..0,
                "missing [source]: every pipeline needs one, e.g. [source] kind = \"file\"",
            ));
        };
        let source = crate::sources::SourceConfig::from_toml(source)
            .map_err(|e| self.located(&e.message, e.span))?;
        let transform = match transforms {
            None => Vec::new(),
            Some(value) => {
                let span = value.span();
                let toml::de::DeValue::Array(steps) = value.into_inner() else {
                    return Err(self.error_at(
                        span,
                        "transform must be an array of tables: write [[transform]]",
                    ));
                };
                steps
                    .into_iter()
                    .map(|step| {
                        let span = step.span();
                        crate::transforms::TransformConfig::from_toml(step)
                            .map(|config| toml::Spanned::new(span, config))
                            .map_err(|e| self.located(&e.message, e.span))
                    })
                    .collect::<Result<Vec<_>>>()?
            }
        };
        Ok(body.with_source(source, transform))
    }

    /// An error when `[[name]]` made a list of tables where the file takes one.
    fn one_table(&self, name: &str, value: &toml::Spanned<toml::de::DeValue<'_>>) -> Result<()> {
        if matches!(value.get_ref(), toml::de::DeValue::Array(_)) {
            return Err(self.error_at(
                value.span(),
                &format!(
                    "[[{name}]] makes a list of tables, and a file has one [{name}]: write \
                     [{name}] with single brackets"
                ),
            ));
        }
        Ok(())
    }

    fn toml_error(&self, e: &toml::de::Error) -> Error {
        self.located(e.message(), e.span())
    }

    /// A diagnostic for a serde-style `message` at `span`.
    fn located(&self, message: &str, span: Option<Range<usize>>) -> Error {
        Error::Config(diagnostic::from_message(
            &self.path,
            &self.original,
            &self.interpolated,
            message,
            span,
        ))
    }

    /// A diagnostic at `span` (a byte range in the interpolated text).
    pub fn error_at(&self, span: Range<usize>, message: &str) -> Error {
        let offset = self.interpolated.original_offset(span.start);
        Error::Config(crate::core::diagnostic::render(
            &self.path,
            &self.original,
            offset,
            message,
        ))
    }
}
