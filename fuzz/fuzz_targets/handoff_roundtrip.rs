//! Hand-offs from end to end: what the dispatcher encodes and signs (`fanout::handoff::messages`
//! and `Message::signed_properties`) goes through the sender as its consumer takes it
//! (`screening::check`, `intake::decode`, `intake::sort`) and must come out as the same jobs.
//!
//! The input is read as a sequence of choices (`arbitrary::Unstructured`): a batch's fresh
//! events (names, bodies, their deliveries' webhooks, some events with thousands of deliveries)
//! and waiting deliveries, the lease, whether the messages come redelivered, the attempt room, the
//! webhooks whose endpoint is full and how many deliveries may be parked.
//!
//! Invariants:
//! - every message passes the signature check, and names at most `IDS_PER_MESSAGE` deliveries;
//! - every delivery handed off is named exactly once, with its webhook; fresh ones under their
//!   lease if first-hand, waiting ones under none;
//! - a fresh delivery is carried exactly when the message came first-hand, its body was small
//!   enough to carry and the lease leaves the attempt room, with its event's name and body byte
//!   for byte, the record time and the lease;
//! - sorted, every delivery to a webhook the limiter holds full is parked (at most the room
//!   given) or held, and every other one starts exactly once, carried if it came carried.
#![no_main]

