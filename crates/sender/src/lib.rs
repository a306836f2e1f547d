//! The sender: delivers webhooks over HTTP, retries with backoff, tracks each webhook's health,
//! disables webhooks that fail for `DISABLE_AFTER` and notifies their owners.
//!
//! # Layout
//! - [`config`]: flags and environment.
//! - [`consumer`]: the broker session: hand-off messages in, notification outbox out.
//! - [`screening`]: hand-off messages without the dispatcher's signature dead-lettered unread.
//! - [`intake`]: hand-off messages decoded and sorted by the limiter's verdicts.
//! - [`scheduler`]: claims due deliveries (retries, lost hand-offs, expired leases) from the database.
//! - [`backlog`]: gauges of the work waiting in the database.
//! - [`claim`]: leasing deliveries for an attempt.
//! - [`bodies`]: the budget of delivery bodies in flight, and the jobs started within it.
//! - [`runner`]: runs claimed jobs within the in-flight and per-endpoint, host and project limits.
//! - [`limiter`]: concurrency caps per endpoint, host and project; circuit breaker per endpoint.
//! - [`attempt`]: prepare → send → describe one HTTP attempt.
//! - [`failure`]: the kinds of failed attempt, classified by error type, and their stored texts.
//! - [`resolver`]: DNS resolution that refuses forbidden destinations.
//! - [`outcome`]: pure decisions: next state of a delivery, change of a webhook's health.
//! - [`disable`]: the pure disable rule (no success for `DISABLE_AFTER`) and its notification.
//! - [`recorder`]: batched writes of outcomes, disabling and the notification outbox.
//! - [`outbox`]: publishes queued notifications with confirms.
//! - [`retry`]: backoff with jitter (the one user of the `backoff` crate).
//! - [`metrics`]: every metric the sender exports.
//! - [`store`]: every SQL statement, with the planner and locking facts each relies on.

pub mod attempt;
pub mod backlog;
pub mod bodies;
pub mod claim;
pub mod config;
pub mod consumer;
pub mod disable;
pub mod failure;
pub mod intake;
pub mod limiter;
pub mod metrics;
pub mod outbox;
pub mod outcome;
pub mod recorder;
pub mod resolver;
pub mod retry;
pub mod runner;
pub mod scheduler;
pub mod screening;
pub mod store;

pub use config::Config;

use anyhow::Context;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, Semaphore, mpsc};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use webhooks_core::amqp::{Broker, Topology};
use webhooks_core::clock::Clock;
use webhooks_core::db::{Database, Reads};
use webhooks_core::destination::Destinations;
use webhooks_core::handoff_auth::HandoffKeys;
use webhooks_core::listener;
use webhooks_core::reconnect;
use webhooks_core::retention;
use webhooks_core::server::{self, Readiness};
use webhooks_core::shutdown::Fatal;

use crate::limiter::{Limiter, LimiterConfig};
use crate::metrics::Metrics;
use crate::retry::RetryPolicy;

/// A running sender.
pub struct Service {
    /// Where /metrics, /healthz and /readyz listen.
    pub http_addr: SocketAddr,
    tasks: TaskTracker,
    jobs: TaskTracker,
    recorder: tokio::task::JoinHandle<()>,
    shutdown: CancellationToken,
    fatal: Fatal,
    grace: Duration,
}

/// What starts once the database is set up.
struct Deferred {
    scheduler: scheduler::Scheduler,
    runner: runner::Runner,
    permits: Arc<Semaphore>,
}

/// Waits for the database (set up once it answers), then starts the backlog gauges, the
/// scheduler and the broker session.
async fn run_when_ready(
    database: Database,
    config: Config,
    shared: consumer::Shared,
    deferred: Deferred,
    tasks: TaskTracker,
    fatal: Fatal,
    shutdown: CancellationToken,
) {
    let ready = reconnect::until_ok("database set-up", &shutdown, || async {
        if let Err(e) = database.set_up(&shared.pool).await {
            if e.is_refusal() {
                fatal.stop(e.to_string(), &shutdown);
                return Ok(false);
            }
            return Err(e.into());
        }
        retention::prepare(&shared.pool, shared.clock.now()).await?;
        Ok(true)
    })
    .await;
    if ready != Some(true) {
        return;
    }
    tasks.spawn(retention::run(
        shared.pool.clone(),
        shared.clock.clone(),
        retention::Policy {
            keep: Some(config.retention),
            every: config.common.maintenance_interval,
        },
        shutdown.clone(),
    ));
    tasks.spawn(backlog::run(
        shared.pool.clone(),
        shared.clock.clone(),
        shared.metrics.clone(),
        shutdown.clone(),
    ));
    tasks.spawn(deferred.scheduler.run(shutdown.clone()));
    let Deferred {
        runner, permits, ..
    } = deferred;
    webhooks_core::amqp::reconnect_loop(
        "sender",
        shared.readiness.clone(),
        shutdown.clone(),
        || consumer::session(&config, &shared, &runner, &permits, &shutdown),
    )
    .await;
}

