//! End to end: `flowline serve` owns the warehouse, and `sql`, `status` and
//! `run` from other processes go through it and print what they print when
//! they open the warehouse themselves.

mod common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{TestProject, orders_csv};

const ORDERS: &str = r#"
[source]
kind = "file"
path = "data/*.csv"

[destination]
table = "raw.orders"
"#;

/// How long `flowline serve` may take to start or stop.
const PATIENCE: Duration = Duration::from_secs(60);

fn socket(p: &TestProject) -> PathBuf {
    p.path().join(".flowline/flowline.sock")
}

/// A running `flowline serve`, killed if the test ends without stopping it.
struct Serve {
    child: Child,
}

impl Serve {
    /// Starts `flowline serve` and waits for its "serving ..." line.
    fn start(p: &TestProject) -> Serve {
        let (serve, line) = Serve::spawn(p.command(&["serve"]));
        assert!(line.contains(".flowline/flowline.sock"), "{line}");
        serve
    }

    /// Starts `command` (a `flowline serve`) and waits for its "serving
    /// ..." line, which it returns.
    fn spawn(mut command: std::process::Command) -> (Serve, String) {
        let mut child = command
            .env("FLOWLINE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn flowline serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
        let mut serve = Serve { child };
        if !line.starts_with("serving project test's warehouse on ") {
            let status = serve.child.try_wait().expect("wait");
            panic!("flowline serve did not start: {line:?} (exit: {status:?})");
        }
        assert!(line.trim_end().ends_with("(Ctrl-C to stop)"), "{line}");
        (serve, line)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and returns how the process exited.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid");
        // SAFETY: kill(2) with a valid signal on our own child's pid.
        let sent = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(sent, 0, "SIGTERM to flowline serve");
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                started.elapsed() < PATIENCE,
                "flowline serve did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A project with the orders pipeline and `rows` orders in one file.
fn orders_project(rows: i64) -> TestProject {
    let p = TestProject::new();
    p.write("pipelines/orders.toml", ORDERS);
    p.write("data/a.csv", orders_csv(1, rows));
    p
}

#[test]
fn sql_prints_the_same_through_the_serving_process() {
    let p = orders_project(20);
    p.ok(&["run"]);
    let query = "select id, customer, amount_cents, status from raw.orders order by id limit 5";
    let formats: [&[&str]; 4] = [
        &["sql", query],
        &["sql", "--format", "csv", query],
        &["sql", "--json", query],
        &["sql", "select * from raw.orders where false"],
    ];
    let local: Vec<String> = formats.iter().map(|args| p.ok(args)).collect();

    let _serve = Serve::start(&p);
    for (args, expected) in formats.iter().zip(&local) {
        assert_eq!(&p.ok(args), expected, "flowline {args:?}");
    }
    assert_eq!(p.scalar("select count(*) from raw.orders"), 20);
    assert_eq!(
        p.ok(&["sql", "create table t as select 1 as a"])
            .lines()
            .count(),
        5
    );
    assert_eq!(p.scalar("select sum(a) from t"), 1);
    let error = p.fails(&["sql", "select * from raw.nope"]);
    assert!(
        error.starts_with(
            "error: warehouse: query: Catalog Error: Table with name nope does not exist"
        ),
        "{error}"
    );
}

#[test]
fn run_loads_through_the_serving_process_and_sql_sees_the_rows() {
    let p = orders_project(100);
    let serve = Serve::start(&p);

    let out = p.ok(&["run"]);
    assert!(
        out.starts_with("ok      orders: 100 rows -> raw.orders in "),
        "{out}"
    );
    assert_eq!(p.scalar("select count(*) from raw.orders"), 100);

    p.write("data/b.csv", orders_csv(101, 30));
    let report: serde_json::Value =
        serde_json::from_str(&p.ok(&["run", "orders", "--json"])).expect("json report");
    assert_eq!(report["ok"], true);
    assert_eq!(report["project"], "test");
    assert_eq!(report["runs"][0]["pipeline"], "orders");
    assert_eq!(report["runs"][0]["rows"], 30);
    assert_eq!(report["runs"][0]["status"], "succeeded");
    assert_eq!(p.scalar("select count(*) from raw.orders"), 130);

    p.ok(&["run", "--full-refresh"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 130);

    let error = p.fails(&["run", "ordres"]);
    assert!(error.contains("did you mean \"orders\"?"), "{error}");

    // A pipeline written after serve started runs as well.
    p.write(
        "pipelines/late.toml",
        "[source]\nkind = \"file\"\npath = \"data/a.csv\"\n\n[destination]\ntable = \"raw.late\"\n",
    );
    p.ok(&["run", "late"]);
    assert_eq!(p.scalar("select count(*) from raw.late"), 100);

    assert!(serve.terminate().success());
    // The rows were committed by the serving process and are there after it.
    assert_eq!(p.scalar("select count(*) from raw.orders"), 130);
}

#[test]
fn a_failed_run_through_the_serving_process_fails_the_command() {
    let p = orders_project(10);
    p.write(
        "pipelines/broken.toml",
        "[source]\nkind = \"file\"\npath = \"data/a.csv\"\n\n[[transform]]\n\
         sql = \"select nope from input\"\n\n[destination]\ntable = \"raw.broken\"\n",
    );
    let _serve = Serve::start(&p);
    let out = p.flowline(&["run"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(
        lines[0].starts_with("FAILED  broken: sql transform: Binder Error"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok      orders: 10 rows -> raw.orders"),
        "{stdout}"
    );
}

#[test]
fn status_prints_the_same_through_the_serving_process() {
    let p = orders_project(10);
    p.ok(&["run"]);
    let table = p.ok(&["status"]);
    let json = p.ok(&["status", "--json"]);
    assert!(table.contains("files: 1"), "{table}");

    let _serve = Serve::start(&p);
    assert_eq!(p.ok(&["status"]), table);
    assert_eq!(p.ok(&["status", "--json"]), json);
}

#[test]
fn state_reset_works_through_the_serving_process() {
    let p = orders_project(10);
    p.ok(&["run"]);
    let _serve = Serve::start(&p);
    assert!(
        p.ok(&["state", "show", "orders"])
            .contains("\"data/a.csv\"")
    );
    let out = p.ok(&["state", "reset", "orders"]);
    assert!(
        out.starts_with("reset   orders: saved state forgotten"),
        "{out}"
    );
    assert!(p.ok(&["status"]).contains("orders"));
    p.ok(&["run", "orders"]);
    assert_eq!(
        p.scalar("select count(*) from raw.orders"),
        20,
        "the reset state made the run load the file again"
    );
}

/// A project whose load takes a moment: 30 files of 20,000 orders.
fn big_project() -> TestProject {
    let p = TestProject::new();
    p.write(
        "pipelines/orders.toml",
        "[source]\nkind = \"file\"\npath = \"data/*.csv\"\nbatch_size = 2000\n\n\
         [destination]\ntable = \"raw.orders\"\n",
    );
    for f in 0..30 {
        p.write(
            &format!("data/part-{f:02}.csv"),
            orders_csv(f * 20_000 + 1, 20_000),
        );
    }
    p
}

#[test]
fn sql_answers_while_the_serving_process_loads() {
    let p = big_project();
    let _serve = Serve::start(&p);
    let mut run = p
        .command(&["run"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn run");
    let mut queries = 0;
    while run.try_wait().expect("wait").is_none() {
        let out = p.flowline(&["sql", "select count(*) from _flowline_state"]);
        assert!(
            out.status.success(),
            "sql during a load: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        queries += 1;
    }
    assert!(run.wait().expect("wait").success());
    assert!(queries > 0);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 600_000);
}

#[test]
fn sigterm_stops_serve_with_exit_0_and_removes_the_socket() {
    let p = orders_project(5);
    let serve = Serve::start(&p);
    assert!(socket(&p).exists());
    let status = serve.terminate();
    assert!(status.success(), "{status:?}");
    assert!(!socket(&p).exists(), "socket file left behind");
    // The warehouse is free again: commands open it themselves.
    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 5);
}

#[test]
fn sigterm_lets_a_run_in_progress_finish() {
    let p = big_project();
    let serve = Serve::start(&p);
    let run = p
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn run");
    std::thread::sleep(Duration::from_millis(200));
    assert!(serve.terminate().success());
    let out = run.wait_with_output().expect("run");
    assert!(
        out.status.success(),
        "run: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("ok      orders: 600000 rows"));
    assert_eq!(p.scalar("select count(*) from raw.orders"), 600_000);
}

#[test]
fn a_stale_socket_is_ignored_by_commands_and_replaced_by_serve() {
    let p = orders_project(5);
    std::fs::create_dir_all(p.path().join(".flowline")).expect("mkdir");
    // A socket file whose process is gone: bound, then closed.
    drop(std::os::unix::net::UnixListener::bind(socket(&p)).expect("bind"));
    assert!(socket(&p).exists());

    p.ok(&["run"]);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 5);
    assert!(p.ok(&["status"]).contains("files: 1"));

    let serve = Serve::start(&p);
    assert_eq!(p.scalar("select count(*) from raw.orders"), 5);
    assert!(serve.terminate().success());
    assert!(!socket(&p).exists());
}

#[test]
fn a_project_too_deep_for_a_socket_is_served_on_a_short_path() {
    let p = TestProject::new();
    let deep = format!(
        "{}/and-one-more-level-of-folders/to-be-sure-it-is-deep",
        "a-project-folder-with-a-rather-long-name-".repeat(2)
    );
    p.write(
        &format!("{deep}/flowline.toml"),
        "[project]\nname = \"test\"\n",
    );
    p.write(&format!("{deep}/pipelines/orders.toml"), ORDERS);
    p.write(&format!("{deep}/data/a.csv"), orders_csv(1, 10));
    let dir = p.path().join(&deep);
    assert!(dir.join(".flowline/flowline.sock").as_os_str().len() > 107);
    let flowline = |args: &[&str]| {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_flowline"));
        command.arg("--project").arg(&dir).args(args);
        command.env_remove("FLOWLINE_LOG");
        command
    };
    assert!(flowline(&["run"]).status().expect("run").success());

    let (serve, line) = Serve::spawn(flowline(&["serve"]));
    let socket = line
        .trim_end()
        .strip_prefix("serving project test's warehouse on ")
        .and_then(|rest| rest.strip_suffix(" (Ctrl-C to stop)"))
        .map(PathBuf::from)
        .expect("the socket's path");
    assert!(socket.as_os_str().len() <= 107, "{}", socket.display());
    assert!(socket.exists(), "{}", socket.display());

    // Commands find the owner at once, instead of waiting on the warehouse's lock.
    let started = Instant::now();
    let out = flowline(&["sql", "--json", "select count(*) as n from raw.orders"])
        .output()
        .expect("sql");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), r#"[{"n":10}]"#);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(serve.terminate().success());
    assert!(!socket.exists(), "{}", socket.display());
}

#[test]
fn a_second_serve_fails_naming_the_first() {
    let p = orders_project(5);
    let first = Serve::start(&p);
    let error = p.fails(&["serve"]);
    assert!(
        error.contains(&format!(
            "another flowline process (pid {}) owns this project's warehouse",
            first.pid()
        )),
        "{error}"
    );
    // The first one still serves.
    assert_eq!(p.scalar("select 1"), 1);
    assert!(first.terminate().success());
}
