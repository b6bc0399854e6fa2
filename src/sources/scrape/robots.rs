//! robots.txt: fetched once per site and kept for the run, read for the
//! agent named by the user agent's first word.
//!
//! Following RFC 9309: a missing robots.txt (any 4xx) allows everything; a
//! server error or an unreachable server stops the run, since flowline
//! cannot tell what the site allows (`robots = false` skips the check).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use reqwest::Url;
use texting_robots::Robot;
use tokio::sync::Mutex;

use crate::core::error::{Error, Result};

/// What a site's robots.txt says for our agent.
#[derive(Debug)]
pub enum Rules {
    /// No robots.txt: everything is allowed.
    AllowAll,
    /// The parsed rules.
    Parsed(Robot),
}

impl Rules {
    /// Parses a robots.txt body for `agent`; unreadable text allows everything.
    pub fn parse(agent: &str, body: &[u8]) -> Rules {
        match Robot::new(agent, body) {
            Ok(robot) => Rules::Parsed(robot),
            Err(e) => {
                tracing::warn!(
                    "robots.txt could not be read ({e}); treating it as allowing everything"
                );
                Rules::AllowAll
            }
        }
    }

    /// Whether `url` may be fetched.
    pub fn allows(&self, url: &Url) -> bool {
        match self {
            Rules::AllowAll => true,
            Rules::Parsed(robot) => robot.allowed(url.as_str()),
        }
    }

    /// The `Crawl-delay` asked for, if any.
    pub fn crawl_delay(&self) -> Option<Duration> {
        match self {
            Rules::AllowAll => None,
            Rules::Parsed(robot) => robot
                .delay
                .filter(|d| d.is_finite() && *d > 0.0)
                .map(|d| Duration::from_secs_f32(d.min(3600.0))),
        }
    }
}

/// The agent robots.txt groups are matched against: the product token of
/// the user agent (`flowline/0.1` → `flowline`).
pub fn agent_of(user_agent: &str) -> String {
    user_agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .find(|part| !part.is_empty())
        .unwrap_or("*")
        .to_string()
}

/// The robots.txt of every site a run visits, each fetched once.
pub struct RobotsCache {
    http: reqwest::Client,
    agent: String,
    sites: Mutex<HashMap<String, Arc<Rules>>>,
}

impl RobotsCache {
    /// A cache fetching with `http`, reading rules for `user_agent`.
    pub fn new(http: reqwest::Client, user_agent: &str) -> Self {
        RobotsCache {
            http,
            agent: agent_of(user_agent),
            sites: Mutex::new(HashMap::new()),
        }
    }

    /// The agent rules are read for, for messages.
    pub fn agent(&self) -> &str {
        &self.agent
    }

    /// The rules for `url`'s site, fetched on first use. The lock is held
    /// while fetching, so concurrent pages of one site wait for one fetch.
    pub async fn rules_for(&self, url: &Url) -> Result<Arc<Rules>> {
        let site = url.origin().ascii_serialization();
        let mut sites = self.sites.lock().await;
        if let Some(rules) = sites.get(&site) {
            return Ok(rules.clone());
        }
        let rules = Arc::new(self.fetch(url).await?);
        sites.insert(site, rules.clone());
        Ok(rules)
    }

    async fn fetch(&self, url: &Url) -> Result<Rules> {
        let robots_url = url
            .join("/robots.txt")
            .map_err(|e| Error::source_data(url.to_string(), format!("no robots.txt URL: {e}")))?;
        let unavailable = |why: String| Error::Http {
            request: format!("GET {robots_url}"),
            message: format!(
                "{why}; flowline does not scrape a site whose robots.txt it cannot read \
                 (set robots = false in [source] to skip the check)"
            ),
        };
        let response = self
            .http
            .get(robots_url.clone())
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_client_error() {
            tracing::debug!("{robots_url}: HTTP {status}; everything is allowed");
            return Ok(Rules::AllowAll);
        }
        if !status.is_success() {
            return Err(unavailable(format!("HTTP {status}")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        Ok(Rules::parse(&self.agent, &body))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    #[test]
    fn agent_is_the_product_token() {
        assert_eq!(agent_of("flowline/0.1.0"), "flowline");
        assert_eq!(agent_of("MyBot (+http://x)"), "MyBot");
        assert_eq!(agent_of(""), "*");
    }

    #[test]
    fn disallowed_paths_are_refused() {
        let rules = Rules::parse(
            "flowline",
            b"User-agent: *\nDisallow: /private/\nAllow: /private/open.html\n",
        );
        assert!(rules.allows(&url("http://x/shop/page/1.html")));
        assert!(!rules.allows(&url("http://x/private/list.html")));
        assert!(
            rules.allows(&url("http://x/private/open.html")),
            "longest match wins"
        );
        assert!(rules.allows(&url("http://x/robots.txt")));
        assert_eq!(rules.crawl_delay(), None);
    }

    #[test]
    fn a_group_for_our_agent_overrides_the_default() {
        let text = b"User-agent: *\nDisallow: /\n\nUser-agent: flowline\nDisallow: /admin\nCrawl-delay: 2\n";
        let ours = Rules::parse("flowline", text);
        assert!(ours.allows(&url("http://x/shop")));
        assert!(!ours.allows(&url("http://x/admin/users")));
        assert_eq!(ours.crawl_delay(), Some(Duration::from_secs(2)));
        let other = Rules::parse("otherbot", text);
        assert!(!other.allows(&url("http://x/shop")));
    }

    #[test]
    fn no_robots_allows_everything() {
        assert!(Rules::AllowAll.allows(&url("http://x/anything")));
        let empty = Rules::parse("flowline", b"");
        assert!(empty.allows(&url("http://x/anything")));
    }
}
