//! `kind = "http"`: records from a REST API, page by page.
//!
//! A run walks the resource's pages with the configured pagination, takes
//! the records at `records` from each body, and sends them on in batches.
//! Child resources are fetched for each parent record and land in tables of
//! their own; so do unnested arrays. With `incremental`, the highest cursor
//! value seen is committed with the data and sent back as a query parameter
//! on the next run. The next page is requested while the current one is
//! decoded, so the network and the decoder overlap.

pub mod auth;
pub mod client;
pub mod connection;
pub mod paginate;
pub mod records;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::DataType;
use futures_util::StreamExt;
use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use self::auth::{AuthConfig, Authenticator};
use self::client::{ClientOptions, ClientSettings, Page, RequestSpec, WebClient};
use self::paginate::{DEFAULT_MAX_PAGES, PaginateConfig, Paginator, Response};
use super::{BatchSender, ChildTable, DeadLetter, Source, SourceBatch, SourceContext};
use crate::core::diagnostic::SpannedError;
use crate::core::error::{Error, Result};
use crate::core::schema::SchemaFn;
use crate::core::{Mode, Workspace};
use crate::data::json::JsonDecoder;
use crate::data::types::parse_type;
use crate::sources::SourceConnector;
use schemars::JsonSchema;
use toml::Spanned;
use toml::de::DeValue;

/// How much of a body that is not JSON a dead letter keeps.
const RAW_EXCERPT: usize = 64 * 1024;

/// `[source] kind = "http"`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSourceConfig {
    /// The resource's URL; `{name}` template fields are filled from `params`.
    /// With `connection`, a path under the connection's URL (`items` under
    /// `https://api.example.com/v1` is `https://api.example.com/v1/items`),
    /// or left out for the connection's URL itself. Required without
    /// `connection`.
    #[serde(default)]
    pub url: Option<String>,
    /// A `[connections.<name>]` in flowline.toml with an `http://` or
    /// `https://` URL, the API's base URL, and optionally its `auth` (used
    /// when this source sets none). `flowline connections test <name>`
    /// checks it.
    #[serde(default)]
    pub connection: Option<String>,
    /// The HTTP method. Default `GET`.
    #[serde(default = "default_method")]
    pub method: String,
    /// Query parameters (those named in the URL's `{name}` fields fill them instead).
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: BTreeMap<String, toml::Value>,
    /// A JSON body (for `POST` searches).
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    pub body: Option<toml::Value>,
    /// Dotted path to the records in each body (`data.items`). Default: the
    /// body when it is an array, else its first array of objects.
    #[serde(default)]
    pub records: Option<String>,
    /// How requests authenticate.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// How pages follow one another. Default: one request.
    #[serde(default)]
    pub paginate: Option<PaginateConfig>,
    /// Stop after this many pages, whatever the pagination says. Reaching
    /// the default while the API still has pages stops with a warning;
    /// raise it for a longer resource. Default 1000.
    #[serde(default)]
    #[schemars(extend("default" = 1000))]
    pub max_pages: Option<u64>,
    /// Load only records past the last run's cursor.
    #[serde(default)]
    pub incremental: Option<HttpIncremental>,
    /// Resources fetched for each record, each into a table of its own.
    #[serde(default)]
    pub children: Vec<ChildConfig>,
    /// Flatten nested objects into `parent__child` columns. Default false:
    /// they become struct columns.
    #[serde(default)]
    pub flatten: bool,
    /// Fields holding arrays of objects that become child tables
    /// (`<table>__<field>`, with `_parent_<parent_key>` and `_index`).
    #[serde(default)]
    pub unnest: Vec<String>,
    /// The record field child rows point back to. Default `id`.
    #[serde(default = "default_parent_key")]
    pub parent_key: String,
    /// Column types that override inference: `{ price = "decimal(10,2)" }`.
    #[serde(default)]
    pub columns: BTreeMap<String, String>,
    /// Records per batch. Default 10000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// `timeout`, `retries`, `backoff`, `requests_per_second`,
    /// `concurrency`, `user_agent`, `headers`: the HTTP client's settings.
    #[serde(skip)]
    pub client: ClientSettings,
}

