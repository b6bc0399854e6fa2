//! The HTTP client the web sources share: timeouts, retries with
//! exponential backoff and jitter on connection errors, 429 and 5xx
//! (honouring `Retry-After`), a request rate limit, and bounded concurrency.
//! When it gives up, the error names the request, the status and the first
//! bytes of the body.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode, Url};
use tokio::sync::{Mutex, Semaphore};

use super::auth::Authenticator;
use crate::core::error::{Error, Result};

/// The longest a single retry waits, whatever the server asks for.
const MAX_RETRY_WAIT: Duration = Duration::from_secs(300);

/// How much of a failed response's body an error quotes.
const BODY_EXCERPT: usize = 300;

/// How a [`WebClient`] behaves, resolved from a source's config.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Per-request timeout (connect and read).
    pub timeout: Duration,
    /// Retries after the first attempt.
    pub retries: u32,
    /// The first retry's wait; doubled each time, with jitter.
    pub backoff: Duration,
    /// Requests per second, at most; `None` for no limit.
    pub requests_per_second: Option<f64>,
    /// Requests in flight at once, at most.
    pub concurrency: usize,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Headers sent with every request.
    pub headers: Vec<(String, String)>,
}

/// `timeout`, `retries`, `backoff`, `requests_per_second`, `concurrency`,
/// `user_agent`, `headers`: the HTTP client settings of every source that
/// fetches over HTTP (`http`, `scrape`), the same keys for each.
#[derive(Debug, Clone, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientSettings {
    /// Per-request timeout (connect and read); in a browser, the page-load
    /// timeout. Default `30s`.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timeout: Duration,
    /// Retries on connection errors, timeouts, 429 and 5xx. Default 5.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// The first retry's wait, doubled each time, with jitter. Default `500ms`.
    #[serde(default = "default_backoff", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub backoff: Duration,
    /// At most this many requests per second. Default: no limit.
    #[serde(default)]
    pub requests_per_second: Option<f64>,
    /// At most this many requests in flight at once (child resources,
    /// detail pages). Default 4; a browser loads one page at a time.
    #[serde(default = "default_concurrency")]
    pub concurrency: usize,
    /// The `User-Agent` sent (and the agent robots.txt rules are read for).
    /// Default `flowline/<version>`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// Headers sent with every request.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}
fn default_retries() -> u32 {
    5
}
fn default_backoff() -> Duration {
    Duration::from_millis(500)
}
fn default_concurrency() -> usize {
    4
}

impl Default for ClientSettings {
    fn default() -> Self {
        ClientSettings {
            timeout: default_timeout(),
            retries: default_retries(),
            backoff: default_backoff(),
            requests_per_second: None,
            concurrency: default_concurrency(),
            user_agent: None,
            headers: Default::default(),
        }
    }
}

impl ClientSettings {
    /// The keys this piece reads.
    pub const KEYS: &'static [&'static str] = &[
        "timeout",
        "retries",
        "backoff",
        "requests_per_second",
        "concurrency",
        "user_agent",
        "headers",
    ];

    /// The client's options.
    pub fn options(&self) -> ClientOptions {
        let defaults = ClientOptions::default();
        ClientOptions {
            timeout: self.timeout,
            retries: self.retries,
            backoff: self.backoff,
            requests_per_second: self.requests_per_second,
            concurrency: self.concurrency,
            user_agent: self.user_agent.clone().unwrap_or(defaults.user_agent),
            headers: self
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }

    /// Reads a `[source]` table into the client settings and the
    /// connector's own struct `T`.
    pub fn read_with<T: serde::de::DeserializeOwned>(
        value: toml::Spanned<toml::de::DeValue<'_>>,
    ) -> std::result::Result<(ClientSettings, T), crate::core::diagnostic::SpannedError> {
        let mut table = crate::core::tables::SplitTable::new(value, "[source]")?;
        let settings = table.take(Self::KEYS)?;
        Ok((settings, table.rest()?))
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            timeout: Duration::from_secs(30),
            retries: 5,
            backoff: Duration::from_millis(500),
            requests_per_second: None,
            concurrency: 4,
            user_agent: format!("flowline/{}", env!("CARGO_PKG_VERSION")),
            headers: Vec::new(),
        }
    }
}

/// One request: method, URL with its query, and an optional JSON body.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// GET, POST, ...
    pub method: Method,
    /// The URL, query included.
    pub url: Url,
    /// A JSON body.
    pub body: Option<serde_json::Value>,
}

