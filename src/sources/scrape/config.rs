//! `[source] kind = "scrape"`: the configuration as written, and the plan
//! it compiles into (parsed selectors and regexes, the column list, the
//! listing URLs to start from).

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::time::Duration;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use regex::Regex;
use reqwest::Url;
use scraper::Selector;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::html::{self, Extract, FieldRule};
use crate::core::error::{Error, Result};
use crate::data::types::parse_type;
use crate::sources::http::client::{ClientOptions, ClientSettings};

/// The column holding the URL of the page each row came from.
pub const URL_COLUMN: &str = "_url";

/// `[source] kind = "scrape"`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrapeSourceConfig {
    /// The first listing page. With `pages`, a template whose `{page}` is
    /// replaced by each page number.
    #[serde(default)]
    pub url: Option<String>,
    /// Several listing pages to start from (templates too, with `pages`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// The page numbers a `{page}` template runs over: `{ from = 1, to = 20 }`.
    #[serde(default)]
    pub pages: Option<PageRange>,
    /// CSS selector of the rows: each element it matches is one row.
    pub rows: String,
    /// CSS selector of the link to the next listing page; the `href` of its
    /// first match is followed. Default: no pagination.
    #[serde(default)]
    pub next: Option<String>,
    /// The columns: each a selector inside the row (`".price"`, `".name@href"`
    /// for an attribute) or a table with `selector`, `extract`, `regex` and
    /// `type`. Columns are ordered by name, then the detail columns, then `_url`.
    pub fields: BTreeMap<String, FieldSpec>,
    /// A page fetched for each row, whose fields are added to the row.
    #[serde(default)]
    pub detail: Option<DetailConfig>,
    /// Listing pages read, at most, over all start URLs. Default 1000.
    #[serde(default = "default_max_pages")]
    pub max_pages: u64,
    /// Levels of detail pages followed (1: a row's detail page; 0: none). Default 1.
    #[serde(default = "default_max_depth")]
    pub max_depth: u32,
    /// Wait between two requests to the same site. Default `0s`; a longer
    /// `Crawl-delay` in robots.txt wins.
    #[serde(default, with = "humantime_serde")]
    #[schemars(with = "String")]
    pub delay: Duration,
    /// Respect robots.txt: a disallowed URL is skipped with a warning. Default true.
    #[serde(default = "default_true")]
    pub robots: bool,
    /// Rows per batch. Default 10000.
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
    /// How pages are loaded: `"http"` (default) or `"browser"`, a headless
    /// Chromium that runs the page's JavaScript.
    #[serde(default)]
    pub render: Render,
    /// Browser: wait until this selector is on a listing page before reading it.
    #[serde(default)]
    pub wait_for: Option<String>,
    /// Browser: how long `wait_for` waits. Default `10s`.
    #[serde(default = "default_wait_timeout", with = "humantime_serde")]
    #[schemars(with = "String")]
    pub wait_timeout: Duration,
    /// Browser: steps run on each listing page after `wait_for`, in order.
    #[serde(default)]
    pub actions: Vec<Action>,
    /// Browser: a running WebDriver server. Default: start a local
    /// `chromedriver` with a headless Chromium for the run.
    #[serde(default)]
    pub webdriver_url: Option<String>,
    /// `timeout`, `retries`, `backoff`, `requests_per_second`,
    /// `concurrency`, `user_agent`, `headers`: the HTTP client's settings
    /// (`headers` go with plain HTTP requests; a browser paces itself by
    /// `delay` and loads one page at a time).
    #[serde(skip)]
    pub client: ClientSettings,
}

/// `pages = { from = 1, to = 20 }`: the numbers a `{page}` template takes.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PageRange {
    /// The first page number.
    pub from: i64,
    /// The last page number, included.
    pub to: i64,
    /// The step between page numbers. Default 1.
    #[serde(default = "default_step")]
    pub step: i64,
}

/// `detail = { link = "link", fields = { ... } }`.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetailConfig {
    /// The field (of the row, or of a shallower detail page) holding the
    /// detail page's URL, absolute or relative to the page it came from.
    pub link: String,
    /// The columns read from the detail page, selectors over the whole page.
    pub fields: BTreeMap<String, FieldSpec>,
    /// Browser: wait until this selector is on the detail page.
    #[serde(default)]
    pub wait_for: Option<String>,
    /// A further page linked from this one's fields, within `max_depth`.
    #[serde(default)]
    pub detail: Option<Box<DetailConfig>>,
}

