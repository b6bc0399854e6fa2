//! `kind = "scrape"`: rows out of HTML pages.
//!
//! A run starts from the configured listing URLs, takes one row per element
//! matching `rows` and each field inside it, and follows the `next` link
//! from page to page, never reading a listing page twice and at most
//! `max_pages` of them. With `detail`, each row's linked page is fetched
//! (several at once, up to `concurrency`) and its fields join the row. Pages
//! come over plain HTTP through the shared [`WebClient`] (retries, rate
//! limit, charset decoding) or, with `render = "browser"`, from a headless
//! Chromium. robots.txt is respected unless `robots = false`.
//!
//! Every row gets a `_url` column: the page it was read from. Scraping is
//! not incremental: every run reads the site again, and the last batch
//! carries a checkpoint saying how much was read.

mod browser;
mod config;
mod fetch;
mod html;
mod robots;
mod rows;

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt};
use reqwest::Url;

pub use self::config::{
    Action, DetailConfig, FieldSpec, PageRange, Render, ScrapeSourceConfig, URL_COLUMN,
};
pub use self::html::Extract;

use self::browser::{Browser, BrowserOptions, Interaction};
use self::config::Plan;
use self::fetch::Fetcher;
use self::robots::RobotsCache;
use self::rows::{Row, RowBuffer};
use super::http::client::ClientSettings;
use super::http::client::WebClient;
use super::{BatchSender, Source, SourceBatch, SourceContext};
use crate::core::diagnostic::SpannedError;
use crate::core::error::Result;
use crate::core::schema::SchemaFn;
use crate::core::{Mode, Workspace};
use crate::sources::SourceConnector;
use schemars::JsonSchema;
use toml::Spanned;
use toml::de::DeValue;

/// Scrapes a web site.
pub struct ScrapeSource {
    config: Arc<ScrapeSourceConfig>,
}

impl ScrapeSource {
    /// A scrape source for `config`.
    pub fn new(config: ScrapeSourceConfig) -> Self {
        ScrapeSource {
            config: Arc::new(config),
        }
    }

    /// The fetcher for a run: the HTTP client, robots.txt, and the browser
    /// when rendering in one.
    async fn fetcher(&self, ctx: &SourceContext) -> Result<Fetcher> {
        let config = &self.config;
        let options = config.client_options();
        let user_agent = options.user_agent.clone();
        let client = WebClient::new(options, None)?;
        let robots = config
            .robots
            .then(|| RobotsCache::new(client.http().clone(), &user_agent));
        let browser = match config.render {
            config::Render::Http => None,
            config::Render::Browser => Some(
                Browser::start(BrowserOptions {
                    webdriver_url: config.webdriver_url.clone(),
                    user_agent,
                    page_timeout: config.client.timeout,
                    wait_timeout: config.wait_timeout,
                    artifacts: ctx
                        .project_dir
                        .join(".flowline")
                        .join("artifacts")
                        .join(&ctx.pipeline),
                })
                .await?,
            ),
        };
        Ok(Fetcher::new(client, robots, config.delay, browser))
    }
}

#[async_trait::async_trait]
impl Source for ScrapeSource {
    async fn read(self: Box<Self>, ctx: SourceContext, out: BatchSender) -> Result<()> {
        let plan = self.config.plan()?;
        let fetcher = self.fetcher(&ctx).await?;
        let crawl = Crawl {
            config: &self.config,
            plan: &plan,
            fetcher: &fetcher,
            pipeline: &ctx.pipeline,
        };
        let result = crawl.run(&out).await;
        fetcher.shutdown().await;
        result
    }

    fn check(&self, _ctx: &SourceContext) -> Result<Vec<String>> {
        self.config.plan()?;
        // The start URLs are checked as the iterator is built; reading it is not needed.
        drop(self.config.start_urls()?);
        Ok(self.config.warnings())
    }
}

/// One run over the site.
struct Crawl<'a> {
    config: &'a ScrapeSourceConfig,
    plan: &'a Plan,
    fetcher: &'a Fetcher,
    pipeline: &'a str,
}

/// A page's URL without its fragment: two links differing only there are
/// the same page.
fn page_key(url: &Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.into()
}

