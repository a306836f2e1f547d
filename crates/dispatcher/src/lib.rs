//! The dispatcher: consumes domain events, fans out one delivery per matching webhook, and serves
//! the management API.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`admin_token`]: the API's bearer token: refused when weak, generated when unset.
//! - [`project_token`]: tokens scoped to one project, signed with a key derived from it.
//! - [`consumer`]: the broker session: topology, batched consumption, reconnection.
//! - [`fanout`]: a batch of events → dead letters, recorded deliveries, confirmed hand-offs, ack.
//! - [`prefetch`]: the prefetch from `EVENTS_IN_FLIGHT_BYTES` and the sizes of the events seen.
//! - [`index`]: the in-memory index of enabled webhooks by (project, event), kept fresh by LISTEN/NOTIFY.
//! - [`api`]: the management API under `/api/v1`.
//! - [`replay`]: the task that hands the deliveries of bulk replays back to the senders, paced.
//! - [`console`]: the web console at `/console`, which calls that API from the browser.
//! - [`store`]: every SQL statement, used by `fanout`, `index` and `api`; it uses none of them.
//! - [`metrics`]: every metric the dispatcher exports.

pub mod admin_token;
pub mod api;
pub mod config;
pub mod console;
pub mod consumer;
pub mod fanout;
pub mod index;
pub mod metrics;
pub mod prefetch;
pub mod project_token;
pub mod replay;
pub mod store;

pub use config::Config;

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use webhooks_core::amqp::{Broker, Topology};
use webhooks_core::clock::Clock;
use webhooks_core::db::{Database, Reads};
use webhooks_core::destination::Destinations;
use webhooks_core::handoff_auth::HandoffKey;
use webhooks_core::listener;
use webhooks_core::reconnect;
use webhooks_core::retention;
use webhooks_core::secret::Secret;
use webhooks_core::server::{self, Readiness};
use webhooks_core::shutdown::Fatal;

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
    fatal: Fatal,
    grace: std::time::Duration,
}

impl Service {
    /// Waits until `shutdown` is cancelled and every task has finished (bounded by the grace period).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        self.tracker.close();
        tokio::time::timeout(self.grace, self.tracker.wait())
            .await
            .context("in-flight work did not finish within the shutdown grace period")?;
        self.fatal.outcome()
    }
}

/// Starts the dispatcher: the API and the operational endpoints at once; then, in the background,
/// the database (created and migrated once it answers), the index and the broker session. Only a
/// bad setting or an address already taken fails the start: a database or broker that is away is
/// waited for (`/readyz` answers 503 meanwhile).
pub async fn start(
    config: Config,
    clock: Clock,
    shutdown: CancellationToken,
) -> anyhow::Result<Service> {
    // Before anything else: a weak token is a configuration error, not something to run with.
    let (admin_token, generated) = admin_token::choose(config.admin_token.as_ref())?;
    if generated {
        tracing::warn!(
            admin_token = admin_token.expose(),
            "ADMIN_TOKEN not set; generated one for this process"
        );
    }
    let handoff_key = HandoffKey::from_setting("HANDOFF_KEY", config.handoff_key.as_ref())?;
    let database = Database::new(
        config.common.database_url.expose(),
        config.common.database_ca_file.as_deref(),
    )
    .context("reading the database settings")?;
    let broker = Broker::new(
        config.common.amqp_url.expose(),
        config.common.amqp_ca_file.as_deref(),
    )
    .context("reading the broker settings")?;
    // Recording inserts; the API's listings are left to the planner.
    let pool = database.pool(config.common.database_pool_size, Reads::Default)?;
    // The preparing stage records one batch at a time; a second connection covers a reconnect.
    let record_pool = database.unflushed_pool(2, Reads::Default)?;
    let metrics = Metrics::new();
    let index = WebhookIndex::default();
    let shared = Shared {
        pool: pool.clone(),
        record_pool,
        index: index.clone(),
        topology: Topology::new(&config.common.amqp_prefix, &config.events_exchange),
        clock: clock.clone(),
        metrics: metrics.clone(),
        // Probes over a connection of their own, never queued behind the workers'.
        readiness: Readiness::new(database.pool(1, Reads::Default)?),
        broker,
        handoff_key,
    };
    let tracker = TaskTracker::new();
    let replays = replay::Wake::default();

    let api = api::router(api::Api {
        pool,
        index: index.clone(),
        clock,
        destinations: Destinations::new(config.allowed_targets.clone()),
        token: Arc::new(admin_token.clone()),
        token_key: project_token::TokenKey::derive(&admin_token),
        metrics: metrics.clone(),
        replays: replays.clone(),
    });
    let router = server::ops_router(
        shared.readiness.clone(),
        metrics.registry.clone(),
        server::Common::new("webhooks-dispatcher"),
    )
    .merge(api)
    .merge(console::router());
    let limits = listener::Limits::of(&config.common);
    let (http_addr, serve) = listener::bind(config.http_addr, router, limits, shutdown.clone())
        .await
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    tracker.spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tracker.spawn(shared.readiness.clone().probe_database(shutdown.clone()));

    let grace = config.common.shutdown_grace;
    let fatal = Fatal::default();
    tracker.spawn(run_when_ready(
        database,
        config,
        shared,
        replays,
        tracker.clone(),
        fatal.clone(),
        shutdown.clone(),
    ));
    tracing::info!(%http_addr, "dispatcher started");
    Ok(Service {
        http_addr,
        admin_token,
        tracker,
        shutdown,
        fatal,
        grace,
    })
}

