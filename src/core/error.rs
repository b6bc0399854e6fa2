//! The crate's one error type. Every variant says what failed and on which
//! object, so a message read alone tells the user what to do next.

use std::path::PathBuf;

/// Result alias used throughout flowline.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client library's error, kept as the cause of a flowline error.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a connection failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionFailure {
    /// Nothing listens at the address.
    Refused,
    /// The host name does not resolve.
    HostNotFound,
    /// The server rejected the credentials.
    Auth,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// The database, queue, stream or topic named does not exist.
    NotFound,
    /// Any other network error (timeouts, resets).
    Network,
    /// The server answered with an error of another kind.
    Server,
}

impl ConnectionFailure {
    /// The failure a client error's chain of causes shows: an I/O error
    /// that says refused or unresolvable, or a TLS error.
    pub fn of(error: &(dyn std::error::Error + 'static)) -> Self {
        if from_rustls(error) {
            return ConnectionFailure::Tls;
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(e) = cause {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                let text = io.to_string();
                return match io.kind() {
                    std::io::ErrorKind::ConnectionRefused => ConnectionFailure::Refused,
                    _ if text.contains("failed to lookup") || text.contains("resolve") => {
                        ConnectionFailure::HostNotFound
                    }
                    _ if names_tls(&text) => ConnectionFailure::Tls,
                    _ => ConnectionFailure::Network,
                };
            }
            if names_tls(&e.to_string()) {
                return ConnectionFailure::Tls;
            }
            cause = e.source();
        }
        ConnectionFailure::Server
    }

    /// The cause in plain words, with what to do about it.
    pub fn advice(self) -> &'static str {
        match self {
            ConnectionFailure::Refused => {
                "connection refused: is the server running and listening on that port?"
            }
            ConnectionFailure::HostNotFound => "host name not found: check the host in the URL",
            ConnectionFailure::Auth => {
                "the credentials were refused: check the user and password (or the auth settings)"
            }
            ConnectionFailure::Tls => {
                "the TLS handshake failed: check that the server speaks TLS on that port and that \
                 its certificate is valid for the host"
            }
            ConnectionFailure::NotFound => "not found on the server: check the name in the URL",
            ConnectionFailure::Network => {
                "network error: check the host and the port, and any firewall in between"
            }
            ConnectionFailure::Server => "the server answered with an error",
        }
    }
}

/// Whether rustls is among the causes of `error`, also inside the I/O
/// errors that wrap it (whose `source()` skips the error they wrap).
fn from_rustls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            && from_rustls(inner)
        {
            return true;
        }
        cause = e.source();
    }
    false
}

/// Whether an error's text is a TLS library's.
fn names_tls(text: &str) -> bool {
    text.contains("certificate") || text.contains("TLS") || text.contains("tls")
}

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

    /// The embedded warehouse file is held by another process (DuckDB
    /// allows one writer per file).
    #[error("warehouse {} is in use by another process: {source}", path.display())]
    WarehouseLocked {
        /// The warehouse file.
        path: PathBuf,
        /// DuckDB's own message.
        #[source]
        source: duckdb::Error,
    },

    /// A server could not be reached or refused us; `failure` says why in a
    /// form callers match on, `message` in the words users see.
    #[error("{target}: {message}")]
    Connection {
        /// What was connected to: `postgres at db:5432`.
        target: String,
        /// The kind of failure.
        failure: ConnectionFailure,
        /// The cause, phrased for the user, with what to do next.
        message: String,
        /// The client's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A database or broker client failed while doing `context`.
    #[error("{context}: {message}")]
    Client {
        /// What flowline was doing: `postgres warehouse: merging (raw.orders)`.
        context: String,
        /// The cause, phrased for the user.
        message: String,
        /// The client's own error.
        #[source]
        source: Option<BoxError>,
    },

    /// A source's data cannot be read as its format says (a malformed
    /// document, an unreadable file); the run stops.
    #[error("{origin}: {message}")]
    SourceData {
        /// Where: a file, a URL, a table.
        origin: String,
        /// What is wrong, and what to do.
        message: String,
    },

    /// A task flowline started (a reader, a request, a runner) stopped
    /// without finishing: it panicked or was cancelled.
    #[error("{what} stopped: {source}")]
    TaskStopped {
        /// The task: `file reader`, `HTTP request`.
        what: String,
        /// Tokio's report.
        #[source]
        source: tokio::task::JoinError,
    },

    /// Saved progress or run history could not be read back.
    #[error("{what} is unreadable: {message}")]
    StateUnreadable {
        /// What: `saved state of orders`.
        what: String,
        /// Why.
        message: String,
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

    /// A failed connection to `target`.
    pub fn connection(
        target: impl Into<String>,
        failure: ConnectionFailure,
        message: impl Into<String>,
        source: Option<BoxError>,
    ) -> Self {
        Error::Connection {
            target: target.into(),
            failure,
            message: message.into(),
            source,
        }
    }

    /// A client library's failure while doing `context`.
    pub fn client(
        context: impl Into<String>,
        message: impl Into<String>,
        source: impl Into<BoxError>,
    ) -> Self {
        Error::Client {
            context: context.into(),
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// A source's data that cannot be read.
    pub fn source_data(origin: impl Into<String>, message: impl Into<String>) -> Self {
        Error::SourceData {
            origin: origin.into(),
            message: message.into(),
        }
    }

    /// A task that stopped without finishing.
    pub fn task(what: impl Into<String>) -> impl FnOnce(tokio::task::JoinError) -> Self {
        let what = what.into();
        move |source| Error::TaskStopped { what, source }
    }

    /// Whether this is the embedded warehouse being held by another process.
    pub fn is_warehouse_locked(&self) -> bool {
        matches!(self, Error::WarehouseLocked { .. })
    }

    /// A failure of `pipeline`, phrased for the user.
    pub fn pipeline(pipeline: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Pipeline {
            pipeline: pipeline.into(),
            message: message.into(),
        }
    }
}
