//! What a named connection can tell about itself, for `flowline connections
//! test` and `flowline discover`: the kind is chosen by the URL's scheme.

use std::path::Path;

use super::database::TableInfo;
use super::{mysql, postgres, sqlite};
use crate::error::{Error, Result};

/// The database behind a connection URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    /// `postgres://`, `postgresql://`
    Postgres,
    /// `mysql://`, `mariadb://`
    Mysql,
    /// `sqlite://path`
    Sqlite,
}

impl DatabaseKind {
    /// The kind a URL names by its scheme.
    pub fn of(url: &str) -> Result<Self> {
        let scheme = url.split("://").next().unwrap_or("").to_ascii_lowercase();
        match scheme.as_str() {
            "postgres" | "postgresql" => Ok(DatabaseKind::Postgres),
            "mysql" | "mariadb" => Ok(DatabaseKind::Mysql),
            "sqlite" => Ok(DatabaseKind::Sqlite),
            _ if url.starts_with("host=") => Ok(DatabaseKind::Postgres),
            _ => Err(Error::Config(format!(
                "cannot tell the database from the URL scheme {scheme:?} (postgres://, mysql://, sqlite://)"
            ))),
        }
    }

    /// The `kind` of a `[source]` reading it.
    pub fn source_kind(self) -> &'static str {
        match self {
            DatabaseKind::Postgres => "postgres",
            DatabaseKind::Mysql => "mysql",
            DatabaseKind::Sqlite => "sqlite",
        }
    }
}

fn mysql_url(url: &str) -> String {
    match url.strip_prefix("mariadb://") {
        Some(rest) => format!("mysql://{rest}"),
        None => url.to_string(),
    }
}

/// Connects and returns the server's version.
pub async fn server_version(url: &str, project_dir: &Path) -> Result<String> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Postgres => postgres::server_version(url).await,
        DatabaseKind::Mysql => mysql::server_version(&mysql_url(url)).await,
        DatabaseKind::Sqlite => sqlite::server_version(&sqlite::database_path(url, project_dir)),
    }
}

/// Lists the tables behind a connection.
pub async fn discover(url: &str, project_dir: &Path) -> Result<Vec<TableInfo>> {
    match DatabaseKind::of(url)? {
        DatabaseKind::Postgres => postgres::discover(url).await,
        DatabaseKind::Mysql => mysql::discover(&mysql_url(url)).await,
        DatabaseKind::Sqlite => sqlite::discover(&sqlite::database_path(url, project_dir)),
    }
}
