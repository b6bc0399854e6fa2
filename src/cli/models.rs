//! `flowline models run|build|test|seed|snapshot|ls|compile`: dbt-style SQL models in the
//! warehouse, with dbt's selection syntax. Works in a flowline project and
//! in a dbt project folder (`dbt_project.yml`, no `flowline.toml`), and
//! reaches the warehouse as `flowline sql` does: through the process that
//! owns it when one runs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::ExitCode;

use serde_json::json;

use crate::core::error::{Error, Result};
use crate::engine::progress::Progress;
use crate::models::compile::Compiler;
use crate::models::config::Materialized;
use crate::models::datatest::{self, TestResult, TestStatus};
use crate::models::materialize::incremental_run;
use crate::models::run::Event;
use crate::models::seed::{self, Seed};
use crate::models::{
    ModelProject, ModelResult, RunOptions, Selection, Status, catalog, project_at, run, select,
};
use crate::server::client::open_warehouse;
use crate::state::RunStatus;

/// The `models` verbs.
#[derive(Debug, clap::Subcommand)]
pub enum ModelsCommand {
    /// Build the selected models in the warehouse, parents first.
    Run(RunArgs),
    /// Load the seeds the selected models read, then build the models and
    /// snapshots, testing each as soon as it is built (a failing test skips
    /// what is downstream).
    Build(BuildArgs),
    /// Run the data tests of the selected models (`models/**/*.yml`, `tests/*.sql`).
    Test(SelectArgs),
    /// Load the CSV files of `seeds/` as tables (all, or those named with -s).
    Seed(SelectArgs),
    /// Record the selected snapshots (`snapshots/*.sql`): new versions of
    /// the rows that changed since the last run.
    Snapshot(SnapshotArgs),
    /// List the selected models in build order.
    Ls(SelectArgs),
    /// Write the selected models' compiled SQL under `.flowline/compiled/`.
    Compile(SelectArgs),
    /// Write the models' documentation site (index.html, catalog.json) with their column lineage.
    Docs(super::lineage::DocsArgs),
}

/// Which models: dbt's selection syntax.
#[derive(Debug, Clone, clap::Args)]
pub struct SelectArgs {
    /// Models to select: `orders`, `orders+`, `+orders`, `@orders`,
    /// `tag:daily`, `path:models/marts`, `config.materialized:table`;
    /// spaces (or several -s) for a union, commas for an intersection.
    #[arg(long = "select", short = 's', num_args = 1..)]
    pub select: Vec<String>,
    /// Models to leave out, in the same syntax.
    #[arg(long, num_args = 1..)]
    pub exclude: Vec<String>,
    /// Variables for `var()`, over those of `dbt_project.yml`, as YAML or
    /// JSON: `--vars '{start_date: 2024-01-01}'`.
    #[arg(long)]
    pub vars: Option<String>,
}

/// Arguments of `models run` and `models build`.
#[derive(Debug, Clone, clap::Args)]
pub struct RunArgs {
    /// Which models.
    #[command(flatten)]
    pub selection: SelectArgs,
    /// Rebuild incremental models from scratch (`is_incremental()` is false).
    #[arg(long)]
    pub full_refresh: bool,
    /// How many independent models are built at once.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
}

/// Arguments of `models build`.
#[derive(Debug, Clone, clap::Args)]
pub struct BuildArgs {
    /// Which models, and how.
    #[command(flatten)]
    pub run: RunArgs,
    /// First run the pipelines that load the source tables the selected
    /// models read (`flowline run` of each), and stop if one fails.
    #[arg(long)]
    pub load_upstream: bool,
}

/// Arguments of `models snapshot`.
#[derive(Debug, Clone, clap::Args)]
pub struct SnapshotArgs {
    /// Which snapshots.
    #[command(flatten)]
    pub selection: SelectArgs,
    /// How many independent snapshots are recorded at once.
    #[arg(long, default_value_t = 4)]
    pub threads: usize,
}

