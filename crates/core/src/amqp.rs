//! RabbitMQ: connecting, declaring the topology, and publishing with publisher confirms.
//!
//! Names follow the contract; an optional prefix (`AMQP_PREFIX`) isolates installations that share a
//! vhost. Every queue and exchange is durable and every message that carries something only the
//! broker holds is persistent: nothing is lost when the broker restarts. The one transient message,
//! the dispatcher's hand-off, names deliveries the database already holds (see [`transient_json`]).

use lapin::options::{
    BasicCancelOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::time::Duration;

mod publisher;
pub use publisher::{ConfirmedPublisher, Confirms, Outgoing};

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("broker: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("broker did not answer within {0:?}")]
    Timeout(Duration),
    #[error("broker refused a message (nack)")]
    Nacked,
    #[error("broker could not route a message to {0}")]
    Unroutable(String),
    #[error("AMQP_URL is not a broker URL: {0}")]
    Url(String),
}

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

    /// The topic exchange other services publish domain events to.
    pub fn events_exchange(&self) -> &str {
        &self.events_exchange
    }
    /// The dispatcher's queue of domain events.
    pub fn dispatcher_queue(&self) -> String {
        format!("{}webhooks.dispatcher", self.prefix)
    }
    /// Rejected events, with `x-rejection-reason`.
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

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Opens a connection named after the service and the installation's prefix (the name shows in
/// the broker's management tools, and lets an operator close just this installation's connections).
pub async fn connect(url: &str, name: &str, topology: &Topology) -> Result<Connection, QueueError> {
    let name = if topology.prefix.is_empty() {
        name.to_owned()
    } else {
        format!("{name} {}", topology.prefix)
    };
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let uri = broker_uri(url)?;
    tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties))
        .await
        .map_err(|_| QueueError::Timeout(CONNECT_TIMEOUT))?
        .map_err(QueueError::from)
}

/// The largest frame the services ask the broker for, unless `AMQP_URL` names one (`frame_max`).
///
/// The client keeps 32 frames of buffer each way per connection, so the broker's default of
/// 128 KiB costs 8 MiB of memory per connection; at 32 KiB it is 2 MiB. Events are far smaller
/// than a frame, and a larger message (a big event, a hand-off of many deliveries) is carried in
/// several frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// Parses the broker URL and asks for frames of at most [`FRAME_MAX`] unless it says otherwise.
pub fn broker_uri(url: &str) -> Result<lapin::uri::AMQPUri, QueueError> {
    let mut uri: lapin::uri::AMQPUri = url.parse().map_err(QueueError::Url)?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Ok(uri)
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
/// acked at once but spends more per message while a backlog stands (the benchmark's findings in
/// the README). The broker refuses to declare an existing queue with another type: switching an
/// installation means draining and deleting `webhooks.dispatcher` first.
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

/// Persistent JSON message properties.
pub fn persistent_json() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // 2 = persistent: the message survives a broker restart.
        .with_delivery_mode(2)
}

/// Deletes every queue and exchange of `topology`, and `extra_queues`: for benchmarks and tests
/// that set up throwaway installations. What is not there is skipped; each delete gets a channel
/// of its own, since a failed delete closes its channel.
pub async fn delete_topology(
    connection: &Connection,
    topology: &Topology,
    extra_queues: &[String],
) -> Result<(), lapin::Error> {
    let queues = [
        topology.dispatcher_queue(),
        topology.dead_letter_queue(),
        topology.deliveries_queue(),
        topology.notifications_queue(),
    ];
    for queue in queues.iter().chain(extra_queues) {
        let channel = connection.create_channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        topology.events_exchange().to_owned(),
        topology.notifications_exchange(),
    ] {
        let channel = connection.create_channel().await?;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    Ok(())
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

/// How long a graceful close may take before the connection is simply dropped.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Stops consuming and closes the connection, politely if the broker answers within
/// [`CLOSE_WITHIN`]; otherwise the connection is dropped (the broker then requeues whatever was
/// unacked, as on any lost connection). Shutdown must not wait on a broker session that has gone
/// wrong.
pub async fn close(connection: &Connection, channel: &Channel, consumer_tag: ShortString) {
    let polite = async {
        let _ = channel
            .basic_cancel(consumer_tag, BasicCancelOptions::default())
            .await;
        let _ = connection.close(200, "shutting down".into()).await;
    };
    if tokio::time::timeout(CLOSE_WITHIN, polite).await.is_err() {
        tracing::warn!("the broker did not confirm the close in time; dropping the connection");
    }
}

/// Closes a connection that consumes nothing, waiting at most as long as [`close`] does.
pub async fn close_connection(connection: &Connection, reason: &str) {
    if tokio::time::timeout(CLOSE_WITHIN, connection.close(200, reason.into()))
        .await
        .is_err()
    {
        tracing::warn!("the broker did not confirm the close in time; dropping the connection");
    }
}

/// A message that need not outlive a broker restart: the dispatcher's hand-off names deliveries
/// already committed to the database, and should it be lost the senders' scheduler finds them
/// after `HANDOFF_GRACE`. Writing it to disk would cost the broker a disk write per batch and buy
/// nothing. It is still published with confirms, so a broker that refuses it is noticed.
pub fn transient_json() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // 1 = transient: kept in memory.
        .with_delivery_mode(1)
}

/// Adds one string header to `properties`.
pub fn with_header(properties: BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), AMQPValue::LongString(value.into()));
    properties.with_headers(headers)
}

/// Reads a string-ish header from a delivery's properties.
pub fn header_string(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}

/// Runs `session` (connect, declare, consume) again and again until `shutdown` is cancelled.
///
/// A session returns when its connection fails; the loop then waits (100 ms doubling to 5 s, reset
/// after a session that lived a minute) and starts a new one. lapin's own recovery is not used: a
/// fresh connection, fresh channels and fresh consumers are the one path that always works after a
/// broker restart, and unacked messages are redelivered by the broker meanwhile.
pub async fn reconnect_loop<F, Fut>(
    what: &'static str,
    readiness: crate::server::Readiness,
    shutdown: tokio_util::sync::CancellationToken,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    const FIRST: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);
    let mut wait = FIRST;
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        let outcome = session().await;
        readiness.set_broker_up(false);
        if shutdown.is_cancelled() {
            break;
        }
        match outcome {
            Ok(()) => tracing::warn!(what, "broker session ended; reconnecting"),
            Err(e) => tracing::warn!(
                what,
                error = format!("{e:#}"),
                "broker session failed; reconnecting"
            ),
        }
        if started.elapsed() > Duration::from_secs(60) {
            wait = FIRST;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_capped_unless_the_url_names_a_size() {
        let default = broker_uri("amqp://guest:guest@127.0.0.1:5672/%2f").expect("a broker URL");
        assert_eq!(default.query.frame_max, Some(FRAME_MAX));
        let named =
            broker_uri("amqp://127.0.0.1:5672/%2f?frame_max=131072&heartbeat=10").expect("a URL");
        assert_eq!(named.query.frame_max, Some(131_072));
        assert_eq!(named.query.heartbeat, Some(10));
        let error = broker_uri("127.0.0.1:5672").expect_err("no scheme");
        assert!(
            error
                .to_string()
                .starts_with("AMQP_URL is not a broker URL")
        );
    }
}