impl RequestSpec {
    /// A GET of `url`.
    pub fn get(url: Url) -> Self {
        RequestSpec {
            method: Method::GET,
            url,
            body: None,
        }
    }

    /// Sets query parameter `name` to `value`, replacing any earlier value.
    pub fn set_param(&mut self, name: &str, value: &str) {
        let others: Vec<(String, String)> = self
            .url
            .query_pairs()
            .filter(|(k, _)| k != name)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut pairs = self.url.query_pairs_mut();
        pairs.clear();
        for (k, v) in &others {
            pairs.append_pair(k, v);
        }
        pairs.append_pair(name, value);
    }
}

/// A successful response, read whole.
#[derive(Debug, Clone)]
pub struct Page {
    /// The URL finally answered (after redirects).
    pub url: Url,
    /// The status (2xx).
    pub status: StatusCode,
    /// The response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl Page {
    /// The body as text, decoded by the charset the headers or the page
    /// declare (UTF-8 when neither does).
    pub fn text(&self) -> String {
        let declared = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(charset_of)
            .or_else(|| meta_charset(&self.body));
        let encoding = declared
            .and_then(|label| encoding_rs::Encoding::for_label(label.as_bytes()))
            .unwrap_or(encoding_rs::UTF_8);
        let (text, _, _) = encoding.decode(&self.body);
        text.into_owned()
    }
}

/// `text/html; charset=ISO-8859-1` → `ISO-8859-1`.
fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').find_map(|part| {
        let (key, value) = part.split_once('=')?;
        (key.trim().eq_ignore_ascii_case("charset"))
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

/// The charset a page declares in its first kilobytes:
/// `<meta charset="...">` or the `http-equiv` form.
fn meta_charset(body: &[u8]) -> Option<String> {
    let head = String::from_utf8_lossy(&body[..body.len().min(4096)]).to_ascii_lowercase();
    let at = head.find("charset=")? + "charset=".len();
    let value: String = head[at..]
        .trim_start_matches(['"', '\''])
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    (!value.is_empty()).then_some(value)
}