/// How pages are loaded.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Render {
    /// A plain HTTP GET; the HTML as the server sends it.
    #[default]
    Http,
    /// A headless browser; the DOM once scripts ran.
    Browser,
}

/// A browser step on a listing page.
#[derive(Debug, Clone, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// `{ click = "button.more" }`: clicks the first match.
    Click(String),
    /// `{ scroll = "bottom" }`, `"top"`, or a selector to scroll into view.
    Scroll(String),
    /// `{ type = { selector = "input#q", text = "abc" } }`: types into the first match.
    Type {
        /// Where to type.
        selector: String,
        /// What to type.
        text: String,
    },
    /// `{ wait = "500ms" }`: pauses.
    Wait(
        #[serde(with = "humantime_serde")]
        #[schemars(with = "String")]
        Duration,
    ),
    /// `{ wait_for = ".x" }`: waits (up to `wait_timeout`) for a selector.
    WaitFor(String),
}

/// One field as configured: shorthand `".name@href"` or a table.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSpec {
    /// CSS selector inside the row; `""` or `"."` for the row itself.
    pub selector: String,
    /// What to take from the element.
    pub extract: Extract,
    /// A regex whose first capture group (or whole match) is kept.
    pub regex: Option<String>,
    /// The column's type (`bigint`, `double`, `decimal(10,2)`, `date`...);
    /// default text.
    pub type_name: Option<String>,
}

/// A field written as a table.
#[derive(Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct FieldTable {
    /// CSS selector; the `@attr` shorthand works here too when `extract` is not given.
    selector: String,
    /// `text`, `html`, `outer_html` or `attr:<name>`.
    #[serde(default)]
    extract: Option<String>,
    /// Narrows the value to a capture.
    #[serde(default)]
    regex: Option<String>,
    /// The column's type.
    #[serde(default, rename = "type")]
    type_name: Option<String>,
}

impl FieldSpec {
    /// A field from its shorthand: a selector, `@attr` taking an attribute.
    pub fn shorthand(spec: &str) -> FieldSpec {
        let (selector, attr) = html::split_shorthand(spec);
        FieldSpec {
            selector: selector.to_string(),
            extract: attr.map_or(Extract::Text, |a| Extract::Attr(a.to_string())),
            regex: None,
            type_name: None,
        }
    }
}

/// What [`FieldSpec`]'s parser accepts: a shorthand selector or a
/// `FieldTable`.
impl schemars::JsonSchema for FieldSpec {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "FieldSpec".into()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let table = generator.subschema_for::<FieldTable>();
        schemars::json_schema!({
            "description": "A CSS selector inside the row (`\".price\"`; `\".name@href\"` takes an attribute; `\"\"` or `\".\"` the row itself), or a table with `selector`, `extract`, `regex` and `type`.",
            "anyOf": [{ "type": "string" }, table],
        })
    }
}

impl<'de> Deserialize<'de> for FieldSpec {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SpecVisitor;

        impl<'de> Visitor<'de> for SpecVisitor {
            type Value = FieldSpec;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a CSS selector (\".price\", \".name@href\") or a table with `selector`",
                )
            }

            fn visit_str<E: de::Error>(self, spec: &str) -> Result<FieldSpec, E> {
                Ok(FieldSpec::shorthand(spec))
            }

            fn visit_map<M: MapAccess<'de>>(self, map: M) -> Result<FieldSpec, M::Error> {
                let table = FieldTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                let mut spec = match &table.extract {
                    Some(extract) => FieldSpec {
                        selector: table.selector.trim().to_string(),
                        extract: Extract::parse(extract).map_err(de::Error::custom)?,
                        regex: None,
                        type_name: None,
                    },
                    None => FieldSpec::shorthand(&table.selector),
                };
                spec.regex = table.regex;
                spec.type_name = table.type_name;
                Ok(spec)
            }
        }

        deserializer.deserialize_any(SpecVisitor)
    }
}

fn default_max_pages() -> u64 {
    1000
}
fn default_max_depth() -> u32 {
    1
}
fn default_true() -> bool {
    true
}
fn default_batch_size() -> usize {
    10_000
}
fn default_wait_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_step() -> i64 {
    1
}

/// The part of a URL template a `pages` range fills with each number.
const PAGE_SLOT: &str = "{page}";

