//! The command line: one module per verb, this one parses and dispatches.

mod connections;
mod discover;
mod healthcheck;
mod init;
mod jobs;
mod lineage;
mod logging;
mod models;
mod output;
mod run;
mod schema;
mod serve;
mod sql;
mod state;
mod status;
mod stream;
mod validate;
mod worker;

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::core::error::Result;

/// flowline: extract, transform, load and orchestrate data pipelines from one binary.
#[derive(Debug, Parser)]
#[command(name = "flowline", version, about, long_about = None)]
pub struct Cli {
    /// The project folder (holding flowline.toml).
    #[arg(
        long,
        short = 'p',
        global = true,
        env = "FLOWLINE_PROJECT",
        default_value = "."
    )]
    pub project: PathBuf,

    /// Print machine-readable JSON on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,

    /// More log output (-v: debug, -vv: trace). `FLOWLINE_LOG` takes a full filter.
    #[arg(long, short = 'v', global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Scaffold a new project that runs as is.
    Init(init::InitArgs),
    /// Check every file of the project without running anything.
    Validate,
    /// Run pipelines (all of them when none is named).
    Run(run::RunArgs),
    /// Query the warehouse and print the result.
    Sql(sql::SqlArgs),
    /// Build dbt-style SQL models in the warehouse (also in a dbt project folder).
    #[command(subcommand)]
    Models(models::ModelsCommand),
    /// Show the columns a column derives from and those derived from it, across pipelines and models.
    Lineage(lineage::LineageArgs),
    /// List pipelines with their last run and saved progress.
    Status,
    /// Show or forget the progress a pipeline saved (files loaded, cursor, offsets).
    #[command(subcommand)]
    State(state::StateCommand),
    /// Run stream pipelines until Ctrl-C or SIGTERM, then commit and stop.
    Stream(stream::StreamArgs),
    /// Hold the warehouse and serve other flowline commands on this machine until Ctrl-C or SIGTERM.
    ///
    /// While it runs, `flowline sql`, `status` and `run` on the same project
    /// ask this process instead of opening the warehouse file, which DuckDB
    /// lets one process open at a time.
    Serve(serve::ServeArgs),
    /// List, run, trigger, backfill and pause jobs; read their runs and logs.
    #[command(subcommand)]
    Jobs(jobs::JobsCommand),
    /// Run job steps taken from the project's state store until Ctrl-C or SIGTERM.
    ///
    /// Several workers, on several machines, share one PostgreSQL state store
    /// (`[state] url`); a step whose worker dies runs again on another.
    Worker(worker::WorkerArgs),
    /// Check the connections of flowline.toml.
    #[command(subcommand)]
    Connections(connections::ConnectionsCommand),
    /// List the schemas, tables and columns behind a connection, or write a pipeline for one.
    Discover(discover::DiscoverArgs),
    /// Print the JSON Schema of flowline.toml or of a pipeline file, for editors.
    ///
    /// The schemas are also checked in as schema/flowline.schema.json and
    /// schema/pipeline.schema.json; a `#:schema` comment at the top of a TOML
    /// file points Taplo-based editors (Even Better TOML) at one.
    Schema(schema::SchemaArgs),
    /// Exit 0 when a server's or a worker's /healthz answers (the container images' health check)
    Healthcheck(healthcheck::HealthcheckArgs),
}

/// Whether progress bars and colours make sense.
pub fn interactive() -> bool {
    std::io::stderr().is_terminal()
}

impl Cli {
    /// Runs the command; the exit code follows from the result.
    pub fn execute(self) -> Result<std::process::ExitCode> {
        logging::init(self.verbose, interactive() && !self.json);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| crate::core::error::Error::Other(format!("starting the runtime: {e}")))?;
        match self.command {
            Command::Init(args) => init::execute(args),
            Command::Validate => validate::execute(&self.project, self.json),
            Command::Run(args) => runtime.block_on(run::execute(&self.project, self.json, args)),
            Command::Sql(args) => sql::execute(&self.project, self.json, args),
            Command::Models(command) => {
                models::execute(&self.project, self.json, command, &runtime)
            }
            Command::Lineage(args) => lineage::execute(&self.project, self.json, args),
            Command::Stream(args) => {
                runtime.block_on(stream::execute(&self.project, self.json, args))
            }
            Command::Status => status::execute(&self.project, self.json),
            Command::State(command) => state::execute(&self.project, self.json, command),
            Command::Serve(args) => runtime.block_on(serve::execute(&self.project, args)),
            Command::Jobs(command) => {
                runtime.block_on(jobs::execute(&self.project, self.json, command))
            }
            Command::Worker(args) => runtime.block_on(worker::execute(&self.project, args)),
            Command::Connections(command) => {
                runtime.block_on(connections::execute(&self.project, self.json, command))
            }
            Command::Discover(args) => {
                runtime.block_on(discover::execute(&self.project, self.json, args))
            }
            Command::Schema(args) => schema::execute(args),
            Command::Healthcheck(args) => runtime.block_on(healthcheck::execute(args)),
        }
    }
}
