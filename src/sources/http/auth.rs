//! Request authentication: bearer token, basic, API key (header or query
//! parameter) and OAuth2 client credentials, whose token is fetched when
//! first needed and fetched again before it expires or after a 401.
//!
//! Secrets come from `${VAR}` in the config and are registered for
//! redaction, so they never reach a log line or an error.

use std::time::{Duration, Instant};

use reqwest::RequestBuilder;
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::core::secrets;

/// `auth = { kind = "bearer", token = "${API_TOKEN}" }` and the other kinds.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// The token.
        token: String,
    },
    /// HTTP basic authentication.
    Basic {
        /// The user name.
        username: String,
        /// The password.
        #[serde(default)]
        password: Option<String>,
    },
    /// A key in a header (default `X-API-Key`) or a query parameter.
    #[schemars(transform = |s: &mut schemars::Schema| {
        crate::core::schema::alias(s, "api_key", "key");
        crate::core::schema::alias(s, "value", "key");
    })]
    ApiKey {
        /// The header or parameter name.
        #[serde(default = "default_key_name")]
        name: String,
        /// The key.
        #[serde(alias = "api_key", alias = "value")]
        key: String,
        /// `header` (default) or `query`.
        #[serde(default)]
        location: KeyLocation,
    },
    /// OAuth2 client credentials: a token from `token_url`, sent as a bearer token.
    Oauth2ClientCredentials(OAuth2Config),
}

/// `auth = { kind = "oauth2_client_credentials", token_url = ..., client_id = ..., client_secret = ... }`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OAuth2Config {
    /// The token endpoint.
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub client_secret: String,
    /// Scopes requested, space-separated.
    #[serde(default)]
    pub scope: Option<String>,
    /// Extra form fields for the token request (e.g. `audience`).
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, String>,
}

fn default_key_name() -> String {
    "X-API-Key".into()
}

/// Where an API key goes.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum KeyLocation {
    /// A request header.
    #[default]
    Header,
    /// A query parameter.
    Query,
}

/// Signs requests as an [`AuthConfig`] says.
pub struct Authenticator {
    config: AuthConfig,
    /// OAuth2: the current token and when to fetch a new one.
    token: Mutex<Option<(String, Instant)>>,
}

/// Fetch a new OAuth2 token this long before the old one expires.
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

impl Authenticator {
    /// An authenticator for `config`; its secrets are registered for redaction.
    pub fn new(config: AuthConfig) -> Self {
        match &config {
            AuthConfig::Bearer { token } => secrets::register(token),
            AuthConfig::Basic { password, .. } => {
                if let Some(p) = password {
                    secrets::register(p);
                }
            }
            AuthConfig::ApiKey { key, .. } => secrets::register(key),
            AuthConfig::Oauth2ClientCredentials(oauth) => secrets::register(&oauth.client_secret),
        }
        Authenticator {
            config,
            token: Mutex::new(None),
        }
    }

    /// Whether a 401 may be cured by fetching a new token.
    pub fn refreshable(&self) -> bool {
        matches!(self.config, AuthConfig::Oauth2ClientCredentials(_))
    }

    /// Forgets the current token, so the next request fetches one.
    pub async fn invalidate(&self) {
        *self.token.lock().await = None;
    }

    /// Adds the credentials to `request`.
    pub async fn sign(
        &self,
        http: &reqwest::Client,
        request: RequestBuilder,
    ) -> Result<RequestBuilder, reqwest::Error> {
        Ok(match &self.config {
            AuthConfig::Bearer { token } => request.bearer_auth(token),
            AuthConfig::Basic { username, password } => {
                request.basic_auth(username, password.as_ref())
            }
            AuthConfig::ApiKey {
                name,
                key,
                location: KeyLocation::Header,
            } => request.header(name.as_str(), key.as_str()),
            AuthConfig::ApiKey {
                name,
                key,
                location: KeyLocation::Query,
            } => request.query(&[(name, key)]),
            AuthConfig::Oauth2ClientCredentials(oauth) => {
                request.bearer_auth(self.oauth2_token(http, oauth).await?)
            }
        })
    }

    /// The OAuth2 token, fetched when there is none or it is about to expire.
    async fn oauth2_token(
        &self,
        http: &reqwest::Client,
        oauth: &OAuth2Config,
    ) -> Result<String, reqwest::Error> {
        let mut current = self.token.lock().await;
        if let Some((token, refresh_at)) = current.as_ref()
            && Instant::now() < *refresh_at
        {
            return Ok(token.clone());
        }
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", "client_credentials"),
            ("client_id", &oauth.client_id),
            ("client_secret", &oauth.client_secret),
        ];
        if let Some(scope) = &oauth.scope {
            form.push(("scope", scope));
        }
        for (k, v) in &oauth.extra {
            form.push((k, v));
        }
        let response: TokenResponse = http
            .post(&oauth.token_url)
            .form(&form)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        secrets::register(&response.access_token);
        let lifetime = Duration::from_secs(response.expires_in.unwrap_or(3600));
        let refresh_at = Instant::now() + lifetime.saturating_sub(EXPIRY_MARGIN);
        *current = Some((response.access_token.clone(), refresh_at));
        Ok(response.access_token)
    }
}

/// The fields of a token endpoint's answer flowline uses.
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
}
