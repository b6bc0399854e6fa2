//! `flowline connections test NAME`: connect and say precisely what failed.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use serde_json::json;

use crate::config::Project;
use crate::core::error::{Error, Result};
use crate::sources::connector_for_url;

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

/// Runs the subcommand.
pub async fn execute(
    project_dir: &Path,
    json: bool,
    command: ConnectionsCommand,
) -> Result<ExitCode> {
    let project = Project::load(project_dir)?;
    match command {
        ConnectionsCommand::List => {
            for (name, connection) in project.settings.connections.iter() {
                let kind = connection
                    .url
                    .as_deref()
                    .and_then(|u| connector_for_url(u).ok())
                    .map_or("?", |c| c.kind);
                println!("{name}  ({kind})");
            }
            Ok(ExitCode::SUCCESS)
        }
        ConnectionsCommand::Test { name } => {
            let url = project.settings.connections.url(&name)?;
            let started = Instant::now();
            let result = match connector_for_url(&url) {
                Ok(connector) => {
                    connector
                        .test_connection(&name, &url, &project.workspace())
                        .await
                }
                Err(e) => Err(e),
            };
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
                    let message = crate::core::secrets::redact(&e.to_string());
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
