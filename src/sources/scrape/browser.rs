//! `render = "browser"`: pages loaded in a headless Chromium over
//! WebDriver, so that what their scripts build is scraped too.
//!
//! Without `webdriver_url`, a local `chromedriver` is started on a free port
//! for the run, with a fresh profile folder; a guard kills it and removes the
//! profile when the run ends, however it ends. A page that fails (a
//! `wait_for` that times out, an action whose element never comes) leaves a
//! screenshot and the page's HTML under `.flowline/artifacts/<pipeline>/`,
//! and the error names both files.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fantoccini::error::CmdError;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::Url;
use serde_json::{Value, json};

use super::config::Action;
use crate::core::error::{ConnectionFailure, Error, Result};

/// How long a local chromedriver may take to answer.
const DRIVER_START: Duration = Duration::from_secs(30);

/// How often `wait_for` looks for its selector.
const POLL: Duration = Duration::from_millis(100);

/// Chromium's flags: headless, sandbox off (containers), nothing phoning home.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1024",
];

/// What the browser needs to start.
#[derive(Debug, Clone)]
pub struct BrowserOptions {
    /// A running WebDriver server; `None` starts a local chromedriver.
    pub webdriver_url: Option<String>,
    /// The `User-Agent` the browser sends.
    pub user_agent: String,
    /// The page-load timeout.
    pub page_timeout: Duration,
    /// How long `wait_for` and actions wait for their element.
    pub wait_timeout: Duration,
    /// Where failure screenshots and pages are saved.
    pub artifacts: PathBuf,
}

/// What to do on a page once it has loaded.
#[derive(Debug, Clone, Copy, Default)]
pub struct Interaction<'a> {
    /// Wait until this selector is present.
    pub wait_for: Option<&'a str>,
    /// Then run these steps.
    pub actions: &'a [Action],
}

/// A page as the browser shows it.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The URL finally shown (after redirects).
    pub url: Url,
    /// The DOM, serialised.
    pub html: String,
}

/// A WebDriver session, and the chromedriver behind it when flowline
/// started one. One page at a time.
pub struct Browser {
    client: Client,
    driver: Option<Driver>,
    turn: tokio::sync::Mutex<()>,
    wait_timeout: Duration,
    artifacts: Artifacts,
}

