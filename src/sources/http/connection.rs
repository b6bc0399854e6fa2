//! `[connections.<name>]` whose `url` is `http://` or `https://`: an API's
//! base URL and its `auth`, shared by the `http` sources that name it
//! (`connection = "<name>"`, with `url` a path under it), and checked by
//! `flowline connections test <name>`.
//!
//! ```toml
//! [connections.shop_api]
//! url = "https://api.example.com/v1"
//! auth = { kind = "bearer", token = "${SHOP_API_TOKEN}" }
//! ```

use std::time::Duration;

use reqwest::{StatusCode, Url};
use serde::Deserialize;

use super::auth::{AuthConfig, Authenticator};
use super::client::{ClientOptions, RequestSpec, WebClient};
use crate::core::Workspace;
use crate::core::error::{ConnectionFailure, Error, Result};

/// How long `flowline connections test` waits for the API.
const TEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The keys of an HTTP connection besides `url`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// How requests authenticate, as `auth` of an `http` source.
    #[serde(default)]
    auth: Option<AuthConfig>,
}

/// An HTTP connection, read from `[connections.<name>]`.
#[derive(Debug, Clone)]
pub struct HttpConnection {
    /// Its name.
    pub name: String,
    /// The base URL, after `${VAR}`.
    pub url: String,
    /// Its `auth`, if any.
    pub auth: Option<AuthConfig>,
}

impl HttpConnection {
    /// `[connections.<name>]` as an HTTP connection; an error when it is
    /// missing, its URL is not http(s), or it has keys other than `url` and
    /// `auth`.
    pub fn named(workspace: &Workspace, name: &str) -> Result<HttpConnection> {
        let url = workspace.connections.url(name)?;
        let scheme = crate::core::connections::scheme(&url);
        if scheme != "http" && scheme != "https" {
            return Err(Error::Config(format!(
                "[connections.{name}]: an http source needs an http:// or https:// URL, not {scheme}://"
            )));
        }
        let options: toml::Table = workspace
            .connection(name)?
            .options
            .clone()
            .into_iter()
            .collect();
        let options: Options = toml::Value::Table(options).try_into().map_err(|e| {
            Error::Config(format!(
                "[connections.{name}]: {}; an HTTP connection takes url and auth",
                e.to_string().trim()
            ))
        })?;
        Ok(HttpConnection {
            name: name.to_string(),
            url,
            auth: options.auth,
        })
    }

    /// The URL of `path` under the connection's URL (the connection's URL
    /// itself for `None`): `items` and `/items` under
    /// `https://api.example.com/v1` are both `https://api.example.com/v1/items`.
    pub fn join(&self, path: Option<&str>) -> Result<String> {
        let Some(path) = path.filter(|p| !p.is_empty()) else {
            return Ok(self.url.clone());
        };
        if path.contains("://") {
            return Err(Error::Config(format!(
                "[source] url = {path:?}: with connection = \"{}\", url is a path under the \
                 connection's URL (such as \"items\"), not a whole URL",
                self.name
            )));
        }
        if self.url.contains('?') {
            return Err(Error::Config(format!(
                "[connections.{}]: a URL with a query cannot take a path; put the parameters in \
                 the source's params",
                self.name
            )));
        }
        Ok(format!(
            "{}/{}",
            self.url.trim_end_matches('/'),
            path.trim_start_matches('/')
        ))
    }
}

/// GETs the URL of `[connections.<name>]` with its `auth`, once: the status
/// that answered, or the plain cause of why nothing did.
pub async fn test(name: String, workspace: Workspace) -> Result<String> {
    let connection = HttpConnection::named(&workspace, &name)?;
    let url = Url::parse(&connection.url)
        .map_err(|e| Error::Config(format!("[connections.{name}] url: {e}")))?;
    let shown = without_secrets(&url);
    let options = ClientOptions {
        timeout: TEST_TIMEOUT,
        retries: 0,
        ..ClientOptions::default()
    };
    let has_auth = connection.auth.is_some();
    let client = WebClient::new(options, connection.auth.map(Authenticator::new))?;
    let target = format!("http {shown}");
    match client.fetch_once(&RequestSpec::get(url)).await {
        Ok(page) if page.status.is_success() => Ok(format!(
            "HTTP {} from {}",
            page.status,
            without_secrets(&page.url)
        )),
        Ok(page) => Err(refused(&target, &name, page.status, has_auth)),
        Err(e) => {
            let failure = ConnectionFailure::of(&e);
            let e = e.without_url();
            let cause = root_cause(&e);
            Err(Error::connection(
                target,
                failure,
                format!("{} ({cause})", failure.advice()),
                Some(Box::new(e)),
            ))
        }
    }
}

/// The innermost cause of `e`, where the client library says what
/// happened (the outer layers say only "error sending request").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    cause.to_string()
}

/// The error for a status that is not 2xx.
fn refused(target: &str, name: &str, status: StatusCode, has_auth: bool) -> Error {
    let (failure, advice) = match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN if has_auth => (
            ConnectionFailure::Auth,
            format!("the API refused the credentials: check auth in [connections.{name}]"),
        ),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => (
            ConnectionFailure::Auth,
            format!(
                "the API wants credentials: add auth to [connections.{name}], such as \
                 auth = {{ kind = \"bearer\", token = \"${{API_TOKEN}}\" }}"
            ),
        ),
        StatusCode::NOT_FOUND => (
            ConnectionFailure::NotFound,
            "nothing at that path: check the path of the URL".to_string(),
        ),
        _ => (
            ConnectionFailure::Server,
            ConnectionFailure::Server.advice().to_string(),
        ),
    };
    Error::connection(target, failure, format!("{status}: {advice}"), None)
}

/// `scheme://host:port/path` of `url`: no user, password or query, which
/// may hold keys.
fn without_secrets(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{}://{host}:{port}{}", url.scheme(), url.path()),
        None => format!("{}://{host}{}", url.scheme(), url.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connection(url: &str) -> HttpConnection {
        HttpConnection {
            name: "api".into(),
            url: url.into(),
            auth: None,
        }
    }

    #[test]
    fn paths_join_under_the_connection_url() {
        let c = connection("https://api.example.com/v1");
        assert_eq!(c.join(None).expect("url"), "https://api.example.com/v1");
        assert_eq!(
            c.join(Some("items")).expect("url"),
            "https://api.example.com/v1/items"
        );
        let c = connection("https://api.example.com/v1/");
        assert_eq!(
            c.join(Some("/items/{id}")).expect("url"),
            "https://api.example.com/v1/items/{id}"
        );
        assert!(c.join(Some("https://other.example.com/x")).is_err());
        assert!(connection("https://x/a?k=1").join(Some("b")).is_err());
    }

    #[test]
    fn shown_urls_keep_no_secret() {
        let url = Url::parse("https://me:pw@api.example.com:8443/v1?key=s3cret").expect("url");
        assert_eq!(without_secrets(&url), "https://api.example.com:8443/v1");
    }
}
