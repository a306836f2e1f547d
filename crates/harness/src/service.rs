//! Talking to a running service over HTTP: whether it is ready (`/readyz`), waiting until it is,
//! and its `/metrics`; and the environment that makes a service binary part of a world.

use anyhow::Context;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::names::Names;
use crate::process::Process;

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Dispatcher,
    Sender,
}

impl Service {
    pub const BOTH: [Service; 2] = [Service::Dispatcher, Service::Sender];

    pub fn name(self) -> &'static str {
        match self {
            Service::Dispatcher => "dispatcher",
            Service::Sender => "sender",
        }
    }

    pub fn binary(self) -> &'static str {
        match self {
            Service::Dispatcher => "webhooks-dispatcher",
            Service::Sender => "webhooks-sender",
        }
    }
}

/// Every variable a world sets for its services: [`env()`]'s, and `HTTP_ADDR` (set by
/// [`Process::start`]).
pub const WORLD_VARIABLES: [&str; 8] = [
    "AMQP_URL",
    "DATABASE_URL",
    "AMQP_PREFIX",
    "EVENTS_EXCHANGE",
    "ADMIN_TOKEN",
    "HANDOFF_KEY",
    "ALLOWED_TARGETS",
    "HTTP_ADDR",
];

/// The key both services of a world sign and check hand-offs with.
pub const HANDOFF_KEY: &str = "4b7e19c2d05a8f36e1c94b20a7d5f38e";

/// The variables that put a service binary into the world `names` (its broker names and its
/// database on `pg_server`), with `token` for the API, the world's hand-off key and the receivers
/// on loopback allowed.
pub fn env(
    names: &Names,
    amqp_url: &str,
    pg_server: &str,
    token: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("AMQP_URL", amqp_url.to_owned()),
        ("DATABASE_URL", names.database_url(pg_server)),
        ("AMQP_PREFIX", names.prefix.clone()),
        ("EVENTS_EXCHANGE", names.exchange.clone()),
        ("ADMIN_TOKEN", token.to_owned()),
        ("HANDOFF_KEY", HANDOFF_KEY.to_owned()),
        ("ALLOWED_TARGETS", "127.0.0.0/8".to_owned()),
    ]
}

/// The status `/readyz` answers within `within` (0 when nothing answers).
pub async fn readyz(http: &reqwest::Client, addr: SocketAddr, within: Duration) -> u16 {
    let answer = http
        .get(format!("http://{addr}/readyz"))
        .timeout(within)
        .send()
        .await;
    answer.map_or(0, |response| response.status().as_u16())
}

/// Waits until `addr` answers 200 on `/readyz` (its queues declared and consumed), up to `within`;
/// fails early when `process`, if given, exits meanwhile.
pub async fn wait_ready(
    http: &reqwest::Client,
    addr: SocketAddr,
    mut process: Option<&mut Process>,
    within: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = process
            .as_mut()
            .map(|p| p.try_exited())
            .transpose()?
            .flatten()
        {
            anyhow::bail!("the service at {addr} exited during start-up: {status}");
        }
        if readyz(http, addr, Duration::from_secs(1)).await == 200 {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "the service at {addr} was not ready within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The Prometheus text of the service's `/metrics` at `addr`.
pub async fn metrics_text(http: &reqwest::Client, addr: SocketAddr) -> anyhow::Result<String> {
    http.get(format!("http://{addr}/metrics"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .with_context(|| format!("scraping {addr}/metrics"))?
        .text()
        .await
        .context("reading metrics")
}
