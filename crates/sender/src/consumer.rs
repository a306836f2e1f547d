//! The broker session of the sender: declare the topology, publish the notification outbox, and
//! consume hand-off messages. Each message's deliveries are claimed (as far as in-flight permits
//! allow) and started; the message is acked once its deliveries are claimed, because from then on
//! the database lease, not the broker, guarantees they are attempted. Before claiming, the limiter
//! judges each delivery's endpoint: deliveries for one it is holding back are left pending for
//! the scheduler, and those for a full endpoint that has not answered yet are parked for a moment
//! (see [`Parked`]) instead of taking in-flight permits to wait for its slots.

use anyhow::Context;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhooks_core::amqp::{self, ConfirmedPublisher};
use webhooks_core::messages::SenderMessage;

use crate::limiter::{Limiter, Verdict};
use crate::runner::Runner;
use crate::scheduler::lease_end;
use crate::{Config, Shared};

/// Most deliveries claimed in one query.
const CLAIM_CHUNK: usize = 500;
/// How often parked deliveries are looked at again.
const PARKED_EVERY: Duration = Duration::from_millis(50);
/// How long a delivery stays parked at most; by then its endpoint has answered or is held back.
const PARKED_AT_MOST: Duration = Duration::from_secs(2);
/// Most deliveries parked at once; more are left to the scheduler.
const PARKED_MOST: usize = 100_000;

/// A delivery handed over for a full endpoint that has not answered yet: not claimed, holding no
/// permit, until the endpoint answers (then it goes ahead) or falls silent (then it is left
/// pending for the scheduler). Its hand-off is acked: should the process die, the delivery is
/// pending in the database and the scheduler takes it after `HANDOFF_GRACE`.
struct Parked {
    delivery: Uuid,
    webhook: Uuid,
    since: Instant,
}

pub async fn session(
    config: &Config,
    shared: &Shared,
    runner: &Runner,
    permits: &Arc<Semaphore>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let connection =
        amqp::connect(&config.common.amqp_url, "webhooks-sender", &shared.topology).await?;
    let setup = connection.create_channel().await?;
    amqp::declare_deliveries(&setup, &shared.topology).await?;
    amqp::declare_notifications(&setup, &shared.topology).await?;
    let publisher = ConfirmedPublisher::open(&connection).await?;

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
                let ids = unpark(shared, runner, &mut parked);
                if let Err(e) = claim_and_run(shared, runner, permits, &ids, shutdown).await {
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
        let mut sorted = sort(
            &runner.limiter,
            &batch,
            PARKED_MOST.saturating_sub(parked.len()),
        );
        shared.metrics.deferred.inc_by(sorted.held);
        if let Err(e) = claim_and_run(shared, runner, permits, &sorted.go, shutdown).await {
            if !database_away(shared, shutdown).await {
                return Err(e);
            }
            // The database is away: keep the broker session, hand the messages back and wait.
            // Deliveries claimed before the failure are leased and skipped when they come again.
            tracing::warn!(
                error = format!("{e:#}"),
                "claiming failed; database unreachable"
            );
            let requeue = BasicNackOptions {
                multiple: true,
                requeue: true,
            };
            channel.basic_nack(last_tag, requeue).await?;
            tokio::time::sleep(Duration::from_millis(500)).await;
            continue;
        }
        channel
            .basic_ack(last_tag, BasicAckOptions { multiple: true })
            .await?;
        parked.append(&mut sorted.park);
    }
    amqp::close(&connection, &channel, consumer_tag).await;
    Ok(())
}

/// The deliveries of a batch of hand-off messages, sorted by the limiter's verdicts.
#[derive(Default)]
struct Sorted {
    /// To claim now.
    go: Vec<Uuid>,
    /// To look at again in a moment.
    park: Vec<Parked>,
    /// Left pending, untouched: the scheduler finds them once `HANDOFF_GRACE` has passed.
    held: u64,
}

/// Reads a batch of hand-off messages and sorts their deliveries; at most `room` are parked, the
/// rest of those are held.
fn sort(limiter: &Limiter, batch: &[Delivery], room: usize) -> Sorted {
    let mut sorted = Sorted::default();
    let now = Instant::now();
    for message in batch {
        match serde_json::from_slice::<SenderMessage>(&message.data) {
            Ok(SenderMessage::DeliverV1 {
                deliveries,
                webhooks,
            }) if webhooks.len() == deliveries.len() => {
                for (delivery, webhook) in deliveries.into_iter().zip(webhooks) {
                    match limiter.verdict(webhook) {
                        Verdict::Go => sorted.go.push(delivery),
                        Verdict::Park if sorted.park.len() < room => sorted.park.push(Parked {
                            delivery,
                            webhook,
                            since: now,
                        }),
                        Verdict::Park | Verdict::HoldBack => sorted.held += 1,
                    }
                }
            }
            // From a dispatcher that does not name webhooks: claim them all.
            Ok(SenderMessage::DeliverV1 { deliveries, .. }) => sorted.go.extend(deliveries),
            // Not ours to fix by retrying; its deliveries (if any) are reached by the scheduler.
            Err(e) => tracing::error!(error = %e, "unreadable hand-off message dropped"),
        }
    }
    sorted
}

/// Whether a failed claim means the database is away, so the session carries on (rather than
/// ending, as on any other error or when stopping).
async fn database_away(shared: &Shared, shutdown: &CancellationToken) -> bool {
    !shutdown.is_cancelled() && !webhooks_core::db::is_reachable(&shared.pool).await
}

/// Takes out of `parked` the deliveries whose endpoint has answered (returned, to be claimed)
/// or is now held back or has been waited for long enough (left pending for the scheduler).
fn unpark(shared: &Shared, runner: &Runner, parked: &mut Vec<Parked>) -> Vec<Uuid> {
    let mut go = Vec::new();
    let mut held = 0;
    parked.retain(|p| match runner.limiter.verdict(p.webhook) {
        Verdict::Go => {
            go.push(p.delivery);
            false
        }
        Verdict::Park if p.since.elapsed() < PARKED_AT_MOST => true,
        Verdict::Park | Verdict::HoldBack => {
            held += 1;
            false
        }
    });
    shared.metrics.deferred.inc_by(held);
    go
}

async fn claim_and_run(
    shared: &Shared,
    runner: &Runner,
    permits: &Arc<Semaphore>,
    ids: &[Uuid],
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut rest = ids;
    while !rest.is_empty() {
        // At least one permit, then as many more as are free: never wait for a whole chunk while
        // slow requests hold part of the in-flight budget.
        let mut held = tokio::select! {
            // Unclaimed deliveries stay pending: the message is redelivered or the scheduler finds them.
            _ = shutdown.cancelled() => anyhow::bail!("stopping"),
            permit = Arc::clone(permits).acquire_owned() => permit?,
        };
        let wanted = rest.len().min(CLAIM_CHUNK);
        while held.num_permits() < wanted {
            match Arc::clone(permits).try_acquire_owned() {
                Ok(more) => held.merge(more),
                Err(_) => break,
            }
        }
        let (now_ids, later) = rest.split_at(held.num_permits());
        rest = later;
        let now = shared.clock.now();
        let jobs =
            crate::claim::by_ids(&shared.claim_pool, now_ids, lease_end(now, shared.lease)).await?;
        shared
            .metrics
            .claimed
            .with_label_values(&["queue"])
            .inc_by(jobs.len() as u64);
        runner.run(jobs, held);
    }
    Ok(())
}
