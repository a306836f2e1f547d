//! The sender's intake: hand-off messages decoded into the deliveries they name ([`decode`]), and
//! those sorted by the limiter's verdicts ([`sort`]): start now (carried whole, or to claim), park
//! for a moment, or leave pending for the scheduler.
//!
//! Before starting, the limiter judges each delivery's endpoint, host and project: deliveries one
//! of whose scopes has every slot taken and does not answer (or answers slowly) are left pending
//! for the scheduler, and those for a full scope that has not answered yet are parked for a moment
//! (see [`Parked`]) instead of taking in-flight permits to wait for its slots.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use std::time::{Duration, Instant};
use uuid::Uuid;
use webhooks_core::messages::{CARRIED_HANDOFF, CarriedHandoff, SenderMessage};

use crate::claim::Carried;
use crate::limiter::{Limiter, Verdict};

/// How long a delivery stays parked at most; by then its scope has answered or is held back.
const PARKED_AT_MOST: Duration = Duration::from_secs(2);

/// A delivery handed over for a full endpoint, host or project that has not answered yet: not
/// claimed, holding no permit, until it answers (then it goes ahead) or falls silent (then it is
/// left pending for the scheduler). Its hand-off is acked: should the process die, the delivery is
/// pending in the database and the scheduler takes it after `HANDOFF_GRACE`.
pub struct Parked {
    delivery: Uuid,
    webhook: Uuid,
    /// The reservation it was handed off under, if its message came first-hand.
    reserved: Option<DateTime<Utc>>,
    since: Instant,
}

impl Parked {
    /// The delivery parked.
    pub fn delivery(&self) -> Uuid {
        self.delivery
    }
}

/// Deliveries to start: carried whole, or to claim.
#[derive(Default)]
pub struct Work {
    pub carried: Vec<Carried>,
    /// Delivery ids to claim, by the reservation they were handed off under (see
    /// [`crate::claim::by_ids`]).
    pub claims: Vec<(Option<DateTime<Utc>>, Vec<Uuid>)>,
}

