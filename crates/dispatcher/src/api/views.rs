//! What the API answers: webhooks (never with their secret) and deliveries with their attempts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;
use webhooks_core::delivery::DeliveryState;
use webhooks_core::messages::rfc3339;

use super::schemas::{DeliveryStateSchema, EventNameSchema};
use crate::store::deliveries::{AttemptRow, DeliveryRow};
use crate::store::webhooks::WebhookRow;

/// A webhook; its secret itself is never shown, only whether it has one.
#[derive(Serialize, ToSchema)]
#[schema(as = Webhook)]
pub struct WebhookView {
    id: Uuid,
    project_code: String,
    title: String,
    #[schema(format = "uri")]
    url: String,
    has_secret: bool,
    /// In catalogue order.
    #[schema(value_type = Vec<EventNameSchema>)]
    events: Vec<String>,
    enabled: bool,
    /// The team member who created it.
    created_by: Option<i64>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// The end of its latest successful attempt, to the minute (it may be up to a minute
    /// behind); `null` when none has succeeded.
    #[schema(format = DateTime)]
    last_success_at: Option<String>,
    /// The end of its first failed attempt since its last success.
    #[schema(format = DateTime)]
    failing_since: Option<String>,
    /// Failed attempts since `failing_since`.
    #[schema(minimum = 0)]
    failed_attempts: i32,
    /// What the latest failed attempt since `failing_since` was.
    last_error: Option<String>,
    /// When it was disabled for failing too long.
    #[schema(format = DateTime)]
    disabled_at: Option<String>,
    /// The last error when it was disabled.
    disabled_reason: Option<String>,
    /// Until when the secret replaced by its latest rotation still signs its deliveries, beside
    /// the current one; `null` when none does (a time past means it no longer does).
    #[schema(format = DateTime)]
    previous_secret_until: Option<String>,
}

fn time(at: Option<DateTime<Utc>>) -> Option<String> {
    at.as_ref().map(rfc3339::format)
}

impl From<WebhookRow> for WebhookView {
    fn from(row: WebhookRow) -> Self {
        Self {
            id: row.id,
            project_code: row.project_code,
            title: row.title,
            url: row.url,
            has_secret: row.has_secret,
            events: row.events,
            enabled: row.enabled,
            created_by: row.created_by,
            created_at: rfc3339::format(&row.created_at),
            updated_at: rfc3339::format(&row.updated_at),
            last_success_at: time(row.last_success_at),
            failing_since: time(row.failing_since),
            failed_attempts: row.failed_attempts,
            last_error: row.last_error,
            disabled_at: time(row.disabled_at),
            disabled_reason: row.disabled_reason,
            previous_secret_until: time(row.previous_secret_until),
        }
    }
}

/// One event sent to one webhook, with its attempts.
#[derive(Serialize, ToSchema)]
#[schema(as = Delivery)]
pub struct DeliveryView {
    /// Also sent as `X-Qase-Delivery` and `webhook-id`, the same on every attempt.
    pub id: Uuid,
    event_id: String,
    /// A name of the catalogue, or `webhook.test` for a test delivery.
    #[schema(example = "run.started")]
    event_name: String,
    webhook_id: Uuid,
    #[schema(value_type = DeliveryStateSchema)]
    state: String,
    #[schema(format = DateTime)]
    created_at: String,
    /// When it is attempted next; `null` once it is finished.
    #[schema(format = DateTime)]
    next_attempt_at: Option<String>,
    /// Oldest first.
    pub attempts: Vec<AttemptView>,
    /// Attempts made but not in `attempts`: pruned from storage, or stored but not listed.
    pub attempts_omitted: i64,
}

impl DeliveryView {
    /// When its latest attempt listed was made.
    pub fn latest_attempt(&self) -> Option<DateTime<Utc>> {
        self.attempts.last().map(|attempt| attempt.made)
    }
}

impl From<DeliveryRow> for DeliveryView {
    fn from(row: DeliveryRow) -> Self {
        // A finished delivery is attempted no more (but by a manual retry).
        let finished = row
            .state
            .parse::<DeliveryState>()
            .is_ok_and(DeliveryState::is_finished);
        Self {
            id: row.id,
            event_id: row.event_id,
            event_name: row.event_name,
            webhook_id: row.webhook_id,
            created_at: rfc3339::format(&row.created_at),
            next_attempt_at: if finished {
                None
            } else {
                time(row.next_attempt_at)
            },
            state: row.state,
            attempts: Vec::new(),
            attempts_omitted: i64::from(row.attempts_pruned),
        }
    }
}

/// One attempt of a delivery.
#[derive(Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptView {
    #[schema(format = DateTime)]
    at: String,
    success: bool,
    /// The receiver's status; `null` when no response came.
    status_code: Option<i32>,
    /// What went wrong; `null` on success.
    error: Option<String>,
    #[schema(minimum = 0)]
    duration_ms: i32,
    #[serde(skip)]
    made: DateTime<Utc>,
    /// The first bytes of the receiver's answer (`RESPONSE_SNIPPET_BYTES`), lossily decoded;
    /// only in one delivery's answer (`GET …/deliveries/{id}`), absent in lists.
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<String>,
}

impl From<AttemptRow> for AttemptView {
    fn from(row: AttemptRow) -> Self {
        Self {
            at: rfc3339::format(&row.at),
            success: row.success,
            status_code: row.status_code,
            error: row.error,
            duration_ms: row.duration_ms,
            made: row.at,
            response: row.response,
        }
    }
}
