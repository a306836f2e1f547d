//! One batch of domain events in, durable deliveries and one hand-off message out.
//!
//! For each batch: parse every message at the edge; dead-letter the rejects (with confirms); match
//! the rest against the in-memory index; record events and deliveries in one statement (a replayed
//! event id inserts nothing new); hand the new deliveries to the senders, with their bodies and
//! reserved by their recorded lease (see [`CarriedHandoff`]), in one message; then,
//! once the broker has confirmed the hand-off and the record is on disk, ack the whole batch. A
//! crash anywhere before the ack makes the broker redeliver the batch, and recording is
//! idempotent, so nothing is lost and nothing doubles.
//!
//! The record's commit does not wait for the disk (see [`webhooks_core::db::connect_unflushed`]):
//! the hand-off goes out as soon as the record is visible, and the wait for the disk moves to the
//! ack, off the way to the receiver. Should the database itself crash before that flush, the
//! batch is still unacked: the broker redelivers it and it is recorded again. A delivery already
//! attempted from the lost record is then attempted again, under a new delivery id.

use anyhow::Context;
use chrono::{DateTime, SubsecRound, Utc};
use deadpool_postgres::Pool;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use serde_json::value::RawValue;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use uuid::Uuid;
use webhooks_core::amqp::{self, ConfirmedPublisher, Outgoing, Topology};
use webhooks_core::body::raw_delivery_body;
use webhooks_core::clock::Clock;
use webhooks_core::event::{Event, EventName, Rejection};
use webhooks_core::memory::{RECORD_BYTES_MOST, RECORD_DELIVERIES_MOST};
use webhooks_core::messages::{CARRIED_HANDOFF, CarriedEvent, CarriedHandoff, SenderMessage};
use webhooks_core::{pending_state, waiting_states};

use crate::index::WebhookIndex;
use crate::metrics::{EventOutcome, Metrics};

/// Delivery ids per hand-off message (keeps each message well under the broker's frame limits).
const IDS_PER_MESSAGE: usize = 2000;
/// Body bytes per hand-off message, past its first event.
const BODY_BYTES_PER_MESSAGE: usize = 1 << 20;
/// Largest body a hand-off carries; the deliveries of a larger one read it with their claim.
const CARRIED_BODY_MOST: usize = 64 << 10;

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
}

/// A recorded batch waiting for its hand-off.
pub struct Prepared {
    handoff: Handoffs,
    ack: Ack,
}

/// What a batch hands to the senders.
#[derive(Default)]
struct Handoffs {
    /// The deliveries recorded by this batch, by event, leased until `leased_until`.
    fresh: Vec<Fresh>,
    /// When they were recorded, and their lease.
    recorded: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Deliveries of redelivered events still waiting, recorded before: ids only, claimed once
    /// their lease (if any) has run out.
    waiting: Vec<Handoff>,
}

impl Handoffs {
    fn len(&self) -> usize {
        self.waiting.len() + self.fresh.iter().map(|f| f.deliveries.len()).sum::<usize>()
    }
}

/// An event recorded by this batch with its new deliveries.
struct Fresh {
    name: EventName,
    /// Absent when too large to carry.
    body: Option<Box<RawValue>>,
    deliveries: Vec<Uuid>,
    webhooks: Vec<Uuid>,
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

/// A delivery to hand to the senders, with its webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Handoff {
    delivery: Uuid,
    webhook: Uuid,
}

/// An accepted event with the webhooks it matched.
struct Matched {
    /// The event, without its payload: the delivery body holds it.
    event: Event,
    /// The delivery body, one for all of the event's deliveries.
    body: Box<RawValue>,
    webhooks: Vec<Uuid>,
    redelivered: bool,
}

impl Matched {
    /// Builds the delivery body and lets the event's own copy of the payload go: a large event
    /// is held as received and as its body, not a third time.
    fn new(mut event: Event, webhooks: Vec<Uuid>, redelivered: bool) -> Self {
        let body = raw_delivery_body(&event);
        event.payload = RawValue::from_string("{}".to_owned()).expect("an empty object");
        Self {
            event,
            body,
            webhooks,
            redelivered,
        }
    }
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