/// A detail level, compiled.
#[derive(Debug, Clone)]
pub struct DetailPlan {
    /// Index, in the row, of the field holding the link.
    pub link: usize,
    /// The link field's name, for messages.
    pub link_name: String,
    /// The page the link field is read from: 0 the listing, `n` detail level `n`.
    pub link_level: usize,
    /// Index, in the row, of this level's first field.
    pub offset: usize,
    /// This level's fields.
    pub fields: Vec<FieldRule>,
    /// Browser: the selector to wait for.
    pub wait_for: Option<String>,
    /// Whether `max_depth` lets this level be fetched.
    pub followed: bool,
}

/// A config compiled: selectors parsed, columns laid out.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The row selector.
    pub rows: Selector,
    /// The `next` link selector.
    pub next: Option<Selector>,
    /// The listing fields, in column order.
    pub fields: Vec<FieldRule>,
    /// The detail levels, shallowest first.
    pub details: Vec<DetailPlan>,
    /// Every column: listing fields, detail fields, then `_url`.
    pub schema: SchemaRef,
}

impl ScrapeSourceConfig {
    /// Compiles the config; errors name the offending key.
    pub fn plan(&self) -> Result<Plan> {
        let rows = html::parse_selector(&self.rows)
            .map_err(|e| config_error("rows", e))?
            .ok_or_else(|| config_error("rows", "must select the row elements, not be empty"))?;
        let next = match &self.next {
            Some(next) => Some(
                html::parse_selector(next)
                    .map_err(|e| config_error("next", e))?
                    .ok_or_else(|| config_error("next", "must select a link, not be empty"))?,
            ),
            None => None,
        };
        if self.fields.is_empty() {
            return Err(config_error(
                "fields",
                "names no field; add e.g. fields = { name = \".name\" }",
            ));
        }
        let mut columns: Vec<Field> = Vec::new();
        let fields = compile_fields(&self.fields, "fields", &mut columns)?;
        let mut details = Vec::new();
        let mut level = self.detail.as_ref();
        let mut key = "detail".to_string();
        while let Some(detail) = level {
            let link = columns
                .iter()
                .position(|c| c.name() == &detail.link)
                .ok_or_else(|| {
                    config_error(
                        &format!("{key}.link"),
                        format!(
                            "{:?} is not a field read before this page (one of {})",
                            detail.link,
                            columns
                                .iter()
                                .map(|c| c.name().as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )
                })?;
            let link_level = details
                .iter()
                .rposition(|d: &DetailPlan| link >= d.offset)
                .map_or(0, |i| i + 1);
            let offset = columns.len();
            let rules = compile_fields(&detail.fields, &format!("{key}.fields"), &mut columns)?;
            if let Some(wait_for) = &detail.wait_for {
                html::parse_selector(wait_for)
                    .map_err(|e| config_error(&format!("{key}.wait_for"), e))?;
            }
            details.push(DetailPlan {
                link,
                link_name: detail.link.clone(),
                link_level,
                offset,
                fields: rules,
                wait_for: detail.wait_for.clone(),
                followed: details.len() < self.max_depth as usize,
            });
            level = detail.detail.as_deref();
            key.push_str(".detail");
        }
        columns.push(Field::new(URL_COLUMN, DataType::Utf8, true));
        if let Some(wait_for) = &self.wait_for {
            html::parse_selector(wait_for).map_err(|e| config_error("wait_for", e))?;
        }
        for (i, action) in self.actions.iter().enumerate() {
            let selector = match action {
                Action::Click(s) | Action::WaitFor(s) => Some(s),
                Action::Type { selector, .. } => Some(selector),
                Action::Scroll(s) if s != "top" && s != "bottom" => Some(s),
                Action::Scroll(_) | Action::Wait(_) => None,
            };
            if let Some(selector) = selector {
                html::parse_selector(selector)
                    .map_err(|e| config_error(&format!("actions[{i}]"), e))?;
            }
        }
        if let Some(url) = &self.webdriver_url {
            Url::parse(url).map_err(|e| config_error("webdriver_url", format!("{url:?}: {e}")))?;
        }
        if self.batch_size == 0 {
            return Err(config_error("batch_size", "must be at least 1"));
        }
        Ok(Plan {
            rows,
            next,
            fields,
            details,
            schema: std::sync::Arc::new(Schema::new(columns)),
        })
    }

    /// Warnings about settings that have no effect.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.render == Render::Http {
            if self.wait_for.is_some() || !self.actions.is_empty() {
                warnings.push(
                    "[source] wait_for and actions need render = \"browser\"; they are ignored"
                        .to_string(),
                );
            }
            if self.webdriver_url.is_some() {
                warnings.push(
                    "[source] webdriver_url is ignored without render = \"browser\"".to_string(),
                );
            }
        }
        let mut depth = 0;
        let mut level = self.detail.as_ref();
        while let Some(detail) = level {
            depth += 1;
            level = detail.detail.as_deref();
        }
        if depth > self.max_depth {
            warnings.push(format!(
                "[source] detail pages are nested {depth} deep but max_depth = {}: the deeper ones are not fetched and their columns stay empty",
                self.max_depth
            ));
        }
        warnings
    }

