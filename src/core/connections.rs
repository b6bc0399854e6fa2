//! Named connections (`[connections.<name>]` in flowline.toml) and the one
//! place a name or an inline `url` is resolved to the URL a connector uses.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::{Error, Result};

/// `[connections.<name>]`: a URL plus connector-specific options.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[schemars(extend("additionalProperties" = {
    "description": "An option for the connector that uses this connection: `auth` for an `http(s)://` connection (the table an `http` source takes). The other connectors read none."
}))]
pub struct ConnectionConfig {
    /// Connection URL. Write it as `"${SOME_URL}"`, so the secret stays out
    /// of the file. The scheme names the database or broker: `postgres://`
    /// (or `postgresql://`), `mysql://` (or `mariadb://`), `sqlite://`,
    /// `amqp://`, `kafka://`, `nats://`, `mqtt://`, or `http://`/`https://`
    /// for an API (whose `auth` is another key of the connection).
    #[serde(default)]
    pub url: Option<String>,
    /// Any other option, read by the connector that uses this connection.
    #[serde(flatten)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub options: BTreeMap<String, toml::Value>,
}

/// Every `[connections.<name>]` of a project, by name.
#[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
#[serde(transparent)]
pub struct Connections(BTreeMap<String, ConnectionConfig>);

impl Connections {
    /// Connections from `(name, config)` pairs.
    pub fn new(connections: BTreeMap<String, ConnectionConfig>) -> Self {
        Connections(connections)
    }

    /// `[connections.<name>]`, or an error listing the known names.
    pub fn get(&self, name: &str) -> Result<&ConnectionConfig> {
        self.0.get(name).ok_or_else(|| {
            let known: Vec<&str> = self.0.keys().map(String::as_str).collect();
            Error::Config(format!(
                "no [connections.{name}] in flowline.toml (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ))
        })
    }

    /// The `url` of `[connections.<name>]`.
    pub fn url(&self, name: &str) -> Result<String> {
        self.get(name)?
            .url
            .clone()
            .ok_or_else(|| Error::Config(format!("[connections.{name}] has no url")))
    }

    /// The URL a `[section]` connects to: its inline `url`, or the `url` of
    /// the `[connections.<connection>]` it names; exactly one of the two.
    pub fn resolve(
        &self,
        section: &str,
        url: Option<&String>,
        connection: Option<&String>,
    ) -> Result<String> {
        match (url, connection) {
            (Some(url), None) => Ok(url.clone()),
            (None, Some(name)) => self
                .url(name)
                .map_err(|e| Error::Config(format!("{section} connection = \"{name}\": {e}"))),
            (Some(_), Some(_)) => Err(Error::Config(format!(
                "{section} takes either connection or url, not both"
            ))),
            (None, None) => Err(Error::Config(format!(
                "{section} needs connection = \"name\" (see [connections.name] in flowline.toml) or url"
            ))),
        }
    }

    /// Every connection, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&String, &ConnectionConfig)> {
        self.0.iter()
    }
}

/// What the connectors of a run need to know about the project: where it
/// is, its name, and its connections.
#[derive(Debug, Clone, Default)]
pub struct Workspace {
    /// The project's root folder; relative paths resolve against it.
    pub dir: std::path::PathBuf,
    /// The project's name (`[project] name`).
    pub name: String,
    /// `[connections.<name>]`.
    pub connections: Connections,
    /// The Python interpreter of `python` transform steps (`[project]
    /// python`); `None` for `python3`, else `python`, on `PATH`.
    pub python: Option<String>,
}

impl Workspace {
    /// `[connections.<name>]`, or an error listing the known names.
    pub fn connection(&self, name: &str) -> Result<&ConnectionConfig> {
        self.connections.get(name)
    }

    /// `path` resolved against the project folder.
    pub fn resolve(&self, path: &str) -> std::path::PathBuf {
        let p = std::path::Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.dir.join(p)
        }
    }
}

/// The scheme of a connection URL, lower-cased (`postgres` for
/// `postgres://…`); libpq's `host=… dbname=…` strings count as `postgres`.
pub fn scheme(url: &str) -> String {
    if url.trim_start().starts_with("host=") {
        return "postgres".into();
    }
    match url.split_once("://") {
        Some((scheme, _)) => scheme.to_ascii_lowercase(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections() -> Connections {
        let shop = ConnectionConfig {
            url: Some("postgres://shop".into()),
            options: BTreeMap::new(),
        };
        Connections::new([("shop".to_string(), shop)].into())
    }

    #[test]
    fn a_name_resolves_to_its_url_and_an_unknown_one_lists_the_known() {
        let c = connections();
        assert_eq!(
            c.resolve("[source]", None, Some(&"shop".into()))
                .expect("url"),
            "postgres://shop"
        );
        let e = c
            .resolve("[source]", None, Some(&"shpo".into()))
            .expect_err("unknown");
        assert!(e.to_string().contains("known: shop"), "{e}");
        assert!(c.resolve("[source]", None, None).is_err());
    }

    #[test]
    fn schemes_are_read_from_urls() {
        assert_eq!(scheme("PostgreSQL://x"), "postgresql");
        assert_eq!(scheme("host=localhost dbname=x"), "postgres");
        assert_eq!(scheme("amqp://guest@h"), "amqp");
        assert_eq!(scheme("data.db"), "");
    }
}
