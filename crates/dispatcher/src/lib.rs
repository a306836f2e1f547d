//! The dispatcher: consumes domain events, fans out one delivery per matching webhook, and serves
//! the management API.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`consumer`]: the broker session: topology, batched consumption, reconnection.
//! - [`fanout`]: a batch of events → dead letters, recorded deliveries, confirmed hand-offs, ack.
//! - [`prefetch`]: the prefetch from `EVENTS_IN_FLIGHT_BYTES` and the sizes of the events seen.
//! - [`index`]: the in-memory index of enabled webhooks by (project, event), kept fresh by LISTEN/NOTIFY.
//! - [`api`]: the management API under `/api/v1`.
//! - [`store`]: every SQL statement, used by `fanout`, `index` and `api`; it uses none of them.
//! - [`metrics`]: every metric the dispatcher exports.

pub mod api;
pub mod config;
pub mod consumer;
pub mod fanout;
pub mod index;
pub mod metrics;
pub mod prefetch;
pub mod store;

pub use config::Config;

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use webhooks_core::amqp::Topology;
use webhooks_core::clock::Clock;
use webhooks_core::destination::Destinations;
use webhooks_core::secret::Secret;
use webhooks_core::server::{self, Readiness};

use crate::consumer::Shared;
use crate::index::WebhookIndex;
use crate::metrics::Metrics;

/// A running dispatcher.
pub struct Service {
    /// Where the API and the operational endpoints listen.
    pub http_addr: SocketAddr,
    /// The API's bearer token (generated when none was configured).
    pub admin_token: Secret,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    grace: std::time::Duration,
}

impl Service {
    /// Waits until `shutdown` is cancelled and every task has finished (bounded by the grace period).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        self.tracker.close();
        tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .context("in-flight work did not finish within the shutdown grace period")
    }
}

/// Starts the dispatcher: database (created and migrated), index, API, and the broker session.
pub async fn start(
    config: Config,
    clock: Clock,
    shutdown: CancellationToken,
) -> anyhow::Result<Service> {
    let pool = webhooks_core::db::connect(
        config.common.database_url.expose(),
        config.common.database_pool_size,
        // Recording inserts; the API's listings are left to the planner.
        webhooks_core::db::Reads::Default,
    )
    .await
    .context("connecting to the database")?;
    // The preparing stage records one batch at a time; a second connection covers a reconnect.
    let record_pool = webhooks_core::db::connect_unflushed(
        config.common.database_url.expose(),
        2,
        webhooks_core::db::Reads::Default,
    )?;
    let metrics = Metrics::new();
    let index = WebhookIndex::default();
    // Loaded before consuming: an event must never be matched against an empty index.
    {
        let client = pool.get().await.context("loading webhooks")?;
        index.load_all(&client).await.context("loading webhooks")?;
    }
    metrics.index_webhooks.set(index.len() as i64);
    let shared = Shared {
        pool: pool.clone(),
        record_pool,
        index: index.clone(),
        topology: Topology::new(&config.common.amqp_prefix, &config.events_exchange),
        clock: clock.clone(),
        metrics: metrics.clone(),
        readiness: Readiness::new(pool.clone()),
    };
    let admin_token = match &config.admin_token {
        Some(token) if !token.expose().is_empty() => token.clone(),
        _ => {
            let token = generate_token();
            tracing::warn!(
                admin_token = token.expose(),
                "ADMIN_TOKEN not set; generated one for this process"
            );
            token
        }
    };
    let tracker = TaskTracker::new();

    let api = api::router(api::Api {
        pool,
        index: index.clone(),
        clock,
        destinations: Destinations::new(config.allowed_targets.clone()),
        token: Arc::new(admin_token.clone()),
        metrics: metrics.clone(),
    });
    let router = server::ops_router(
        shared.readiness.clone(),
        metrics.registry.clone(),
        server::Common::new("webhooks-dispatcher"),
    )
    .merge(api);
    let (http_addr, serve) = server::bind(config.http_addr, router, shutdown.clone())
        .await
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    tracker.spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });

    tracker.spawn(index::keep_fresh(
        index,
        config.common.database_url.expose().to_owned(),
        config.index_reload,
        metrics.index_webhooks.clone(),
        shutdown.clone(),
    ));

    let grace = config.common.shutdown_grace;
    let session_shutdown = shutdown.clone();
    tracker.spawn(async move {
        let config = Arc::new(config);
        webhooks_core::amqp::reconnect_loop(
            "dispatcher",
            shared.readiness.clone(),
            session_shutdown.clone(),
            || consumer::session(&config, &shared, &session_shutdown),
        )
        .await;
    });
    tracing::info!(%http_addr, "dispatcher started");
    Ok(Service {
        http_addr,
        admin_token,
        tracker,
        shutdown,
        grace,
    })
}

fn generate_token() -> Secret {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}
