//! Hand-offs of ids to claim (`deliver.v1`, no `type` property) as the sender's intake reads
//! them: `intake::decode` on any body under any `type` property but `deliver.v2`, and
//! `intake::sort` on the same message as the consumer receives it.
//!
//! Input layout: one flags byte (bit 0: redelivered; bits 1-2: the `type` property: none,
//! `deliver.v1`, empty, or the next byte's worth of text), then the body.
//!
//! Beyond "never panics", for a body the intake accepts:
//! - every delivery the body names is returned once, in order (the body is read again
//!   independently), none carried and none under a reservation: each is claimed;
//! - a delivery has a webhook exactly when the message names one per delivery, and then its own;
//! - the message written out again by the dispatcher's type reads back to the same deliveries;
//! - sorting the message (every webhook unknown to the limiter, so none is held) claims every
//!   delivery it names exactly once, under no reservation.
#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::clock::Clock;
use webhooks_core::messages::{CARRIED_HANDOFF, SenderMessage};
use webhooks_sender::intake;
use webhooks_sender::limiter::{Limiter, LimiterConfig};

/// The message read again on its own terms, ids as text.
#[derive(Deserialize)]
struct Message {
    deliveries: Vec<String>,
    #[serde(default)]
    webhooks: Vec<String>,
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
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let redelivered = flags & 1 == 1;
    let (kind, body) = match (flags >> 1) & 3 {
        0 => (None, rest),
        1 => (Some("deliver.v1".to_owned()), rest),
        2 => (Some(String::new()), rest),
        _ => {
            let Some((&n, rest)) = rest.split_first() else {
                return;
            };
            let (kind, body) = rest.split_at(usize::from(n).min(rest.len()));
            (Some(String::from_utf8_lossy(kind).into_owned()), body)
        }
    };
    if kind.as_deref() == Some(CARRIED_HANDOFF) {
        return; // the other target's
    }
    let room = Duration::from_secs(20);
    let named = intake::decode(kind.as_deref(), body, redelivered, now(), room);
    let Ok(message) = serde_json::from_slice::<SenderMessage>(body) else {
        assert!(named.is_empty(), "an unreadable message named deliveries");
        return;
    };

    let read: Message = serde_json::from_slice(body).expect("an accepted body reads again");
    let deliveries = uuids(&read.deliveries);
    let webhooks = uuids(&read.webhooks);
    let paired = deliveries.len() == webhooks.len();
    assert_eq!(
        named.len(),
        deliveries.len(),
        "deliveries left out or added"
    );
    for (n, got) in named.iter().enumerate() {
        assert_eq!(got.delivery, deliveries[n], "deliveries out of order");
        assert_eq!(got.webhook, paired.then(|| webhooks[n]));
        assert!(got.carried.is_none(), "ids to claim carried");
        assert!(got.reserved.is_none(), "ids to claim reserved");
    }

    let again = serde_json::to_vec(&message).expect("a message serialises");
    let reread = intake::decode(kind.as_deref(), &again, redelivered, now(), room);
    let ids = |named: &[intake::HandedOff]| -> Vec<(Uuid, Option<Uuid>)> {
        named.iter().map(|n| (n.delivery, n.webhook)).collect()
    };
    assert_eq!(
        ids(&reread),
        ids(&named),
        "written out again, it reads otherwise"
    );

    let mut delivery =
        lapin::message::Delivery::mock(1, "".into(), "q".into(), redelivered, body.to_vec());
    if let Some(kind) = &kind {
        delivery.properties = lapin::BasicProperties::default().with_type(kind.as_str().into());
    }
    let sorted = intake::sort(&limiter(), &[delivery], usize::MAX, now(), room);
    assert!(
        sorted.park.is_empty() && sorted.held == 0,
        "held back by a limiter that knows nothing"
    );
    assert!(sorted.work.carried.is_empty(), "ids to claim carried");
    let mut claimed: Vec<Uuid> = Vec::new();
    for (reserved, ids) in &sorted.work.claims {
        assert!(reserved.is_none(), "ids to claim reserved");
        claimed.extend(ids);
    }
    let mut named: Vec<Uuid> = named.iter().map(|n| n.delivery).collect();
    claimed.sort_unstable();
    named.sort_unstable();
    assert_eq!(claimed, named, "sorting lost or doubled deliveries");
});
