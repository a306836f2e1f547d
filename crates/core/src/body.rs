//! The HTTP body a subscriber receives, built once per event and shared by all its deliveries.

use crate::event::{Event, TEST_EVENT};
use serde::Serialize;
use serde_json::value::RawValue;

#[derive(Serialize)]
struct DeliveryBody<'a> {
    event_name: &'a str,
    timestamp: i64,
    payload: &'a RawValue,
    team_member_id: Option<i64>,
    project_code: &'a str,
}

/// Serialises the contract's delivery body; the payload's bytes are copied as published.
pub fn delivery_body(event: &Event) -> Vec<u8> {
    String::from(Box::<str>::from(raw_delivery_body(event))).into_bytes()
}

/// The delivery body as a JSON value that serialises byte for byte, as it is carried to the
/// senders; serialised once and never parsed again.
pub fn raw_delivery_body(event: &Event) -> Box<RawValue> {
    let body = DeliveryBody {
        event_name: event.name.as_str(),
        timestamp: event.timestamp,
        payload: &event.payload,
        team_member_id: event.team_member_id,
        project_code: event.project_code.as_str(),
    };
    // Serialising plain strings, integers and an already-valid raw value cannot fail.
    serde_json::value::to_raw_value(&body).expect("delivery body serialises")
}

/// The body of a test delivery (contract §2): the envelope of every delivery, its event name
/// [`TEST_EVENT`], sent at `timestamp` (Unix seconds), with a payload naming the webhook, so a
/// receiver can tell it from a real event and from another webhook's test.
pub fn test_body(project_code: &str, webhook_id: &str, timestamp: i64) -> Vec<u8> {
    #[derive(Serialize)]
    struct TestPayload<'a> {
        webhook_id: &'a str,
        message: &'a str,
    }
    let payload = serde_json::value::to_raw_value(&TestPayload {
        webhook_id,
        message: "A test delivery, sent on request; nothing happened in the project.",
    })
    .expect("test payload serialises");
    let body = DeliveryBody {
        event_name: TEST_EVENT,
        timestamp,
        payload: &payload,
        team_member_id: None,
        project_code,
    };
    serde_json::to_vec(&body).expect("test body serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_contract_shape_and_untouched_payload() {
        let raw = br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"run.started","timestamp":1650540069,"project_code":"DEMO","team_member_id":40,"payload":{ "id" : 1,"title":"Test run \u00e9"}}"#;
        let event = Event::parse(raw, None, 1 << 20).expect("valid");
        let body = String::from_utf8(delivery_body(&event)).expect("utf8");
        assert_eq!(
            body,
            r#"{"event_name":"run.started","timestamp":1650540069,"payload":{ "id" : 1,"title":"Test run \u00e9"},"team_member_id":40,"project_code":"DEMO"}"#
        );
    }

    #[test]
    fn absent_team_member_is_null() {
        let raw = br#"{"id":"7f0c2c8e-3a4b-4d6e-9a51-0e8f3c2b1a77","event_name":"case.created","timestamp":1,"project_code":"P","payload":{}}"#;
        let event = Event::parse(raw, None, 1 << 20).expect("valid");
        let body = String::from_utf8(delivery_body(&event)).expect("utf8");
        assert!(body.contains(r#""team_member_id":null"#), "{body}");
    }

    #[test]
    fn a_test_body_has_the_envelope_of_every_delivery() {
        let body = test_body("DEMO", "0191", 1_650_540_069);
        let value: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"event_name": "webhook.test", "timestamp": 1_650_540_069,
                "payload": {"webhook_id": "0191",
                    "message": "A test delivery, sent on request; nothing happened in the project."},
                "team_member_id": null, "project_code": "DEMO"})
        );
    }
}