    /// The first part of a batch's next part, from its message `from` on: parse, dead-letter the
    /// rejects, record. Returns where the part ended: a part ends where its deliveries would pass
    /// [`RECORD_DELIVERIES_MOST`] (an event with more deliveries than that is a part of its own)
    /// or once its events reach [`RECORD_BYTES_MOST`], so that a wide fan-out or large events are
    /// recorded and handed off a part at a time instead of all at once (the record's parameters
    /// are copied twice on their way to the database, and its connection keeps a buffer as large
    /// as the largest it sent); only the batch's last part acks it. An error may be one message's fault (see the
    /// consumer's recovery).
    pub async fn prepare(
        &self,
        batch: &[Delivery],
        from: usize,
    ) -> anyhow::Result<(Option<Prepared>, usize)> {
        if from >= batch.len() {
            return Ok((None, batch.len()));
        }
        let started = Instant::now();
        let mut rejected = Vec::new();
        let mut matched = Vec::new();
        let mut seen = HashSet::new();
        let (mut deliveries, mut bytes) = (0, 0);
        let mut end = from;
        for delivery in &batch[from..] {
            if bytes >= RECORD_BYTES_MOST {
                break;
            }
            bytes += delivery.data.len();
            let message_id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|m| m.as_str());
            match Event::parse(&delivery.data, message_id, self.max_event_bytes) {
                Err(rejection) => rejected.push((delivery, rejection)),
                Ok(event) => {
                    let webhooks = self.index.matching(event.project_code.as_str(), event.name);
                    if deliveries > 0 && deliveries + webhooks.len() > RECORD_DELIVERIES_MOST {
                        // This event opens the next part.
                        break;
                    }
                    if webhooks.is_empty() {
                        self.metrics.events.with(EventOutcome::Unmatched).inc();
                    } else if seen.insert(event.id.clone()) {
                        deliveries += webhooks.len();
                        matched.push(Matched::new(event, webhooks, delivery.redelivered));
                    }
                }
            }
            end += 1;
        }
        self.dead_letter(&rejected).await?;
        let handoff = self.record(&matched).await?;
        let events = &self.metrics.events;
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

