//! The container files without Docker: the compose stack's example project
//! validates, `docker-compose.yml` holds what docs/deployment.md promises,
//! and the Dockerfile's stages are the documented ones. `scripts/docker-smoke`
//! builds and runs them for real.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml_ng::Value;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn compose() -> Value {
    let mut compose: Value =
        serde_yaml_ng::from_str(&read("docker-compose.yml")).expect("docker-compose.yml is YAML");
    compose.apply_merge().expect("YAML merge keys");
    compose
}

/// `flowline ARGS` on a copy of the compose example project, with the
/// environment the stack gives its containers.
fn on_compose_project(args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("tempdir");
    copy_dir(&repo().join("examples/compose"), dir.path());
    let pg = "postgres://postgres:secret@127.0.0.1:1/flowline";
    Command::new(env!("CARGO_BIN_EXE_flowline"))
        .arg("--project")
        .arg(dir.path())
        .args(args)
        .env("STATE_DB_URL", pg)
        .env("WAREHOUSE_URL", pg)
        .env("SHOP_DB_URL", "postgres://postgres:secret@127.0.0.1:1/shop")
        .env("BROKER_URL", "amqp://flowline:secret@127.0.0.1:1/%2f")
        .env("FLOWLINE_TOKEN", "a-token")
        .output()
        .expect("running flowline")
}

fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            std::fs::create_dir_all(&target).expect("mkdir");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

#[test]
fn the_compose_example_project_validates() {
    let out = on_compose_project(&["validate"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("shop is valid (3 pipelines, 1 job)"),
        "{text}"
    );
}

#[test]
fn the_compose_stack_waits_for_health_and_keeps_ports_on_loopback() {
    let compose = compose();
    let services = compose["services"]
        .as_mapping()
        .expect("services")
        .keys()
        .filter_map(Value::as_str)
        .collect::<Vec<_>>();
    for service in ["server", "worker", "postgres", "rabbitmq", "browser"] {
        assert!(services.contains(&service), "{service} in {services:?}");
    }
    let service = |name: &str| compose["services"][name].clone();
    // Every service checks its health: in the file, or (server) in the image.
    for name in ["worker", "postgres", "rabbitmq", "browser"] {
        assert!(
            service(name)["healthcheck"]["test"].is_sequence(),
            "{name} has a healthcheck"
        );
    }
    assert!(read("Dockerfile").contains("HEALTHCHECK"));
    let needs_healthy = |name: &str, on: &str| {
        assert_eq!(
            service(name)["depends_on"][on]["condition"].as_str(),
            Some("service_healthy"),
            "{name} waits for {on}"
        );
    };
    needs_healthy("server", "postgres");
    needs_healthy("server", "rabbitmq");
    needs_healthy("server", "browser");
    needs_healthy("worker", "server");
    for name in ["server", "worker"] {
        assert_eq!(service(name)["read_only"].as_bool(), Some(true), "{name}");
    }
    assert_eq!(service("worker")["scale"].as_i64(), Some(2));
    for name in services {
        for port in service(name)["ports"].as_sequence().into_iter().flatten() {
            let port = port.as_str().unwrap_or_default();
            assert!(port.starts_with("127.0.0.1:"), "{name} publishes {port}");
        }
    }
    let volumes = compose["volumes"].as_mapping().expect("named volumes");
    assert!(volumes.contains_key("postgres-data") && volumes.contains_key("rabbitmq-data"));
}

#[test]
fn the_dockerfile_builds_in_the_documented_stages() {
    let dockerfile = read("Dockerfile");
    for stage in [
        "AS chef",
        "AS planner",
        "AS duckdb",
        "AS deps",
        "AS build-source",
        "AS build-prebuilt",
        "AS runtime",
        "AS python",
    ] {
        assert!(dockerfile.contains(stage), "{stage}");
    }
    for default in [
        "ARG RUST_IMAGE=rust:",
        "ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot",
        "ARG PYTHON_IMAGE=python:",
    ] {
        assert!(dockerfile.contains(default), "{default}");
    }
    assert!(dockerfile.contains("cargo chef cook --profile"));
    assert_eq!(
        dockerfile.matches("USER 65532:65532").count(),
        2,
        "both images run as nonroot"
    );
    // The build secret is only ever mounted, never copied into a layer.
    for line in dockerfile.lines() {
        let copies = line.starts_with("COPY") || line.starts_with("ADD");
        assert!(
            !(copies && (line.contains("cacert") || line.contains("ca-certificates.crt"))),
            "{line}"
        );
    }
    let docs = read("docs/deployment.md");
    assert!(docs.contains("`deps`") && docs.contains("`runtime` (default)"));
}

#[test]
fn healthcheck_reports_a_server_that_does_not_answer() {
    let out = Command::new(env!("CARGO_BIN_EXE_flowline"))
        .args(["healthcheck", "--url", "http://127.0.0.1:1/healthz"])
        .output()
        .expect("running flowline");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("FAILED  http://127.0.0.1:1/healthz: could not connect"),
        "{text}"
    );
}

#[test]
fn a_worker_answers_its_health_endpoint() {
    let Some(db) = common::PgDatabase::create() else {
        return;
    };
    let p = common::TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"w\"\n\n[state]\nurl = \"{}\"\n",
            db.url()
        ),
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut worker = p
        .command(&["worker", "--health-listen", &format!("127.0.0.1:{port}")])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("starting the worker");
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut answered = false;
    for _ in 0..100 {
        let out = Command::new(env!("CARGO_BIN_EXE_flowline"))
            .args(["healthcheck", "--url", &url])
            .output()
            .expect("running flowline");
        if out.status.success() {
            answered = String::from_utf8_lossy(&out.stdout).starts_with("ok");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = worker.kill();
    let _ = worker.wait();
    assert!(answered, "the worker answered {url}");
}
