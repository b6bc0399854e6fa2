//! Pagination strategies: page number, offset/limit, a cursor from a body
//! field, a next URL from a body field, and the RFC 8288 (5988) `Link`
//! header. Each turns the response just read into the next request, or
//! says the pages have ended: an empty page, a total reached, no next
//! cursor or link. A page holding the same records as the one before ends
//! them too (an API that ignores the paging parameter answers every request
//! alike), and `max_pages` on the source (default [`DEFAULT_MAX_PAGES`])
//! stops the rest.

use reqwest::Url;
use serde::Deserialize;
use serde_json::Value;

use super::client::{Page, RequestSpec};
use super::records::lookup;

/// `paginate = { kind = "cursor", cursor_path = "next_cursor", param = "cursor" }`
/// and the other kinds.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum PaginateConfig {
    /// `?page=1`, `?page=2`, ...
    Page {
        /// The page parameter. Default `page`.
        #[serde(default = "default_page_param")]
        param: String,
        /// The first page's number. Default 1.
        #[serde(default = "default_one")]
        start: i64,
        /// Records per page, sent as `size_param` when both are set.
        #[serde(default)]
        page_size: Option<u64>,
        /// The page-size parameter (e.g. `per_page`).
        #[serde(default)]
        size_param: Option<String>,
        /// Dotted path to the number of pages in the body.
        #[serde(default)]
        total_path: Option<String>,
    },
    /// `?offset=0&limit=100`, `?offset=100&limit=100`, ...
    Offset {
        /// The offset parameter. Default `offset`.
        #[serde(default = "default_offset_param")]
        param: String,
        /// The limit parameter. Default `limit`.
        #[serde(default = "default_limit_param")]
        limit_param: String,
        /// Records per request. Default 100.
        #[serde(default = "default_limit")]
        limit: u64,
        /// The first offset. Default 0.
        #[serde(default)]
        start: u64,
        /// Dotted path to the total number of records in the body.
        #[serde(default)]
        total_path: Option<String>,
    },
    /// The next request sends the cursor the last body gave.
    Cursor {
        /// Dotted path to the next cursor in the body; missing, null or
        /// empty ends the pages.
        cursor_path: String,
        /// The query parameter it is sent as.
        param: String,
    },
    /// The body gives the next page's URL.
    NextUrl {
        /// Dotted path to the URL in the body. Default `next`.
        #[serde(default = "default_next_path")]
        next_path: String,
    },
    /// The `Link: <...>; rel="next"` header gives the next page's URL.
    LinkHeader {},
}

fn default_page_param() -> String {
    "page".into()
}
fn default_offset_param() -> String {
    "offset".into()
}
fn default_limit_param() -> String {
    "limit".into()
}
fn default_next_path() -> String {
    "next".into()
}
fn default_one() -> i64 {
    1
}
fn default_limit() -> u64 {
    100
}

/// Pages read per resource when `max_pages` is not set.
pub const DEFAULT_MAX_PAGES: u64 = 1000;

impl PaginateConfig {
    /// The setting as a user wrote it, for messages.
    pub fn describe(&self) -> String {
        match self {
            PaginateConfig::Page { param, .. } => {
                format!("paginate = {{ kind = \"page\", param = \"{param}\" }}")
            }
            PaginateConfig::Offset { param, .. } => {
                format!("paginate = {{ kind = \"offset\", param = \"{param}\" }}")
            }
            PaginateConfig::Cursor { param, .. } => {
                format!("paginate = {{ kind = \"cursor\", param = \"{param}\" }}")
            }
            PaginateConfig::NextUrl { next_path } => {
                format!("paginate = {{ kind = \"next_url\", next_path = \"{next_path}\" }}")
            }
            PaginateConfig::LinkHeader {} => "paginate = { kind = \"link_header\" }".into(),
        }
    }
}

/// What a response tells the paginator.
pub struct Response<'a> {
    /// The page as read.
    pub page: &'a Page,
    /// The body parsed, `None` when it was not JSON.
    pub body: Option<&'a Value>,
    /// Records it held.
    pub records: usize,
}

impl Response<'_> {
    /// An empty page ends page and offset pagination; a body that could not
    /// be read does not (its page is a dead letter, the next may be fine).
    fn ended(&self) -> bool {
        self.body.is_some() && self.records == 0
    }
}

/// Walks the pages of one resource.
pub struct Paginator {
    config: Option<PaginateConfig>,
    /// Page number or offset of the request last made.
    position: i64,
    /// A fingerprint of the last page's records, to recognise a repeat.
    last_records: Option<u64>,
}

