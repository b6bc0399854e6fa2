//! Helpers for end-to-end tests: a temporary project, the built binary,
//! and queries against the warehouse it loaded.

#![allow(dead_code)]

pub mod rabbitmq;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// A throwaway flowline project in a temporary folder.
pub struct TestProject {
    dir: tempfile::TempDir,
}

impl TestProject {
    /// A project with a default `flowline.toml`.
    pub fn new() -> Self {
        let project = TestProject {
            dir: tempfile::tempdir().expect("temp dir"),
        };
        project.write("flowline.toml", "[project]\nname = \"test\"\n");
        project
    }

    /// The project folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `relative` (creating folders).
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create dir");
        }
        std::fs::write(&path, contents).expect("write file");
        path
    }

    /// A flowline command on this project, not yet started.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_flowline"));
        cmd.arg("--project").arg(self.dir.path()).args(args);
        cmd.env_remove("FLOWLINE_LOG");
        cmd
    }

    /// Runs flowline with `args` on this project.
    pub fn flowline(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run flowline")
    }

    /// Runs flowline and fails the test (showing stderr) unless it succeeds.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.flowline(args);
        assert!(
            out.status.success(),
            "flowline {args:?} failed:\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// Runs flowline expecting failure; returns stdout + stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.flowline(args);
        assert!(
            !out.status.success(),
            "flowline {args:?} should have failed"
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// `flowline sql --json QUERY` parsed into rows.
    pub fn query(&self, sql: &str) -> Vec<Value> {
        let out = self.ok(&["sql", "--format", "json", sql]);
        let value: Value = serde_json::from_str(out.trim()).expect("json rows");
        value.as_array().cloned().unwrap_or_default()
    }

    /// The single value of a one-row, one-column query, as i64.
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let row = rows.first().and_then(|r| r.as_object()).expect("one row");
        let value = row.values().next().expect("one column");
        match value {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().map(|f| f as i64))
                .expect("number"),
            Value::String(s) => s.parse().expect("numeric string"),
            other => panic!("not a number: {other}"),
        }
    }
}

/// A CSV of `rows` orders with ids `first..first+rows`.
pub fn orders_csv(first: i64, rows: i64) -> String {
    let mut csv = String::from("id,customer,amount_cents,status\n");
    for id in first..first + rows {
        csv.push_str(&format!(
            "{id},c{},{},{}\n",
            id % 97,
            id * 3 % 10_000,
            if id % 5 == 0 { "refunded" } else { "paid" }
        ));
    }
    csv
}

/// Skips the calling test because `what` is missing: under CI that fails
/// the test with `what`; elsewhere the test prints `SKIPPED: what` and is
/// listed as skipped (not passed) in the summary `scripts/test` prints,
/// read from the file [`SKIPPED_FILE`].
pub fn skip(what: &str) {
    assert!(std::env::var_os("CI").is_none(), "{what}");
    eprintln!("SKIPPED: {what}");
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let binary = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().to_string()))
        .and_then(|stem| stem.rsplit_once('-').map(|(name, _)| name.to_string()))
        .unwrap_or_default();
    let line = format!("{binary}::{test}: {}\n", what.replace('\n', " "));
    let _ = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(SKIPPED_FILE)
        .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
}

/// Where [`skip`] lists the skipped tests, one per line.
pub const SKIPPED_FILE: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/skipped-tests.txt");

/// Whether `name` answers at `addr`. Under CI a missing service fails the
/// test naming it; elsewhere the test is skipped with a message.
pub fn service(name: &str, addr: &str) -> bool {
    let reachable = addr
        .parse()
        .ok()
        .and_then(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(3)).ok()
        })
        .is_some();
    if !reachable {
        skip(&format!(
            "{name} is not reachable at {addr}: CI needs it running (see .ci/run)"
        ));
    }
    reachable
}

/// A unique name for test databases.
pub fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("{prefix}_{}_{}", std::process::id(), nanos % 1_000_000_000)
}

/// Runs `f` on a fresh current-thread runtime.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(f)
}

/// A Postgres database created for one test and dropped after it.
pub struct PgDatabase {
    /// Its name.
    pub name: String,
}

pub const PG_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

