//! Consumers: how many unacked messages the broker pushes ahead, and reading their batches.

use lapin::types::FieldTable;
use lapin::{Channel, Connection};

use super::QueueError;

/// The dispatcher's default prefetch: unacknowledged domain events the broker pushes ahead.
///
/// An event stays unacked from its delivery until its batch's record is on disk and its hand-off
/// confirmed, and a flush now and then waits tens of milliseconds: at full speed (about 10,000
/// events/s here) up to 1,500 were measured unacked at once. A prefetch below that stops the
/// broker's deliveries and leaves a queue standing, and a classic queue spends more CPU per
/// message with a queue standing than when it hands every message out as it arrives. It is a
/// ceiling: `EVENTS_IN_FLIGHT_BYTES` lowers the prefetch for larger events (4,000 events of 1 KiB
/// are 4 MiB, 4,000 of 1 MiB would be 4 GiB).
pub const EVENTS_PREFETCH: u16 = 4_000;

/// Opens a channel that consumes `queue` with at most `prefetch` unacked messages pushed ahead
/// (the bound on what a consumer holds in memory).
pub async fn consume(
    connection: &Connection,
    queue: &str,
    prefetch: u16,
) -> Result<(Channel, lapin::Consumer), QueueError> {
    let channel = connection.create_channel().await?;
    let consumer = consume_on(&channel, queue, prefetch).await?;
    Ok((channel, consumer))
}

/// Starts a consumer of `queue` on `channel` with at most `prefetch` unacked messages pushed
/// ahead. The broker applies a prefetch to the consumers started after it: to change it, the
/// consumer is cancelled and started again (its unacked messages stay with the channel).
pub async fn consume_on(
    channel: &Channel,
    queue: &str,
    prefetch: u16,
) -> Result<lapin::Consumer, QueueError> {
    channel
        .basic_qos(prefetch, lapin::options::BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.into(),
            "".into(),
            lapin::options::BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(consumer)
}

/// One batch from a consumer stream (`ready_chunks`) of `what`: the messages, or why the session
/// must end (the broker cancelled the consumer, or the channel failed).
pub fn received(
    batch: Option<Vec<Result<lapin::message::Delivery, lapin::Error>>>,
    what: &str,
) -> anyhow::Result<Vec<lapin::message::Delivery>> {
    let Some(batch) = batch else {
        anyhow::bail!("the broker cancelled the consumer of {what}");
    };
    batch
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::Error::new(e).context(format!("receiving {what}")))
}
