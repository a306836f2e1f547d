//! One batch of domain events in, durable deliveries and hand-off messages out.
//!
//! For each batch, a part at a time: parse every message at the edge and match the events against
//! the in-memory index ([`matching`]); dead-letter the rejects, with confirms ([`dead_letter`]);
//! record events and deliveries in one statement, a replayed event id inserting nothing new
//! ([`record`]); hand the new deliveries to the senders, with their bodies and reserved by their
//! recorded lease ([`handoff`]); then, once the broker has confirmed the hand-off and the record is
//! on disk, ack the whole batch. A crash anywhere before the ack makes the broker redeliver the
//! batch, and recording is idempotent, so nothing is lost and nothing doubles.
//!
//! The record's commit does not wait for the disk (see [`webhooks_core::db::connect_unflushed`]):
//! the hand-off goes out as soon as the record is visible, and the wait for the disk moves to the
//! ack, off the way to the receiver. Should the database itself crash before that flush, the
//! batch is still unacked: the broker redelivers it and it is recorded again. A delivery already
//! attempted from the lost record is then attempted again, under a new delivery id.
//!
//! # Layout
//! - this file: the stages of a batch ([`Fanout::prepare`], [`Fanout::hand_off`],
//!   [`Fanout::finish`]) and what passes between them.
//! - [`matching`]: which webhooks get which event, and where a part of a batch ends.
//! - [`record`]: the record of a part, and what it leaves to hand off.
//! - [`handoff`]: the hand-off messages: carried deliveries, ids to claim, their limits (public,
//!   so the fuzz targets read what it encodes the way a sender does).
//! - [`dead_letter`]: rejected and poison messages to the dead-letter queue.

mod dead_letter;
pub mod handoff;
mod matching;
mod record;

use anyhow::Context;
use deadpool_postgres::Pool;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use std::time::{Duration, Instant};
use webhooks_core::amqp::{self, ConfirmedPublisher, Outgoing, Topology};
use webhooks_core::clock::Clock;
use webhooks_core::handoff_auth::HandoffKey;

use crate::index::WebhookIndex;
use crate::metrics::{EventOutcome, Metrics};
use handoff::Handoffs;

/// Everything a batch needs; one per broker session.
pub struct Fanout {
    pub pool: Pool,
    /// Sessions whose commits do not wait for the disk, for the record.
    pub record_pool: Pool,
    pub index: WebhookIndex,
    pub publisher: ConfirmedPublisher,
    pub topology: Topology,
    pub clock: Clock,
    pub metrics: Metrics,
    pub max_event_bytes: usize,
    pub handoff_grace: Duration,
    /// Signs every hand-off (`HANDOFF_KEY`).
    pub handoff_key: HandoffKey,
}

/// A recorded batch waiting for its hand-off.
pub struct Prepared {
    handoff: Handoffs,
    ack: Ack,
}

/// A handed-off batch waiting for the broker's confirm and the disk, then its ack.
pub struct Sent {
    handed_off: usize,
    confirms: Option<amqp::Confirms>,
    ack: Ack,
}

/// What acking a batch takes, from its first part to its last.
struct Ack {
    /// Whether the part recorded anything (or found it recorded), which must be on disk before
    /// its events are acked.
    recorded: bool,
    /// The last message of the part.
    last_tag: u64,
    /// Whether the part is its batch's last, which acks the whole batch (the parts before it
    /// have been finished by then: parts and batches finish in order).
    acks: bool,
    started: Instant,
}

impl Fanout {
    /// Handles one batch and acks it; an error leaves the batch unacked for redelivery.
    pub async fn handle(&self, channel: &Channel, batch: &[Delivery]) -> anyhow::Result<()> {
        let mut from = 0;
        while from < batch.len() {
            let (prepared, next) = self.prepare(batch, from).await?;
            from = next;
            if let Some(prepared) = prepared {
                let sent = self.hand_off(prepared).await?;
                self.finish(channel, sent).await?;
            }
        }
        Ok(())
    }