impl Work {
    pub fn claim(&mut self, reserved: Option<DateTime<Utc>>, delivery: Uuid) {
        match self.claims.iter_mut().find(|(r, _)| *r == reserved) {
            Some((_, ids)) => ids.push(delivery),
            None => self.claims.push((reserved, vec![delivery])),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.carried.is_empty() && self.claims.iter().all(|(_, ids)| ids.is_empty())
    }
}

/// The deliveries of a batch of hand-off messages, sorted by the limiter's verdicts.
#[derive(Default)]
pub struct Sorted {
    /// To start now.
    pub work: Work,
    /// To look at again in a moment.
    pub park: Vec<Parked>,
    /// Left pending, untouched: the scheduler finds them once `HANDOFF_GRACE` has passed.
    pub held: u64,
}

/// One delivery a hand-off message names.
#[derive(Debug)]
pub struct HandedOff {
    pub delivery: Uuid,
    /// Its webhook; unknown in messages from dispatchers that do not name them (it is claimed).
    pub webhook: Option<Uuid>,
    /// The reservation it was handed off under, if its message came first-hand.
    pub reserved: Option<DateTime<Utc>>,
    /// Everything its attempt needs but its webhook's URL and secret, when it may be attempted
    /// without a claim.
    pub carried: Option<Carried>,
}

/// The deliveries one hand-off message names (by its `type` property `kind`; `redelivered` as
/// the broker says). A delivery is carried (attempted without a claim) if the message came
/// first-hand, with its body, and its lease still leaves `attempt_room` at `now`. An unreadable
/// message names nothing: its deliveries, if any, are reached by the scheduler.
pub fn decode(
    kind: Option<&str>,
    data: &[u8],
    redelivered: bool,
    now: DateTime<Utc>,
    attempt_room: Duration,
) -> Vec<HandedOff> {
    let mut named = Vec::new();
    if kind == Some(CARRIED_HANDOFF) {
        let handoff = match serde_json::from_slice::<CarriedHandoff>(data) {
            Ok(handoff) => handoff,
            Err(e) => {
                tracing::error!(error = %e, "unreadable hand-off message dropped");
                return named;
            }
        };
        let attempt_room =
            chrono::Duration::from_std(attempt_room).unwrap_or(chrono::Duration::MAX);
        // A redelivered message may have been taken by another sender, which may be attempting
        // its deliveries under their reservation right now.
        let reserved = (!redelivered).then_some(handoff.leased_until);
        let carry = reserved.is_some() && handoff.leased_until - now >= attempt_room;
        for event in handoff.events {
            // Webhooks that do not pair with the deliveries name none of them: every delivery is
            // claimed, as from a dispatcher that does not name webhooks, and none is left out.
            if event.webhooks.len() != event.deliveries.len() {
                named.extend(event.deliveries.into_iter().map(|delivery| HandedOff {
                    delivery,
                    webhook: None,
                    reserved,
                    carried: None,
                }));
                continue;
            }
            let body = event
                .body
                .filter(|_| carry)
                .map(|b| Bytes::copy_from_slice(b.get().as_bytes()));
            for (delivery, webhook) in event.deliveries.into_iter().zip(event.webhooks) {
                let carried = body.as_ref().map(|body| Carried {
                    delivery_id: delivery,
                    webhook_id: webhook,
                    event_name: event.name,
                    body: body.clone(),
                    recorded_at: handoff.recorded_at,
                    reserved: handoff.leased_until,
                });
                named.push(HandedOff {
                    delivery,
                    webhook: Some(webhook),
                    reserved,
                    carried,
                });
            }
        }
        return named;
    }
    match serde_json::from_slice::<SenderMessage>(data) {
        Ok(SenderMessage::ClaimIds {
            deliveries,
            webhooks,
        }) => {
            // From a dispatcher that does not name webhooks: every delivery is claimed.
            let named_webhooks = webhooks.len() == deliveries.len();
            for (n, delivery) in deliveries.into_iter().enumerate() {
                named.push(HandedOff {
                    delivery,
                    webhook: named_webhooks.then(|| webhooks[n]),
                    reserved: None,
                    carried: None,
                });
            }
        }
        Err(e) => tracing::error!(error = %e, "unreadable hand-off message dropped"),
    }
    named
}

/// Reads a batch of hand-off messages and sorts their deliveries by the limiter's verdicts; at
/// most `room` are parked, the rest of those are held (see [`decode`] for `now` and
/// `attempt_room`).
pub fn sort(
    limiter: &Limiter,
    batch: &[Delivery],
    room: usize,
    now: DateTime<Utc>,
    attempt_room: Duration,
) -> Sorted {
    let mut sorted = Sorted::default();
    let since = Instant::now();
    for message in batch {
        let kind = message.properties.kind().as_ref().map(|k| k.as_str());
        for named in decode(kind, &message.data, message.redelivered, now, attempt_room) {
            let Some(webhook) = named.webhook else {
                sorted.work.claim(named.reserved, named.delivery);
                continue;
            };
            match limiter.verdict(webhook) {
                Verdict::Go => match named.carried {
                    Some(carried) => sorted.work.carried.push(carried),
                    None => sorted.work.claim(named.reserved, named.delivery),
                },
                Verdict::Park if sorted.park.len() < room => sorted.park.push(Parked {
                    delivery: named.delivery,
                    webhook,
                    reserved: named.reserved,
                    since,
                }),
                Verdict::Park | Verdict::HoldBack => sorted.held += 1,
            }
        }
    }
    sorted
}

/// Takes out of `parked` the deliveries whose scopes have answered (returned, to be claimed)
/// or is now held back or has been waited for long enough (left pending for the scheduler: they
/// are counted in the second value).
pub fn unpark(limiter: &Limiter, parked: &mut Vec<Parked>) -> (Work, u64) {
    let mut go = Work::default();
    let mut held = 0;
    parked.retain(|p| match limiter.verdict(p.webhook) {
        Verdict::Go => {
            go.claim(p.reserved, p.delivery);
            false
        }
        Verdict::Park if p.since.elapsed() < PARKED_AT_MOST => true,
        Verdict::Park | Verdict::HoldBack => {
            held += 1;
            false
        }
    });
    (go, held)
}

#[cfg(test)]
mod tests {
    use super::*;
    use webhooks_core::event::EventName;
    use webhooks_core::messages::CarriedEvent;

    const ROOM: Duration = Duration::from_secs(20);