/// What a verb builds: models, snapshots or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Builds {
    Models,
    Snapshots,
    Both,
}

/// Runs a `models` verb; `runtime` runs pipelines for `build --load-upstream`.
pub fn execute(
    project_dir: &Path,
    json: bool,
    command: ModelsCommand,
    runtime: &tokio::runtime::Runtime,
) -> Result<ExitCode> {
    let project = project_at(project_dir)?;
    let vars = match &command {
        ModelsCommand::Run(args) => args.selection.vars.as_deref(),
        ModelsCommand::Build(args) => args.run.selection.vars.as_deref(),
        ModelsCommand::Snapshot(args) => args.selection.vars.as_deref(),
        ModelsCommand::Test(args)
        | ModelsCommand::Seed(args)
        | ModelsCommand::Ls(args)
        | ModelsCommand::Compile(args) => args.vars.as_deref(),
        ModelsCommand::Docs(_) => None,
    };
    let models = ModelProject::load_with_vars(&project, parse_vars(vars)?)?;
    match command {
        ModelsCommand::Run(args) => build(&project, &models, &args, Builds::Models, false, json),
        ModelsCommand::Build(args) => {
            if args.load_upstream {
                let chosen = chosen(&models, &args.run.selection)?;
                if let Some(failed) = load_upstream(&project, &models, &chosen, json, runtime)? {
                    return Ok(failed);
                }
            }
            build(&project, &models, &args.run, Builds::Both, true, json)
        }
        ModelsCommand::Snapshot(args) => {
            let run = RunArgs {
                selection: args.selection,
                full_refresh: false,
                threads: args.threads,
            };
            build(&project, &models, &run, Builds::Snapshots, false, json)
        }
        ModelsCommand::Test(args) => {
            let chosen = chosen(&models, &args)?;
            let warehouse = open_warehouse(&project)?;
            let tests = test(&models, warehouse.as_ref(), &chosen, json)?;
            summarize(&[], &tests, json)
        }
        ModelsCommand::Seed(args) => {
            let names: Vec<&str> = args
                .select
                .iter()
                .flat_map(|s| s.split_whitespace())
                .collect();
            let seeds: Vec<&Seed> = models
                .seeds
                .iter()
                .filter(|s| names.is_empty() || names.contains(&s.name.as_str()))
                .collect();
            let warehouse = open_warehouse(&project)?;
            let results = seed_all(&models, warehouse.as_ref(), &seeds, json)?;
            summarize(&results, &[], json)
        }
        ModelsCommand::Ls(args) => {
            let chosen = chosen(&models, &args)?;
            list(&models, &chosen, json);
            Ok(ExitCode::SUCCESS)
        }
        ModelsCommand::Compile(args) => {
            let chosen = chosen(&models, &args)?;
            let warehouse = open_warehouse(&project)?;
            compile(&models, warehouse.as_ref(), &chosen, json)
        }
        ModelsCommand::Docs(args) => super::lineage::docs(project_dir, json, args),
    }
}

/// Builds the selected models or snapshots (`builds`); with `with_tests`
/// (`build`), loads the seeds they read first and tests each model as soon
/// as it is built.
fn build(
    project: &crate::config::Project,
    models: &ModelProject,
    args: &RunArgs,
    builds: Builds,
    with_tests: bool,
    json: bool,
) -> Result<ExitCode> {
    let mut chosen = chosen(models, &args.selection)?;
    chosen.retain(|&i| {
        let snapshot = models.models[i].config.materialized == Materialized::Snapshot;
        match builds {
            Builds::Models => !snapshot,
            Builds::Snapshots => snapshot,
            Builds::Both => true,
        }
    });
    let warehouse = open_warehouse(project)?;
    let mut results = Vec::new();
    if with_tests {
        let seeds = models.seeds_of(&chosen, args.selection.select.is_empty());
        results = seed_all(models, warehouse.as_ref(), &seeds, json)?;
    }
    let options = RunOptions {
        full_refresh: args.full_refresh,
        threads: args.threads,
        tests: with_tests,
    };
    let report = |event: Event<'_>| {
        if json {
            return;
        }
        match event {
            Event::Model(result) => print_result(result),
            Event::Test(result) => print_test(result),
        }
    };
    let report = run::run(models, warehouse.as_ref(), &chosen, options, &report)?;
    results.extend(report.models);
    summarize(&results, &report.tests, json)
}

