//! Messages that are not a valid event, and poison messages, to the durable dead-letter queue,
//! with their original body and properties and a header `x-rejection-reason` saying why
//! (contract §1). Published with confirms: a message is acked only once its dead letter is safe.

use anyhow::Context;
use lapin::message::Delivery;
use webhooks_core::amqp::{self, ConfirmedPublisher, Outgoing, Topology};
use webhooks_core::event::Rejection;

/// Dead-letters the rejected messages of a batch, with where they were first published.
pub async fn rejected(
    publisher: &ConfirmedPublisher,
    topology: &Topology,
    rejected: &[(&Delivery, Rejection)],
) -> anyhow::Result<()> {
    if rejected.is_empty() {
        return Ok(());
    }
    let queue = topology.dead_letter_queue();
    let reasons: Vec<String> = rejected.iter().map(|(_, r)| r.to_string()).collect();
    let messages = rejected
        .iter()
        .zip(&reasons)
        .map(|((delivery, _), reason)| {
            tracing::warn!(reason = %reason, routing_key = %delivery.routing_key, "event rejected");
            let properties =
                amqp::with_header(delivery.properties.clone(), "x-rejection-reason", reason);
            let properties = amqp::with_header(
                properties,
                "x-original-exchange",
                delivery.exchange.as_str(),
            );
            let properties = amqp::with_header(
                properties,
                "x-original-routing-key",
                delivery.routing_key.as_str(),
            );
            Outgoing {
                // The default exchange routes straight to the queue of that name.
                exchange: "",
                routing_key: &queue,
                body: &delivery.data,
                properties,
            }
        })
        .collect();
    publisher
        .publish_all(messages)
        .await
        .context("dead-lettering rejected events")
}

/// Dead-letters one message that could not be processed, for `reason`.
pub async fn poison(
    publisher: &ConfirmedPublisher,
    topology: &Topology,
    delivery: &Delivery,
    reason: &str,
) -> anyhow::Result<()> {
    let properties = amqp::with_header(delivery.properties.clone(), "x-rejection-reason", reason);
    let queue = topology.dead_letter_queue();
    publisher
        .publish_all(vec![Outgoing {
            exchange: "",
            routing_key: &queue,
            body: &delivery.data,
            properties,
        }])
        .await
        .context("dead-lettering a poison event")
}
