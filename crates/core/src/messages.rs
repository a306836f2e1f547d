//! Bodies of the messages our services put on queues. Each is a tagged enum whose tag carries a
//! version, so an old and a new worker can run side by side during a deploy.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Dispatcher → sender, on `webhooks.deliveries`: deliveries recorded and ready for a first attempt.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum SenderMessage {
    /// One message carries every new delivery of one dispatcher batch.
    #[serde(rename = "deliver.v1")]
    DeliverV1 {
        deliveries: Vec<Uuid>,
        /// The webhook of each delivery, in the same order, so a sender can leave deliveries to an
        /// endpoint it is holding back untouched instead of claiming them only to put them back.
        /// Empty from dispatchers that predate it (every delivery is then claimed).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        webhooks: Vec<Uuid>,
    },
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
    fn sender_message_is_tagged_and_versioned() {
        let id = Uuid::nil();
        let json = serde_json::to_string(&SenderMessage::DeliverV1 {
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
            SenderMessage::DeliverV1 {
                deliveries: vec![id],
                webhooks: Vec::new()
            }
        );
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
