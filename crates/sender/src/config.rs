//! The sender's configuration: the contract's variables plus tuning knobs with safe defaults.

use ipnet::IpNet;
use std::net::SocketAddr;
use std::time::Duration;
use webhooks_core::duration;
use webhooks_core::secret::Secret;

/// Delivers webhooks over HTTP with retries, failure tracking, auto-disable and notifications.
#[derive(clap::Parser, Clone, Debug)]
#[command(name = "webhooks-sender", version)]
pub struct Config {
    #[command(flatten)]
    pub common: webhooks_core::config::Common,

    /// Key the dispatcher signs hand-offs with (at least 32 bytes); a hand-off it did not sign is
    /// dead-lettered unread. Required.
    #[arg(long, env = "HANDOFF_KEY", hide_env_values = true)]
    pub handoff_key: Option<Secret>,

    /// The key hand-offs were signed with before HANDOFF_KEY, also accepted while keys rotate.
    #[arg(long, env = "HANDOFF_KEY_PREVIOUS", hide_env_values = true)]
    pub handoff_key_previous: Option<Secret>,

    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "HTTP_ADDR", default_value = "127.0.0.1:8081")]
    pub http_addr: SocketAddr,

    /// Total time one attempt may take; no answer by then is a failure.
    #[arg(long, env = "DELIVERY_TIMEOUT", default_value = "15s", value_parser = duration::parse)]
    pub delivery_timeout: Duration,

    /// A webhook failing for this long is disabled; a delivery is given up this long after its first attempt.
    #[arg(long, env = "DISABLE_AFTER", default_value = "2d", value_parser = duration::parse)]
    pub disable_after: Duration,

    /// Events, deliveries and attempts older than this are dropped, a day at a time (once none of
    /// a day's deliveries is still waiting). Must be longer than DISABLE_AFTER.
    #[arg(long, env = "RETENTION", default_value = "30d", value_parser = duration::parse)]
    pub retention: Duration,

    /// Delay before the first retry (exponential backoff with jitter from here); also the
    /// shortest wait a Retry-After can ask for.
    #[arg(long, env = "RETRY_INITIAL", default_value = "10s", value_parser = duration::parse)]
    pub retry_initial: Duration,

    /// Longest delay between two attempts (also caps Retry-After).
    #[arg(long, env = "RETRY_MAX", default_value = "6h", value_parser = duration::parse)]
    pub retry_max: Duration,

    /// Comma-separated CIDRs deliveries may reach although private or loopback.
    #[arg(long, env = "ALLOWED_TARGETS", value_delimiter = ',', value_parser = webhooks_core::destination::parse_net)]
    pub allowed_targets: Vec<IpNet>,

    /// Most HTTP requests in flight at once in this process.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// Most requests in flight at once to one endpoint (webhook URL).
    #[arg(long, env = "MAX_PER_ENDPOINT", default_value_t = 64)]
    pub max_per_endpoint: usize,

    /// Most requests in flight at once to one host (the URL's host and port as written, whatever
    /// the path); a quarter of `MAX_IN_FLIGHT` unless set.
    #[arg(long, env = "MAX_PER_HOST")]
    pub max_per_host: Option<usize>,

    /// Most requests in flight at once for the webhooks of one project; half of `MAX_IN_FLIGHT`
    /// unless set.
    #[arg(long, env = "MAX_PER_PROJECT")]
    pub max_per_project: Option<usize>,

    /// Consecutive failures or slow answers of an endpoint that open its circuit (0 turns the
    /// breaker off).
    #[arg(long, env = "BREAKER_FAILURES", default_value_t = 10)]
    pub breaker_failures: u32,

    /// A success answered this slowly or slower counts toward `BREAKER_FAILURES` as a failure does
    /// (it stays a success for the delivery and the webhook's health); 0s: none does.
    #[arg(long, env = "BREAKER_SLOW", default_value = "5s", value_parser = duration::parse)]
    pub breaker_slow: Duration,

    /// How long an open circuit holds deliveries back before one probe goes through.
    #[arg(long, env = "BREAKER_PAUSE", default_value = "30s", value_parser = duration::parse)]
    pub breaker_pause: Duration,

    /// How often the scheduler looks for due retries and lost hand-offs.
    #[arg(long, env = "SCHEDULER_INTERVAL", default_value = "1s", value_parser = duration::parse)]
    pub scheduler_interval: Duration,

    /// Bytes of delivery bodies the jobs in flight may hold at once (a body shared by several
    /// deliveries counts once); a body over 16 KiB is read from the database once there is room
    /// for it. Bounds the sender's memory with `PREFETCH` (see docs/operations.md).
    #[arg(long, env = "BODIES_IN_FLIGHT_BYTES", default_value_t = webhooks_core::memory::BODIES_IN_FLIGHT_BYTES)]
    pub bodies_in_flight_bytes: usize,

    /// Hand-off messages the broker may push ahead of processing. A message names up to 2,000
    /// deliveries, so 8 ahead is many times `MAX_IN_FLIGHT`; more only holds bodies in memory.
    #[arg(long, env = "PREFETCH", default_value_t = 8)]
    pub prefetch: u16,

    /// Bytes of a response body kept with an attempt (the rest is not read).
    #[arg(long, env = "RESPONSE_SNIPPET_BYTES", default_value_t = 1024)]
    pub response_snippet_bytes: usize,
}

/// The share of `MAX_IN_FLIGHT` that one host may hold unless set otherwise: at least this many
/// troubled hosts are needed to fill the process.
const HOST_SHARE_OF_IN_FLIGHT: usize = 4;

/// The share of `MAX_IN_FLIGHT` that one project may hold unless set otherwise: half, so that
/// another project always finds room, while a project's own endpoints (`MAX_PER_ENDPOINT` each,
/// 64 of 512) need four that hang at once to take its share from its healthy ones. At a quarter,
/// two hanging endpoints filled it and held back every other delivery of their project until
/// their timeouts came back.
const PROJECT_SHARE_OF_IN_FLIGHT: usize = 2;

impl Config {
    /// `MAX_PER_HOST`, or a quarter of `MAX_IN_FLIGHT`; at least 1.
    pub fn max_per_host(&self) -> usize {
        self.max_per_host
            .unwrap_or(self.max_in_flight / HOST_SHARE_OF_IN_FLIGHT)
            .max(1)
    }

    /// `MAX_PER_PROJECT`, or half of `MAX_IN_FLIGHT`; at least 1.
    pub fn max_per_project(&self) -> usize {
        self.max_per_project
            .unwrap_or(self.max_in_flight / PROJECT_SHARE_OF_IN_FLIGHT)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn a_host_takes_a_quarter_of_the_slots_and_a_project_half_unless_set() {
        let config = Config::parse_from(["webhooks-sender"]);
        assert_eq!(
            (config.max_per_host(), config.max_per_project()),
            (128, 256)
        );
        let config = Config::parse_from(["webhooks-sender", "--max-in-flight", "2"]);
        assert_eq!((config.max_per_host(), config.max_per_project()), (1, 1));
        let config = Config::parse_from([
            "webhooks-sender",
            "--max-per-host",
            "300",
            "--max-per-project",
            "7",
        ]);
        assert_eq!((config.max_per_host(), config.max_per_project()), (300, 7));
        assert_eq!(config.breaker_slow, Duration::from_secs(5));
    }
}
