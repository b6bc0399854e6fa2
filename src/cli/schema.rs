//! `flowline schema project|pipeline`: prints the JSON Schema of
//! `flowline.toml` or of a pipeline file, built from the config structs and
//! the connector registries. It needs no project.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use crate::config::schema::Document;
use crate::core::error::{Error, Result};

/// `flowline schema`'s arguments.
#[derive(Debug, Args)]
pub struct SchemaArgs {
    /// Which file's schema: `project` (flowline.toml) or `pipeline` (pipelines/<name>.toml).
    #[arg(value_enum)]
    pub document: Which,
}

/// The file a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Which {
    /// flowline.toml.
    Project,
    /// pipelines/<name>.toml.
    Pipeline,
}

/// Prints the schema as pretty JSON. A reader that stops early (`| head`)
/// is not an error.
pub fn execute(args: SchemaArgs) -> Result<ExitCode> {
    let document = match args.document {
        Which::Project => Document::Project,
        Which::Pipeline => Document::Pipeline,
    };
    let mut out = std::io::stdout().lock();
    match out
        .write_all(document.schema_text().as_bytes())
        .and_then(|()| out.flush())
    {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(ExitCode::SUCCESS),
        Err(e) => Err(Error::Other(format!("writing the schema: {e}"))),
    }
}