impl PgDatabase {
    /// Creates a new empty database, or `None` when Postgres is not there (outside CI).
    pub fn create() -> Option<Self> {
        if !service("PostgreSQL", "127.0.0.1:5432") {
            return None;
        }
        let name = unique("flowline_test");
        pg_execute(PG_ADMIN_URL, &format!("CREATE DATABASE {name}"));
        Some(PgDatabase { name })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// Runs SQL statements in it.
    pub fn execute(&self, sql: &str) {
        pg_execute(&self.url(), sql);
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        let _ = std::panic::catch_unwind(|| pg_execute(PG_ADMIN_URL, &sql));
    }
}

/// Runs SQL statements against the Postgres at `url`.
pub fn pg_execute(url: &str, sql: &str) {
    block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect to postgres");
        let driver = tokio::spawn(connection);
        client
            .batch_execute(sql)
            .await
            .expect("postgres statements");
        drop(client);
        let _ = driver.await;
    })
}

/// A MariaDB/MySQL database created for one test and dropped after it.
pub struct MyDatabase {
    /// Its name.
    pub name: String,
}

pub const MY_ADMIN_URL: &str = "mysql://root@127.0.0.1:3306";

impl MyDatabase {
    /// Creates a new empty database, or `None` when MariaDB is not there (outside CI).
    pub fn create() -> Option<Self> {
        if !service("MariaDB", "127.0.0.1:3306") {
            return None;
        }
        let name = unique("flowline_test");
        my_execute(MY_ADMIN_URL, &format!("CREATE DATABASE {name}"));
        Some(MyDatabase { name })
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }

    /// Runs SQL statements in it.
    pub fn execute(&self, sql: &str) {
        my_execute(&self.url(), sql);
    }
}

impl Drop for MyDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {}", self.name);
        let _ = std::panic::catch_unwind(|| my_execute(MY_ADMIN_URL, &sql));
    }
}

/// Runs SQL statements against the MySQL/MariaDB at `url`.
pub fn my_execute(url: &str, sql: &str) {
    use mysql_async::prelude::Queryable;
    block_on(async {
        let mut conn = mysql_async::Conn::from_url(url)
            .await
            .expect("connect to mariadb");
        conn.query_drop(sql).await.expect("mariadb statements");
        let _ = conn.disconnect().await;
    })
}

/// Starts `flowline run` and kills it with SIGKILL after `delay` if it is
/// still running; whether it was killed.
pub fn run_and_kill(p: &TestProject, delay: std::time::Duration) -> bool {
    let mut child = p
        .command(&["run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let started = std::time::Instant::now();
    while started.elapsed() < delay {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    true
}

/// Whether the headless browser the scrape tests drive is installed:
/// Chromium and its chromedriver. Under CI a missing one fails the test
/// naming the Debian package to install; elsewhere the test is skipped
/// with a message.
pub fn browser_installed() -> bool {
    let on_path = |name: &str| {
        std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .any(|dir| dir.join(name).is_file())
    };
    let mut missing = Vec::new();
    if !Path::new("/usr/bin/chromium").is_file() && !on_path("chromium") {
        missing.push("chromium");
    }
    if !Path::new("/usr/bin/chromedriver").is_file() && !on_path("chromedriver") {
        missing.push("chromium-driver");
    }
    if missing.is_empty() {
        return true;
    }
    let packages = missing.join(" ");
    skip(&format!(
        "the browser tests need the package(s) {packages}: CI installs them (see .ci/run), \
         or run apt-get install -y {packages}"
    ));
    false
}

/// Whether `python3` imports every module of `modules`. Under CI a missing
/// one fails the test naming the pip command that installs it; elsewhere
/// the test is skipped with a message.
pub fn python_modules_installed(modules: &[&str]) -> bool {
    let missing: Vec<&str> = modules
        .iter()
        .copied()
        .filter(|module| {
            !Command::new("python3")
                .args(["-c", &format!("import {module}")])
                .output()
                .is_ok_and(|out| out.status.success())
        })
        .collect();
    if missing.is_empty() {
        return true;
    }
    let names = missing.join(" ");
    skip(&format!(
        "the Python step tests need the Python module(s) {names}: CI installs them (see .ci/run), \
         or run python3 -m pip install {names}"
    ));
    false
}

/// Serves `router` on 127.0.0.1 from a background thread for the rest of
/// the test; returns the base URL (`http://127.0.0.1:PORT`).
pub fn serve_http(router: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            axum::serve(listener, router).await.expect("serve");
        });
    });
    format!("http://{addr}")
}
