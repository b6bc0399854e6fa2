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
