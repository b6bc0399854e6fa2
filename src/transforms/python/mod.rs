//! `python = "transforms/clean.py"`: a Python function applied to every
//! batch, as a pandas DataFrame or a pyarrow Table, by one worker process
//! per run that receives and returns the batches as Arrow IPC ([`worker`]).

mod worker;

use std::path::PathBuf;

use arrow::record_batch::RecordBatch;
use serde::Deserialize;

use super::{StepColumns, Transform, TransformStep};
use crate::core::Workspace;
use crate::core::error::{Error, Result};
use worker::{Launch, Worker};

/// `python = "transforms/clean.py"`: runs the script's `transform` function
/// on every batch.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PythonStep {
    /// A Python file, relative to the project folder, that defines
    /// `transform(df)`: it gets each batch as a pandas DataFrame and returns
    /// the DataFrame to load (rows and columns may be added, removed or
    /// renamed; no row left drops the batch). Integer and boolean columns
    /// have pandas' nullable types and the others are Arrow-backed
    /// (`pd.ArrowDtype`), so NULLs, decimals and time zones stay exact. One
    /// Python process, `[project] python` (default `python3`), serves the
    /// whole run; it needs pyarrow, and pandas unless the function takes a
    /// pyarrow Table.
    pub python: String,
    /// With `python`: what `transform` takes and returns, a pandas DataFrame
    /// (`pandas`) or a pyarrow Table (`arrow`). Default: `arrow` when the
    /// function's first parameter is annotated `pyarrow.Table`, else `pandas`.
    #[serde(default)]
    pub api: Option<PythonApi>,
}

/// The type `transform` takes and returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PythonApi {
    /// A `pandas.DataFrame` with Arrow-backed columns.
    Pandas,
    /// A `pyarrow.Table`.
    Arrow,
}

impl TransformStep for PythonStep {
    fn key() -> &'static str {
        "python"
    }

    fn check(&self) -> std::result::Result<(), String> {
        if self.python.trim().is_empty() {
            return Err("python: give the path of a .py file that defines transform(df)".into());
        }
        Ok(())
    }

    fn columns(&self) -> StepColumns {
        StepColumns::Program
    }

    /// Starts the worker, which loads the script while the source starts.
    fn build(&self, workspace: &Workspace) -> Result<Box<dyn Transform>> {
        let label = format!("python step {}", self.python);
        let script = workspace.resolve(&self.python);
        if !script.is_file() {
            return Err(Error::Config(format!(
                "[[transform]] python = {:?}: no such file {} (the path is relative to the \
                 project folder)",
                self.python,
                script.display()
            )));
        }
        let launch = Launch {
            interpreters: interpreters(workspace),
            missing_interpreter: missing_interpreter(workspace),
            script,
            api: match self.api {
                Some(PythonApi::Pandas) => "pandas",
                Some(PythonApi::Arrow) => "arrow",
                None => "auto",
            },
            dir: workspace.dir.clone(),
            label: label.clone(),
        };
        Ok(Box::new(PythonTransform {
            label,
            worker: Worker::start(&launch)?,
        }))
    }
}

/// The interpreters to try: `[project] python` (a path with a `/` is
/// relative to the project folder), else `python3`, then `python`.
fn interpreters(workspace: &Workspace) -> Vec<PathBuf> {
    match workspace.python.as_deref() {
        Some(program) if program.contains('/') => vec![workspace.resolve(program)],
        Some(program) => vec![PathBuf::from(program)],
        None => vec![PathBuf::from("python3"), PathBuf::from("python")],
    }
}

/// What to say when no interpreter is found.
fn missing_interpreter(workspace: &Workspace) -> String {
    match workspace.python.as_deref() {
        Some(program) => format!(
            "[project] python = {program:?} in flowline.toml: no such program{}",
            if program.contains('/') {
                format!(" ({})", workspace.resolve(program).display())
            } else {
                " on PATH".to_string()
            }
        ),
        None => "no Python interpreter: neither python3 nor python is on PATH; install \
                 Python 3, or set python = \"/path/to/python\" under [project] in flowline.toml"
            .to_string(),
    }
}

/// Sends each batch to the worker and takes its answer.
pub struct PythonTransform {
    label: String,
    worker: Worker,
}

impl Transform for PythonTransform {
    fn apply(&mut self, batch: RecordBatch) -> Result<Option<RecordBatch>> {
        self.worker.transform(&batch)
    }

    fn describe(&self) -> String {
        self.label.clone()
    }

    /// Waits for the worker to load the script: a missing module, a script
    /// that fails to import or defines no `transform` is reported.
    fn check(&mut self) -> Result<()> {
        self.worker.ready().map(|_| ())
    }
}