impl Browser {
    /// Starts a session (and a local chromedriver when no URL is given).
    pub async fn start(options: BrowserOptions) -> Result<Browser> {
        let (driver, endpoint) = match &options.webdriver_url {
            Some(url) => (None, url.clone()),
            None => {
                let driver = Driver::spawn()?;
                driver.ready().await?;
                let endpoint = driver.endpoint();
                (Some(driver), endpoint)
            }
        };
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!("--user-agent={}", options.user_agent));
        if let Some(driver) = &driver {
            args.push(format!("--user-data-dir={}", driver.profile.display()));
        }
        let mut chrome = json!({ "args": args });
        // A remote WebDriver server knows where its own browser is.
        if driver.is_some()
            && let Some(binary) = chromium_binary()
        {
            chrome["binary"] = json!(binary.display().to_string());
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), chrome);
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities)
            .connect(&endpoint)
            .await
            .map_err(|e| {
                let failure = ConnectionFailure::of(&e);
                Error::connection(
                    format!("render = \"browser\": the WebDriver at {endpoint}"),
                    failure,
                    format!("could not start a browser session: {e}"),
                    Some(Box::new(e)),
                )
            })?;
        let browser = Browser {
            client,
            driver,
            turn: tokio::sync::Mutex::new(()),
            wait_timeout: options.wait_timeout,
            artifacts: Artifacts::new(options.artifacts),
        };
        let timeouts = TimeoutConfiguration::new(
            Some(options.page_timeout),
            Some(options.page_timeout),
            Some(Duration::ZERO),
        );
        if let Err(e) = browser.client.update_timeouts(timeouts).await {
            browser.shutdown().await;
            return Err(Error::client("browser: setting timeouts", e.to_string(), e));
        }
        Ok(browser)
    }

    /// Loads `url`, waits and acts as `interaction` says, and returns the
    /// DOM. On failure, saves a screenshot and the page, and says where.
    pub async fn load(&self, url: &Url, interaction: Interaction<'_>) -> Result<Rendered> {
        let _turn = self.turn.lock().await;
        if let Err(failure) = self.drive(url, interaction).await {
            return Err(self.failed(url, failure).await);
        }
        let html = self
            .client
            .source()
            .await
            .map_err(|e| Error::client(format!("browser: reading {url}"), e.to_string(), e))?;
        let shown = self
            .client
            .current_url()
            .await
            .unwrap_or_else(|_| url.clone());
        Ok(Rendered { url: shown, html })
    }

    /// Navigates, waits and runs the actions; the error says which step failed.
    async fn drive(&self, url: &Url, interaction: Interaction<'_>) -> Result<(), String> {
        self.client
            .goto(url.as_str())
            .await
            .map_err(|e| format!("loading the page: {}", self.describe(&e)))?;
        if let Some(selector) = interaction.wait_for {
            self.wait_for(selector)
                .await
                .map_err(|e| format!("waiting for {selector:?}: {}", self.describe(&e)))?;
        }
        for (i, action) in interaction.actions.iter().enumerate() {
            self.act(action)
                .await
                .map_err(|e| format!("actions[{i}] ({}): {}", show(action), self.describe(&e)))?;
        }
        Ok(())
    }

    async fn wait_for(&self, selector: &str) -> Result<fantoccini::elements::Element, CmdError> {
        self.client
            .wait()
            .at_most(self.wait_timeout)
            .every(POLL)
            .for_element(Locator::Css(selector))
            .await
    }

    async fn act(&self, action: &Action) -> Result<(), CmdError> {
        match action {
            Action::Click(selector) => self.wait_for(selector).await?.click().await,
            Action::Type { selector, text } => self.wait_for(selector).await?.send_keys(text).await,
            Action::Scroll(to) if to == "bottom" => self
                .client
                .execute(
                    "window.scrollTo(0, document.body.scrollHeight);",
                    Vec::new(),
                )
                .await
                .map(drop),
            Action::Scroll(to) if to == "top" => self
                .client
                .execute("window.scrollTo(0, 0);", Vec::new())
                .await
                .map(drop),
            Action::Scroll(selector) => {
                let element = self.wait_for(selector).await?;
                let element = serde_json::to_value(&element).map_err(CmdError::Json)?;
                self.client
                    .execute("arguments[0].scrollIntoView();", vec![element])
                    .await
                    .map(drop)
            }
            Action::Wait(pause) => {
                tokio::time::sleep(*pause).await;
                Ok(())
            }
            Action::WaitFor(selector) => self.wait_for(selector).await.map(drop),
        }
    }

    /// A WebDriver error in words; a timeout says how long it waited.
    fn describe(&self, error: &CmdError) -> String {
        match error {
            CmdError::WaitTimeout => format!(
                "not found within {} (wait_timeout)",
                humantime::format_duration(self.wait_timeout)
            ),
            other => other.to_string(),
        }
    }

    /// Saves what the browser shows and builds the error naming the files.
    async fn failed(&self, url: &Url, failure: String) -> Error {
        let screenshot = self.client.screenshot().await.map_err(|e| e.to_string());
        let page = self.client.source().await.map_err(|e| e.to_string());
        let saved = self.artifacts.save(screenshot, page);
        Error::source_data(format!("browser: {url}"), format!("{failure}; {saved}"))
    }

    /// Ends the session (closing Chromium), then stops chromedriver.
    pub async fn shutdown(self) {
        if let Err(e) = self.client.close().await {
            tracing::debug!("closing the browser session: {e}");
        }
        drop(self.driver);
    }
}

/// A short spelling of an action, for messages.
fn show(action: &Action) -> String {
    match action {
        Action::Click(s) => format!("click {s:?}"),
        Action::Scroll(s) => format!("scroll {s:?}"),
        Action::Type { selector, .. } => format!("type into {selector:?}"),
        Action::Wait(d) => format!("wait {}", humantime::format_duration(*d)),
        Action::WaitFor(s) => format!("wait_for {s:?}"),
    }
}

/// The folder failure screenshots and pages go to, numbered within a run.
struct Artifacts {
    dir: PathBuf,
    count: AtomicUsize,
}

impl Artifacts {
    fn new(dir: PathBuf) -> Self {
        Artifacts {
            dir,
            count: AtomicUsize::new(0),
        }
    }

