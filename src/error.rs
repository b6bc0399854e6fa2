//! The crate's one error type. Every variant says what failed and on which
//! object, so a message read alone tells the user what to do next.

use std::path::PathBuf;

/// Result alias used throughout flowline.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in flowline.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A project file is malformed; the message already names file, line and column.
    #[error("{0}")]
    Config(String),

    /// A pipeline failed while running.
    #[error("pipeline {pipeline}: {message}")]
    Pipeline { pipeline: String, message: String },

    /// A file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The warehouse refused a statement.
    #[error("warehouse: {context}: {source}")]
    Warehouse {
        context: String,
        #[source]
        source: duckdb::Error,
    },

    /// The state store (run history) failed.
    #[error("state store: {context}: {source}")]
    State {
        context: String,
        #[source]
        source: rusqlite::Error,
    },

    /// Arrow could not build or convert a batch.
    #[error("{context}: {source}")]
    Arrow {
        context: String,
        #[source]
        source: arrow::error::ArrowError,
    },

    /// A Parquet file could not be read.
    #[error("{context}: {source}")]
    Parquet {
        context: String,
        #[source]
        source: parquet::errors::ParquetError,
    },

    /// An HTTP request failed for good (after any retries).
    #[error("{request}: {message}")]
    Http {
        /// Method and URL.
        request: String,
        /// The status and the first bytes of the body, or the transport error.
        message: String,
    },

    /// Anything else, already phrased for the user.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    /// A warehouse error with what flowline was doing.
    pub fn warehouse(context: impl Into<String>, source: duckdb::Error) -> Self {
        Error::Warehouse {
            context: context.into(),
            source,
        }
    }

    /// A state-store error with what flowline was doing.
    pub fn state(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Error::State {
            context: context.into(),
            source,
        }
    }

    /// An Arrow error with what flowline was doing.
    pub fn arrow(context: impl Into<String>, source: arrow::error::ArrowError) -> Self {
        Error::Arrow {
            context: context.into(),
            source,
        }
    }

    /// A failure of `pipeline`, phrased for the user.
    pub fn pipeline(pipeline: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Pipeline {
            pipeline: pipeline.into(),
            message: message.into(),
        }
    }
}
