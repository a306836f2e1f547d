//! The hand-off encoding, read back the way a sender reads it: by the message's `type` property,
//! then as a [`CarriedHandoff`] or a [`SenderMessage`].

use super::*;

/// A message as a sender decodes it.
enum Decoded<'a> {
    Carried(CarriedHandoff<'a>),
    Claim {
        deliveries: Vec<Uuid>,
        webhooks: Vec<Uuid>,
    },
}

fn decode(message: &Message) -> Decoded<'_> {
    let properties = message.properties();
    if properties.kind().as_ref().map(|k| k.as_str()) == Some(CARRIED_HANDOFF) {
        assert!(message.carried);
        Decoded::Carried(serde_json::from_slice(&message.body).expect("a carried hand-off"))
    } else {
        assert!(!message.carried);
        let SenderMessage::ClaimIds {
            deliveries,
            webhooks,
        } = serde_json::from_slice(&message.body).expect("ids to claim");
        Decoded::Claim {
            deliveries,
            webhooks,
        }
    }
}

fn carried(message: &Message) -> CarriedHandoff<'_> {
    match decode(message) {
        Decoded::Carried(handoff) => handoff,
        Decoded::Claim { .. } => panic!("ids to claim where a carried hand-off was expected"),
    }
}

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("time")
        .with_timezone(&Utc)
}

/// A JSON body of exactly `bytes` bytes.
fn body(bytes: usize) -> Box<RawValue> {
    RawValue::from_string(format!("\"{}\"", "x".repeat(bytes - 2))).expect("a JSON string")
}

fn ids(n: usize) -> Vec<Uuid> {
    (0..n).map(|_| Uuid::now_v7()).collect()
}

/// An event with `deliveries` new deliveries, each to its own webhook, and a body of `bytes`.
fn fresh(deliveries: usize, bytes: Option<usize>) -> Fresh {
    Fresh {
        name: EventName::RunStarted,
        body: bytes.map(body),
        deliveries: ids(deliveries),
        webhooks: ids(deliveries),
    }
}

fn recorded(fresh: Vec<Fresh>) -> Handoffs {
    Handoffs {
        fresh,
        recorded: Some((
            at("2026-12-05T10:00:00.654321Z"),
            at("2026-12-05T10:00:30.654321Z"),
        )),
        waiting: Vec::new(),
    }
}

/// The number of deliveries of each event of each carried message.
fn shape(messages: &[Message]) -> Vec<Vec<usize>> {
    messages
        .iter()
        .map(|m| {
            carried(m)
                .events
                .iter()
                .map(|e| e.deliveries.len())
                .collect()
        })
        .collect()
}

