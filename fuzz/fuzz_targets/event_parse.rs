//! `Event::parse` on arbitrary message bodies, with or without an AMQP `message_id`.
//!
//! Input layout: the first byte `n` says whether a `message_id` is given: `0` means none, otherwise
//! the next `n - 1` bytes are the `message_id` (lossily decoded, as the broker hands us a string)
//! and the rest is the body. Beyond "never panics", an accepted event must produce a delivery body
//! that is JSON with the contract's fields and the payload's bytes exactly as published.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::value::RawValue;
use webhooks_core::body::delivery_body;
use webhooks_core::event::{Event, MAX_PROJECT_CODE};

/// The production default (`MAX_EVENT_BYTES`); fuzz inputs are far smaller, so all are parsed.
const LIMIT: usize = 1 << 20;

/// The published event, read independently of the parser under test: only its payload's text.
#[derive(Deserialize)]
struct Published<'a> {
    #[serde(borrow)]
    payload: &'a RawValue,
}

/// The delivery body as a subscriber reads it; unknown fields would be a contract breach.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Delivered<'a> {
    event_name: String,
    timestamp: i64,
    #[serde(borrow)]
    payload: &'a RawValue,
    team_member_id: Option<i64>,
    project_code: String,
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let (message_id, body) = match usize::from(head) {
        0 => (None, rest),
        n => {
            let (id, body) = rest.split_at((n - 1).min(rest.len()));
            (Some(String::from_utf8_lossy(id).into_owned()), body)
        }
    };

    let Ok(event) = Event::parse(body, message_id.as_deref(), LIMIT) else {
        return;
    };

    assert!(!event.id.is_empty(), "accepted an empty id");
    assert!(event.id.len() <= 255, "accepted an id of {} bytes", event.id.len());
    let codes = event.project_code.as_str().chars().count();
    assert!((1..=MAX_PROJECT_CODE).contains(&codes), "project_code of {codes} characters");

    let published: Published<'_> =
        serde_json::from_slice(body).expect("an accepted body reads again as JSON");
    assert_eq!(event.payload.get(), published.payload.get(), "payload bytes changed on parse");

    let out = delivery_body(&event);
    let delivered: Delivered<'_> = serde_json::from_slice(&out).unwrap_or_else(|e| {
        panic!("delivery body is not the contract's JSON ({e}): {}", String::from_utf8_lossy(&out))
    });
    assert_eq!(delivered.payload.get(), published.payload.get(), "payload bytes changed on delivery");
    assert_eq!(delivered.event_name, event.name.as_str());
    assert_eq!(delivered.timestamp, event.timestamp);
    assert_eq!(delivered.team_member_id, event.team_member_id);
    assert_eq!(delivered.project_code, event.project_code.as_str());

    // Whatever a strict JSON reader accepts from the publisher, it accepts from us too.
    if serde_json::from_slice::<serde_json::Value>(body).is_ok() {
        serde_json::from_slice::<serde_json::Value>(&out)
            .expect("delivery body is strict JSON when the event was");
    }
});