/// Spaces requests out to a rate.
struct RateLimit {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimit {
    async fn wait(&self) {
        let slot = {
            let mut next = self.next.lock().await;
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// An HTTP client with retries, a rate limit and a concurrency bound.
/// Cheap to clone; clones share the limits.
#[derive(Clone)]
pub struct WebClient {
    http: reqwest::Client,
    options: Arc<ClientOptions>,
    auth: Option<Arc<Authenticator>>,
    permits: Arc<Semaphore>,
    rate: Option<Arc<RateLimit>>,
}

impl WebClient {
    /// A client with `options`, signing requests with `auth`.
    pub fn new(options: ClientOptions, auth: Option<Authenticator>) -> Result<Self> {
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| Error::Config(format!("[source] headers: {name:?}: {e}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|e| Error::Config(format!("[source] headers.{name}: {e}")))?;
            headers.insert(name, value);
        }
        let http = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .user_agent(options.user_agent.clone())
            .default_headers(headers)
            .gzip(true)
            .build()
            .map_err(|e| Error::client("starting the HTTP client", e.to_string(), e))?;
        let rate = options.requests_per_second.filter(|r| *r > 0.0).map(|rps| {
            Arc::new(RateLimit {
                interval: Duration::from_secs_f64(1.0 / rps),
                next: Mutex::new(Instant::now()),
            })
        });
        Ok(WebClient {
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            http,
            options: Arc::new(options),
            auth: auth.map(Arc::new),
            rate,
        })
    }

    /// The underlying client, for requests that need no retries.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends `spec`, retrying what is worth retrying, and reads the body.
    pub async fn fetch(&self, spec: &RequestSpec) -> Result<Page> {
        let mut attempt = 0;
        let mut refreshed_auth = false;
        loop {
            let outcome = match self.try_once(spec).await {
                Ok(page) if page.status.is_success() => return Ok(page),
                other => other,
            };
            let wait = match &outcome {
                Ok(page) if page.status == StatusCode::UNAUTHORIZED && !refreshed_auth => {
                    // A token may have expired early: fetch a new one, once.
                    match &self.auth {
                        Some(auth) if auth.refreshable() => {
                            auth.invalidate().await;
                            refreshed_auth = true;
                            continue;
                        }
                        _ => return Err(self.gave_up(spec, outcome, attempt)),
                    }
                }
                Ok(page) if retryable(page.status) => retry_after(&page.headers),
                Ok(_) => return Err(self.gave_up(spec, outcome, attempt)),
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => None,
                Err(_) => return Err(self.gave_up(spec, outcome, attempt)),
            };
            if attempt >= self.options.retries {
                return Err(self.gave_up(spec, outcome, attempt));
            }
            let wait = wait
                .unwrap_or_else(|| backoff(self.options.backoff, attempt))
                .min(MAX_RETRY_WAIT);
            tracing::warn!(
                "{} {}: {}; retry {} of {} in {}",
                spec.method,
                spec.url,
                describe(&outcome),
                attempt + 1,
                self.options.retries,
                humantime::format_duration(round_ms(wait))
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    /// Sends `spec` once, without retries, and reads the body whatever the
    /// status (for `flowline connections test`).
    pub async fn fetch_once(&self, spec: &RequestSpec) -> Result<Page, reqwest::Error> {
        self.try_once(spec).await
    }

    async fn try_once(&self, spec: &RequestSpec) -> Result<Page, reqwest::Error> {
        let _permit = self.permits.acquire().await.ok();
        if let Some(rate) = &self.rate {
            rate.wait().await;
        }
        let mut request = self.http.request(spec.method.clone(), spec.url.clone());
        if let Some(body) = &spec.body {
            request = request.json(body);
        }
        if let Some(auth) = &self.auth {
            request = match auth.sign(&self.http, request).await {
                Ok(signed) => signed,
                Err(e) => return Err(e),
            };
        }
        let response = request.send().await?;
        let url = response.url().clone();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.bytes().await?;
        Ok(Page {
            url,
            status,
            headers,
            body,
        })
    }

    fn gave_up(
        &self,
        spec: &RequestSpec,
        outcome: Result<Page, reqwest::Error>,
        attempt: u32,
    ) -> Error {
        let tries = if attempt == 0 {
            String::new()
        } else {
            format!(" (after {} attempts)", attempt + 1)
        };
        Error::Http {
            request: format!("{} {}", spec.method, spec.url),
            message: format!("{}{tries}", describe(&outcome)),
        }
    }
}

/// Statuses worth another try: rate limited, or the server's fault.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status == StatusCode::REQUEST_TIMEOUT
        || status.is_server_error()
}

/// The wait a `Retry-After` header asks for: seconds, or an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// `base · 2^attempt`, capped at a minute, with jitter in [½, 1] of that.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let full = base
        .saturating_mul(1u32 << attempt.min(16))
        .min(Duration::from_secs(60));
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(d.as_millis() as u64)
}

/// One line on what an attempt got: the status and the body's first bytes,
/// or the transport error.
fn describe(outcome: &Result<Page, reqwest::Error>) -> String {
    match outcome {
        Ok(page) => {
            let text = String::from_utf8_lossy(&page.body[..page.body.len().min(BODY_EXCERPT)]);
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            let more = if page.body.len() > BODY_EXCERPT {
                "…"
            } else {
                ""
            };
            if text.is_empty() {
                format!("HTTP {}", page.status)
            } else {
                format!("HTTP {}: {text}{more}", page.status)
            }
        }
        Err(e) => transport_error(e),
    }
}

/// A transport error with its causes, phrased for the user.
pub fn transport_error(error: &reqwest::Error) -> String {
    let mut text = if error.is_timeout() {
        "timed out".to_string()
    } else if error.is_connect() {
        "could not connect".to_string()
    } else {
        error.to_string()
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().expect("header"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        let later = std::time::SystemTime::now() + Duration::from_secs(30);
        headers.insert(
            RETRY_AFTER,
            httpdate::fmt_http_date(later).parse().expect("header"),
        );
        let wait = retry_after(&headers).expect("a date");
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

    #[test]
    fn backoff_doubles_with_jitter() {
        let base = Duration::from_millis(100);
        for attempt in 0..5 {
            let wait = backoff(base, attempt);
            let full = base * (1 << attempt);
            assert!(wait >= full / 2 && wait <= full, "{wait:?} vs {full:?}");
        }
        assert!(backoff(base, 30) <= Duration::from_secs(60));
    }

    #[test]
    fn set_param_replaces() {
        let mut spec = RequestSpec::get(Url::parse("http://x/items?a=1&page=1").expect("url"));
        spec.set_param("page", "2");
        assert_eq!(spec.url.as_str(), "http://x/items?a=1&page=2");
    }

    #[test]
    fn charset_from_headers_and_meta() {
        assert_eq!(
            charset_of("text/html; charset=\"ISO-8859-1\"").as_deref(),
            Some("ISO-8859-1")
        );
        assert_eq!(
            meta_charset(b"<html><head><meta charset=\"windows-1252\">").as_deref(),
            Some("windows-1252")
        );
    }
}
