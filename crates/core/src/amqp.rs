//! RabbitMQ: connecting, declaring the topology, consuming, and publishing with publisher confirms.
//!
//! Names follow the contract; an optional prefix (`AMQP_PREFIX`) isolates installations that share a
//! vhost. Every queue and exchange is durable and every message that carries something only the
//! broker holds is persistent: nothing is lost when the broker restarts. The one transient message,
//! the dispatcher's hand-off, names deliveries the database already holds (see [`transient_json`]).
//!
//! - [`topology`]: the names, and declaring queues and exchanges.
//! - [`connection`]: connecting (TLS included), closing, and the reconnect loop every broker
//!   session runs in.
//! - [`mod@consume`]: consumers and their prefetch.
//! - [`properties`]: message properties and headers.
//! - [`dead_letter`]: messages a service will not process, kept whole with the reason.
//! - [`testing`]: removing a throwaway installation (tests and the benchmark).

use std::time::Duration;

pub mod connection;
pub mod consume;
pub mod dead_letter;
pub mod properties;
mod publisher;
pub mod testing;
pub mod topology;

pub use connection::{
    Broker, FRAME_MAX, broker_uri, close, close_connection, connect, reconnect_loop,
};
pub use consume::{EVENTS_PREFETCH, consume, consume_on, received};
pub use properties::{header_string, persistent_json, transient_json, with_header};
pub use publisher::{ConfirmedPublisher, Confirms, Outgoing};
pub use testing::delete_topology;
pub use topology::{
    QueueType, Topology, declare_dead_letter, declare_deliveries, declare_events,
    declare_notifications,
};

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
    #[error("broker TLS: {0}")]
    Tls(String),
}
