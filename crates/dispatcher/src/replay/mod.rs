//! The replay task: hands the matches of running replays back to the senders, a bounded batch at
//! a time, paced so that live deliveries keep their latency.
//!
//! Every turn (`REPLAY_BATCH / REPLAY_RATE` seconds apart while a replay runs, a second apart when
//! none does, at once when the API has just created one) takes the running replays, oldest first,
//! and steps each in a transaction of its own ([`step`]): its matches found done are forgotten,
//! then a batch of its next matches is made `pending` and due (see [`crate::store::replay_steps`]).
//! A turn hands back at most `REPLAY_BATCH` deliveries in all, shared by the replays, so this
//! dispatcher hands back at most `REPLAY_RATE` a second; a replay keeps at most
//! `REPLAY_IN_FLIGHT` handed back and not yet attempted (so a slow or failing endpoint slows its
//! own replay, not the senders), and no replay hands back anything while the senders have
//! `REPLAY_IN_FLIGHT` deliveries or more due and untaken.
//!
//! Each step's deliveries are then named in a signed hand-off message (`deliver.v1`, ids to claim)
//! on `webhooks.deliveries`, so a sender claims them at once, as it claims a redelivered event's.
//! The message only hurries them: they are due in the database, and the senders' scheduler takes
//! them on its next turn should the message be lost or the broker be away.
//!
//! Everything a replay has done is in the database when its step commits: a replay survives any
//! restart and goes on from there, in whichever dispatcher comes first (a replay stepped by one
//! dispatcher is skipped by the others until its step commits).
//!
//! # Layout
//! - this file: the task and its turns.
//! - [`progress`]: a replay's counts and what its next step may do.

pub mod progress;

use anyhow::Context;
use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhooks_core::amqp::{self, Broker, ConfirmedPublisher, Outgoing, Topology};
use webhooks_core::clock::Clock;
use webhooks_core::handoff_auth::HandoffKey;
use webhooks_core::messages::SenderMessage;

use crate::fanout::handoff::Message;
use crate::metrics::Metrics;
use crate::store::replay_steps as store;

/// How often the task looks for running replays when none is running (the API wakes it at once
/// when it creates one; this finds those created through another dispatcher, or left running by
/// a restart).
const IDLE: Duration = Duration::from_secs(1);
/// Most replays stepped in one turn (the oldest running); the others wait for a turn with room.
const REPLAYS_PER_TURN: i64 = 16;
/// How long the task leaves the broker alone after failing to reach it (the scheduler takes the
/// deliveries meanwhile).
const BROKER_PAUSE: Duration = Duration::from_secs(5);

/// How fast replays go (`REPLAY_*`).
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    /// Deliveries handed back per second at most.
    pub rate: u32,
    /// Deliveries handed back per turn at most.
    pub batch: u32,
    /// Deliveries a replay keeps handed back and not yet attempted, at most; and the senders'
    /// backlog of due work past which nothing is handed back.
    pub in_flight: u32,
}

impl Pace {
    /// The time between two turns while a replay runs.
    pub fn interval(&self) -> Duration {
        Duration::from_secs_f64(f64::from(self.batch.max(1)) / f64::from(self.rate.max(1)))
    }
}

/// Wakes the task: a replay was just created.
#[derive(Clone, Default)]
pub struct Wake(Arc<Notify>);

impl Wake {
    pub fn now(&self) {
        self.0.notify_one();
    }
}

/// Where the hand-off messages go and how they are signed.
pub struct Handoff {
    pub broker: Broker,
    pub topology: Topology,
    pub key: HandoffKey,
}

/// The replay task.
pub struct Replayer {
    pub pool: Pool,
    pub clock: Clock,
    pub metrics: Metrics,
    pub pace: Pace,
    pub wake: Wake,
    pub handoff: Handoff,
}

impl Replayer {
    /// Runs turns until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut broker = BrokerLink::default();
        loop {
            let started = Instant::now();
            let running = match self.turn(&mut broker).await {
                Ok(running) => running,
                Err(e) => {
                    // Tried again after a pause: the database may be away.
                    tracing::warn!(error = format!("{e:#}"), "replay turn failed");
                    false
                }
            };
            // Turns start an interval apart, however long each took (so the rate holds).
            let pause = if running { self.pace.interval() } else { IDLE };
            let pause = pause.saturating_sub(started.elapsed());
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = self.wake.0.notified() => {}
                _ = tokio::time::sleep(pause) => {}
            }
        }
        broker.close().await;
    }

    /// Steps the running replays; returns whether any was running.
    async fn turn(&self, broker: &mut BrokerLink) -> anyhow::Result<bool> {
        let mut client = self.pool.get().await.context("replays: a connection")?;
        let replays = store::running(&client, REPLAYS_PER_TURN).await?;
        if replays.is_empty() {
            return Ok(false);
        }
        let now = self.clock.now();
        let in_flight = i32::try_from(self.pace.in_flight).unwrap_or(i32::MAX);
        let backlog = store::due_backlog(&client, now, i64::from(in_flight)).await?;
        // The senders are behind: hand back nothing this turn (done matches are still counted).
        let budget = if backlog >= i64::from(in_flight) {
            0
        } else {
            i32::try_from(self.pace.batch).unwrap_or(i32::MAX)
        };
        let count = i32::try_from(replays.len()).unwrap_or(i32::MAX);
        let share = (budget + count - 1) / count;
        let mut left = budget;
        for replay in replays {
            let room = share.min(left);
            let (webhook, handed) = step(&mut client, replay, room, in_flight, now).await?;
            left -= i32::try_from(handed.len()).unwrap_or(i32::MAX);
            if !handed.is_empty() {
                self.metrics.deliveries_replayed.inc_by(handed.len() as u64);
                broker.publish(&self.handoff, webhook, &handed).await;
            }
        }
        Ok(true)
    }
}

