//! Hand-off messages are screened before anything reads them: only those signed by a dispatcher
//! (with `HANDOFF_KEY`, or `HANDOFF_KEY_PREVIOUS` while keys rotate; see
//! [`webhooks_core::handoff_auth`]) go on to [`crate::intake`]. Any other is dead-lettered whole
//! with the reason, counted in `handoffs_refused_total` and logged once: a message whoever can
//! publish on the vhost put there must not make the sender sign a body with a customer's secret.
//!
//! A refused message names no delivery the sender attempts: should a genuine hand-off be refused
//! (its dispatcher holding another key), its deliveries stay pending in the database and the
//! scheduler takes them once their lease to the hand-off (`HANDOFF_GRACE`) has run out.

use anyhow::Context;
use lapin::message::Delivery;
use webhooks_core::amqp::{self, ConfirmedPublisher, Topology};
use webhooks_core::handoff_auth::{HandoffKeys, Refusal, SIGNATURE_HEADER};

use crate::metrics::Metrics;

/// Whether `message` was signed by a dispatcher.
pub fn check(keys: &HandoffKeys, message: &Delivery) -> Result<(), Refusal> {
    let kind = message.properties.kind().as_ref().map(|k| k.as_str());
    let signature = amqp::header_string(&message.properties, SIGNATURE_HEADER);
    keys.verify(
        kind,
        message.routing_key.as_str(),
        &message.data,
        signature.as_deref(),
    )
}

/// The messages of `batch` a dispatcher signed, in order; the others are dead-lettered with
/// confirms first. An error is the broker's: the batch is left unacked, to come again.
pub async fn screen(
    keys: &HandoffKeys,
    publisher: &ConfirmedPublisher,
    topology: &Topology,
    metrics: &Metrics,
    batch: Vec<Delivery>,
) -> anyhow::Result<Vec<Delivery>> {
    let mut signed = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for message in batch {
        match check(keys, &message) {
            Ok(()) => signed.push(message),
            Err(refusal) => refused.push((message, refusal)),
        }
    }
    if refused.is_empty() {
        return Ok(signed);
    }
    let queue = topology.dead_letter_queue();
    let reasons: Vec<String> = refused.iter().map(|(_, r)| r.to_string()).collect();
    let letters = refused
        .iter()
        .zip(&reasons)
        .map(|((message, _), reason)| amqp::dead_letter::letter(&queue, message, reason))
        .collect();
    publisher
        .publish_all(letters)
        .await
        .context("dead-lettering refused hand-offs")?;
    for (message, refusal) in &refused {
        metrics.handoffs_refused.with(*refusal).inc();
        tracing::warn!(
            reason = %refusal,
            kind = message.properties.kind().as_ref().map(|k| k.as_str()),
            bytes = message.data.len(),
            "hand-off refused unread and dead-lettered: not signed by a dispatcher"
        );
    }
    Ok(signed)
}
