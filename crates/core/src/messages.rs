//! Bodies of the messages our services put on queues. Each is tagged with a `type` whose string
//! carries a version, so an old and a new worker can run side by side during a deploy.
//!
//! The dispatcher hands deliveries to the senders in two kinds of message, neither a newer
//! version of the other; both are in use:
//! - [`SenderMessage::ClaimIds`] (`deliver.v1`, the older): only delivery ids, for deliveries a
//!   sender must claim from the database before an attempt;
//! - [`CarriedHandoff`] (`deliver.v2`): fresh deliveries with what their first attempt needs,
//!   so the first sender to take it can attempt them without a claim.
//!
//! The Rust names say what a message is; the wire strings stay as they are, for running services.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::event::EventName;

/// Dispatcher → sender, on `webhooks.deliveries`: deliveries recorded and ready for a first attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SenderMessage {
    /// Deliveries of one dispatcher batch that a sender claims from the database by id before
    /// attempting them.
    #[serde(rename = "deliver.v1")]
    ClaimIds {
        deliveries: Vec<Uuid>,
        /// The webhook of each delivery, in the same order, so a sender can leave deliveries to an
        /// endpoint it is holding back untouched instead of claiming them only to put them back.
        /// Empty from dispatchers that predate it (every delivery is then claimed).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        webhooks: Vec<Uuid>,
    },
}

/// The `type` of a [`CarriedHandoff`], in its body and in the message's `type` property: a
/// sender reads the property to know how to read the body.
pub const CARRIED_HANDOFF: &str = "deliver.v2";

/// Dispatcher → sender, on `webhooks.deliveries`: the new deliveries of one dispatcher batch with
/// what their first attempt needs but the webhook's URL and secret, reserved for whoever takes the
/// message first.
///
/// The dispatcher records each delivery leased until `leased_until` (when the scheduler would take
/// it up as a lost hand-off). The first sender to receive the message (not redelivered) owns the
/// deliveries until then: it may attempt them without a claim while that leaves it time for an
/// attempt, and claims them otherwise by that lease (see the sender's `claim::by_ids`).
///
/// Its own struct rather than a variant of [`SenderMessage`], so that bodies are borrowed from the
/// message as they are, not copied through serde's buffer for tagged enums.
#[derive(Debug, Serialize, Deserialize)]
pub struct CarriedHandoff<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    /// When the deliveries were recorded: a webhook changed since then (disabled, say, which
    /// cancels its pending deliveries) has its deliveries claimed, not carried.
    pub recorded_at: DateTime<Utc>,
    /// The lease every delivery of the message was recorded with, to the microsecond, as stored.
    pub leased_until: DateTime<Utc>,
    #[serde(borrow)]
    pub events: Vec<CarriedEvent<'a>>,
}

/// One event of a [`CarriedHandoff`] and its deliveries.
#[derive(Debug, Serialize, Deserialize)]
pub struct CarriedEvent<'a> {
    pub name: EventName,
    /// The delivery body, byte for byte as recorded; absent for a body too large to carry, which
    /// the sender then reads with its claim.
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    pub body: Option<&'a RawValue>,
    pub deliveries: Vec<Uuid>,
    /// The webhook of each delivery, in the same order.
    pub webhooks: Vec<Uuid>,
}

/// Sender → e-mail service, on `webhooks.notifications`: a webhook was disabled (contract §5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Notification {
    #[serde(rename = "webhook.disabled")]
    WebhookDisabled(WebhookDisabled),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookDisabled {
    pub webhook_id: Uuid,
    pub project_code: String,
    pub title: String,
    pub url: String,
    pub created_by: Option<i64>,
    #[serde(with = "rfc3339")]
    pub failing_since: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub disabled_at: DateTime<Utc>,
    pub last_error: String,
    pub failed_attempts: i64,
}

/// RFC 3339 in UTC with a `Z` and whole seconds, as the contract's examples show.
pub mod rfc3339 {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn format(at: &DateTime<Utc>) -> String {
        at.to_rfc3339_opts(SecondsFormat::Secs, true)
    }

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(at))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        let text = String::deserialize(deserializer)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|at| at.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_ids_keeps_its_wire_tag() {
        let id = Uuid::nil();
        let json = serde_json::to_string(&SenderMessage::ClaimIds {
            deliveries: vec![id],
            webhooks: vec![id],
        })
        .expect("json");
        assert_eq!(
            json,
            r#"{"type":"deliver.v1","deliveries":["00000000-0000-0000-0000-000000000000"],"webhooks":["00000000-0000-0000-0000-000000000000"]}"#
        );
        // A message from an older dispatcher, without webhooks, still reads.
        let old: SenderMessage = serde_json::from_str(
            r#"{"type":"deliver.v1","deliveries":["00000000-0000-0000-0000-000000000000"]}"#,
        )
        .expect("old message");
        assert_eq!(
            old,
            SenderMessage::ClaimIds {
                deliveries: vec![id],
                webhooks: Vec::new()
            }
        );
    }

    #[test]
    fn carried_handoff_carries_bodies_byte_for_byte_and_its_lease_to_the_microsecond() {
        let body = RawValue::from_string(r#"{"a": [1, 2],"b":"\u00e9"}"#.to_owned()).expect("raw");
        let leased_until = DateTime::parse_from_rfc3339("2026-12-05T10:00:03.123456Z")
            .expect("time")
            .with_timezone(&Utc);
        let id = Uuid::now_v7();
        let message = CarriedHandoff {
            kind: CARRIED_HANDOFF,
            recorded_at: leased_until,
            leased_until,
            events: vec![
                CarriedEvent {
                    name: EventName::RunStarted,
                    body: Some(&body),
                    deliveries: vec![id],
                    webhooks: vec![Uuid::nil()],
                },
                CarriedEvent {
                    name: EventName::RunStarted,
                    body: None,
                    deliveries: vec![id],
                    webhooks: vec![Uuid::nil()],
                },
            ],
        };
        let json = serde_json::to_vec(&message).expect("json");
        let read: CarriedHandoff = serde_json::from_slice(&json).expect("read");
        assert_eq!(read.kind, "deliver.v2");
        assert_eq!(read.leased_until, leased_until);
        assert_eq!(read.events[0].body.map(RawValue::get), Some(body.get()));
        assert_eq!(read.events[0].deliveries, vec![id]);
        assert!(read.events[1].body.is_none());
        // An older sender reads it as a message it does not know, and drops it.
        assert!(serde_json::from_slice::<SenderMessage>(&json).is_err());
    }

    #[test]
    fn notification_has_every_contract_field() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T10:00:03Z")
            .expect("time")
            .with_timezone(&Utc);
        let message = Notification::WebhookDisabled(WebhookDisabled {
            webhook_id: Uuid::nil(),
            project_code: "DEMO".into(),
            title: "CI hook".into(),
            url: "https://example.com/hook".into(),
            created_by: Some(40),
            failing_since: at,
            disabled_at: at,
            last_error: "no response within 15s".into(),
            failed_attempts: 57,
        });
        let value: serde_json::Value = serde_json::to_value(&message).expect("json");
        for field in [
            "type",
            "webhook_id",
            "project_code",
            "title",
            "url",
            "created_by",
            "failing_since",
            "disabled_at",
            "last_error",
            "failed_attempts",
        ] {
            assert!(value.get(field).is_some(), "missing {field}");
        }
        assert_eq!(value["type"], "webhook.disabled");
        assert_eq!(value["disabled_at"], "2026-11-28T10:00:03Z");
    }
}
