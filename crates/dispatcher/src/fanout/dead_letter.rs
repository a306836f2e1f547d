//! Messages that are not a valid event, and poison messages, to the durable dead-letter queue,
//! with their original body and properties and a header `x-rejection-reason` saying why
//! (contract §1; the letters are made by [`amqp::dead_letter`]). Published with confirms: a
//! message is acked only once its dead letter is safe.

use anyhow::Context;
use lapin::message::Delivery;
use webhooks_core::amqp::{self, ConfirmedPublisher, Topology};
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
    let messages = rejected
        .iter()
        .map(|(delivery, rejection)| {
            let reason = rejection.to_string();
            tracing::warn!(reason = %reason, routing_key = %delivery.routing_key, "event rejected");
            amqp::dead_letter::letter(&queue, delivery, &reason)
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
    let queue = topology.dead_letter_queue();
    publisher
        .publish_all(vec![amqp::dead_letter::letter(&queue, delivery, reason)])
        .await
        .context("dead-lettering a poison event")
}