    /// Writes `<UTC timestamp>-<n>.png` and `.html`; says what was saved
    /// where, or why it could not be.
    fn save(
        &self,
        screenshot: std::result::Result<Vec<u8>, String>,
        page: std::result::Result<String, String>,
    ) -> String {
        let n = self.count.fetch_add(1, Ordering::Relaxed) + 1;
        let stem = format!("{}-{n}", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
        if let Err(e) = std::fs::create_dir_all(&self.dir) {
            return format!("could not save a screenshot: {}: {e}", self.dir.display());
        }
        let png = self.dir.join(format!("{stem}.png"));
        let html = self.dir.join(format!("{stem}.html"));
        let screenshot = screenshot.and_then(|bytes| write(&png, &bytes));
        let page = page.and_then(|text| write(&html, text.as_bytes()));
        match (screenshot, page) {
            (Ok(()), Ok(())) => format!(
                "saved a screenshot to {} and the page to {}",
                png.display(),
                html.display()
            ),
            (Ok(()), Err(e)) => format!(
                "saved a screenshot to {} (the page could not be saved: {e})",
                png.display()
            ),
            (Err(e), Ok(())) => {
                format!("saved the page to {} (no screenshot: {e})", html.display())
            }
            (Err(a), Err(b)) => format!("could not save a screenshot ({a}) nor the page ({b})"),
        }
    }
}

fn write(path: &Path, bytes: &[u8]) -> std::result::Result<(), String> {
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// A chromedriver flowline started, with its profile folder. Dropping it
/// kills the process and removes the folder.
struct Driver {
    child: Child,
    port: u16,
    profile: PathBuf,
    program: PathBuf,
}

impl Driver {
    /// Starts chromedriver on a free local port.
    fn spawn() -> Result<Driver> {
        let program = find_program(
            "chromedriver",
            &["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"],
        )
        .ok_or_else(|| {
            Error::Config(
                "render = \"browser\" needs chromedriver and Chromium: install them \
                     (Debian/Ubuntu: apt-get install chromium chromium-driver) or set \
                     webdriver_url to a running WebDriver server"
                    .into(),
            )
        })?;
        let port = free_port()?;
        let profile = std::env::temp_dir().join(format!(
            "flowline-chromium-{}-{port}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&profile).map_err(|e| Error::io(&profile, e))?;
        let child = Command::new(&program)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::io(&program, e))?;
        Ok(Driver {
            child,
            port,
            profile,
            program,
        })
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Waits until chromedriver answers its status endpoint.
    async fn ready(&self) -> Result<()> {
        let status = format!("{}/status", self.endpoint());
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = http
                .get(&status)
                .timeout(Duration::from_secs(2))
                .send()
                .await
                && let Ok(body) = response.json::<Value>().await
                && body["value"]["ready"].as_bool().unwrap_or(false)
            {
                return Ok(());
            }
            if started.elapsed() > DRIVER_START {
                return Err(Error::connection(
                    "render = \"browser\"",
                    ConnectionFailure::Refused,
                    format!(
                        "{} did not answer on port {} within {}",
                        self.program.display(),
                        self.port,
                        humantime::format_duration(DRIVER_START)
                    ),
                    None,
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A port nothing listens on now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0))
        .map_err(|e| Error::io("a free port for chromedriver", e))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| Error::io("a free port for chromedriver", e))
}

/// `name` on the PATH, else the first of `fallbacks` that exists.
fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .iter()
        .flat_map(std::env::split_paths)
        .map(|dir| dir.join(name))
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|path| path.is_file())
}

/// The Chromium to run: `/usr/bin/chromium` if present, else one on the
/// PATH; `None` lets chromedriver look for Chrome itself.
fn chromium_binary() -> Option<PathBuf> {
    let preferred = Path::new("/usr/bin/chromium");
    if preferred.is_file() {
        return Some(preferred.to_path_buf());
    }
    find_program("chromium", &[]).or_else(|| find_program("chromium-browser", &[]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn artifacts_are_numbered_and_named_in_the_message() {
        let dir =
            std::env::temp_dir().join(format!("flowline-artifacts-test-{}", fastrand::u64(..)));
        let artifacts = Artifacts::new(dir.clone());
        let first = artifacts.save(Ok(vec![0x89, b'P', b'N', b'G']), Ok("<html></html>".into()));
        assert!(first.starts_with("saved a screenshot to "), "{first}");
        assert!(
            first.contains("-1.png") && first.contains("-1.html"),
            "{first}"
        );
        let second = artifacts.save(Err("session gone".into()), Ok("<p>".into()));
        assert!(
            second.contains("-2.html") && second.contains("session gone"),
            "{second}"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn actions_read_in_messages() {
        assert_eq!(
            show(&Action::Click("button.more".into())),
            "click \"button.more\""
        );
        assert_eq!(
            show(&Action::Wait(Duration::from_millis(500))),
            "wait 500ms"
        );
    }
}
