//! `flowline init DIR`: scaffold a project that runs as is.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::core::error::{Error, Result};

/// Arguments of `flowline init`.
#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Folder to create (or fill, when it exists and is empty).
    pub dir: PathBuf,
}

const GITIGNORE: &str = "# flowline's warehouse, state and logs\n.flowline/\n.env\n";

const SAMPLE_DATA: &str = "\
id,name,email,country,signed_up_at,lifetime_value_cents
1,Ada Lovelace,ADA@example.com,GB,2024-01-03 09:15:00,125000
2,Grace Hopper,grace@example.com,US,2024-01-05 14:02:11,98000
3,Alan Turing,alan@example.com,GB,2024-02-11 08:30:45,0
4,Katherine Johnson,katherine@example.com,US,2024-02-20 17:45:00,45500
5,Edsger Dijkstra,edsger@example.com,NL,2024-03-01 11:00:00,30000
";

const SAMPLE_PIPELINE: &str = r#"# Loads data/customers*.csv into raw.customers.
# Re-runs load only new or changed files; `flowline run --full-refresh` reloads all.

[source]
kind = "file"
path = "data/customers*.csv"

# In-flight transform (ETL): the batch is the table `input`.
[[transform]]
sql = """
select id, name, lower(email) as email, country, signed_up_at,
       lifetime_value_cents / 100.0 as lifetime_value
from input
"""

# Built-in transform: hash the email column (PII).
[[transform]]
mask = ["email"]

[destination]
table = "raw.customers"
write = "merge"          # append | replace | merge
primary_key = ["id"]
"#;

fn project_file(name: &str) -> String {
    format!(
        r#"[project]
name = "{name}"

# The embedded default: a DuckDB file. Nothing to install.
[warehouse]
kind = "duckdb"
path = ".flowline/warehouse.duckdb"

# Connections for database, API and broker sources. Keep secrets in the
# environment or in .env, never in this file:
# [connections.shop]
# url = "${{SHOP_DB_URL}}"
"#
    )
}

fn write(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, contents).map_err(|e| Error::io(path, e))
}

/// Writes the scaffold and says how to run it.
pub fn execute(args: InitArgs) -> Result<ExitCode> {
    let dir = &args.dir;
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
        if entries.next().is_some() {
            return Err(Error::Other(format!(
                "{} exists and is not empty; choose a new folder",
                dir.display()
            )));
        }
    }
    let name = dir
        .canonicalize()
        .ok()
        .or_else(|| Some(dir.clone()))
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| "my_project".into());
    write(&dir.join("flowline.toml"), &project_file(&name))?;
    write(&dir.join(".gitignore"), GITIGNORE)?;
    write(&dir.join("pipelines/customers.toml"), SAMPLE_PIPELINE)?;
    write(&dir.join("data/customers.csv"), SAMPLE_DATA)?;
    println!("created project {name} in {}", dir.display());
    println!(
        "next:\n  cd {}\n  flowline run\n  flowline sql \"select * from raw.customers\"",
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