impl Crawl<'_> {
    /// Reads every listing page, sends the rows in batches, and ends with
    /// a checkpoint. Returns early when `out` closes.
    async fn run(&self, out: &BatchSender) -> Result<()> {
        let config = self.config;
        let batch_size = config.batch_size.max(1);
        let mut buffer = RowBuffer::new(self.plan.schema.clone());
        let mut seen = HashSet::new();
        let mut pages = 0u64;
        let mut rows = 0u64;
        'starts: for start in config.start_urls()? {
            let mut next = Some(start?);
            while let Some(url) = next.take() {
                if !seen.insert(page_key(&url)) {
                    tracing::debug!(pipeline = %self.pipeline, "{url}: already read");
                    continue;
                }
                if pages >= config.max_pages {
                    tracing::warn!(
                        pipeline = %self.pipeline,
                        "max_pages = {} reached; {url} and later pages are not read",
                        config.max_pages
                    );
                    break 'starts;
                }
                let listing = Interaction {
                    wait_for: config.wait_for.as_deref(),
                    actions: &config.actions,
                };
                let Some(page) = self.fetcher.page(&url, listing).await? else {
                    continue;
                };
                pages += 1;
                seen.insert(page_key(&page.url));
                let scraped = html::scrape_listing(
                    &page.html,
                    &page.url,
                    &self.plan.rows,
                    &self.plan.fields,
                    self.plan.next.as_ref(),
                );
                if scraped.rows.is_empty() {
                    tracing::warn!(
                        pipeline = %self.pipeline,
                        "{}: nothing matches rows = {:?}",
                        page.url,
                        config.rows
                    );
                }
                next = scraped.next;
                let (page_rows, detail_bytes) = self.rows_of(&page.url, scraped.rows).await?;
                rows += page_rows.len() as u64;
                buffer.push(page_rows, page.bytes + detail_bytes);
                while buffer.len() >= batch_size {
                    if out.send(buffer.take(batch_size)?).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        let mut last = if buffer.is_empty() {
            SourceBatch::empty()
        } else {
            buffer.take(batch_size)?
        };
        last.checkpoint = Some(serde_json::json!({ "pages": pages, "rows": rows }));
        let _ = out.send(last).await;
        tracing::info!(pipeline = %self.pipeline, "scraped {rows} rows from {pages} listing pages");
        Ok(())
    }

    /// Completes a page's rows: room for the detail columns, the detail
    /// pages fetched (up to `concurrency` at once, in row order), `_url` set.
    /// Returns the rows and the bytes the detail pages took.
    async fn rows_of(
        &self,
        page: &Url,
        scraped: Vec<Vec<Option<String>>>,
    ) -> Result<(Vec<Row>, u64)> {
        let width = self.plan.schema.fields().len();
        let rows = scraped.into_iter().enumerate().map(|(i, mut values)| {
            values.resize(width, None);
            values[width - 1] = Some(page.to_string());
            Row {
                origin: format!("{page}#{i}"),
                values,
            }
        });
        if !self.plan.details.iter().any(|d| d.followed) {
            return Ok((rows.collect(), 0));
        }
        let detailed: Vec<(Row, u64)> =
            futures_util::stream::iter(rows.map(|row| self.with_details(page, row)))
                .buffered(self.config.client.concurrency.max(1))
                .try_collect()
                .await?;
        let bytes = detailed.iter().map(|(_, b)| b).sum();
        Ok((detailed.into_iter().map(|(row, _)| row).collect(), bytes))
    }

    /// Fetches a row's detail pages, level by level, filling their columns.
    /// A link resolves against the page it was read from.
    async fn with_details(&self, page: &Url, mut row: Row) -> Result<(Row, u64)> {
        let mut bytes = 0;
        // The URL of the listing page, then of each detail page read.
        let mut read_from = vec![page.clone()];
        for level in self.plan.details.iter().take_while(|d| d.followed) {
            let base = read_from
                .get(level.link_level)
                .cloned()
                .unwrap_or_else(|| page.clone());
            read_from.push(base.clone());
            let Some(link) = row.values[level.link].as_deref() else {
                continue;
            };
            let url = match base.join(link) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => url,
                _ => {
                    tracing::warn!(
                        pipeline = %self.pipeline,
                        "{}: {} = {link:?} is not a page URL; no detail page for this row",
                        row.origin,
                        level.link_name
                    );
                    continue;
                }
            };
            let interaction = Interaction {
                wait_for: level.wait_for.as_deref(),
                actions: &[],
            };
            let Some(detail) = self.fetcher.page(&url, interaction).await? else {
                continue;
            };
            bytes += detail.bytes;
            if let Some(last) = read_from.last_mut() {
                *last = detail.url.clone();
            }
            let values = html::scrape_detail(&detail.html, &detail.url, &level.fields);
            let slots = &mut row.values[level.offset..level.offset + values.len()];
            for (slot, value) in slots.iter_mut().zip(values) {
                *slot = value;
            }
        }
        Ok((row, bytes))
    }
}

impl SourceConnector for ScrapeSourceConfig {
    fn parse(table: Spanned<DeValue<'_>>) -> std::result::Result<Self, SpannedError> {
        let (client, config) = ClientSettings::read_with::<Self>(table)?;
        Ok(ScrapeSourceConfig { client, ..config })
    }

    fn shared_schemas() -> Vec<SchemaFn> {
        vec![ClientSettings::json_schema]
    }

    fn kind() -> &'static str {
        "scrape"
    }

    fn mode() -> Mode {
        Mode::Batch
    }

    fn summary() -> &'static str {
        "Rows scraped from HTML pages, also in headless Chromium"
    }

    fn validate(&self, workspace: &Workspace, pipeline: &str) -> Result<Vec<String>> {
        crate::sources::validate_batch(self, workspace, pipeline)
    }

    fn batch_reader(&self, workspace: &Workspace) -> Result<Box<dyn Source>> {
        let _ = workspace;
        Ok(Box::new(ScrapeSource::new(self.clone())))
    }
}
