//! Getting a page's HTML, politely: robots.txt asked first, requests to one
//! site spaced by the configured delay (or a longer `Crawl-delay`), and the
//! page loaded over plain HTTP (retries, charset decoding) or in the browser.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use reqwest::Url;
use tokio::sync::Mutex;

use super::browser::{Browser, Interaction};
use super::robots::RobotsCache;
use crate::core::error::Result;
use crate::sources::http::client::{RequestSpec, WebClient};

/// A page's HTML and where it finally came from.
#[derive(Debug, Clone)]
pub struct Fetched {
    /// The URL that answered (after redirects).
    pub url: Url,
    /// The HTML, decoded.
    pub html: String,
    /// Bytes read.
    pub bytes: u64,
}

/// Spaces requests to each site by a delay.
struct Pacer {
    next: Mutex<HashMap<String, Instant>>,
}

impl Pacer {
    /// Waits for `site`'s next slot, `delay` after the previous one.
    async fn wait(&self, site: String, delay: Duration) {
        if delay.is_zero() {
            return;
        }
        let slot = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let slot = next.get(&site).map_or(now, |at| (*at).max(now));
            next.insert(site, slot + delay);
            slot
        };
        tokio::time::sleep_until(slot.into()).await;
    }
}

/// Fetches pages for a scrape.
pub struct Fetcher {
    client: WebClient,
    robots: Option<RobotsCache>,
    delay: Duration,
    pacer: Pacer,
    browser: Option<Browser>,
}

impl Fetcher {
    /// A fetcher over `client`, asking `robots` first when given, and
    /// loading pages in `browser` when given.
    pub fn new(
        client: WebClient,
        robots: Option<RobotsCache>,
        delay: Duration,
        browser: Option<Browser>,
    ) -> Self {
        Fetcher {
            client,
            robots,
            delay,
            pacer: Pacer {
                next: Mutex::new(HashMap::new()),
            },
            browser,
        }
    }

    /// The page at `url`, or `None` when robots.txt disallows it.
    pub async fn page(&self, url: &Url, interaction: Interaction<'_>) -> Result<Option<Fetched>> {
        let mut delay = self.delay;
        if let Some(robots) = &self.robots {
            let rules = robots.rules_for(url).await?;
            if !rules.allows(url) {
                tracing::warn!(
                    "skipping {url}: robots.txt disallows it for user agent {:?}",
                    robots.agent()
                );
                return Ok(None);
            }
            delay = delay.max(rules.crawl_delay().unwrap_or_default());
        }
        self.pacer
            .wait(url.origin().ascii_serialization(), delay)
            .await;
        if let Some(browser) = &self.browser {
            let rendered = browser.load(url, interaction).await?;
            return Ok(Some(Fetched {
                url: rendered.url,
                bytes: rendered.html.len() as u64,
                html: rendered.html,
            }));
        }
        let page = self.client.fetch(&RequestSpec::get(url.clone())).await?;
        Ok(Some(Fetched {
            html: page.text(),
            bytes: page.body.len() as u64,
            url: page.url,
        }))
    }

    /// Ends the browser session, if there is one.
    pub async fn shutdown(self) {
        if let Some(browser) = self.browser {
            browser.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_pacer_spaces_requests_per_site() {
        let pacer = Pacer {
            next: Mutex::new(HashMap::new()),
        };
        let started = Instant::now();
        let delay = Duration::from_millis(60);
        pacer.wait("http://a".into(), delay).await;
        pacer.wait("http://b".into(), delay).await;
        assert!(
            started.elapsed() < delay,
            "first requests to each site go at once"
        );
        pacer.wait("http://a".into(), delay).await;
        pacer.wait("http://a".into(), delay).await;
        assert!(started.elapsed() >= delay * 2);
    }
}
