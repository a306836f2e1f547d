//! Which webhooks get which event: the messages of a batch parsed at the edge and matched
//! against the in-memory [`WebhookIndex`], a part of the batch at a time.
//!
//! A part ends where its deliveries would pass [`RECORD_DELIVERIES_MOST`] (an event with more
//! deliveries than that is a part of its own) or once its events reach [`RECORD_BYTES_MOST`], so
//! that a wide fan-out or large events are recorded and handed off a part at a time instead of
//! all at once (the record's parameters are copied twice on their way to the database, and its
//! connection keeps a buffer as large as the largest it sent).

use lapin::message::Delivery;
use serde_json::value::RawValue;
use std::collections::HashSet;
use uuid::Uuid;
use webhooks_core::body::raw_delivery_body;
use webhooks_core::event::{Event, Rejection};
use webhooks_core::memory::{RECORD_BYTES_MOST, RECORD_DELIVERIES_MOST};

use crate::index::WebhookIndex;

/// An accepted event with the webhooks it matched.
pub struct Matched {
    /// The event, without its payload: the delivery body holds it.
    pub event: Event,
    /// The delivery body, one for all of the event's deliveries.
    pub body: Box<RawValue>,
    pub webhooks: Vec<Uuid>,
    /// Whether the broker had delivered its message before: its deliveries may have been
    /// recorded and handed off already.
    pub redelivered: bool,
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

/// The messages of one part of a batch, sorted.
pub struct Part<'a> {
    /// Messages that are not a valid event, with the reason.
    pub rejected: Vec<(&'a Delivery, Rejection)>,
    /// Events that matched at least one webhook, each event id once.
    pub matched: Vec<Matched>,
    /// Valid events that matched no webhook.
    pub unmatched: u64,
    /// Where the part ends in the batch: the next part starts there.
    pub end: usize,
}

/// The part of `batch` that starts at message `from` (which must be in the batch).
pub fn next_part<'a>(
    index: &WebhookIndex,
    batch: &'a [Delivery],
    from: usize,
    max_event_bytes: usize,
) -> Part<'a> {
    let mut part = Part {
        rejected: Vec::new(),
        matched: Vec::new(),
        unmatched: 0,
        end: from,
    };
    let mut seen = HashSet::new();
    let (mut deliveries, mut bytes) = (0, 0);
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
        match Event::parse(&delivery.data, message_id, max_event_bytes) {
            Err(rejection) => part.rejected.push((delivery, rejection)),
            Ok(event) => {
                let webhooks = index.matching(event.project_code.as_str(), event.name);
                if deliveries > 0 && deliveries + webhooks.len() > RECORD_DELIVERIES_MOST {
                    // This event opens the next part.
                    break;
                }
                if webhooks.is_empty() {
                    part.unmatched += 1;
                } else if seen.insert(event.id.clone()) {
                    // A second copy of an event in one part is left out: its deliveries are
                    // the first copy's.
                    deliveries += webhooks.len();
                    part.matched
                        .push(Matched::new(event, webhooks, delivery.redelivered));
                }
            }
        }
        part.end += 1;
    }
    part
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::webhooks::Subscription;
    use webhooks_core::event::EventName;

    fn message(tag: u64, id: &str, project: &str, name: &str) -> Delivery {
        let body = format!(
            r#"{{"id":"{id}","event_name":"{name}","timestamp":1650540069,"project_code":"{project}","payload":{{"n":{tag}}}}}"#
        );
        Delivery::mock(tag, "".into(), name.into(), false, body.into_bytes())
    }

    fn index(webhooks: &[(Uuid, &str)]) -> WebhookIndex {
        let index = WebhookIndex::default();
        index.replace_all(
            webhooks
                .iter()
                .map(|(id, project)| Subscription {
                    id: *id,
                    project_code: (*project).into(),
                    events: vec![EventName::RunStarted],
                })
                .collect(),
        );
        index
    }

    fn event_id(n: u128) -> String {
        Uuid::from_u128(n).to_string()
    }

    #[test]
    fn sorts_a_part_into_rejected_unmatched_and_matched_once_per_event() {
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let index = index(&[(a, "DEMO"), (b, "DEMO"), (Uuid::now_v7(), "OTHER")]);
        let batch = [
            message(1, &event_id(1), "DEMO", "run.started"),
            Delivery::mock(2, "".into(), "x".into(), false, b"not json".to_vec()),
            message(3, &event_id(2), "DEMO", "run.completed"),
            message(4, &event_id(1), "DEMO", "run.started"),
            message(5, &event_id(3), "NOBODY", "run.started"),
        ];
        let part = next_part(&index, &batch, 0, 1 << 20);
        assert_eq!(part.end, batch.len());
        assert_eq!(part.rejected.len(), 1);
        assert_eq!(part.rejected[0].0.delivery_tag, 2);
        assert_eq!(part.unmatched, 2);
        assert_eq!(part.matched.len(), 1);
        let matched = &part.matched[0];
        assert_eq!(matched.event.id, event_id(1));
        assert_eq!(matched.webhooks, vec![a, b]);
        // The body holds the payload; the event's copy of it is gone.
        assert!(matched.body.get().contains(r#""payload":{"n":1}"#));
        assert_eq!(matched.event.payload.get(), "{}");
    }

    #[test]
    fn a_part_ends_before_the_event_that_would_pass_the_deliveries_limit() {
        let webhooks: Vec<(Uuid, &str)> = (0..RECORD_DELIVERIES_MOST / 2 + 1)
            .map(|_| (Uuid::now_v7(), "DEMO"))
            .collect();
        let index = index(&webhooks);
        let batch: Vec<Delivery> = (0..3)
            .map(|n| message(n, &event_id(n.into()), "DEMO", "run.started"))
            .collect();
        // Each event has over half the limit of deliveries: one event per part.
        let first = next_part(&index, &batch, 0, 1 << 20);
        assert_eq!((first.matched.len(), first.end), (1, 1));
        let second = next_part(&index, &batch, first.end, 1 << 20);
        assert_eq!((second.matched.len(), second.end), (1, 2));
        assert_eq!(second.matched[0].event.id, event_id(1));
    }

    #[test]
    fn a_part_ends_once_its_messages_reach_the_bytes_limit() {
        let index = index(&[(Uuid::now_v7(), "DEMO")]);
        let mut big = message(0, &event_id(0), "DEMO", "run.started");
        big.data.resize(RECORD_BYTES_MOST, b' ');
        let batch = [big, message(1, &event_id(1), "DEMO", "run.started")];
        let part = next_part(&index, &batch, 0, 2 * RECORD_BYTES_MOST);
        assert_eq!((part.matched.len(), part.end), (1, 1));
    }
}