    /// The HTTP client's settings.
    pub fn client_options(&self) -> ClientOptions {
        self.client.options()
    }

    /// The listing pages to start from, in order: each of `url` and `urls`,
    /// expanded over `pages` when given. Lazy, so a long range costs nothing
    /// past `max_pages`.
    pub fn start_urls(&self) -> Result<impl Iterator<Item = Result<Url>> + Send + '_> {
        let templates: Vec<&String> = self.url.iter().chain(&self.urls).collect();
        if templates.is_empty() {
            return Err(config_error(
                "url",
                "is missing: set url = \"https://...\" or urls = [...]",
            ));
        }
        match &self.pages {
            Some(range) => {
                if range.step < 1 {
                    return Err(config_error("pages.step", "must be at least 1"));
                }
                if let Some(t) = templates.iter().find(|t| !t.contains(PAGE_SLOT)) {
                    return Err(config_error(
                        "pages",
                        format!("is set but the url {t:?} does not contain {PAGE_SLOT}"),
                    ));
                }
            }
            None => {
                if let Some(t) = templates.iter().find(|t| t.contains(PAGE_SLOT)) {
                    return Err(config_error(
                        "url",
                        format!("{t:?} contains {PAGE_SLOT}: set pages = {{ from = 1, to = 10 }}"),
                    ));
                }
            }
        }
        // Every template parsed once up front, so a typo fails before any request.
        for template in &templates {
            parse_url(&template.replace(PAGE_SLOT, "1"))?;
        }
        let range = self.pages.clone();
        Ok(templates.into_iter().flat_map(move |template| {
            let numbers: Box<dyn Iterator<Item = Option<i64>> + Send> = match &range {
                Some(r) => Box::new(
                    (r.from..=r.to)
                        .step_by(usize::try_from(r.step).unwrap_or(1))
                        .map(Some),
                ),
                None => Box::new(std::iter::once(None)),
            };
            numbers.map(move |page| match page {
                Some(n) => parse_url(&template.replace(PAGE_SLOT, &n.to_string())),
                None => parse_url(template),
            })
        }))
    }
}

/// Parses a start URL, requiring http or https.
fn parse_url(url: &str) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| config_error("url", format!("{url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(config_error(
            "url",
            format!("{url:?}: only http and https pages can be scraped"),
        ));
    }
    Ok(parsed)
}

/// Compiles `fields` (the table at `key`) into rules, appending their
/// columns to `columns`; a name already taken is an error.
fn compile_fields(
    fields: &BTreeMap<String, FieldSpec>,
    key: &str,
    columns: &mut Vec<Field>,
) -> Result<Vec<FieldRule>> {
    let taken: HashSet<String> = columns.iter().map(|c| c.name().clone()).collect();
    let mut rules = Vec::with_capacity(fields.len());
    for (name, spec) in fields {
        let at = format!("{key}.{name}");
        if name == URL_COLUMN {
            return Err(config_error(
                &at,
                format!(
                    "{URL_COLUMN} is the column flowline fills with the page URL; pick another name"
                ),
            ));
        }
        if taken.contains(name) {
            return Err(config_error(
                &at,
                "a field of that name is already read from an earlier page",
            ));
        }
        let selector = html::parse_selector(&spec.selector).map_err(|e| config_error(&at, e))?;
        let regex = spec
            .regex
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| config_error(&format!("{at}.regex"), e))?;
        let data_type = match &spec.type_name {
            Some(name) => parse_type(name).map_err(|e| config_error(&format!("{at}.type"), e))?,
            None => DataType::Utf8,
        };
        columns.push(Field::new(name, data_type, true));
        rules.push(FieldRule {
            name: name.clone(),
            selector,
            extract: spec.extract.clone(),
            regex,
        });
    }
    Ok(rules)
}