use chrono::{DateTime, Utc};
use futures::FutureExt;
use lapin::message::Delivery;
use libfuzzer_sys::arbitrary::{Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::value::RawValue;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::clock::Clock;
use webhooks_core::event::EventName;
use webhooks_core::handoff_auth::{HandoffKey, HandoffKeys};
use webhooks_core::secret::Secret;
use webhooks_dispatcher::fanout::handoff::{
    self, Fresh, Handoff, Handoffs, IDS_PER_MESSAGE, carriable,
};
use webhooks_sender::limiter::{Limiter, LimiterConfig, Route};
use webhooks_sender::{intake, screening};

const KEY: &str = "5f1c9e27a0b84d36e1f7a2c90b3d5e48";
const QUEUE: &str = "webhooks.deliveries";

fn now() -> DateTime<Utc> {
    "2026-12-05T10:00:00Z".parse().expect("a time")
}

/// What a delivery was handed off as: its webhook, and for a fresh one its event's name and the
/// body it may carry.
struct Expected {
    webhook: Uuid,
    fresh: Option<(EventName, Option<String>)>,
}

/// A body: the fuzzer's text as it is when it is JSON, byte for byte, else as a JSON string.
fn body(u: &mut Unstructured<'_>) -> Result<Box<RawValue>> {
    let text: String = u.arbitrary()?;
    Ok(RawValue::from_string(text.clone()).unwrap_or_else(|_| {
        RawValue::from_string(serde_json::to_string(&text).expect("a string")).expect("JSON")
    }))
}

/// A few deliveries, now and then more than one message holds (`IDS_PER_MESSAGE`).
fn how_many(u: &mut Unstructured<'_>) -> Result<usize> {
    if u.ratio(1, 64)? {
        u.int_in_range(0..=IDS_PER_MESSAGE + 500)
    } else {
        u.int_in_range(0..=6)
    }
}

fn run(u: &mut Unstructured<'_>) -> Result<()> {
    let webhooks: Vec<Uuid> = (1..=u.int_in_range(1..=4u128)?)
        .map(|n| Uuid::from_u128(n << 64))
        .collect();
    let mut next_id = 0u128;
    let mut new_id = || {
        next_id += 1;
        Uuid::from_u128(next_id)
    };
    let mut expected: BTreeMap<Uuid, Expected> = BTreeMap::new();
    let mut fresh = Vec::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let name = *u.choose(EventName::ALL)?;
        let body = if u.ratio(7, 8)? { Some(body(u)?) } else { None };
        let carried = body.as_deref().and_then(carriable);
        let (mut deliveries, mut to) = (Vec::new(), Vec::new());
        for _ in 0..how_many(u)? {
            let (delivery, webhook) = (new_id(), *u.choose(&webhooks)?);
            let body = carried.as_ref().map(|b| b.get().to_owned());
            expected.insert(
                delivery,
                Expected {
                    webhook,
                    fresh: Some((name, body)),
                },
            );
            deliveries.push(delivery);
            to.push(webhook);
        }
        fresh.push(Fresh {
            name,
            body: carried,
            deliveries,
            webhooks: to,
        });
    }
    let mut waiting = Vec::new();
    for _ in 0..how_many(u)? {
        let (delivery, webhook) = (new_id(), *u.choose(&webhooks)?);
        expected.insert(
            delivery,
            Expected {
                webhook,
                fresh: None,
            },
        );
        waiting.push(Handoff { delivery, webhook });
    }
    let recorded_at = now() - chrono::Duration::seconds(u.int_in_range(0..=600)?);
    let leased_until = now() + chrono::Duration::milliseconds(u.int_in_range(-60_000..=120_000)?);
    let redelivered: bool = u.arbitrary()?;
    let room = Duration::from_millis(u.int_in_range(0..=60_000)?);
    let handoffs = Handoffs {
        fresh,
        recorded: Some((recorded_at, leased_until)),
        waiting,
    };

    // The dispatcher's side: encoded and signed.
    let key = HandoffKey::from_setting("HANDOFF_KEY", Some(&Secret::new(KEY))).expect("key");
    let keys = HandoffKeys::from_settings(Some(&Secret::new(KEY)), None).expect("keys");
    let batch: Vec<Delivery> = handoff::messages(&handoffs)
        .into_iter()
        .enumerate()
        .map(|(n, message)| {
            let mut delivery = Delivery::mock(
                n as u64 + 1,
                "".into(),
                QUEUE.into(),
                redelivered,
                message.body.clone(),
            );
            delivery.properties = message.signed_properties(&key, QUEUE);
            delivery
        })
        .collect();

    // The sender's side, message by message.
    let lease_leaves_room = chrono::Duration::from_std(room).expect("room") <= leased_until - now();
    let mut named = BTreeSet::new();
    for message in &batch {
        assert_eq!(
            screening::check(&keys, message),
            Ok(()),
            "a dispatcher's hand-off refused"
        );
        let kind = message.properties.kind().as_ref().map(|k| k.as_str());
        let decoded = intake::decode(kind, &message.data, redelivered, now(), room);
        assert!(
            decoded.len() <= IDS_PER_MESSAGE,
            "{} deliveries in a message",
            decoded.len()
        );
        for got in decoded {
            assert!(named.insert(got.delivery), "{} named twice", got.delivery);
            let want = expected.get(&got.delivery).expect("a delivery handed off");
            assert_eq!(
                got.webhook,
                Some(want.webhook),
                "webhook of {}",
                got.delivery
            );
            match &want.fresh {
                None => {
                    assert_eq!(got.reserved, None, "a waiting delivery reserved");
                    assert!(got.carried.is_none(), "a waiting delivery carried");
                }
                Some((name, body)) => {
                    assert_eq!(got.reserved, (!redelivered).then_some(leased_until));
                    let carry = !redelivered && lease_leaves_room && body.is_some();
                    let Some(carried) = &got.carried else {
                        assert!(!carry, "{} could have been carried", got.delivery);
                        continue;
                    };
                    assert!(carry, "{} carried against the rules", got.delivery);
                    assert_eq!(carried.delivery_id, got.delivery);
                    assert_eq!(carried.webhook_id, want.webhook);
                    assert_eq!(carried.event_name, *name);
                    assert_eq!(Some(&carried.body[..]), body.as_deref().map(str::as_bytes));
                    assert_eq!(
                        (carried.recorded_at, carried.reserved),
                        (recorded_at, leased_until)
                    );
                }
            }
        }
    }
    assert_eq!(
        named.len(),
        expected.len(),
        "deliveries handed off but not named"
    );

    // Sorted: some endpoints full (one slot, taken, never answered yet: deliveries park).
    let config = LimiterConfig {
        max_per_endpoint: 1,
        max_per_host: 1000,
        max_per_project: 1000,
        breaker_failures: 0,
        breaker_slow: Duration::ZERO,
        breaker_pause: Duration::from_secs(1),
        busy_hold: Duration::from_secs(1),
    };
    let limiter = Limiter::new(config, Clock::System);
    let mut full = BTreeSet::new();
    let mut slots = Vec::new();
    let endpoints: Vec<String> = webhooks.iter().map(|w| format!("http://h/{w}")).collect();
    for (webhook, endpoint) in webhooks.iter().zip(&endpoints) {
        let route = Route {
            endpoint,
            host: "h",
            project: "P",
        };
        limiter.learn(*webhook, route);
        if u.arbitrary()? {
            let slot = limiter.enter(route, Uuid::nil(), now()).now_or_never();
            slots.push(slot.expect("a free slot at once").expect("a slot"));
            full.insert(*webhook);
        }
    }
    let park_room = u.int_in_range(0..=expected.len())?;
    let sorted = intake::sort(&limiter, &batch, park_room, now(), room);
    assert!(sorted.park.len() <= park_room, "parked beyond the room");
    let at_full = expected
        .values()
        .filter(|e| full.contains(&e.webhook))
        .count();
    assert_eq!(
        sorted.park.len() as u64 + sorted.held,
        at_full as u64,
        "full endpoints' deliveries"
    );
    let mut started = BTreeSet::new();
    for carried in &sorted.work.carried {
        assert!(started.insert(carried.delivery_id), "started twice");
        assert!(
            expected[&carried.delivery_id].fresh.is_some(),
            "a waiting delivery carried"
        );
    }
    for (_, ids) in &sorted.work.claims {
        for id in ids {
            assert!(started.insert(*id), "started twice");
        }
    }
    for parked in &sorted.park {
        assert!(
            full.contains(&expected[&parked.delivery()].webhook),
            "parked for nothing"
        );
        assert!(!started.contains(&parked.delivery()), "parked and started");
    }
    for id in &started {
        assert!(
            !full.contains(&expected[id].webhook),
            "{id} started at a full endpoint"
        );
    }
    assert_eq!(
        started.len(),
        expected.len() - at_full,
        "deliveries not started"
    );
    drop(slots);
    Ok(())
}

fuzz_target!(|data: &[u8]| {
    let _ = run(&mut Unstructured::new(data));
});
