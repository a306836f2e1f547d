//! The dispatcher's configuration: the contract's variables plus tuning knobs with safe defaults.

use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::Duration;
use webhooks_core::duration;
use webhooks_core::secret::Secret;

/// Consumes domain events, fans out one delivery per matching webhook, and serves the management API.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "webhooks-dispatcher", version)]
pub struct Config {
    #[command(flatten)]
    pub common: webhooks_core::config::Common,

    /// Address of the management API, /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,

    /// Bearer token of the management API; when unset a random one is generated and logged once.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,

    /// Key the hand-offs to the senders are signed with (at least 32 bytes; the senders' HANDOFF_KEY
    /// or, while keys rotate, their HANDOFF_KEY_PREVIOUS). Required.
    #[arg(long, env = "HANDOFF_KEY", hide_env_values = true)]
    pub handoff_key: Option<Secret>,

    /// Topic exchange the domain events are published to.
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = "domain.events")]
    pub events_exchange: String,

    /// Events larger than this many bytes are dead-lettered.
    #[arg(long, env = "MAX_EVENT_BYTES", default_value_t = 1_048_576)]
    pub max_event_bytes: usize,

    /// Comma-separated CIDRs that webhook URLs may point to although private or loopback.
    #[arg(long, env = "ALLOWED_TARGETS", value_delimiter = ',', value_parser = webhooks_core::destination::parse_net)]
    pub allowed_targets: Vec<IpNet>,

    /// The kind of durable queue `webhooks.dispatcher` is declared as: `classic` or `quorum`. The
    /// broker keeps a queue's type for its life, so an existing queue must be drained and deleted
    /// before it can change.
    #[arg(long, env = "EVENTS_QUEUE_TYPE", value_enum, default_value_t = webhooks_core::amqp::QueueType::Classic)]
    pub events_queue_type: webhooks_core::amqp::QueueType,

    /// Most unacknowledged events the broker may push ahead of processing.
    #[arg(long, env = "PREFETCH", default_value_t = webhooks_core::amqp::EVENTS_PREFETCH)]
    pub prefetch: u16,

    /// Bytes of events the broker may push ahead of processing: the prefetch is this divided by
    /// the largest event seen lately (rounded up to a power of two; at first `MAX_EVENT_BYTES`),
    /// at least 1 and at most `PREFETCH`. Bounds the dispatcher's memory (see docs/operations.md).
    #[arg(long, env = "EVENTS_IN_FLIGHT_BYTES", default_value_t = webhooks_core::memory::EVENTS_IN_FLIGHT_BYTES)]
    pub events_in_flight_bytes: usize,

    /// Most events handled in one database transaction and one hand-off message.
    #[arg(long, env = "BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,

    /// How long a batch may wait, after its first event, for more events to arrive.
    /// At a moderate rate a batch would otherwise hold one or two events, each batch costing a
    /// commit, a hand-off message and a claim.
    #[arg(long, env = "BATCH_LINGER", default_value = "2ms", value_parser = duration::parse)]
    pub batch_linger: Duration,

    /// Full reload of the in-memory webhook index, on top of change notifications.
    #[arg(long, env = "INDEX_RELOAD", default_value = "30s", value_parser = duration::parse)]
    pub index_reload: Duration,

    /// A new delivery is recorded leased to its hand-off message for this long; should the message
    /// never reach a sender, the senders' scheduler picks the delivery up then. A sender attempts
    /// deliveries straight from the message only while their lease leaves it room for an attempt
    /// (its `DELIVERY_TIMEOUT` plus 5 s), so this must be longer than that.
    #[arg(long, env = "HANDOFF_GRACE", default_value = "30s", value_parser = duration::parse)]
    pub handoff_grace: Duration,

    /// Deliveries that replays hand back to the senders per second at most, in this dispatcher
    /// (all its replays together).
    #[arg(long, env = "REPLAY_RATE", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub replay_rate: u32,

    /// Deliveries handed back in one turn of the replay task, 1 to 2000: one transaction and one
    /// hand-off message per replay. Turns come `REPLAY_BATCH / REPLAY_RATE` seconds apart.
    #[arg(long, env = "REPLAY_BATCH", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub replay_batch: u32,

    /// Deliveries one replay keeps handed back and not yet attempted, at most; and while the
    /// senders have this many deliveries due and not taken, replays hand back none.
    #[arg(long, env = "REPLAY_IN_FLIGHT", default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    pub replay_in_flight: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn debug_shows_no_password_or_token() {
        let config = Config::parse_from([
            "webhooks-dispatcher",
            "--amqp-url",
            "amqp://app:amqp-hunter2@broker:5672/%2f",
            "--database-url",
            "postgres://app:pg-hunter2@db:5432/webhooks",
            "--admin-token",
            "token-hunter2",
            "--handoff-key",
            "handoff-key-hunter2",
        ]);
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("amqp://app:***@broker:5672/%2f"), "{shown}");
        assert!(
            shown.contains("postgres://app:***@db:5432/webhooks"),
            "{shown}"
        );
        assert_eq!(
            config.admin_token.map(|t| t.expose().to_owned()),
            Some("token-hunter2".into())
        );
    }
}