/// Runs the pipelines that load what the `chosen` models read, as
/// `flowline run` does; the exit code when one failed.
fn load_upstream(
    project: &crate::config::Project,
    models: &ModelProject,
    chosen: &BTreeSet<usize>,
    json: bool,
    runtime: &tokio::runtime::Runtime,
) -> Result<Option<ExitCode>> {
    let pipelines = models.upstream_pipelines(project, chosen);
    if pipelines.is_empty() {
        if !json {
            println!("no pipeline loads the sources of the selected models");
        }
        return Ok(None);
    }
    let progress = Progress::new(super::interactive() && !json);
    let records = runtime.block_on(crate::server::client::run(
        project,
        &pipelines,
        crate::engine::RunOptions::default(),
        &progress,
        |pipeline, record| {
            if !json {
                super::run::print_outcome(record, pipeline.config.destination.table.get_ref());
            }
        },
    ))?;
    if let Some(failed) = records.iter().find(|r| r.status != RunStatus::Succeeded) {
        if !json {
            println!(
                "pipeline {} failed: the models were not built",
                failed.pipeline
            );
        }
        let report = json!({
            "ok": false,
            "pipelines": records.iter().map(|r| json!({
                "pipeline": r.pipeline, "status": r.status, "rows": r.rows, "error": r.error,
            })).collect::<Vec<_>>(),
        });
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            );
        }
        return Ok(Some(ExitCode::FAILURE));
    }
    Ok(None)
}

/// `--vars`: a YAML (or JSON) mapping.
fn parse_vars(text: Option<&str>) -> Result<BTreeMap<String, serde_json::Value>> {
    let Some(text) = text else {
        return Ok(BTreeMap::new());
    };
    serde_yaml_ng::from_str(text).map_err(|e| {
        Error::Config(format!(
            "--vars {text:?}: {e}; write a mapping, e.g. --vars '{{start_date: 2024-01-01}}'"
        ))
    })
}

/// The models `-s` and `--exclude` pick.
fn chosen(models: &ModelProject, args: &SelectArgs) -> Result<BTreeSet<usize>> {
    let select = Selection::parse(&args.select).map_err(Error::Config)?;
    let exclude = Selection::parse(&args.exclude).map_err(Error::Config)?;
    Ok(select::choose(models, &select, &exclude))
}

fn print_result(result: &ModelResult) {
    let label = match result.status {
        Status::Success => "OK",
        Status::Error => "ERROR",
        Status::Skipped => "SKIP",
    };
    println!(
        "{label:<6} {} ({}) {} [{:.2}s]",
        result.model, result.materialized, result.message, result.seconds
    );
}

/// Loads `seeds`, printing each result.
fn seed_all(
    models: &ModelProject,
    warehouse: &dyn crate::destinations::Warehouse,
    seeds: &[&Seed],
    json: bool,
) -> Result<Vec<ModelResult>> {
    let schema = catalog::default_schema(warehouse)?;
    let mut results = Vec::new();
    for seed in seeds {
        let result = seed::load(seed, &models.layout.dir, warehouse, &schema);
        if !json {
            print_result(&result);
        }
        results.push(result);
    }
    Ok(results)
}

/// Runs the tests on the `chosen` models, printing each result.
fn test(
    models: &ModelProject,
    warehouse: &dyn crate::destinations::Warehouse,
    chosen: &BTreeSet<usize>,
    json: bool,
) -> Result<Vec<TestResult>> {
    let schema = catalog::default_schema(warehouse)?;
    let renderer = models.renderer(&schema);
    let mut results = Vec::new();
    for test in models.tests_of(chosen) {
        let result = datatest::run(test, &renderer, warehouse);
        if !json {
            print_test(&result);
        }
        results.push(result);
    }
    Ok(results)
}