    fn handoff(now: DateTime<Utc>, lease: i64, body: Option<&str>) -> (Vec<u8>, Uuid, Uuid) {
        let (delivery, webhook) = (Uuid::new_v4(), Uuid::new_v4());
        let raw =
            body.map(|b| serde_json::value::RawValue::from_string(b.to_owned()).expect("json"));
        let message = CarriedHandoff {
            kind: CARRIED_HANDOFF,
            recorded_at: now,
            leased_until: now + chrono::Duration::seconds(lease),
            events: vec![CarriedEvent {
                name: "run.started".parse::<EventName>().expect("a name"),
                body: raw.as_deref(),
                deliveries: vec![delivery],
                webhooks: vec![webhook],
            }],
        };
        (
            serde_json::to_vec(&message).expect("encodes"),
            delivery,
            webhook,
        )
    }

    #[test]
    fn a_first_hand_handoff_with_room_is_carried_byte_for_byte() {
        let now = Utc::now();
        let body = r#"{"a": 1,  "b":"\u00e9"}"#;
        let (data, delivery, webhook) = handoff(now, 30, Some(body));
        let named = decode(Some(CARRIED_HANDOFF), &data, false, now, ROOM);
        assert_eq!(named.len(), 1);
        assert_eq!(named[0].delivery, delivery);
        assert_eq!(named[0].webhook, Some(webhook));
        let carried = named[0].carried.as_ref().expect("carried");
        assert_eq!(&carried.body[..], body.as_bytes(), "the body as recorded");
        assert_eq!(carried.reserved, now + chrono::Duration::seconds(30));
        assert_eq!(named[0].reserved, Some(carried.reserved));
    }

    #[test]
    fn a_handoff_is_claimed_when_redelivered_short_of_lease_or_without_its_body() {
        let now = Utc::now();
        let (data, ..) = handoff(now, 30, Some("{}"));
        let redelivered = decode(Some(CARRIED_HANDOFF), &data, true, now, ROOM);
        assert!(redelivered[0].carried.is_none() && redelivered[0].reserved.is_none());

        let (data, ..) = handoff(now, 10, Some("{}"));
        let late = decode(Some(CARRIED_HANDOFF), &data, false, now, ROOM);
        assert!(
            late[0].carried.is_none(),
            "10 s of lease leave no room for 20 s"
        );
        assert!(late[0].reserved.is_some(), "claimed by its reservation");

        let (data, ..) = handoff(now, 30, None);
        assert!(
            decode(Some(CARRIED_HANDOFF), &data, false, now, ROOM)[0]
                .carried
                .is_none()
        );
    }

    #[test]
    fn id_only_messages_name_their_webhooks_when_they_have_them() {
        let (delivery, webhook) = (Uuid::new_v4(), Uuid::new_v4());
        let with = serde_json::to_vec(&SenderMessage::ClaimIds {
            deliveries: vec![delivery],
            webhooks: vec![webhook],
        })
        .expect("encodes");
        let named = decode(None, &with, false, Utc::now(), ROOM);
        assert_eq!(named[0].webhook, Some(webhook));
        assert!(named[0].carried.is_none() && named[0].reserved.is_none());
        let without = serde_json::to_vec(&SenderMessage::ClaimIds {
            deliveries: vec![delivery],
            webhooks: vec![],
        })
        .expect("encodes");
        let named = decode(None, &without, false, Utc::now(), ROOM);
        assert_eq!((named[0].delivery, named[0].webhook), (delivery, None));
    }

    #[test]
    fn a_carried_event_whose_webhooks_do_not_pair_has_every_delivery_claimed() {
        let now = Utc::now();
        let (data, delivery, _) = handoff(now, 30, Some("{}"));
        let mut message: serde_json::Value = serde_json::from_slice(&data).expect("json");
        message["events"][0]["webhooks"] = serde_json::json!([]);
        let data = serde_json::to_vec(&message).expect("json");
        let named = decode(Some(CARRIED_HANDOFF), &data, false, now, ROOM);
        assert_eq!(named.len(), 1, "no delivery left out");
        assert_eq!((named[0].delivery, named[0].webhook), (delivery, None));
        assert!(named[0].carried.is_none(), "claimed, not carried");
        assert!(named[0].reserved.is_some(), "by its reservation");
    }

    #[test]
    fn unreadable_messages_name_nothing() {
        assert!(decode(Some(CARRIED_HANDOFF), b"{", false, Utc::now(), ROOM).is_empty());
        assert!(decode(None, b"not json", false, Utc::now(), ROOM).is_empty());
    }
}
