//! The hand-off of a batch's deliveries to the senders, as messages on `webhooks.deliveries`
//! (their bodies are the types of `webhooks_core::messages`).
//!
//! Deliveries this batch recorded go carried ([`CarriedHandoff`], `deliver.v2`): with their
//! event's body, unless it is over [`CARRIED_BODY_MOST`], and the lease they were recorded with,
//! so the first sender to take the message attempts them without a claim. Deliveries of a
//! redelivered event found still waiting were recorded by an earlier hand-off, which may have
//! been taken: they go as ids to claim ([`SenderMessage::ClaimIds`], `deliver.v1`).
//!
//! Pure: the messages are built and signed here, and published by the caller.

use chrono::{DateTime, Utc};
use lapin::BasicProperties;
use serde_json::value::RawValue;
use uuid::Uuid;
use webhooks_core::amqp;
use webhooks_core::event::EventName;
use webhooks_core::handoff_auth::{HandoffKey, SIGNATURE_HEADER};
use webhooks_core::messages::{CARRIED_HANDOFF, CarriedEvent, CarriedHandoff, SenderMessage};

/// Delivery ids per hand-off message (keeps each message well under the broker's frame limits).
pub const IDS_PER_MESSAGE: usize = 2000;
/// Body bytes per hand-off message, past its first event.
pub const BODY_BYTES_PER_MESSAGE: usize = 1 << 20;
/// Largest body a hand-off carries; the deliveries of a larger one read it with their claim.
pub const CARRIED_BODY_MOST: usize = 64 << 10;

/// What a batch (or a part of one) hands to the senders.
#[derive(Default)]
pub struct Handoffs {
    /// The deliveries recorded by this batch, by event, leased until `recorded`'s lease.
    pub fresh: Vec<Fresh>,
    /// When they were recorded, and their lease.
    pub recorded: Option<(DateTime<Utc>, DateTime<Utc>)>,
    /// Deliveries of redelivered events still waiting, recorded before: ids only, claimed once
    /// their lease (if any) has run out.
    pub waiting: Vec<Handoff>,
}

impl Handoffs {
    /// How many deliveries are handed off.
    pub fn len(&self) -> usize {
        self.waiting.len() + self.fresh.iter().map(|f| f.deliveries.len()).sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An event recorded by this batch with its new deliveries.
pub struct Fresh {
    pub name: EventName,
    /// Absent when too large to carry (see [`carriable`]).
    pub body: Option<Box<RawValue>>,
    pub deliveries: Vec<Uuid>,
    /// The webhook of each delivery, in the same order.
    pub webhooks: Vec<Uuid>,
}

/// A delivery to hand to the senders, with its webhook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Handoff {
    pub delivery: Uuid,
    pub webhook: Uuid,
}

/// One hand-off message.
#[derive(Debug)]
pub struct Message {
    pub body: Vec<u8>,
    /// A [`CarriedHandoff`] rather than a [`SenderMessage`]: the `type` property says so, and a
    /// sender reads the property to know how to read the body.
    pub carried: bool,
}

impl Message {
    /// Transient: a hand-off names deliveries already committed, and the scheduler finds them
    /// after their lease should the message be lost.
    pub fn properties(&self) -> BasicProperties {
        if self.carried {
            amqp::transient_json().with_type(CARRIED_HANDOFF.into())
        } else {
            amqp::transient_json()
        }
    }

    /// [`Message::properties`] with the signature of `key` over the message as published with
    /// `routing_key`: a sender reads no hand-off without one (see [`webhooks_core::handoff_auth`]).
    pub fn signed_properties(&self, key: &HandoffKey, routing_key: &str) -> BasicProperties {
        let properties = self.properties();
        let kind = properties.kind().as_ref().map(|k| k.as_str());
        let signature = key.sign(kind, routing_key, &self.body);
        amqp::with_header(properties, SIGNATURE_HEADER, &signature)
    }
}

/// A copy of `body` to carry, or `None` when it is over [`CARRIED_BODY_MOST`].
pub fn carriable(body: &RawValue) -> Option<Box<RawValue>> {
    (body.get().len() <= CARRIED_BODY_MOST).then(|| body.to_owned())
}

/// The messages of `handoffs`: the ids to claim first, then the carried deliveries.
pub fn messages(handoffs: &Handoffs) -> Vec<Message> {
    let mut messages: Vec<Message> = claim_ids(&handoffs.waiting)
        .into_iter()
        .map(|body| Message {
            body,
            carried: false,
        })
        .collect();
    if let Some((recorded_at, leased_until)) = handoffs.recorded {
        messages.extend(
            carried(&handoffs.fresh, recorded_at, leased_until)
                .into_iter()
                .map(|body| Message {
                    body,
                    carried: true,
                }),
        );
    }
    messages
}

/// The messages naming `waiting` deliveries to claim, at most [`IDS_PER_MESSAGE`] each.
fn claim_ids(waiting: &[Handoff]) -> Vec<Vec<u8>> {
    waiting
        .chunks(IDS_PER_MESSAGE)
        .map(|chunk| {
            serde_json::to_vec(&SenderMessage::ClaimIds {
                deliveries: chunk.iter().map(|h| h.delivery).collect(),
                webhooks: chunk.iter().map(|h| h.webhook).collect(),
            })
            .expect("ids serialise")
        })
        .collect()
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

#[cfg(test)]
mod tests;