    /// The first stage of a batch's next part, from its message `from` on: parse and match,
    /// dead-letter the rejects, record. Returns where the part ended (see [`matching`] for where
    /// that is); only the batch's last part acks the batch. An error may be one message's fault
    /// (see the consumer's recovery).
    pub async fn prepare(
        &self,
        batch: &[Delivery],
        from: usize,
    ) -> anyhow::Result<(Option<Prepared>, usize)> {
        if from >= batch.len() {
            return Ok((None, batch.len()));
        }
        let started = Instant::now();
        let part = matching::next_part(&self.index, batch, from, self.max_event_bytes);
        let (rejected, matched, end) = (part.rejected, part.matched, part.end);
        let events = &self.metrics.events;
        events.with(EventOutcome::Unmatched).inc_by(part.unmatched);
        dead_letter::rejected(&self.publisher, &self.topology, &rejected).await?;
        let handoff =
            record::record(&self.record_pool, &self.clock, self.handoff_grace, &matched).await?;
        events
            .with(EventOutcome::Rejected)
            .inc_by(rejected.len() as u64);
        events
            .with(EventOutcome::Accepted)
            .inc_by(matched.len() as u64);
        let last = end == batch.len();
        if last {
            self.metrics.batch_events.observe(batch.len() as f64);
        }
        let prepared = Prepared {
            handoff,
            ack: Ack {
                recorded: !matched.is_empty(),
                last_tag: batch[end - 1].delivery_tag,
                acks: last,
                started,
            },
        };
        Ok((Some(prepared), end))
    }

    /// The last stage of a part: once the broker has taken its hand-off and its record is on
    /// disk, ack it (the whole batch, with its last part). Parts and batches must be finished in
    /// the order they were prepared.
    ///
    /// An event found already recorded is flushed too: another session's commit of it may not
    /// have reached the disk yet.
    pub async fn finish(&self, channel: &Channel, sent: Sent) -> anyhow::Result<()> {
        let confirmed = async {
            match sent.confirms {
                Some(confirms) => confirms
                    .confirmed()
                    .await
                    .context("handing deliveries to the senders"),
                None => Ok(()),
            }
        };
        let flushed = async {
            if sent.ack.recorded {
                webhooks_core::db::flush(&self.pool)
                    .await
                    .context("flushing the record to disk")?;
            }
            anyhow::Ok(())
        };
        futures::try_join!(confirmed, flushed)?;
        if sent.ack.acks {
            channel
                .basic_ack(sent.ack.last_tag, BasicAckOptions { multiple: true })
                .await
                .context("acking a batch of events")?;
        }
        self.metrics
            .deliveries_created
            .inc_by(sent.handed_off as u64);
        self.metrics
            .batch_seconds
            .observe(sent.ack.started.elapsed().as_secs_f64());
        Ok(())
    }

    /// Dead-letters one message that failed processing twice, then acks it: a poison message must
    /// neither block the queue nor be redelivered forever.
    pub async fn give_up(
        &self,
        channel: &Channel,
        delivery: &Delivery,
        error: &anyhow::Error,
    ) -> anyhow::Result<()> {
        let reason = format!("could not be processed (twice): {error:#}");
        tracing::error!(reason = %reason, "giving up on an event");
        dead_letter::poison(&self.publisher, &self.topology, delivery, &reason).await?;
        channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: false })
            .await
            .context("acking a poison event")?;
        self.metrics.events.with(EventOutcome::Rejected).inc();
        Ok(())
    }

    /// The second stage of a part: send its deliveries to the senders. The broker's
    /// confirms are waited for by [`Fanout::finish`], so the next batches can go on meanwhile. An
    /// error is the broker's: the batch is left unacked, to come again.
    pub async fn hand_off(&self, prepared: Prepared) -> anyhow::Result<Sent> {
        let confirms = self.send(&prepared.handoff).await?;
        Ok(Sent {
            handed_off: prepared.handoff.len(),
            confirms,
            ack: prepared.ack,
        })
    }

    async fn send(&self, handoff: &Handoffs) -> anyhow::Result<Option<amqp::Confirms>> {
        if handoff.is_empty() {
            return Ok(None);
        }
        let queue = self.topology.deliveries_queue();
        let messages = handoff::messages(handoff);
        let outgoing = messages
            .iter()
            .map(|message| Outgoing {
                exchange: "",
                routing_key: &queue,
                body: &message.body,
                properties: message.signed_properties(&self.handoff_key, &queue),
            })
            .collect();
        let confirms = self
            .publisher
            .send_all(outgoing)
            .await
            .context("handing deliveries to the senders")?;
        Ok(Some(confirms))
    }
}
