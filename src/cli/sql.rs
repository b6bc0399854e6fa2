//! `flowline sql "select ..."`: query the warehouse, of a flowline project
//! or of a dbt project folder (its embedded DuckDB file, as `flowline
//! models` uses it).

use std::path::Path;
use std::process::ExitCode;

use super::output::{Format, render};
use crate::core::error::Result;
use crate::server::client::open_warehouse;

/// Arguments of `flowline sql`.
#[derive(Debug, clap::Args)]
pub struct SqlArgs {
    /// The query, in DuckDB's SQL dialect.
    pub query: String,
    /// Output format (`--json` is short for `--format json`).
    #[arg(long, value_enum, default_value = "table")]
    pub format: Format,
}

/// Runs the query (in the process that owns the warehouse, when one does)
/// and prints the result on stdout.
pub fn execute(project_dir: &Path, json: bool, args: SqlArgs) -> Result<ExitCode> {
    let project = crate::models::project_at(project_dir)?;
    let warehouse = open_warehouse(&project)?;
    let result = warehouse.query(&args.query)?;
    let format = if json { Format::Json } else { args.format };
    if result.schema.fields().is_empty() {
        println!("ok");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", render(&result.schema, &result.batches, format)?);
    Ok(ExitCode::SUCCESS)
}