/// `incremental = { cursor = "updated_at", param = "since", initial = "2024-01-01" }`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpIncremental {
    /// Dotted path to the record field whose highest value is kept.
    pub cursor: String,
    /// The query parameter the kept value is sent as on the next run.
    pub param: String,
    /// The value sent on the first run. Default: none (everything).
    #[serde(default)]
    #[schemars(with = "Option<crate::core::schema::Scalar>")]
    pub initial: Option<toml::Value>,
}

/// `[[source.children]]`: a resource fetched for each parent record.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ChildConfig {
    /// The child's name: its table is `<table>__<name>`.
    pub name: String,
    /// Its URL, absolute or relative to the parent's; `{field}` template fields
    /// are filled from the parent record (`/users/{id}/orders`).
    pub url: String,
    /// Dotted path to the records in each body.
    #[serde(default)]
    pub records: Option<String>,
    /// Query parameters.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, serde_json::Value>")]
    pub params: BTreeMap<String, toml::Value>,
    /// How the child's pages follow one another. Default: one request.
    #[serde(default)]
    pub paginate: Option<PaginateConfig>,
    /// Stop after this many pages per parent. Default 1000.
    #[serde(default)]
    #[schemars(extend("default" = 1000))]
    pub max_pages: Option<u64>,
    /// Parent fields copied into each child row as `_parent_<field>`.
    /// Default: the fields the URL's `{name}` fields name.
    #[serde(default)]
    pub include_from_parent: Option<Vec<String>>,
    /// The child's own key columns; with the `_parent_` columns they
    /// identify a row when the pipeline merges.
    #[serde(default)]
    pub primary_key: Vec<String>,
}

fn default_method() -> String {
    "GET".into()
}
fn default_parent_key() -> String {
    "id".into()
}
fn default_batch_size() -> usize {
    10_000
}

impl HttpSourceConfig {
    /// The tables this source fills besides the pipeline's own: one per
    /// child resource and one per unnested field.
    pub fn child_tables(&self) -> Vec<ChildTable> {
        let resources = self.children.iter().map(|c| ChildTable {
            name: c.name.clone(),
            primary_key: if c.primary_key.is_empty() {
                Vec::new()
            } else {
                c.include_from_parent
                    .clone()
                    .unwrap_or_else(|| template_names(&c.url))
                    .iter()
                    .map(|f| format!("_parent_{}", f.replace('.', "__")))
                    .chain(c.primary_key.iter().cloned())
                    .collect()
            },
        });
        let unnested = self.unnest.iter().map(|field| ChildTable {
            name: field.clone(),
            primary_key: vec![format!("_parent_{}", self.parent_key), "_index".into()],
        });
        resources.chain(unnested).collect()
    }

    /// The config with its `connection` applied: the URL under the
    /// connection's, and the connection's `auth` unless the source sets one.
    fn with_connection(&self, workspace: &Workspace) -> Result<HttpSourceConfig> {
        let Some(name) = &self.connection else {
            return Ok(self.clone());
        };
        let connection = connection::HttpConnection::named(workspace, name)
            .map_err(|e| Error::Config(format!("[source] connection = \"{name}\": {e}")))?;
        let mut config = self.clone();
        config.url = Some(connection.join(self.url.as_deref())?);
        if config.auth.is_none() {
            config.auth = connection.auth;
        }
        Ok(config)
    }

    fn client_options(&self) -> ClientOptions {
        self.client.options()
    }

    fn overrides(&self) -> Result<HashMap<String, DataType>> {
        self.columns
            .iter()
            .map(|(column, type_name)| {
                parse_type(type_name)
                    .map(|dt| (column.clone(), dt))
                    .map_err(|e| Error::Config(format!("[source] columns.{column}: {e}")))
            })
            .collect()
    }

