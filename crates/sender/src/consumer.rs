//! The broker session of the sender: declare the topology, publish the notification outbox, and
//! consume hand-off messages. Each message's deliveries are started (as far as in-flight permits
//! allow): those it carries whole, under the lease they were recorded with, with no more than a
//! read of their webhooks; the others once claimed. The message is acked once its deliveries are
//! started, because from then on the database lease, not the broker, guarantees they are
//! attempted. Should the database be away meanwhile, the session keeps the messages and tries
//! again: handing them back would make them redelivered, whose reservation no longer counts.
//! A batch of messages is screened for the dispatcher's signature by [`crate::screening`], then
//! what it names is decoded and sorted by [`crate::intake`].

use anyhow::Context;
use deadpool_postgres::Pool;
use futures::StreamExt;
use lapin::options::BasicAckOptions;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::{self, Broker, ConfirmedPublisher, Topology};
use webhooks_core::clock::Clock;
use webhooks_core::handoff_auth::HandoffKeys;
use webhooks_core::server::Readiness;

use crate::bodies::Bodies;
use crate::config::Config;
use crate::intake::{self, Parked, Work};
use crate::metrics::{ClaimSource, Metrics};
use crate::runner::Runner;
use crate::scheduler::lease_end;

/// Most deliveries claimed in one query.
const CLAIM_CHUNK: usize = 500;
/// How often parked deliveries are looked at again.
const PARKED_EVERY: Duration = Duration::from_millis(50);
/// Most deliveries parked at once; more are left to the scheduler.
const PARKED_MOST: usize = 100_000;
/// Room a carried delivery's lease must leave beyond an attempt's timeout, for the wait for its
/// endpoint and the record of its outcome, for it to be attempted without a claim.
const CARRIED_SLACK: Duration = Duration::from_secs(5);
/// How long the session waits before trying again while the database is away.
const DATABASE_AWAY_PAUSE: Duration = Duration::from_millis(500);

/// What the broker session works with, set up once by [`crate::start`].
#[derive(Clone)]
pub struct Shared {
    pub pool: Pool,
    /// For claims of handed-off deliveries: commits that do not wait for the disk (see
    /// [`crate::claim::by_ids`]).
    pub claim_pool: Pool,
    pub topology: Topology,
    pub clock: Clock,
    pub metrics: Metrics,
    pub readiness: Readiness,
    pub outbox: Arc<Notify>,
    /// How long a claim keeps other senders away from a delivery.
    pub lease: Duration,
    /// The budget of body bytes in flight (`BODIES_IN_FLIGHT_BYTES`).
    pub bodies: Bodies,
    /// Where the broker is and how to reach it.
    pub broker: Broker,
    /// The keys a hand-off must be signed with (see [`crate::screening`]).
    pub handoff_keys: HandoffKeys,
}

pub async fn session(
    config: &Config,
    shared: &Shared,
    runner: &Runner,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let connection = shared
        .broker
        .connect("webhooks-sender", &shared.topology)
        .await?;
    let setup = connection.create_channel().await?;
    amqp::declare_deliveries(&setup, &shared.topology).await?;
    amqp::declare_notifications(&setup, &shared.topology).await?;
    amqp::declare_dead_letter(&setup, &shared.topology).await?;
    let publisher = ConfirmedPublisher::open(&connection).await?;
    let dead_letters = ConfirmedPublisher::open(&connection).await?;

    let session_stop = shutdown.child_token();
    let _stop_outbox = session_stop.clone().drop_guard();
    let mut outbox = tokio::spawn(crate::outbox::run(
        shared.pool.clone(),
        publisher,
        shared.topology.clone(),
        shared.outbox.clone(),
        shared.metrics.clone(),
        session_stop.clone(),
    ));

    // A few messages ahead: each carries up to thousands of deliveries.
    let (channel, consumer) = amqp::consume(
        &connection,
        &shared.topology.deliveries_queue(),
        config.prefetch,
    )
    .await
    .context("consuming deliveries")?;
    let consumer_tag = consumer.tag();
    shared.readiness.set_broker_up(true);
    tracing::info!(queue = %shared.topology.deliveries_queue(), "consuming deliveries");

    // Whatever hand-off messages have arrived are claimed together: under load claims grow
    // instead of queueing one per message.
    let mut batches = consumer.ready_chunks(usize::from(config.prefetch.max(1)));
    let mut parked: Vec<Parked> = Vec::new();
    shared.metrics.deliveries_parked.set(0);
    let mut look_again = tokio::time::interval(PARKED_EVERY);
    look_again.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            outcome = &mut outbox => {
                return match outcome {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(e)) => Err(e.context("publishing notifications")),
                    Err(e) => Err(anyhow::anyhow!("notification publisher died: {e}")),
                };
            }
            _ = look_again.tick(), if !parked.is_empty() => {
                let (mut work, held) = intake::unpark(&runner.limiter, &mut parked);
                shared.metrics.deliveries_parked.set(parked.len() as i64);
                shared.metrics.deferred.inc_by(held);
                if let Err(e) = start(shared, runner, permits, &mut work, shutdown).await {
                    if !database_away(shared, shutdown).await {
                        return Err(e);
                    }
                    // Their hand-offs are acked: the scheduler takes them once the database is back.
                    tracing::warn!(error = format!("{e:#}"), "claiming parked deliveries failed; database unreachable");
                }
                continue;
            }
            batch = batches.next() => batch,
        };
        let batch = amqp::received(batch, "deliveries")?;
        let Some(last_tag) = batch.last().map(|m| m.delivery_tag) else {
            continue;
        };
        let batch = crate::screening::screen(
            &shared.handoff_keys,
            &dead_letters,
            &shared.topology,
            &shared.metrics,
            batch,
        )
        .await?;
        let mut sorted = intake::sort(
            &runner.limiter,
            &batch,
            PARKED_MOST.saturating_sub(parked.len()),
            shared.clock.now(),
            config.delivery_timeout + CARRIED_SLACK,
        );
        shared.metrics.deferred.inc_by(sorted.held);
        while let Err(e) = start(shared, runner, permits, &mut sorted.work, shutdown).await {
            if !database_away(shared, shutdown).await {
                // Unacked, the messages come again, redelivered.
                return Err(e);
            }
            // The database is away: keep the broker session and the messages, and try again.
            // What was started before the failure is not started again.
            tracing::warn!(
                error = format!("{e:#}"),
                "starting deliveries failed; database unreachable"
            );
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(DATABASE_AWAY_PAUSE) => {}
            }
        }
        channel
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await?;
        parked.append(&mut sorted.park);
        shared.metrics.deliveries_parked.set(parked.len() as i64);
    }
    amqp::close(&connection, &channel, consumer_tag).await;
    Ok(())
}