    /// The last part of a batch: once the broker has taken the hand-off and the record is on
    /// disk, ack every message of the batch. Batches must be finished in the order they were
    /// prepared.
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
        let properties =
            amqp::with_header(delivery.properties.clone(), "x-rejection-reason", &reason);
        let queue = self.topology.dead_letter_queue();
        self.publisher
            .publish_all(vec![Outgoing {
                exchange: "",
                routing_key: &queue,
                body: &delivery.data,
                properties,
            }])
            .await
            .context("dead-lettering a poison event")?;
        channel
            .basic_ack(delivery.delivery_tag, BasicAckOptions { multiple: false })
            .await
            .context("acking a poison event")?;
        self.metrics.events.with(EventOutcome::Rejected).inc();
        Ok(())
    }

    async fn dead_letter(&self, rejected: &[(&Delivery, Rejection)]) -> anyhow::Result<()> {
        if rejected.is_empty() {
            return Ok(());
        }
        let queue = self.topology.dead_letter_queue();
        let reasons: Vec<String> = rejected.iter().map(|(_, r)| r.to_string()).collect();
        let messages = rejected
            .iter()
            .zip(&reasons)
            .map(|((delivery, _), reason)| {
                tracing::warn!(reason = %reason, routing_key = %delivery.routing_key, "event rejected");
                let properties = amqp::with_header(delivery.properties.clone(), "x-rejection-reason", reason);
                let properties = amqp::with_header(properties, "x-original-exchange", delivery.exchange.as_str());
                let properties =
                    amqp::with_header(properties, "x-original-routing-key", delivery.routing_key.as_str());
                Outgoing {
                    // The default exchange routes straight to the queue of that name.
                    exchange: "",
                    routing_key: &queue,
                    body: &delivery.data,
                    properties,
                }
            })
            .collect();
        self.publisher
            .publish_all(messages)
            .await
            .context("dead-lettering rejected events")
    }

    /// Records events and deliveries; returns what to hand off: new deliveries, plus the
    /// still-untouched deliveries of redelivered events (their earlier hand-off may have been lost).
    async fn record(&self, matched: &[Matched]) -> anyhow::Result<Handoffs> {
        if matched.is_empty() {
            return Ok(Handoffs::default());
        }
        // To the microsecond, as stored: the hand-off names the lease it was recorded with.
        let now = self.clock.now().trunc_subsecs(6);
        let grace =
            chrono::Duration::from_std(self.handoff_grace).unwrap_or(chrono::Duration::seconds(30));
        let mut rows = Rows::default();
        // Event ids are unique within a batch (see `prepare`).
        for m in matched {
            rows.push_event(&m.event, &m.body);
            for webhook in &m.webhooks {
                rows.push_delivery(&m.event, *webhook);
            }
        }
        let bodies: Vec<&[u8]> = rows.bodies.iter().map(|b| b.get().as_bytes()).collect();
        let client = self.record_pool.get().await.context("database pool")?;
        let record = client
            .prepare_cached(RECORD)
            .await
            .context("preparing the record")?;
        // One statement, so one round trip and its own transaction: the events and their
        // deliveries are committed together or not at all.
        let inserted = client
            .query(
                &record,
                &[
                    &rows.event_ids,
                    &rows.event_names,
                    &rows.projects,
                    &bodies,
                    &now,
                    &(now + grace),
                    &rows.delivery_ids,
                    &rows.delivery_events,
                    &rows.delivery_webhooks,
                    &rows.delivery_names,
                ],
            )
            .await
            .context("recording events and deliveries")?;
        let handoff = |row: &tokio_postgres::Row| Handoff {
            delivery: row.get(0),
            webhook: row.get(1),
        };
        let mut fresh: Vec<Fresh> = Vec::new();
        let mut by_event: HashMap<String, usize> = HashMap::new();
        let mut events: HashMap<&str, (EventName, usize)> = matched
            .iter()
            .enumerate()
            .map(|(i, m)| (m.event.id.as_str(), (m.event.name, i)))
            .collect();
        let mut bodies: Vec<Option<&RawValue>> = rows.bodies.into_iter().map(Some).collect();
        for row in &inserted {
            let event_id: String = row.get(2);
            let at = match by_event.get(&event_id) {
                Some(at) => *at,
                None => {
                    let Some((name, i)) = events.remove(event_id.as_str()) else {
                        anyhow::bail!(
                            "the record returned a delivery of an event not in the batch"
                        );
                    };
                    let body = bodies[i]
                        .take()
                        .filter(|b| b.get().len() <= CARRIED_BODY_MOST)
                        .map(ToOwned::to_owned);
                    fresh.push(Fresh {
                        name,
                        body,
                        deliveries: Vec::new(),
                        webhooks: Vec::new(),
                    });
                    by_event.insert(event_id, fresh.len() - 1);
                    fresh.len() - 1
                }
            };
            fresh[at].deliveries.push(row.get(0));
            fresh[at].webhooks.push(row.get(1));
        }
        let fresh_ids: HashSet<Uuid> = fresh
            .iter()
            .flat_map(|f| f.deliveries.iter().copied())
            .collect();
        let mut waiting = Vec::new();
        let redelivered: Vec<&str> = matched
            .iter()
            .filter(|m| m.redelivered)
            .map(|m| m.event.id.as_str())
            .collect();
        if !redelivered.is_empty() {
            // Through the due index: deliveries still waiting are in it, and there is no index by
            // event (it cost every insert and every outcome more than this rare lookup saves).
            // A lease still running may be the reservation of an earlier hand-off of this very
            // event, taken by a sender that is attempting the delivery now: such deliveries are
            // left to that sender, or to the scheduler once the lease runs out.
            let found = client
                .query(
                    // The first condition is the due index's own, which lets the planner
                    // read through it; the second is the one that matters.
                    concat!(
                        "SELECT id, webhook_id FROM deliveries
                         WHERE state IN ",
                        waiting_states!(),
                        " AND event_id = ANY($1)
                           AND state = ",
                        pending_state!(),
                        "
                           AND (leased_until IS NULL OR leased_until <= $2) AND attempt_count = 0"
                    ),
                    &[&redelivered, &now],
                )
                .await
                .context("finding deliveries of redelivered events")?;
            waiting.extend(
                found
                    .iter()
                    .map(handoff)
                    .filter(|h| !fresh_ids.contains(&h.delivery)),
            );
        }
        Ok(Handoffs {
            recorded: Some((now, now + grace)),
            fresh,
            waiting,
        })
    }

    /// The second part of a batch: send the new deliveries to the senders. The broker's
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
        if handoff.len() == 0 {
            return Ok(None);
        }
        let queue = self.topology.deliveries_queue();
        let mut bodies: Vec<(Vec<u8>, bool)> = handoff
            .waiting
            .chunks(IDS_PER_MESSAGE)
            .map(|chunk| {
                let body = serde_json::to_vec(&SenderMessage::ClaimIds {
                    deliveries: chunk.iter().map(|h| h.delivery).collect(),
                    webhooks: chunk.iter().map(|h| h.webhook).collect(),
                })
                .expect("ids serialise");
                (body, false)
            })
            .collect();
        if let Some((recorded_at, leased_until)) = handoff.recorded {
            bodies.extend(
                carried(&handoff.fresh, recorded_at, leased_until)
                    .into_iter()
                    .map(|body| (body, true)),
            );
        }
        let messages = bodies
            .iter()
            .map(|(body, is_carried)| Outgoing {
                exchange: "",
                routing_key: &queue,
                body,
                properties: if *is_carried {
                    amqp::transient_json().with_type(CARRIED_HANDOFF.into())
                } else {
                    amqp::transient_json()
                },
            })
            .collect();
        let confirms = self
            .publisher
            .send_all(messages)
            .await
            .context("handing deliveries to the senders")?;
        Ok(Some(confirms))
    }
}

