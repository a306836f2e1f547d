//! Carried hand-offs (`deliver.v2`) as the sender's intake reads them: `intake::decode` on any
//! body under the `type` property `deliver.v2`, and `intake::sort` on the same message as the
//! consumer receives it.
//!
//! Input layout: one flags byte (bit 0: redelivered), two bytes of the attempt room in seconds
//! (big-endian), then the body. The sender's clock reads 2026-12-05T10:00:00Z.
//!
//! Beyond "never panics", for a body the intake accepts:
//! - every delivery the body names is returned once, in order, none left out (the body is read
//!   again independently, as plain JSON);
//! - a delivery is carried (attempted without a claim) only when the message came first-hand,
//!   its event has a body, and the lease leaves the attempt room; it is then carried with its
//!   event's body byte for byte, its webhook and its lease;
//! - a delivery has a webhook exactly when its event's webhooks pair with its deliveries;
//! - sorting the message (every webhook unknown to the limiter, so none is held) starts every
//!   delivery it names exactly once: carried, or claimed under its reservation.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::clock::Clock;
use webhooks_core::messages::CARRIED_HANDOFF;
use webhooks_sender::intake;
use webhooks_sender::limiter::{Limiter, LimiterConfig};

/// The message read again on its own terms: ids as text, bodies as their bytes.
#[derive(Deserialize)]
struct Message<'a> {
    recorded_at: DateTime<Utc>,
    leased_until: DateTime<Utc>,
    #[serde(borrow)]
    events: Vec<Event<'a>>,
}

#[derive(Deserialize)]
struct Event<'a> {
    deliveries: Vec<String>,
    webhooks: Vec<String>,
    #[serde(borrow, default)]
    body: Option<&'a RawValue>,
}

fn now() -> DateTime<Utc> {
    "2026-12-05T10:00:00Z".parse().expect("a time")
}

/// A limiter that knows no webhook, so holds none back.
fn limiter() -> Limiter {
    let config = LimiterConfig {
        max_per_endpoint: 1,
        max_per_host: 1,
        max_per_project: 1,
        breaker_failures: 0,
        breaker_slow: Duration::ZERO,
        breaker_pause: Duration::from_secs(1),
        busy_hold: Duration::from_secs(1),
    };
    Limiter::new(config, Clock::System)
}

fn uuids(ids: &[String]) -> Vec<Uuid> {
    ids.iter().map(|id| id.parse().expect("a uuid")).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, hi, lo], body)) = data.split_first_chunk::<3>() else {
        return;
    };
    let redelivered = flags & 1 == 1;
    let room = Duration::from_secs(u64::from(u16::from_be_bytes([hi, lo])));
    let named = intake::decode(Some(CARRIED_HANDOFF), body, redelivered, now(), room);
    if named.is_empty() {
        return;
    }

    let message: Message<'_> = serde_json::from_slice(body).expect("an accepted body reads again");
    let room_left = chrono::Duration::from_std(room).expect("room") <= message.leased_until - now();
    let mut expected = Vec::new();
    for event in &message.events {
        let webhooks = uuids(&event.webhooks);
        let paired = event.deliveries.len() == webhooks.len();
        for (n, delivery) in uuids(&event.deliveries).into_iter().enumerate() {
            let body = event.body.filter(|_| paired);
            expected.push((delivery, paired.then(|| webhooks[n]), body));
        }
    }
    assert_eq!(named.len(), expected.len(), "deliveries left out or added");

    for (got, (delivery, webhook, body)) in named.iter().zip(&expected) {
        assert_eq!(got.delivery, *delivery, "deliveries out of order");
        assert_eq!(got.webhook, *webhook);
        assert_eq!(got.reserved, (!redelivered).then_some(message.leased_until));
        let should_carry = !redelivered && room_left && body.is_some();
        match &got.carried {
            None => assert!(!should_carry, "{delivery} could have been carried"),
            Some(carried) => {
                assert!(should_carry, "{delivery} carried against the rules");
                assert_eq!(carried.delivery_id, *delivery);
                assert_eq!(Some(carried.webhook_id), *webhook);
                assert_eq!(carried.reserved, message.leased_until);
                assert_eq!(carried.recorded_at, message.recorded_at);
                let recorded = body.map(|b| b.get().as_bytes());
                assert_eq!(Some(&carried.body[..]), recorded, "body changed on the way");
            }
        }
    }

    let mut delivery =
        lapin::message::Delivery::mock(1, "".into(), "q".into(), redelivered, body.to_vec());
    delivery.properties = lapin::BasicProperties::default().with_type(CARRIED_HANDOFF.into());
    let sorted = intake::sort(&limiter(), &[delivery], usize::MAX, now(), room);
    assert!(
        sorted.park.is_empty() && sorted.held == 0,
        "held back by a limiter that knows nothing"
    );
    let mut started: Vec<Uuid> = sorted.work.carried.iter().map(|c| c.delivery_id).collect();
    for (reserved, ids) in &sorted.work.claims {
        assert_eq!(*reserved, (!redelivered).then_some(message.leased_until));
        started.extend(ids);
    }
    let mut named: Vec<Uuid> = named.iter().map(|n| n.delivery).collect();
    started.sort_unstable();
    named.sort_unstable();
    assert_eq!(started, named, "sorting lost or doubled deliveries");
});