fn print_test(result: &TestResult) {
    let (label, detail) = match result.status {
        TestStatus::Pass => ("PASS", String::new()),
        TestStatus::Fail => ("FAIL", format!(": {} failing rows", result.failures)),
        TestStatus::Warn => ("WARN", format!(": {} failing rows", result.failures)),
        TestStatus::Skipped => (
            "SKIP",
            format!(": {}", result.message.as_deref().unwrap_or_default()),
        ),
        TestStatus::Error => (
            "ERROR",
            format!(": {}", result.message.as_deref().unwrap_or_default()),
        ),
    };
    println!(
        "{label:<6} {}{detail} [{:.2}s]",
        result.test, result.seconds
    );
}

fn summarize(results: &[ModelResult], tests: &[TestResult], json: bool) -> Result<ExitCode> {
    let count = |status: Status| results.iter().filter(|r| r.status == status).count();
    let (ok, mut failed, skipped) = (
        count(Status::Success),
        count(Status::Error),
        count(Status::Skipped),
    );
    let tested = |status: TestStatus| tests.iter().filter(|t| t.status == status).count();
    let (passed, failing, warned, untested) = (
        tested(TestStatus::Pass),
        tested(TestStatus::Fail) + tested(TestStatus::Error),
        tested(TestStatus::Warn),
        tested(TestStatus::Skipped),
    );
    if json {
        let report = json!({
            "ok": failed + failing == 0,
            "succeeded": ok,
            "failed": failed,
            "skipped": skipped,
            "results": results,
            "tests": tests,
        });
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        if !results.is_empty() || tests.is_empty() {
            println!("done: {ok} succeeded, {failed} failed, {skipped} skipped");
        }
        if !tests.is_empty() {
            println!(
                "tests: {passed} passed, {failing} failed, {warned} warned, {untested} skipped"
            );
        }
    }
    failed += failing;
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn list(models: &ModelProject, chosen: &BTreeSet<usize>, json: bool) {
    let in_order: Vec<usize> = models
        .order
        .iter()
        .copied()
        .filter(|i| chosen.contains(i))
        .collect();
    if json {
        let listed: Vec<serde_json::Value> = in_order
            .iter()
            .map(|&i| {
                let m = &models.models[i];
                json!({
                    "name": m.name,
                    "file": m.file.display().to_string(),
                    "materialized": m.config.materialized.to_string(),
                    "schema": m.config.schema,
                    "alias": m.config.alias,
                    "tags": m.config.tags,
                    "refs": m.refs,
                    "sources": m.sources.iter().map(|(s, t)| format!("{s}.{t}")).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&listed).unwrap_or_default()
        );
        return;
    }
    for i in in_order {
        let m = &models.models[i];
        println!(
            "{:<32} {:<12} {}",
            m.name,
            m.config.materialized.to_string(),
            m.file.display()
        );
    }
}

fn compile(
    models: &ModelProject,
    warehouse: &dyn crate::destinations::Warehouse,
    chosen: &BTreeSet<usize>,
    json: bool,
) -> Result<ExitCode> {
    let schema = catalog::default_schema(warehouse)?;
    let compiler = Compiler::new(models, &schema)?;
    let schemas = chosen
        .iter()
        .map(|&i| models.models[i].relation(&schema).schema)
        .collect();
    let kinds = catalog::kinds(warehouse, &schemas)?;
    let mut written = Vec::new();
    for &i in models.order.iter().filter(|i| chosen.contains(i)) {
        let model = &models.models[i];
        let existing = kinds.get(&model.relation(&schema)).copied();
        let sql = compiler.compile(i, incremental_run(&model.config, existing, false))?;
        let path = compiler.write(i, &sql)?;
        if !json {
            println!("{:<32} {}", model.name, path.display());
        }
        written.push(json!({ "model": model.name, "compiled": path.display().to_string() }));
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&written).unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}