/// Whether a failed claim means the database is away, so the session carries on (rather than
/// ending, as on any other error or when stopping).
async fn database_away(shared: &Shared, shutdown: &CancellationToken) -> bool {
    !shutdown.is_cancelled() && !webhooks_core::db::is_reachable(&shared.pool).await
}

/// Starts the deliveries of `work` as far as in-flight permits and the budget of bodies in flight
/// allow, taking them out of `work` as they are claimed: on an error, what is left in it has not
/// been claimed (claimed jobs not started yet are left to their lease).
async fn start(
    shared: &Shared,
    runner: &Runner,
    permits: &Arc<Semaphore>,
    work: &mut Work,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    while !work.carried.is_empty() {
        let held = some_permits(permits, work.carried.len(), shutdown).await?;
        let n = held.num_permits();
        let (jobs, changed) = crate::claim::carried(&shared.claim_pool, &work.carried[..n]).await?;
        work.carried.drain(..n);
        for (reserved, delivery) in changed {
            work.claim(Some(reserved), delivery);
        }
        shared
            .metrics
            .claimed
            .with(ClaimSource::Handoff)
            .inc_by(jobs.len() as u64);
        let jobs = crate::claim::Claimed {
            jobs,
            unread: Vec::new(),
        };
        shared.bodies.run(runner, &shared.pool, jobs, held).await?;
    }
    for (reserved, ids) in &mut work.claims {
        while !ids.is_empty() {
            let held = some_permits(permits, ids.len(), shutdown).await?;
            let n = held.num_permits();
            let now = shared.clock.now();
            let jobs = crate::claim::by_ids(
                &shared.claim_pool,
                &ids[..n],
                now,
                *reserved,
                lease_end(now, shared.lease),
            )
            .await?;
            ids.drain(..n);
            shared
                .metrics
                .claimed
                .with(ClaimSource::Queue)
                .inc_by(jobs.len() as u64);
            shared.bodies.run(runner, &shared.pool, jobs, held).await?;
        }
    }
    debug_assert!(work.is_empty());
    Ok(())
}

/// At least one permit, then as many more as are free, up to `wanted` and one chunk: never waits
/// for a whole chunk while slow requests hold part of the in-flight budget.
async fn some_permits(
    permits: &Arc<Semaphore>,
    wanted: usize,
    shutdown: &CancellationToken,
) -> anyhow::Result<OwnedSemaphorePermit> {
    let mut held = tokio::select! {
        // Deliveries not started stay pending: the message is redelivered or the scheduler finds them.
        _ = shutdown.cancelled() => anyhow::bail!("stopping"),
        permit = Arc::clone(permits).acquire_owned() => permit?,
    };
    let wanted = wanted.min(CLAIM_CHUNK);
    while held.num_permits() < wanted {
        match Arc::clone(permits).try_acquire_owned() {
            Ok(more) => held.merge(more),
            Err(_) => break,
        }
    }
    Ok(held)
}
