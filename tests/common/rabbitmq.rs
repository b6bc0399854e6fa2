//! A real RabbitMQ broker for the stream tests: publishing, cleaning up,
//! stopping a `flowline stream` process.

use lapin::options::{BasicPublishOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

use super::{block_on, service};

/// The broker of this machine.
pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Whether RabbitMQ answers (see [`service`]).
pub fn rabbitmq() -> bool {
    service("RabbitMQ", "127.0.0.1:5672")
}

/// Declares `queue` (durable) and publishes `payloads` to it, confirmed.
pub fn publish(queue: &str, payloads: &[String]) {
    block_on(async {
        let conn = Connection::connect(AMQP, ConnectionProperties::default())
            .await
            .expect("connect to RabbitMQ");
        let channel = conn.create_channel().await.expect("channel");
        channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("declare");
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        for payload in payloads {
            channel
                .basic_publish(
                    "".into(),
                    queue.into(),
                    BasicPublishOptions::default(),
                    payload.as_bytes(),
                    BasicProperties::default().with_timestamp(now_ms),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
        }
        conn.close(200, "done".into()).await.expect("close");
    });
}

/// Empties and deletes `queue`, if it is there.
pub fn purge_and_delete(queue: &str) {
    block_on(async {
        if let Ok(conn) = Connection::connect(AMQP, ConnectionProperties::default()).await
            && let Ok(channel) = conn.create_channel().await
        {
            let _ = channel
                .queue_purge(queue.into(), QueuePurgeOptions::default())
                .await;
            let _ = channel.queue_delete(queue.into(), Default::default()).await;
        }
    });
}

/// Sends SIGTERM to process `pid` (a `flowline stream` this test started).
pub fn stop(pid: u32) {
    // SAFETY: signalling a child process of this test.
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
}