    /// The first request: URL template fields filled, parameters and body set.
    fn first_request(&self) -> Result<RequestSpec> {
        let template = self.url.as_deref().ok_or_else(|| {
            Error::Config(
                "[source] kind = \"http\" needs url, or connection = \"<name>\" of a \
                 [connections.<name>] with an http(s) URL"
                    .into(),
            )
        })?;
        let (url, used) = fill_template(template, |name| self.params.get(name).map(toml_text))
            .map_err(|missing| {
                Error::Config(format!(
                    "[source] url has a template field {{{missing}}} that no entry of params fills"
                ))
            })?;
        let mut url = Url::parse(&url)
            .map_err(|e| Error::Config(format!("[source] url {template:?}: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            for (name, value) in self.params.iter().filter(|(k, _)| !used.contains(*k)) {
                query.append_pair(name, &toml_text(value));
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        let method =
            Method::from_bytes(self.method.to_ascii_uppercase().as_bytes()).map_err(|_| {
                Error::Config(format!(
                    "[source] method {:?} is not an HTTP method",
                    self.method
                ))
            })?;
        let body = self
            .body
            .as_ref()
            .map(serde_json::to_value)
            .transpose()
            .map_err(|e| Error::Config(format!("[source] body: {e}")))?;
        Ok(RequestSpec { method, url, body })
    }
}

/// A TOML scalar as text for a URL.
fn toml_text(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A JSON scalar as text for a URL.
fn json_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Fills `{name}` template fields by `value_of`, percent-encoding the values.
/// Returns the URL and the names used, or the first name with no value.
fn fill_template(
    template: &str,
    mut value_of: impl FnMut(&str) -> Option<String>,
) -> std::result::Result<(String, Vec<String>), String> {
    let mut out = String::with_capacity(template.len());
    let mut used = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        let name = &rest[open + 1..open + close];
        out.push_str(&rest[..open]);
        let value = value_of(name).ok_or_else(|| name.to_string())?;
        out.extend(
            url::form_urlencoded::byte_serialize(value.as_bytes()).map(|s| s.replace('+', "%20")),
        );
        used.push(name.to_string());
        rest = &rest[open + close + 1..];
    }
    out.push_str(rest);
    Ok((out, used))
}

/// The `{name}` fields of a URL template.
fn template_names(template: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = fill_template(template, |name| {
        names.push(name.to_string());
        Some(String::new())
    });
    names
}

/// The progress an HTTP source commits.
#[derive(Debug, Default, Serialize, Deserialize)]
struct HttpState {
    /// The highest cursor value loaded.
    #[serde(default)]
    cursor: Option<Value>,
}

/// The state the last run committed; an error, never a fresh start, when
/// it cannot be read (a fresh start would load everything again).
fn saved_state(ctx: &SourceContext) -> Result<HttpState> {
    let Some(state) = &ctx.state else {
        return Ok(HttpState::default());
    };
    serde_json::from_value(state.clone()).map_err(|e| Error::StateUnreadable {
        what: format!("saved state of {}", ctx.pipeline),
        message: e.to_string(),
    })
}

/// Records waiting to become a batch for one table.
struct Pending {
    table: Option<String>,
    decoder: JsonDecoder,
    records: Vec<(String, Value)>,
    /// Records kept as JSON text, one per line (the fast path).
    text: Vec<u8>,
    /// For each line of `text`: the page it came from and its position.
    text_origins: Vec<(Arc<str>, usize)>,
    bytes: u64,
    dead_letters: Vec<DeadLetter>,
}

impl Pending {
    fn new(table: Option<String>, overrides: HashMap<String, DataType>) -> Self {
        Pending {
            table,
            decoder: JsonDecoder::new(overrides),
            records: Vec::new(),
            text: Vec::new(),
            text_origins: Vec::new(),
            bytes: 0,
            dead_letters: Vec::new(),
        }
    }

    /// Records waiting.
    fn len(&self) -> usize {
        self.records.len() + self.text_origins.len()
    }

    /// Decodes what is waiting into a batch, if anything is.
    fn take(&mut self) -> Result<Option<SourceBatch>> {
        if self.len() == 0 && self.dead_letters.is_empty() {
            return Ok(None);
        }
        let (batch, bad) = if self.text_origins.is_empty() {
            self.decoder.decode(std::mem::take(&mut self.records))?
        } else {
            let origins = std::mem::take(&mut self.text_origins);
            let decoded = self.decoder.decode_ndjson(&self.text, origins.len(), &|i| {
                origins
                    .get(i)
                    .map_or_else(String::new, |(url, n)| format!("{url}#{n}"))
            });
            self.text.clear();
            decoded?
        };
        let mut dead_letters = std::mem::take(&mut self.dead_letters);
        dead_letters.extend(bad);
        Ok(Some(SourceBatch {
            batch,
            bytes: std::mem::take(&mut self.bytes),
            dead_letters,
            checkpoint: None,
            table: self.table.clone(),
            offer: None,
        }))
    }
}

/// Reads a REST resource.
pub struct HttpSource {
    config: Arc<HttpSourceConfig>,
}

impl HttpSource {
    /// An HTTP source for `config`.
    pub fn new(config: HttpSourceConfig) -> Self {
        HttpSource {
            config: Arc::new(config),
        }
    }

    fn client(&self) -> Result<WebClient> {
        WebClient::new(
            self.config.client_options(),
            self.config.auth.clone().map(Authenticator::new),
        )
    }
}

/// One page's body, parsed.
struct ParsedPage {
    body: Option<Value>,
    records: Vec<Value>,
    dead_letters: Vec<DeadLetter>,
    /// Records on the page (some may already be in a [`Pending`]).
    count: usize,
}

/// The fast path for pages whose records need no reshaping: records are
/// appended to `pending` as JSON text, and only the cursor field (if any)
/// is read. `None` when the page needs the slow path's explanations.
fn parse_page_text(
    page: &Page,
    path: Option<&str>,
    pending: &mut Pending,
    cursor: Option<(&str, &mut Option<Value>)>,
) -> Option<ParsedPage> {
    let raw = records::extract_raw(&page.body, path)?;
    let url: Arc<str> = Arc::from(page.url.as_str());
    let mut dead_letters = Vec::new();
    let mut highest = None;
    for (i, record) in raw.records.iter().enumerate() {
        let text = record.get();
        if !text.trim_start().starts_with('{') {
            dead_letters.push(DeadLetter {
                origin: format!("{url}#{i}"),
                reason: "expected a JSON object".into(),
                raw: text.to_string(),
            });
            continue;
        }
        if let Some((field, _)) = &cursor
            && let Ok(value) = serde_json::from_str::<Value>(text)
            && let Some(found) = records::lookup(&value, field)
            && !found.is_null()
            && highest
                .as_ref()
                .is_none_or(|h| records::compare_cursor(found, h).is_some_and(|o| o.is_gt()))
        {
            highest = Some(found.clone());
        }
        pending.text.extend_from_slice(text.as_bytes());
        pending.text.push(b'\n');
        pending.text_origins.push((url.clone(), i));
    }
    if let (Some((_, max)), Some(found)) = (cursor, highest)
        && max
            .as_ref()
            .is_none_or(|m| records::compare_cursor(&found, m).is_some_and(|o| o.is_gt()))
    {
        *max = Some(found);
    }
    Some(ParsedPage {
        body: Some(raw.rest),
        records: Vec::new(),
        dead_letters,
        count: raw.records.len(),
    })
}

/// Parses `page` and takes the records at `path`; what cannot be read
/// becomes dead letters.
fn parse_page(page: &Page, path: Option<&str>) -> ParsedPage {
    let origin = page.url.to_string();
    let mut body: Value = match serde_json::from_slice(&page.body) {
        Ok(body) => body,
        Err(e) => {
            let raw = String::from_utf8_lossy(&page.body[..page.body.len().min(RAW_EXCERPT)]);
            return ParsedPage {
                body: None,
                records: Vec::new(),
                count: 0,
                dead_letters: vec![DeadLetter {
                    origin,
                    reason: format!("response is not valid JSON: {e}"),
                    raw: raw.into_owned(),
                }],
            };
        }
    };
    let mut dead_letters = Vec::new();
    let records = match records::extract(&mut body, path) {
        Ok(items) => items
            .into_iter()
            .enumerate()
            .filter_map(|(i, item)| {
                if item.is_object() {
                    Some(item)
                } else {
                    dead_letters.push(DeadLetter {
                        origin: format!("{origin}#{i}"),
                        reason: "expected a JSON object".into(),
                        raw: item.to_string(),
                    });
                    None
                }
            })
            .collect(),
        Err(reason) => {
            dead_letters.push(DeadLetter {
                origin,
                reason,
                raw: String::from_utf8_lossy(&page.body[..page.body.len().min(RAW_EXCERPT)])
                    .into_owned(),
            });
            Vec::new()
        }
    };
    ParsedPage {
        body: Some(body),
        count: records.len(),
        records,
        dead_letters,
    }
}

/// Says that `max_pages` stopped the pages of `what` though the API had
/// more: a warning when the default did (the user may not know of it).
fn stop_at_max_pages(what: &str, max_pages: u64, default: bool) {
    if default {
        tracing::warn!(
            "{what}: stopped after {max_pages} pages, the default max_pages, though the API has \
             more; set max_pages in [source] to read further"
        );
    } else {
        tracing::info!("{what}: max_pages = {max_pages} reached");
    }
}

/// One child resource to fetch for one parent record.
struct ChildRequest {
    /// Index into `children`.
    child: usize,
    request: RequestSpec,
    /// `(name, value)` of the parent fields copied into each child row.
    parent_fields: Vec<(String, Value)>,
}

/// Fetches every page of one child resource for one parent.
async fn fetch_child(
    client: WebClient,
    child: ChildConfig,
    mut request: RequestSpec,
    parent_fields: Vec<(String, Value)>,
) -> Result<(Vec<Value>, u64, Vec<DeadLetter>)> {
    let mut paginator = Paginator::new(child.paginate.clone());
    paginator.first(&mut request);
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut dead_letters = Vec::new();
    let mut pages = 0;
    let max_pages = child.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
    loop {
        let page = client.fetch(&request).await?;
        pages += 1;
        if let Some(warning) = paginator.repeats(&page, child.records.as_deref()) {
            tracing::warn!("children {:?}: {warning}", child.name);
            break;
        }
        bytes += page.body.len() as u64;
        let parsed = parse_page(&page, child.records.as_deref());
        dead_letters.extend(parsed.dead_letters);
        let count = parsed.records.len();
        for mut record in parsed.records {
            if let Value::Object(map) = &mut record {
                for (name, value) in &parent_fields {
                    map.insert(format!("_parent_{name}"), value.clone());
                }
            }
            out.push(record);
        }
        let more = paginator.advance(
            &mut request,
            &Response {
                page: &page,
                body: parsed.body.as_ref(),
                records: count,
            },
        );
        if more && pages >= max_pages {
            stop_at_max_pages(
                &format!("children {:?}", child.name),
                max_pages,
                child.max_pages.is_none(),
            );
        }
        if !more || pages >= max_pages {
            break;
        }
    }
    Ok((out, bytes, dead_letters))
}

impl HttpSource {
    /// Requests for each child of each record, with the parent fields to copy.
    fn child_requests(&self, parent_url: &Url, records: &[Value]) -> Result<Vec<ChildRequest>> {
        let mut requests = Vec::new();
        for (index, child) in self.config.children.iter().enumerate() {
            let include = child
                .include_from_parent
                .clone()
                .unwrap_or_else(|| template_names(&child.url));
            for record in records {
                let filled = fill_template(&child.url, |name| {
                    records::lookup(record, name).map(json_text)
                });
                let Ok((url, _)) = filled else {
                    continue;
                };
                let mut url = parent_url.join(&url).map_err(|e| {
                    Error::Config(format!(
                        "[[source.children]] {}: url {url:?}: {e}",
                        child.name
                    ))
                })?;
                url.set_query(None);
                {
                    let mut query = url.query_pairs_mut();
                    for (name, value) in &child.params {
                        query.append_pair(name, &toml_text(value));
                    }
                }
                if url.query() == Some("") {
                    url.set_query(None);
                }
                let fields = include
                    .iter()
                    .map(|name| {
                        let value = records::lookup(record, name)
                            .cloned()
                            .unwrap_or(Value::Null);
                        (name.replace('.', "__"), value)
                    })
                    .collect();
                requests.push(ChildRequest {
                    child: index,
                    request: RequestSpec::get(url),
                    parent_fields: fields,
                });
            }
        }
        Ok(requests)
    }

    async fn read_pages(&self, ctx: SourceContext, out: BatchSender) -> Result<()> {
        let config = &self.config;
        let client = self.client()?;
        let overrides = config.overrides()?;
        let state = saved_state(&ctx)?;
        let mut request = config.first_request()?;
        let mut max_cursor = state.cursor.clone();
        if let Some(incremental) = &config.incremental {
            let since = state
                .cursor
                .as_ref()
                .map(records::cursor_text)
                .or_else(|| incremental.initial.as_ref().map(toml_text));
            if let Some(since) = since {
                request.set_param(&incremental.param, &since);
            }
        }
        let mut paginator = Paginator::new(config.paginate.clone());
        paginator.first(&mut request);

        let mut main = Pending::new(None, overrides.clone());
        let mut children: Vec<Pending> = config
            .child_tables()
            .into_iter()
            .map(|child| Pending::new(Some(child.name), HashMap::new()))
            .collect();
        let unnest_offset = config.children.len();
        // Records that are loaded as they are skip building JSON values.
        let fast = !config.flatten && config.unnest.is_empty() && config.children.is_empty();
        let mut pages = 0u64;
        let mut next = Some(tokio::spawn({
            let client = client.clone();
            let request = request.clone();
            async move { client.fetch(&request).await }
        }));
        let max_pages = config.max_pages.unwrap_or(DEFAULT_MAX_PAGES);
        while let Some(fetching) = next.take() {
            let page = fetching.await.map_err(Error::task("HTTP request"))??;
            pages += 1;
            if let Some(warning) = paginator.repeats(&page, config.records.as_deref()) {
                tracing::warn!(pipeline = %ctx.pipeline, "{warning}");
                break;
            }
            let cursor = config
                .incremental
                .as_ref()
                .map(|i| (i.cursor.as_str(), &mut max_cursor));
            let parsed = fast
                .then(|| parse_page_text(&page, config.records.as_deref(), &mut main, cursor))
                .flatten()
                .unwrap_or_else(|| parse_page(&page, config.records.as_deref()));
            let count = parsed.count;
            if parsed.body.is_none() && paginator.needs_body() {
                tracing::warn!(pipeline = %ctx.pipeline, "{}: not JSON, so the next page is unknown; stopping here", page.url);
            } else {
                let more = paginator.advance(
                    &mut request,
                    &Response {
                        page: &page,
                        body: parsed.body.as_ref(),
                        records: count,
                    },
                );
                if more && pages >= max_pages {
                    let what = format!("pipeline {}", ctx.pipeline);
                    stop_at_max_pages(&what, max_pages, config.max_pages.is_none());
                } else if more {
                    let client = client.clone();
                    let request = request.clone();
                    next = Some(tokio::spawn(async move { client.fetch(&request).await }));
                }
            }
            main.bytes += page.body.len() as u64;
            main.dead_letters.extend(parsed.dead_letters);

            let mut records = parsed.records;
            if let Some(incremental) = &config.incremental {
                for record in &records {
                    if let Some(value) = records::lookup(record, &incremental.cursor) {
                        let higher = match &max_cursor {
                            None => true,
                            Some(current) => {
                                records::compare_cursor(value, current).is_some_and(|o| o.is_gt())
                            }
                        };
                        if higher && !value.is_null() {
                            max_cursor = Some(value.clone());
                        }
                    }
                }
            }
            if !config.children.is_empty() {
                let requests = self.child_requests(&page.url, &records)?;
                let mut fetched = futures_util::stream::iter(requests.into_iter().map(
                    |ChildRequest {
                         child: index,
                         request,
                         parent_fields,
                     }| {
                        let child = config.children[index].clone();
                        let client = client.clone();
                        async move {
                            (
                                index,
                                fetch_child(client, child, request, parent_fields).await,
                            )
                        }
                    },
                ))
                .buffered(config.client.concurrency.max(1));
                while let Some((index, result)) = fetched.next().await {
                    let (rows, bytes, letters) = result?;
                    let pending = &mut children[index];
                    pending.bytes += bytes;
                    pending.dead_letters.extend(letters);
                    let origin = format!("{}#{}", page.url, config.children[index].name);
                    pending
                        .records
                        .extend(rows.into_iter().map(|r| (origin.clone(), r)));
                }
            }
            let origin = page.url.to_string();
            for (i, record) in records.iter_mut().enumerate() {
                for (n, field) in config.unnest.iter().enumerate() {
                    let items = records::unnest(record, field, &config.parent_key);
                    let items = items.into_iter().map(|item| {
                        let item = if config.flatten {
                            records::flatten(item)
                        } else {
                            item
                        };
                        (format!("{origin}#{i}.{field}"), item)
                    });
                    children[unnest_offset + n].records.extend(items);
                }
            }
            main.records
                .extend(records.into_iter().enumerate().map(|(i, record)| {
                    let record = if config.flatten {
                        records::flatten(record)
                    } else {
                        record
                    };
                    (format!("{origin}#{i}"), record)
                }));
            for pending in std::iter::once(&mut main).chain(children.iter_mut()) {
                if pending.len() >= config.batch_size.max(1)
                    && let Some(batch) = pending.take()?
                    && out.send(batch).await.is_err()
                {
                    return Ok(());
                }
            }
        }
        for pending in children.iter_mut() {
            if let Some(batch) = pending.take()?
                && out.send(batch).await.is_err()
            {
                return Ok(());
            }
        }
        let mut last = main.take()?.unwrap_or_else(SourceBatch::empty);
        last.checkpoint = Some(
            serde_json::to_value(HttpState { cursor: max_cursor })
                .map_err(|e| Error::Other(format!("saving HTTP state: {e}")))?,
        );
        let _ = out.send(last).await;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Source for HttpSource {
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()> {
        self.read_pages(ctx, out).await
    }

    fn check(&self, _ctx: &SourceContext) -> Result<Vec<String>> {
        self.config.first_request()?;
        self.config.overrides()?;
        let mut names = std::collections::HashSet::new();
        for child in self.config.child_tables() {
            let name = child.name;
            if !names.insert(name.clone()) {
                return Err(Error::Config(format!(
                    "[source] two child tables are named {name:?}"
                )));
            }
        }
        Ok(Vec::new())
    }
}

impl SourceConnector for HttpSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (client, config) = ClientSettings::read_with::<Self>(table)?;
        Ok(HttpSourceConfig { client, ..config })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        vec![ClientSettings::json_schema]
    }

    fn kind() -> &'static str {
        "http"
    }

    fn mode() -> Mode {
        Mode::Batch
    }

    fn summary() -> &'static str {
        "A REST API resource, paginated, with child resources"
    }

    fn validate(&self, workspace: &Workspace, pipeline: &str) -> Result<Vec<String>> {
        crate::sources::validate_batch(self, workspace, pipeline)
    }

    fn schemes() -> &'static [&'static str] {
        &["http", "https"]
    }