/// The hand-off messages of a batch's new deliveries: at most [`IDS_PER_MESSAGE`] deliveries and
/// about [`BODY_BYTES_PER_MESSAGE`] of bodies each; an event with more deliveries than fit in one
/// message is split, its body going with each part.
fn carried(
    fresh: &[Fresh],
    recorded_at: DateTime<Utc>,
    leased_until: DateTime<Utc>,
) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut events: Vec<CarriedEvent<'_>> = Vec::new();
    let (mut ids, mut bytes) = (0, 0);
    let mut flush = |events: &mut Vec<CarriedEvent<'_>>| {
        if !events.is_empty() {
            let message = CarriedHandoff {
                kind: CARRIED_HANDOFF,
                recorded_at,
                leased_until,
                events: std::mem::take(events),
            };
            messages.push(serde_json::to_vec(&message).expect("hand-off serialises"));
        }
    };
    for event in fresh {
        let body = event.body.as_deref();
        let size = body.map_or(0, |b| b.get().len());
        for (deliveries, webhooks) in event
            .deliveries
            .chunks(IDS_PER_MESSAGE)
            .zip(event.webhooks.chunks(IDS_PER_MESSAGE))
        {
            if ids + deliveries.len() > IDS_PER_MESSAGE
                || (bytes > 0 && bytes + size > BODY_BYTES_PER_MESSAGE)
            {
                flush(&mut events);
                (ids, bytes) = (0, 0);
            }
            ids += deliveries.len();
            bytes += size;
            events.push(CarriedEvent {
                name: event.name,
                body,
                deliveries: deliveries.to_vec(),
                webhooks: webhooks.to_vec(),
            });
        }
    }
    flush(&mut events);
    messages
}

/// Events and deliveries of a batch, column by column, for one `unnest` insert.
#[derive(Default)]
struct Rows<'a> {
    event_ids: Vec<String>,
    event_names: Vec<&'static str>,
    projects: Vec<String>,
    bodies: Vec<&'a RawValue>,
    delivery_ids: Vec<Uuid>,
    delivery_events: Vec<String>,
    delivery_webhooks: Vec<Uuid>,
    delivery_names: Vec<&'static str>,
}

impl<'a> Rows<'a> {
    fn push_event(&mut self, event: &Event, body: &'a RawValue) {
        self.event_ids.push(event.id.clone());
        self.event_names.push(event.name.as_str());
        self.projects.push(event.project_code.as_str().to_owned());
        // One body per event, shared by all of its deliveries.
        self.bodies.push(body);
    }

    fn push_delivery(&mut self, event: &Event, webhook: Uuid) {
        self.delivery_ids.push(Uuid::now_v7());
        self.delivery_events.push(event.id.clone());
        self.delivery_webhooks.push(webhook);
        self.delivery_names.push(event.name.as_str());
    }
}

/// Records a batch in one statement: inserts the events (`$1`–`$4`, received at `$5`), and one
/// delivery (`$7`–`$10`, leased to its hand-off until `$6` and due then should the hand-off be
/// lost) per (event, webhook) whose event was new here and whose webhook is still enabled;
/// returns the deliveries inserted. An event
/// recorded before (redelivered, or published again) had its deliveries recorded with it, in the
/// same statement, so it gets none now. The webhook is read per row by primary key (a join would
/// let the planner hash every webhook for each batch).
const RECORD: &str = concat!("
WITH new_events AS (
    INSERT INTO events (id, event_name, project_code, body, received_at)
    SELECT e.id, e.name, e.project, e.body, $5
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS e(id, name, project, body)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
)
INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at, next_attempt_at, leased_until)
SELECT d.id, d.event_id, d.webhook_id, d.name, ", pending_state!(), ", $5, $6, $6
FROM unnest($7::uuid[], $8::text[], $9::uuid[], $10::text[]) AS d(id, event_id, webhook_id, name)
WHERE d.event_id IN (SELECT id FROM new_events)
  AND (SELECT w.enabled AND w.deleted_at IS NULL FROM webhooks w WHERE w.id = d.webhook_id)
RETURNING id, webhook_id, event_id");