impl Paginator {
    /// A paginator for `config` (`None`: one request, no pages).
    pub fn new(config: Option<PaginateConfig>) -> Self {
        let position = match &config {
            Some(PaginateConfig::Page { start, .. }) => *start,
            Some(PaginateConfig::Offset { start, .. }) => *start as i64,
            _ => 0,
        };
        Paginator {
            config,
            position,
            last_records: None,
        }
    }

    /// Whether `page` holds the same records (at `records_path`; the whole
    /// body when they cannot be found there) as the page before it: then
    /// the API ignores the paging parameter, and asking on would never end.
    /// Pages without records are never repeats (some APIs send empty pages
    /// with a next link). Returns the warning to give, naming the setting.
    pub fn repeats(&mut self, page: &Page, records_path: Option<&str>) -> Option<String> {
        let config = self.config.as_ref()?;
        let fingerprint = records_fingerprint(&page.body, records_path);
        let repeated = fingerprint.is_some() && fingerprint == self.last_records;
        self.last_records = fingerprint;
        repeated.then(|| {
            format!(
                "{}: this page holds the same records as the page before it, so the API seems \
                 to ignore {}; stopping here (check the paging parameter the API takes)",
                page.url,
                config.describe()
            )
        })
    }

    /// Whether the next request can be made without the last body (so a
    /// page that is not JSON need not end the pages).
    pub fn needs_body(&self) -> bool {
        matches!(
            self.config,
            Some(PaginateConfig::Cursor { .. } | PaginateConfig::NextUrl { .. })
        )
    }

    /// Sets the first request's paging parameters.
    pub fn first(&self, request: &mut RequestSpec) {
        match &self.config {
            Some(PaginateConfig::Page {
                param,
                page_size,
                size_param,
                ..
            }) => {
                request.set_param(param, &self.position.to_string());
                if let (Some(size), Some(size_param)) = (page_size, size_param) {
                    request.set_param(size_param, &size.to_string());
                }
            }
            Some(PaginateConfig::Offset {
                param,
                limit_param,
                limit,
                ..
            }) => {
                request.set_param(param, &self.position.to_string());
                request.set_param(limit_param, &limit.to_string());
            }
            _ => {}
        }
    }

    /// Turns `request` into the next page's request after `response`;
    /// `false` when there are no more pages.
    pub fn advance(&mut self, request: &mut RequestSpec, response: &Response) -> bool {
        let Some(config) = &self.config else {
            return false;
        };
        match config {
            PaginateConfig::Page {
                param,
                total_path,
                start,
                ..
            } => {
                if response.ended() {
                    return false;
                }
                if let Some(total) = total_path
                    .as_deref()
                    .and_then(|p| response.body.and_then(|b| number_at(b, p)))
                {
                    // Pages numbered from `start`: the last is start + total - 1.
                    if self.position >= *start + total - 1 {
                        return false;
                    }
                }
                self.position += 1;
                request.set_param(param, &self.position.to_string());
                true
            }
            PaginateConfig::Offset {
                param,
                limit,
                total_path,
                ..
            } => {
                if response.ended() {
                    return false;
                }
                self.position += *limit as i64;
                if let Some(total) = total_path
                    .as_deref()
                    .and_then(|p| response.body.and_then(|b| number_at(b, p)))
                    && self.position >= total
                {
                    return false;
                }
                request.set_param(param, &self.position.to_string());
                true
            }
            PaginateConfig::Cursor { cursor_path, param } => {
                let next = response.body.and_then(|b| lookup(b, cursor_path));
                match next.and_then(scalar_text) {
                    Some(cursor) if response.records > 0 => {
                        request.set_param(param, &cursor);
                        true
                    }
                    _ => false,
                }
            }
            PaginateConfig::NextUrl { next_path } => {
                let next = response
                    .body
                    .and_then(|b| lookup(b, next_path))
                    .and_then(scalar_text);
                follow(request, response.page, next.as_deref())
            }
            PaginateConfig::LinkHeader {} => {
                let next = response
                    .page
                    .headers
                    .get_all(reqwest::header::LINK)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(next_link);
                follow(request, response.page, next.as_deref())
            }
        }
    }
}

