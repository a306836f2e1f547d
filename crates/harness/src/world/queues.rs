//! A world's broker as the other services see it: events published to its exchange, messages
//! taken from (or handed back to) the queues our services fill, and what the broker reports.

use lapin::BasicProperties;
use lapin::options::{BasicGetOptions, BasicNackOptions, BasicPublishOptions};
use serde_json::Value;
use std::time::Duration;

use super::World;
use crate::publisher::event_json;

impl World {
    /// Publishes a raw body to the events exchange, as another service would.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.topology.events_exchange().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack());
    }

    /// Publishes a well-formed event and returns its id.
    pub async fn publish(&self, project: &str, event_name: &str, payload: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish_event(&id, project, event_name, &payload.to_string())
            .await;
        id
    }

    /// Publishes an event with a given id and raw payload text.
    pub async fn publish_event(&self, id: &str, project: &str, event_name: &str, payload: &str) {
        let body = event_json(id, event_name, 1_650_540_069, project, payload);
        self.publish_raw(event_name, body.as_bytes(), BasicProperties::default())
            .await;
    }

    /// Takes one message from `queue`, if any.
    pub async fn take(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
    }

    /// Waits for a message on `queue` and hands it back unacked, as a consumer that dies holding
    /// it does: the broker then delivers it again, marked redelivered. Returns its `type` property.
    pub async fn hand_back(&self, queue: &str, deadline: Duration) -> Option<String> {
        let message = crate::wait::until(&format!("a message on {queue}"), deadline, || async {
            self.channel
                .basic_get(queue.into(), BasicGetOptions { no_ack: false })
                .await
                .expect("basic.get")
        })
        .await;
        self.channel
            .basic_nack(
                message.delivery.delivery_tag,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await
            .expect("basic.nack");
        message
            .delivery
            .properties
            .kind()
            .as_ref()
            .map(|k| k.to_string())
    }

    /// Waits for `count` messages on `queue` and takes them.
    pub async fn take_n(
        &self,
        queue: &str,
        count: usize,
        deadline: Duration,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let end = tokio::time::Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < count {
            match self.take(queue).await {
                Some(message) => got.push(message),
                None if tokio::time::Instant::now() >= end => {
                    panic!(
                        "timed out after {deadline:?} with {} of {count} messages on {queue}",
                        got.len()
                    )
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        got
    }

    /// Messages ready in `queue` (a passive declare, on a channel of its own: a queue that is not
    /// there closes it).
    pub async fn queue_length(&self, queue: &str) -> u32 {
        let channel = self.amqp.create_channel().await.expect("channel");
        let queue = channel
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                lapin::types::FieldTable::default(),
            )
            .await
            .expect("passive declare");
        let _ = channel.close(200, "done".into()).await;
        queue.message_count()
    }

    /// The prefetch of every consumer of `queue`, as the broker reports it.
    pub fn consumer_prefetch(&self, queue: &str) -> Vec<u32> {
        let listed = std::process::Command::new("rabbitmqctl")
            .args(["-q", "list_consumers", "queue_name", "prefetch_count"])
            .output()
            .expect("rabbitmqctl list_consumers");
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                (fields.next()? == queue).then_some(())?;
                fields.next()?.parse().ok()
            })
            .collect()
    }
}
