//! The names of everything the services declare, and declaring it.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, ExchangeKind};

use super::QueueError;

/// The names of everything the services declare.
#[derive(Clone, Debug)]
pub struct Topology {
    prefix: String,
    events_exchange: String,
}

impl Topology {
    pub fn new(prefix: &str, events_exchange: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
            events_exchange: events_exchange.to_owned(),
        }
    }

    /// What every name starts with (`AMQP_PREFIX`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The topic exchange other services publish domain events to.
    pub fn events_exchange(&self) -> &str {
        &self.events_exchange
    }
    /// The dispatcher's queue of domain events.
    pub fn dispatcher_queue(&self) -> String {
        format!("{}webhooks.dispatcher", self.prefix)
    }
    /// Rejected events and refused hand-offs, with `x-rejection-reason`.
    pub fn dead_letter_queue(&self) -> String {
        format!("{}webhooks.dead-letter", self.prefix)
    }
    /// Batches of delivery ids from the dispatcher to the sender.
    pub fn deliveries_queue(&self) -> String {
        format!("{}webhooks.deliveries", self.prefix)
    }
    /// The exchange of `webhook.disabled` notifications.
    pub fn notifications_exchange(&self) -> String {
        format!("{}webhooks.notifications", self.prefix)
    }
    /// The queue the e-mail service reads notifications from.
    pub fn notifications_queue(&self) -> String {
        format!("{}webhooks.notifications", self.prefix)
    }
}

fn durable_queue() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    }
}

/// The kind of durable queue the dispatcher's events wait in (`EVENTS_QUEUE_TYPE`).
///
/// A quorum queue writes every message to the broker's log, whether its consumer keeps up or not,
/// and hands it out once it is on disk; a classic queue skips the write for a message consumed and
/// acked at once but spends more per message while a backlog stands (measured: docs/decisions.md).
/// The broker refuses to declare an existing queue with another type: switching an installation
/// means draining and deleting `webhooks.dispatcher` first.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QueueType {
    #[default]
    Classic,
    Quorum,
}

impl QueueType {
    /// The arguments of a queue declaration. A classic queue is declared with none, as it always
    /// has been: an installation's existing queue stays equivalent to the declaration.
    pub fn arguments(self) -> FieldTable {
        let mut arguments = FieldTable::default();
        if self == Self::Quorum {
            arguments.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        arguments
    }
}

async fn declare_bound_queue(
    channel: &Channel,
    exchange: &str,
    queue: &str,
    arguments: FieldTable,
) -> Result<(), QueueError> {
    // Topic exchanges: publishers route by event name, we take everything with `#`.
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            durable_exchange(),
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_declare(queue.into(), durable_queue(), arguments)
        .await?;
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares the events exchange, the dispatcher's queue (of `queue_type`) bound with `#`, and the
/// dead-letter queue.
pub async fn declare_events(
    channel: &Channel,
    topology: &Topology,
    queue_type: QueueType,
) -> Result<(), QueueError> {
    declare_bound_queue(
        channel,
        topology.events_exchange(),
        &topology.dispatcher_queue(),
        queue_type.arguments(),
    )
    .await?;
    declare_dead_letter(channel, topology).await
}

/// Declares the dead-letter queue: the dispatcher's rejected events, the sender's refused
/// hand-offs (both declare it: whoever starts first).
pub async fn declare_dead_letter(channel: &Channel, topology: &Topology) -> Result<(), QueueError> {
    channel
        .queue_declare(
            topology.dead_letter_queue().as_str().into(),
            durable_queue(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares the queue between dispatcher and sender (both declare it: whoever starts first).
pub async fn declare_deliveries(channel: &Channel, topology: &Topology) -> Result<(), QueueError> {
    channel
        .queue_declare(
            topology.deliveries_queue().as_str().into(),
            durable_queue(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// Declares the notifications exchange and its durable queue, so nothing is lost while the
/// e-mail service is away.
pub async fn declare_notifications(
    channel: &Channel,
    topology: &Topology,
) -> Result<(), QueueError> {
    declare_bound_queue(
        channel,
        &topology.notifications_exchange(),
        &topology.notifications_queue(),
        FieldTable::default(),
    )
    .await
}