impl Service {
    /// Waits for `shutdown`, then drains: no new claims, in-flight attempts finish, their outcomes
    /// are written. Bounded by the shutdown grace period.
    pub async fn wait(self) -> anyhow::Result<()> {
        self.shutdown.cancelled().await;
        let drain = async {
            self.tasks.close();
            self.tasks.wait().await;
            self.jobs.close();
            self.jobs.wait().await;
            // Every outcome sender is gone now: the recorder flushes and ends.
            let _ = self.recorder.await;
        };
        tokio::time::timeout(self.grace, drain)
            .await
            .context("in-flight deliveries did not finish within the shutdown grace period")?;
        self.fatal.outcome()
    }
}

/// Starts the sender: the recorder and the operational endpoints at once; then, in the
/// background, the database (created and migrated once it answers), the scheduler and the broker
/// session. Only a bad setting or an address already taken fails the start: a database or broker
/// that is away is waited for (`/readyz` answers 503 meanwhile).
pub async fn start(
    config: Config,
    clock: Clock,
    shutdown: CancellationToken,
) -> anyhow::Result<Service> {
    retention::check(config.retention, config.disable_after).map_err(anyhow::Error::msg)?;
    let handoff_keys = HandoffKeys::from_settings(
        config.handoff_key.as_ref(),
        config.handoff_key_previous.as_ref(),
    )?;
    // ring is the one TLS crypto provider compiled in; installing it twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
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
    // Claims, outcomes and health all reach rows by key: see `Reads::ByIndex`.
    let pool = database.pool(config.common.database_pool_size, Reads::ByIndex)?;
    // The consumer claims one chunk at a time; a second connection covers a reconnect.
    let claim_pool = database.unflushed_pool(2, Reads::ByIndex)?;
    let metrics = Metrics::new();
    let shared = consumer::Shared {
        pool: pool.clone(),
        claim_pool,
        topology: Topology::new(&config.common.amqp_prefix, ""),
        clock: clock.clone(),
        metrics: metrics.clone(),
        // Probes over a connection of their own, never queued behind the workers'.
        readiness: Readiness::new(database.pool(1, Reads::Default)?),
        outbox: Arc::new(Notify::new()),
        lease: config.delivery_timeout * 2 + Duration::from_secs(5),
        bodies: bodies::Bodies::new(config.bodies_in_flight_bytes),
        broker,
        handoff_keys,
    };
    let policy = RetryPolicy {
        initial: config.retry_initial,
        max: config.retry_max,
    };
    let (outcomes_tx, outcomes_rx) = mpsc::channel(config.max_in_flight.max(16) * 2);
    let recorder = tokio::spawn(
        recorder::Recorder {
            pool: pool.clone(),
            clock: clock.clone(),
            policy,
            give_up_after: config.disable_after,
            disable: disable::DisableRule::new(config.disable_after),
            metrics: metrics.clone(),
            outbox: shared.outbox.clone(),
        }
        .run(outcomes_rx),
    );
    let jobs = TaskTracker::new();
    let runner = runner::Runner {
        sender: attempt::Sender::new(
            Destinations::new(config.allowed_targets.clone()),
            config.delivery_timeout,
            config.response_snippet_bytes,
            config.max_in_flight.max(1),
        )
        .context("building the HTTP client")?,
        limiter: Limiter::new(
            LimiterConfig {
                max_per_endpoint: config.max_per_endpoint.max(1),
                max_per_host: config.max_per_host(),
                max_per_project: config.max_per_project(),
                breaker_failures: config.breaker_failures,
                breaker_slow: config.breaker_slow,
                // A held delivery waits no longer than its first retry would have.
                breaker_pause: config.breaker_pause.min(config.retry_initial),
                // Requests to an endpoint that is not answering take up to the timeout: hold the
                // rest back that long rather than cycling them through the schedule.
                busy_hold: config.delivery_timeout,
            },
            clock.clone(),
        ),
        outcomes: outcomes_tx,
        clock,
        metrics: metrics.clone(),
        jobs: jobs.clone(),
    };
    let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let tasks = TaskTracker::new();

    let router = server::ops_router(
        shared.readiness.clone(),
        metrics.registry.clone(),
        server::Common::new("webhooks-sender"),
    );
    let limits = listener::Limits::of(&config.common);
    let (http_addr, serve) = listener::bind(config.http_addr, router, limits, shutdown.clone())
        .await
        .with_context(|| format!("binding HTTP_ADDR {}", config.http_addr))?;
    tasks.spawn(async move {
        if let Err(e) = serve.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    tasks.spawn(shared.readiness.clone().probe_database(shutdown.clone()));

    let grace = config.common.shutdown_grace;
    let scheduler = scheduler::Scheduler {
        pool,
        runner: runner.clone(),
        permits: permits.clone(),
        interval: config.scheduler_interval,
        lease: shared.lease,
        bodies: shared.bodies.clone(),
    };
    let fatal = Fatal::default();
    tasks.spawn(run_when_ready(
        database,
        config,
        shared,
        Deferred {
            scheduler,
            runner,
            permits,
        },
        tasks.clone(),
        fatal.clone(),
        shutdown.clone(),
    ));
    tracing::info!(%http_addr, "sender started");
    Ok(Service {
        http_addr,
        tasks,
        jobs,
        recorder,
        shutdown,
        fatal,
        grace,
    })
}
