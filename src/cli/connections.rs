//! `flowline connections test NAME`: connect and say precisely what failed.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::config::Project;
use crate::error::{Error, Result};
use crate::sources::catalog;

/// Subcommands of `flowline connections`.
#[derive(Debug, clap::Subcommand)]
pub enum ConnectionsCommand {
    /// Connect with `[connections.NAME]` and report the server's version.
    Test {
        /// The connection's name in flowline.toml.
        name: String,
    },
    /// List the connections of the project.
    List,
}

/// The URL of `[connections.name]`.
pub fn url_of(project: &Project, name: &str) -> Result<String> {
    let connections = &project.settings.connections;
    let connection = connections.get(name).ok_or_else(|| {
        let known: Vec<&str> = connections.keys().map(String::as_str).collect();
        Error::Config(format!(
            "no [connections.{name}] in flowline.toml (known: {})",
            if known.is_empty() {
                "none".to_string()
            } else {
                known.join(", ")
            }
        ))
    })?;
    connection
        .url
        .clone()
        .ok_or_else(|| Error::Config(format!("[connections.{name}] has no url")))
}

/// Runs the subcommand.
pub async fn execute(
    project_dir: &Path,
    json: bool,
    command: ConnectionsCommand,
) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    match command {
        ConnectionsCommand::List => {
            for (name, connection) in &project.settings.connections {
                let kind = connection
                    .url
                    .as_deref()
                    .and_then(|u| catalog::DatabaseKind::of(u).ok())
                    .map_or("?", |k| k.source_kind());
                println!("{name}  ({kind})");
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::Test { name } => {
            let url = url_of(&project, &name)?;
            let started = Instant::now();
            let result = catalog::server_version(&url, &project.dir).await;
            let ms = started.elapsed().as_millis() as u64;
            match result {
                Ok(version) => {
                    if json {
                        println!(
                            "{}",
                            json!({ "connection": name, "ok": true, "version": version, "ms": ms })
                        );
                    } else {
                        println!("ok      {name}: {version} ({ms}ms)");
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) if json => {
                    let message = crate::config::secrets::redact(&e.to_string());
                    println!(
                        "{}",
                        json!({ "connection": name, "ok": false, "error": message })
                    );
                    Ok(ExitCode::FAILURE)
                }
                Err(e) => Err(Error::Other(format!("connection {name}: {e}"))),
            }
        }
    }
}