/// A hash of the records of a page (their JSON text), or of its whole body
/// when the records cannot be found; `None` for a page without records.
fn records_fingerprint(body: &[u8], path: Option<&str>) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    match super::records::extract_raw(body, path) {
        Some(raw) if raw.records.is_empty() => return None,
        Some(raw) => {
            for record in &raw.records {
                record.get().hash(&mut hasher);
            }
        }
        None => body.hash(&mut hasher),
    }
    Some(hasher.finish())
}

/// Points `request` at `next`, resolved against the page's URL; `false`
/// when there is none, or it leads back to the page just read.
fn follow(request: &mut RequestSpec, page: &Page, next: Option<&str>) -> bool {
    let Some(next) = next.filter(|n| !n.is_empty()) else {
        return false;
    };
    match page.url.join(next).or_else(|_| Url::parse(next)) {
        Ok(url) if url != page.url && url != request.url => {
            request.url = url;
            true
        }
        _ => false,
    }
}

/// The `rel="next"` target of a `Link` header value.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let is_next = params.split(';').any(|p| {
            let p = p.trim().to_ascii_lowercase();
            p == "rel=\"next\"" || p == "rel=next"
        });
        is_next.then(|| {
            target
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

fn number_at(body: &Value, path: &str) -> Option<i64> {
    match lookup(body, path)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A string or number as text; anything else is no value.
fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn page(url: &str) -> Page {
        Page {
            url: Url::parse(url).expect("url"),
            status: reqwest::StatusCode::OK,
            headers: Default::default(),
            body: Default::default(),
        }
    }

    #[test]
    fn page_numbers_stop_at_the_total() {
        let mut p = Paginator::new(Some(PaginateConfig::Page {
            param: "page".into(),
            start: 1,
            page_size: None,
            size_param: None,
            total_path: Some("meta.pages".into()),
        }));
        let mut req = RequestSpec::get(Url::parse("http://x/items").expect("url"));
        p.first(&mut req);
        assert_eq!(req.url.query(), Some("page=1"));
        let body = json!({"meta": {"pages": 2}});
        let pg = page("http://x/items?page=1");
        let resp = Response {
            page: &pg,
            body: Some(&body),
            records: 10,
        };
        assert!(p.advance(&mut req, &resp));
        assert_eq!(req.url.query(), Some("page=2"));
        assert!(!p.advance(&mut req, &resp));
    }

    #[test]
    fn a_page_with_the_records_of_the_page_before_is_a_repeat() {
        let mut p = Paginator::new(Some(PaginateConfig::Page {
            param: "page".into(),
            start: 1,
            page_size: None,
            size_param: None,
            total_path: None,
        }));
        let mut with = |body: &str| {
            let mut pg = page("http://x/items?page=1");
            pg.body = bytes::Bytes::from(body.to_string());
            p.repeats(&pg, Some("items"))
        };
        assert_eq!(with(r#"{"items": [{"id": 1}], "at": 1}"#), None);
        assert_eq!(with(r#"{"items": [{"id": 2}], "at": 2}"#), None);
        let warning = with(r#"{"items": [{"id": 2}], "at": 3}"#).expect("a repeat");
        assert!(
            warning.contains("paginate = { kind = \"page\", param = \"page\" }"),
            "{warning}"
        );
        // Empty pages never repeat.
        assert_eq!(with(r#"{"items": []}"#), None);
        assert_eq!(with(r#"{"items": []}"#), None);
    }

    #[test]
    fn link_header_next() {
        let header =
            r#"<https://api.x/items?page=2>; rel="next", <https://api.x/items?page=9>; rel="last""#;
        assert_eq!(
            next_link(header).as_deref(),
            Some("https://api.x/items?page=2")
        );
        assert_eq!(
            next_link(r#"<https://api.x/items?page=9>; rel="last""#),
            None
        );
    }

    #[test]
    fn cursor_ends_when_missing() {
        let mut p = Paginator::new(Some(PaginateConfig::Cursor {
            cursor_path: "next_cursor".into(),
            param: "cursor".into(),
        }));
        let mut req = RequestSpec::get(Url::parse("http://x/items").expect("url"));
        let pg = page("http://x/items");
        let body = json!({"next_cursor": "abc"});
        let resp = Response {
            page: &pg,
            body: Some(&body),
            records: 3,
        };
        assert!(p.advance(&mut req, &resp));
        assert_eq!(req.url.query(), Some("cursor=abc"));
        let body = json!({"next_cursor": null});
        let resp = Response {
            page: &pg,
            body: Some(&body),
            records: 3,
        };
        assert!(!p.advance(&mut req, &resp));
    }
}
