//! `flowline connections test` against the machine's brokers: what answered,
//! or why nothing did.

mod common;

use common::{TestProject, service};

fn project() -> TestProject {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"conn\"\n\n\
         [connections.mq]\nurl = \"amqp://guest:guest@127.0.0.1:5672/%2f\"\n\
         [connections.nats]\nurl = \"nats://127.0.0.1:4222\"\n\
         [connections.nowhere]\nurl = \"nats://127.0.0.1:1\"\n",
    );
    p
}

#[test]
fn rabbitmq_and_nats_connections_report_what_answered() {
    if !service("RabbitMQ", "127.0.0.1:5672") || !service("NATS", "127.0.0.1:4222") {
        return;
    }
    let p = project();
    assert!(
        p.ok(&["connections", "test", "mq"])
            .contains("RabbitMQ at 127.0.0.1:5672")
    );
    assert!(p.ok(&["connections", "test", "nats"]).contains("JetStream"));
    let listed = p.ok(&["connections", "list"]);
    assert!(
        listed.contains("mq  (rabbitmq)") && listed.contains("nats  (nats)"),
        "{listed}"
    );
}

#[test]
fn a_broker_that_is_not_there_is_named_with_the_cause() {
    let p = project();
    let err = p.fails(&["connections", "test", "nowhere"]);
    assert!(
        err.contains("nats 127.0.0.1:1") && err.contains("refused"),
        "{err}"
    );
}

#[test]
fn mqtt_and_kafka_connections_are_tested_with_plain_causes() {
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        "[project]\nname = \"conn\"\n\n\
         [connections.mqtt]\nurl = \"mqtt://127.0.0.1:1883\"\n\
         [connections.mqtt_nowhere]\nurl = \"mqtt://127.0.0.1:1\"\n\
         [connections.kafka]\nurl = \"kafka://127.0.0.1:9092\"\n\
         [connections.kafka_nowhere]\nurl = \"kafka://127.0.0.1:1\"\n\
         [connections.kafka_unknown]\nurl = \"kafka://no-such-host.invalid:9092\"\n",
    );
    let listed = p.ok(&["connections", "list"]);
    assert!(
        listed.contains("mqtt  (mqtt)") && listed.contains("kafka  (kafka)"),
        "{listed}"
    );
    let err = p.fails(&["connections", "test", "mqtt_nowhere"]);
    assert!(
        err.contains("mqtt 127.0.0.1:1")
            && err.contains("connection refused: is the server running"),
        "{err}"
    );
    let err = p.fails(&["connections", "test", "kafka_nowhere"]);
    assert!(
        err.contains("kafka 127.0.0.1:1")
            && err.contains("connection refused: is the server running"),
        "{err}"
    );
    let err = p.fails(&["connections", "test", "kafka_unknown"]);
    assert!(
        err.contains("host name not found: check the host in the URL"),
        "{err}"
    );
    if service("Mosquitto", "127.0.0.1:1883") {
        let out = p.ok(&["connections", "test", "mqtt"]);
        assert!(
            out.contains("ok      mqtt: MQTT broker at 127.0.0.1:1883"),
            "{out}"
        );
    }
    if std::net::TcpStream::connect("127.0.0.1:9092").is_ok() {
        let out = p.ok(&["connections", "test", "kafka"]);
        assert!(
            out.contains("ok      kafka: Kafka at 127.0.0.1:9092: "),
            "{out}"
        );
    }
}

/// An API that wants `Authorization: Bearer s3cret` on `/v1/...`.
fn api() -> String {
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::get;
    let items = |headers: HeaderMap| async move {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if auth != Some("Bearer s3cret") {
            return Err(StatusCode::UNAUTHORIZED);
        }
        Ok(axum::Json(serde_json::json!([{"id": 1}, {"id": 2}])))
    };
    common::serve_http(
        axum::Router::new()
            .route("/v1", get(items))
            .route("/v1/items", get(items)),
    )
}

#[test]
fn http_connections_are_tested_with_their_auth_and_sources_use_them() {
    let base = api();
    let port = base.rsplit(':').next().unwrap_or_default().to_string();
    let p = TestProject::new();
    p.write(
        "flowline.toml",
        format!(
            "[project]\nname = \"conn\"\n\n\
             [connections.api]\nurl = \"{base}/v1\"\nauth = {{ kind = \"bearer\", token = \"${{API_TOKEN}}\" }}\n\
             [connections.api_no_auth]\nurl = \"{base}/v1\"\n\
             [connections.api_wrong_path]\nurl = \"{base}/v2\"\nauth = {{ kind = \"bearer\", token = \"${{API_TOKEN}}\" }}\n\
             [connections.api_nowhere]\nurl = \"http://127.0.0.1:1/v1\"\n\
             [connections.api_unknown]\nurl = \"https://no-such-host.invalid/v1\"\n\
             [connections.api_not_tls]\nurl = \"https://127.0.0.1:{port}/v1\"\n"
        ),
    );
    p.write(".env", "API_TOKEN=s3cret\n");
    let listed = p.ok(&["connections", "list"]);
    assert!(listed.contains("api  (http)"), "{listed}");

    let out = p.ok(&["connections", "test", "api"]);
    assert!(
        out.contains(&format!("ok      api: HTTP 200 OK from {base}/v1")),
        "{out}"
    );
    let cases = [
        (
            "api_no_auth",
            "401 Unauthorized: the API wants credentials: add auth to [connections.api_no_auth]",
        ),
        ("api_wrong_path", "404 Not Found: nothing at that path"),
        ("api_nowhere", "connection refused: is the server running"),
        ("api_unknown", "host name not found"),
        ("api_not_tls", "the TLS handshake failed"),
    ];
    for (name, cause) in cases {
        let err = p.fails(&["connections", "test", name]);
        assert!(err.contains(cause), "{name}: {err}");
        assert!(!err.contains("s3cret"), "{err}");
    }
    p.write(".env", "API_TOKEN=wrong\n");
    let err = p.fails(&["connections", "test", "api"]);
    assert!(
        err.contains(
            "401 Unauthorized: the API refused the credentials: check auth in [connections.api]"
        ),
        "{err}"
    );

    // A source names the connection: its URL is a path under it, its auth the connection's.
    p.write(".env", "API_TOKEN=s3cret\n");
    p.write(
        "pipelines/items.toml",
        "[source]\nkind = \"http\"\nconnection = \"api\"\nurl = \"items\"\n\n\
         [destination]\ntable = \"raw.items\"\n",
    );
    p.ok(&["validate"]);
    p.ok(&["run"]);
    let rows = p.query("select count(*) as n from raw.items");
    assert_eq!(rows[0]["n"], 2, "{rows:?}");
}