/// `[source] key: message`.
fn config_error(key: &str, message: impl fmt::Display) -> Error {
    Error::Config(format!("[source] {key}: {message}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(toml_text: &str) -> ScrapeSourceConfig {
        crate::sources::parse_for_test(toml_text).expect("config parses")
    }

    #[test]
    fn fields_read_shorthand_and_tables() {
        let c = config(
            r#"
            url = "http://x/"
            rows = "li"
            fields = { name = ".name", link = ".name@href", price = { selector = ".price", regex = "([0-9.]+)", type = "double" }, raw = { selector = ".", extract = "html" } }
            "#,
        );
        assert_eq!(c.fields["link"], FieldSpec::shorthand(".name@href"));
        assert_eq!(c.fields["link"].extract, Extract::Attr("href".into()));
        assert_eq!(c.fields["price"].type_name.as_deref(), Some("double"));
        assert_eq!(c.fields["raw"].extract, Extract::Html);
        let plan = c.plan().expect("plan");
        let names: Vec<&str> = plan
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(names, ["link", "name", "price", "raw", "_url"]);
        assert_eq!(plan.schema.field(2).data_type(), &DataType::Float64);
    }

    #[test]
    fn bad_keys_are_named() {
        let err = crate::sources::parse_for_test::<ScrapeSourceConfig>(
            "url = \"http://x/\"\nrows = \"li\"\nfields = { a = { selector = \".a\", extract = \"inner\" } }\n",
        )
        .expect_err("bad extract");
        assert!(err.to_string().contains("attr:<name>"), "{err}");
        let err = crate::sources::parse_for_test::<ScrapeSourceConfig>(
            "url = \"http://x/\"\nrows = \"li\"\nfields = { a = { selector = \".a\", typ = \"int\" } }\n",
        )
        .expect_err("unknown key");
        assert!(err.to_string().contains("typ"), "{err}");
        let c = config(
            "url = \"http://x/\"\nrows = \"li\"\nfields = { a = { selector = \".a\", type = \"money\" } }\n",
        );
        let err = c.plan().expect_err("bad type").to_string();
        assert!(err.contains("fields.a.type"), "{err}");
        let c = config("url = \"http://x/\"\nrows = \"li[\"\nfields = { a = \".a\" }\n");
        assert!(
            c.plan()
                .expect_err("bad selector")
                .to_string()
                .contains("[source] rows")
        );
    }

    #[test]
    fn details_chain_links_to_earlier_fields() {
        let c = config(
            r##"
            url = "http://x/"
            rows = "li"
            fields = { link = "a@href" }
            detail = { link = "link", fields = { sku = "#sku" }, detail = { link = "maker", fields = {} } }
            "##,
        );
        let err = c.plan().expect_err("maker is unknown").to_string();
        assert!(
            err.contains("detail.detail.link") && err.contains("link, sku"),
            "{err}"
        );
        let c = config(
            "url = \"http://x/\"\nrows = \"li\"\nfields = { link = \"a@href\" }\ndetail = { link = \"link\", fields = { link = \".x\" } }\n",
        );
        assert!(
            c.plan()
                .expect_err("duplicate")
                .to_string()
                .contains("detail.fields.link")
        );
    }

    #[test]
    fn actions_parse() {
        let c = config(
            r#"
            url = "http://x/"
            rows = "li"
            fields = { a = ".a" }
            actions = [ { click = "button.more" }, { scroll = "bottom" }, { type = { selector = "input#q", text = "abc" } }, { wait = "500ms" }, { wait_for = ".x" } ]
            "#,
        );
        assert_eq!(
            c.actions,
            vec![
                Action::Click("button.more".into()),
                Action::Scroll("bottom".into()),
                Action::Type {
                    selector: "input#q".into(),
                    text: "abc".into()
                },
                Action::Wait(Duration::from_millis(500)),
                Action::WaitFor(".x".into()),
            ]
        );
    }

    #[test]
    fn page_templates_expand_lazily() {
        let c = config(
            "url = \"http://x/page/{page}.html\"\npages = { from = 2, to = 6, step = 2 }\nrows = \"li\"\nfields = { a = \".a\" }\n",
        );
        let urls: Vec<String> = c
            .start_urls()
            .expect("urls")
            .map(|u| u.expect("url").to_string())
            .collect();
        assert_eq!(
            urls,
            [
                "http://x/page/2.html",
                "http://x/page/4.html",
                "http://x/page/6.html"
            ]
        );
        let c =
            config("url = \"http://x/page/{page}.html\"\nrows = \"li\"\nfields = { a = \".a\" }\n");
        assert!(c.start_urls().is_err(), "a template needs pages");
        let c = config("url = \"ftp://x/\"\nrows = \"li\"\nfields = { a = \".a\" }\n");
        assert!(c.start_urls().is_err());
    }
}