/// Waits for the database (set up once it answers), loads the index, then starts the index's
/// listener and the broker session. Events are consumed only after the index is loaded: an event
/// must never be matched against an empty index.
async fn run_when_ready(
    database: Database,
    config: Config,
    shared: Shared,
    replays: replay::Wake,
    tracker: TaskTracker,
    fatal: Fatal,
    shutdown: CancellationToken,
) {
    let ready = reconnect::until_ok("database set-up", &shutdown, || async {
        if let Err(e) = database.set_up(&shared.pool).await {
            if e.is_refusal() {
                fatal.stop(e.to_string(), &shutdown);
                return anyhow::Ok(false);
            }
            return Err(e.into());
        }
        // Before the first record: the days it may write to have their partitions.
        retention::prepare(&shared.pool, shared.clock.now()).await?;
        let client = shared.pool.get().await.context("loading webhooks")?;
        shared
            .index
            .load_all(&client)
            .await
            .context("loading webhooks")?;
        anyhow::Ok(true)
    })
    .await;
    if ready != Some(true) {
        return;
    }
    // Partitions ahead only: the senders, which know DISABLE_AFTER, drop the days past RETENTION.
    tracker.spawn(retention::run(
        shared.pool.clone(),
        shared.clock.clone(),
        retention::Policy {
            keep: None,
            every: config.common.maintenance_interval,
        },
        shutdown.clone(),
    ));
    // Replays left running by a restart go on from where their last step committed.
    let replayer = replay::Replayer {
        pool: shared.pool.clone(),
        clock: shared.clock.clone(),
        metrics: shared.metrics.clone(),
        pace: replay::Pace {
            rate: config.replay_rate,
            batch: config.replay_batch,
            in_flight: config.replay_in_flight,
        },
        wake: replays,
        handoff: replay::Handoff {
            broker: shared.broker.clone(),
            topology: shared.topology.clone(),
            key: shared.handoff_key.clone(),
        },
    };
    tracker.spawn(replayer.run(shutdown.clone()));
    shared.metrics.index_webhooks.set(shared.index.len() as i64);
    tracker.spawn(index::keep_fresh(
        shared.index.clone(),
        database,
        config.index_reload,
        shared.metrics.index_webhooks.clone(),
        shutdown.clone(),
    ));
    let config = Arc::new(config);
    webhooks_core::amqp::reconnect_loop(
        "dispatcher",
        shared.readiness.clone(),
        shutdown.clone(),
        || consumer::session(&config, &shared, &shutdown),
    )
    .await;
}