    fn test_connection(
        name: String,
        url: String,
        workspace: Workspace,
    ) -> futures_util::future::BoxFuture<'static, Result<String>> {
        let _ = url;
        Box::pin(connection::test(name, workspace))
    }

    fn batch_reader(&self, workspace: &Workspace) -> Result<Box<dyn Source>> {
        Ok(Box::new(HttpSource::new(self.with_connection(workspace)?)))
    }

    fn child_tables(&self) -> Vec<ChildTable> {
        HttpSourceConfig::child_tables(self)
    }

    /// The connection and path, or the URL without its query string
    /// (which may hold a key).
    fn origin(&self) -> Option<super::Origin> {
        let url = self
            .url
            .as_deref()
            .map(|u| u.split('?').next().unwrap_or(u));
        let name = match (&self.connection, url) {
            (Some(connection), Some(path)) => format!("{connection}:{path}"),
            (Some(connection), None) => connection.clone(),
            (None, Some(url)) => url.to_string(),
            (None, None) => return None,
        };
        Some(super::Origin { name, query: None })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_and_encode() {
        let (url, used) = fill_template("http://x/users/{id}/orders?q={q}", |name| match name {
            "id" => Some("7".into()),
            "q" => Some("a b/c".into()),
            _ => None,
        })
        .expect("filled");
        assert_eq!(url, "http://x/users/7/orders?q=a%20b%2Fc");
        assert_eq!(used, vec!["id", "q"]);
        assert_eq!(
            fill_template("http://x/{missing}", |_| None),
            Err("missing".to_string())
        );
        assert_eq!(
            template_names("/users/{id}/orders/{year}"),
            vec!["id", "year"]
        );
    }
}