#[test]
fn a_carried_hand_off_keeps_its_wire_bytes() {
    let nil = Uuid::nil();
    let handoffs = Handoffs {
        fresh: vec![Fresh {
            name: EventName::RunStarted,
            body: Some(RawValue::from_string(r#"{"a": [1, 2]}"#.to_owned()).expect("raw")),
            deliveries: vec![nil],
            webhooks: vec![nil],
        }],
        recorded: Some((
            at("2026-12-05T10:00:00.654321Z"),
            at("2026-12-05T10:00:30.654321Z"),
        )),
        waiting: vec![Handoff {
            delivery: nil,
            webhook: nil,
        }],
    };
    let messages = messages(&handoffs);
    let bodies: Vec<&str> = messages
        .iter()
        .map(|m| std::str::from_utf8(&m.body).expect("utf-8"))
        .collect();
    let zero = "00000000-0000-0000-0000-000000000000";
    assert_eq!(
        bodies,
        [
            format!(r#"{{"type":"deliver.v1","deliveries":["{zero}"],"webhooks":["{zero}"]}}"#),
            format!(
                r#"{{"type":"deliver.v2","recorded_at":"2026-12-05T10:00:00.654321Z","leased_until":"2026-12-05T10:00:30.654321Z","events":[{{"name":"run.started","body":{{"a": [1, 2]}},"deliveries":["{zero}"],"webhooks":["{zero}"]}}]}}"#
            ),
        ]
    );
    assert_eq!(messages[0].properties().kind(), &None);
    assert_eq!(
        messages[1].properties().kind().as_ref().map(|k| k.as_str()),
        Some("deliver.v2")
    );
    assert_eq!(handoffs.len(), 2);
}

#[test]
fn new_deliveries_are_carried_with_their_body_and_lease_and_read_back_whole() {
    let handoffs = recorded(vec![fresh(3, Some(100)), fresh(2, None)]);
    let messages = messages(&handoffs);
    assert_eq!(messages.len(), 1);
    let read = carried(&messages[0]);
    let (recorded_at, leased_until) = handoffs.recorded.expect("recorded");
    assert_eq!(read.kind, CARRIED_HANDOFF);
    assert_eq!(
        (read.recorded_at, read.leased_until),
        (recorded_at, leased_until)
    );
    assert_eq!(read.events.len(), 2);
    for (read, sent) in read.events.iter().zip(&handoffs.fresh) {
        assert_eq!(read.name, sent.name);
        assert_eq!(read.deliveries, sent.deliveries);
        assert_eq!(read.webhooks, sent.webhooks);
        assert_eq!(
            read.body.map(RawValue::get),
            sent.body.as_deref().map(RawValue::get)
        );
    }
    assert!(read.events[1].body.is_none());
}

#[test]
fn waiting_deliveries_are_named_for_a_claim_before_the_carried_ones() {
    let waiting: Vec<Handoff> = (0..IDS_PER_MESSAGE + 1)
        .map(|_| Handoff {
            delivery: Uuid::now_v7(),
            webhook: Uuid::now_v7(),
        })
        .collect();
    let mut handoffs = recorded(vec![fresh(1, Some(10))]);
    handoffs.waiting = waiting.clone();
    assert_eq!(handoffs.len(), IDS_PER_MESSAGE + 2);
    let messages = messages(&handoffs);
    assert_eq!(messages.len(), 3);
    let mut named = Vec::new();
    for (n, message) in messages[..2].iter().enumerate() {
        let Decoded::Claim {
            deliveries,
            webhooks,
        } = decode(message)
        else {
            panic!("a carried hand-off where ids to claim were expected");
        };
        assert_eq!(deliveries.len(), [IDS_PER_MESSAGE, 1][n]);
        assert_eq!(webhooks.len(), deliveries.len());
        named.extend(
            deliveries
                .into_iter()
                .zip(webhooks)
                .map(|(delivery, webhook)| Handoff { delivery, webhook }),
        );
    }
    assert_eq!(named, waiting);
    assert_eq!(shape(&messages[2..]), [vec![1]]);
}

#[test]
fn events_share_a_message_up_to_the_id_limit_and_not_past_it() {
    let half = IDS_PER_MESSAGE / 2;
    let exactly = messages(&recorded(vec![
        fresh(half, Some(10)),
        fresh(half, Some(10)),
    ]));
    assert_eq!(shape(&exactly), [vec![half, half]]);
    let over = messages(&recorded(vec![
        fresh(half, Some(10)),
        fresh(half + 1, Some(10)),
    ]));
    assert_eq!(shape(&over), [vec![half], vec![half + 1]]);
}

#[test]
fn an_event_wider_than_a_message_is_split_with_its_body_in_every_part() {
    let wide = fresh(2 * IDS_PER_MESSAGE + 1, Some(500));
    let (deliveries, body) = (wide.deliveries.clone(), wide.body.clone());
    let messages = messages(&recorded(vec![wide, fresh(5, Some(10))]));
    // The last part of the wide event has room for the next event.
    assert_eq!(
        shape(&messages),
        [vec![IDS_PER_MESSAGE], vec![IDS_PER_MESSAGE], vec![1, 5]]
    );
    let mut named = Vec::new();
    for message in &messages {
        let first = carried(message).events.remove(0);
        assert_eq!(
            first.body.map(RawValue::get),
            body.as_deref().map(RawValue::get)
        );
        named.extend(first.deliveries);
    }
    assert_eq!(named, deliveries);
}

#[test]
fn bodies_share_a_message_up_to_the_byte_limit_and_not_past_it() {
    // Bodies of the most a hand-off carries: exactly this many fill a message's bytes.
    let fit = BODY_BYTES_PER_MESSAGE / CARRIED_BODY_MOST;
    assert_eq!(fit * CARRIED_BODY_MOST, BODY_BYTES_PER_MESSAGE);
    let events = |n| (0..n).map(|_| fresh(1, Some(CARRIED_BODY_MOST))).collect();
    assert_eq!(messages(&recorded(events(fit))).len(), 1);
    let over = messages(&recorded(events(fit + 1)));
    assert_eq!(shape(&over), [vec![1; fit], vec![1]]);
    for message in &over {
        let bytes: usize = carried(message)
            .events
            .iter()
            .map(|e| e.body.expect("carried").get().len())
            .sum();
        assert!(bytes <= BODY_BYTES_PER_MESSAGE, "{bytes}");
    }
}

#[test]
fn a_body_left_for_the_claim_costs_a_message_no_bytes() {
    // Far more events than bodies would allow, none carrying its body: only ids bound them.
    let events: Vec<Fresh> = (0..IDS_PER_MESSAGE + 1).map(|_| fresh(1, None)).collect();
    let messages = messages(&recorded(events));
    assert_eq!(shape(&messages), [vec![1; IDS_PER_MESSAGE], vec![1]]);
}

#[test]
fn only_a_body_within_the_limit_is_carried() {
    let within = body(CARRIED_BODY_MOST);
    assert_eq!(
        carriable(&within).as_deref().map(RawValue::get),
        Some(within.get())
    );
    assert!(carriable(&body(CARRIED_BODY_MOST + 1)).is_none());
}

#[test]
fn nothing_to_hand_off_is_no_message() {
    assert!(messages(&Handoffs::default()).is_empty());
    let none = recorded(Vec::new());
    assert!(none.is_empty());
    assert!(messages(&none).is_empty());
}

#[test]
fn every_message_is_signed_over_its_type_queue_and_body() {
    use webhooks_core::handoff_auth::{HandoffKeys, Refusal, SIGNATURE_HEADER};
    use webhooks_core::secret::Secret;
    let secret = Secret::new("9d2f7b41c6e0a3584f1b2c7d9e0a6f35");
    let key = HandoffKey::from_setting("HANDOFF_KEY", Some(&secret)).expect("key");
    let keys = HandoffKeys::from_settings(Some(&secret), None).expect("keys");
    let mut handoffs = recorded(vec![fresh(1, Some(10))]);
    handoffs.waiting.push(Handoff {
        delivery: Uuid::nil(),
        webhook: Uuid::nil(),
    });
    let messages = messages(&handoffs);
    assert_eq!(messages.len(), 2);
    for message in &messages {
        // Read back the way a sender reads it.
        let properties = message.signed_properties(&key, "webhooks.deliveries");
        let kind = properties.kind().as_ref().map(|k| k.as_str());
        let signature = amqp::header_string(&properties, SIGNATURE_HEADER);
        assert_eq!(
            keys.verify(
                kind,
                "webhooks.deliveries",
                &message.body,
                signature.as_deref()
            ),
            Ok(())
        );
        assert_eq!(
            keys.verify(
                kind,
                "other.deliveries",
                &message.body,
                signature.as_deref()
            ),
            Err(Refusal::Mismatch)
        );
    }
}
