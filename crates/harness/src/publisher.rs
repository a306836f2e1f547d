//! Publishing events the way other services do (contract §1): persistent JSON on the events
//! exchange, routing key = event name, with publisher confirms, pipelined so that thousands of
//! messages are unconfirmed at once instead of one round trip per message.
//!
//! Each event's payload opens with its [`Marks`] so that a tracking receiver can match the
//! delivery to its publish.

use anyhow::Context;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};
use std::collections::VecDeque;
use std::time::Duration;

use crate::marks::{Marks, now_ns};

/// The project of every webhook a publishing run delivers to.
pub const PROJECT: &str = "BENCH";
/// The event every such webhook subscribes to and every event is.
pub const EVENT_NAME: &str = "run.started";

/// Unconfirmed messages allowed in flight before the publisher waits for the oldest confirm.
const WINDOW: usize = 4_000;

/// Opens a broker connection named `name` (the name shows in the broker's management tools).
pub async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let properties = lapin::ConnectionProperties::default().with_connection_name(name.into());
    tokio::time::timeout(
        Duration::from_secs(10),
        Connection::connect(url, properties),
    )
    .await
    .context("the broker did not answer within 10 s")?
    .with_context(|| format!("connecting to the broker as {name}"))
}

/// Declares the durable queue `name` (kept across broker restarts, as the services' are) of
/// `queue_type`.
pub async fn declare_durable(
    channel: &Channel,
    name: &str,
    queue_type: webhooks_core::amqp::QueueType,
) -> anyhow::Result<()> {
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..lapin::options::QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), durable, queue_type.arguments())
        .await
        .with_context(|| format!("declaring the queue {name}"))?;
    Ok(())
}

/// A confirm-mode channel that keeps up to [`WINDOW`] publishes unconfirmed.
pub struct Pipeline {
    channel: Channel,
    pending: VecDeque<PublisherConfirm>,
    /// Most publishes left unconfirmed.
    window: usize,
}

impl Pipeline {
    pub async fn open(connection: &Connection) -> anyhow::Result<Self> {
        let channel = connection
            .create_channel()
            .await
            .context("opening a publishing channel")?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .context("enabling publisher confirms")?;
        Ok(Self {
            channel,
            pending: VecDeque::with_capacity(WINDOW),
            window: WINDOW,
        })
    }

    /// Leaves at most `bytes` of messages of `message_bytes` each unconfirmed (and never more
    /// than [`WINDOW`] messages).
    pub fn limit_bytes(&mut self, bytes: usize, message_bytes: usize) {
        self.window = (bytes / message_bytes.max(1)).clamp(1, WINDOW);
    }

    /// Publishes one persistent JSON message; waits only when the window is full.
    pub async fn publish(
        &mut self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
    ) -> anyhow::Result<()> {
        if self.pending.len() >= self.window {
            self.confirm_oldest().await?;
        }
        let properties = BasicProperties::default()
            .with_content_type("application/json".into())
            // 2 = persistent, as the contract asks of event publishers.
            .with_delivery_mode(2);
        let confirm = self
            .channel
            .basic_publish(
                exchange.into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties,
            )
            .await
            .context("publishing")?;
        self.pending.push_back(confirm);
        Ok(())
    }

    /// Waits for every outstanding confirm.
    pub async fn flush(&mut self) -> anyhow::Result<()> {
        while !self.pending.is_empty() {
            self.confirm_oldest().await?;
        }
        Ok(())
    }

    async fn confirm_oldest(&mut self) -> anyhow::Result<()> {
        let Some(confirm) = self.pending.pop_front() else {
            return Ok(());
        };
        match confirm.await.context("waiting for a publisher confirm")? {
            Confirmation::Ack(_) | Confirmation::NotRequested => Ok(()),
            Confirmation::Nack(_) => anyhow::bail!("the broker refused a message (nack)"),
        }
    }
}

/// An event of the contract's shape; `payload` is its JSON text.
pub fn event_json(
    id: &str,
    event_name: &str,
    timestamp: u64,
    project: &str,
    payload: &str,
) -> String {
    format!(
        r#"{{"id":"{id}","event_name":"{event_name}","timestamp":{timestamp},"project_code":"{project}","team_member_id":40,"payload":{payload}}}"#
    )
}

/// One event as another service would publish it, with the receiver's marks in its payload.
pub fn event_body(phase: u32, seq: u64) -> Vec<u8> {
    let marks = Marks {
        phase,
        seq,
        sent_ns: now_ns(),
    };
    let id = uuid::Uuid::new_v4().to_string();
    let payload = format!(
        r#"{{{},"title":"Test run 2022/04/21","cases_count":14}}"#,
        marks.fields()
    );
    let timestamp = marks.sent_ns / 1_000_000_000;
    event_json(&id, EVENT_NAME, timestamp, PROJECT, &payload).into_bytes()
}

/// [`event_body`] padded (a `pad` string in its payload) to exactly `bytes` bytes, or left as it
/// is when `bytes` is smaller than the plain body.
pub fn sized_event_body(phase: u32, seq: u64, bytes: usize) -> Vec<u8> {
    let mut body = event_body(phase, seq);
    // `,"pad":""` is 9 bytes; the body ends with the payload's and the event's closing braces.
    let Some(pad) = bytes.checked_sub(body.len() + 9) else {
        return body;
    };
    let tail = body.split_off(body.len() - 2);
    body.extend_from_slice(b",\"pad\":\"");
    body.resize(body.len() + pad, b'x');
    body.push(b'"');
    body.extend_from_slice(&tail);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_a_valid_contract_event() {
        let body = event_body(3, 42);
        let event = webhooks_core::event::Event::parse(&body, None, 1 << 20).expect("valid event");
        assert_eq!(event.project_code.as_str(), PROJECT);
        assert_eq!(event.name.as_str(), EVENT_NAME);
        let payload: serde_json::Value = serde_json::from_str(event.payload.get()).expect("json");
        assert_eq!(payload["phase"], 3);
        assert_eq!(payload["seq"], 42);
    }

    #[test]
    fn a_sized_body_is_exactly_that_long_and_still_a_valid_event() {
        for bytes in [1 << 10, 1 << 20] {
            let body = sized_event_body(1, 7, bytes);
            assert_eq!(body.len(), bytes);
            let event = webhooks_core::event::Event::parse(&body, None, 1 << 20).expect("valid");
            let payload: serde_json::Value =
                serde_json::from_str(event.payload.get()).expect("json");
            assert_eq!(payload["seq"], 7);
        }
        // Smaller than the plain body: the plain body.
        assert!(
            !String::from_utf8(sized_event_body(1, 7, 10))
                .expect("utf8")
                .contains("pad")
        );
    }
}