/// One step of one replay, in a transaction: forgets its matches found done, stops it if its
/// webhook can take no more, hands back up to `budget` of its next matches (keeping at most
/// `in_flight` waiting for their attempt), and saves its counts (finished when nothing is left).
/// Returns its webhook and the deliveries handed back (none when another dispatcher is stepping
/// it right now).
async fn step(
    client: &mut deadpool_postgres::Client,
    replay: Uuid,
    budget: i32,
    in_flight: i32,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<(Uuid, Vec<Uuid>)> {
    let tx = client.transaction().await?;
    let Some(locked) = store::lock(&tx, replay).await? else {
        return Ok((Uuid::nil(), Vec::new()));
    };
    let mut progress = locked.progress;
    if progress.in_flight() > 0 {
        let (from, through) = (progress.in_flight_from, progress.next_after);
        let (done, oldest) = store::forget_done(&tx, replay, from, through).await?;
        progress.found_done(done, oldest);
    }
    if let Some(reason) = locked.webhook_gone.filter(|_| progress.left() > 0) {
        store::forget_rest(&tx, replay, progress.next_after).await?;
        progress.stop(reason);
        tracing::info!(%replay, reason, "replay stopped");
    }
    let room = progress.room(budget, in_flight);
    let mut handed = Vec::new();
    if room > 0 {
        let batch = store::next_batch(&tx, replay, progress.next_after, i64::from(room)).await?;
        match batch.last() {
            Some(&(last, _)) => {
                handed = store::hand_back(&tx, &batch, &locked.states, now).await?;
                let changed: Vec<Uuid> = batch
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| !handed.contains(id))
                    .collect();
                store::forget(&tx, replay, &changed).await?;
                let taken = i32::try_from(batch.len()).unwrap_or(i32::MAX);
                let back = i32::try_from(handed.len()).unwrap_or(i32::MAX);
                progress.took(taken, back, last);
            }
            None => progress.none_left(),
        }
    }
    store::save(&tx, replay, &progress, now).await?;
    tx.commit().await?;
    if progress.is_finished() {
        tracing::info!(%replay, matched = progress.matched, queued = progress.queued,
            skipped = progress.skipped, "replay finished");
    }
    Ok((locked.webhook, handed))
}

/// The task's own broker connection, opened when first needed and again after a failure (not
/// sooner than [`BROKER_PAUSE`] after it).
#[derive(Default)]
struct BrokerLink {
    open: Option<(lapin::Connection, ConfirmedPublisher)>,
    retry_at: Option<Instant>,
}

impl BrokerLink {
    /// Names `deliveries` (all of `webhook`) in a hand-off message; a failure is logged and left
    /// to the scheduler.
    async fn publish(&mut self, handoff: &Handoff, webhook: Uuid, deliveries: &[Uuid]) {
        if let Err(e) = self.try_publish(handoff, webhook, deliveries).await {
            tracing::debug!(
                error = format!("{e:#}"),
                "replayed deliveries left to the scheduler"
            );
            if let Some((connection, _)) = self.open.take() {
                amqp::close_connection(&connection, "replay hand-off failed").await;
            }
            self.retry_at = Some(Instant::now() + BROKER_PAUSE);
        }
    }

    async fn try_publish(
        &mut self,
        handoff: &Handoff,
        webhook: Uuid,
        deliveries: &[Uuid],
    ) -> anyhow::Result<()> {
        if self.open.is_none() {
            if self.retry_at.is_some_and(|at| Instant::now() < at) {
                return Ok(());
            }
            let connection = handoff
                .broker
                .connect("webhooks-dispatcher replays", &handoff.topology)
                .await?;
            let publisher = ConfirmedPublisher::open(&connection).await?;
            self.open = Some((connection, publisher));
        }
        let Some((_, publisher)) = &self.open else {
            return Ok(());
        };
        let message = Message {
            body: serde_json::to_vec(&SenderMessage::ClaimIds {
                deliveries: deliveries.to_vec(),
                webhooks: vec![webhook; deliveries.len()],
            })?,
            carried: false,
        };
        let queue = handoff.topology.deliveries_queue();
        publisher
            .publish_all(vec![Outgoing {
                exchange: "",
                routing_key: &queue,
                body: &message.body,
                properties: message.signed_properties(&handoff.key, &queue),
            }])
            .await?;
        Ok(())
    }

    async fn close(self) {
        if let Some((connection, _)) = self.open {
            amqp::close_connection(&connection, "shutting down").await;
        }
    }
}
