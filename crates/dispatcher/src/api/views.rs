//! What the API answers: webhooks (never with their secret) and deliveries with their attempts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;
use webhooks_core::delivery::DeliveryState;
use webhooks_core::messages::rfc3339;

use crate::store::deliveries::{AttemptRow, DeliveryRow};
use crate::store::webhooks::WebhookRow;

#[derive(Serialize)]
pub struct WebhookView {
    id: Uuid,
    project_code: String,
    title: String,
    url: String,
    has_secret: bool,
    events: Vec<String>,
    enabled: bool,
    created_by: Option<i64>,
    created_at: String,
    updated_at: String,
    failing_since: Option<String>,
    failed_attempts: i32,
    last_error: Option<String>,
    disabled_at: Option<String>,
    disabled_reason: Option<String>,
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
            failing_since: time(row.failing_since),
            failed_attempts: row.failed_attempts,
            last_error: row.last_error,
            disabled_at: time(row.disabled_at),
            disabled_reason: row.disabled_reason,
        }
    }
}

#[derive(Serialize)]
pub struct DeliveryView {
    pub id: Uuid,
    event_id: String,
    event_name: String,
    webhook_id: Uuid,
    state: String,
    created_at: String,
    next_attempt_at: Option<String>,
    pub attempts: Vec<AttemptView>,
    /// Attempts made but not in `attempts`: pruned from storage, or stored but not listed.
    pub attempts_omitted: i64,
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

#[derive(Serialize)]
pub struct AttemptView {
    at: String,
    success: bool,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

impl From<AttemptRow> for AttemptView {
    fn from(row: AttemptRow) -> Self {
        Self {
            at: rfc3339::format(&row.at),
            success: row.success,
            status_code: row.status_code,
            error: row.error,
            duration_ms: row.duration_ms,
        }
    }
}
