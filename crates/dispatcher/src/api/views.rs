//! What the API answers: webhooks (never with their secret) and deliveries with their attempts.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;
use webhooks_core::delivery::DeliveryState;
use webhooks_core::messages::rfc3339;

/// Columns read for a [`WebhookView`], in this order.
pub const WEBHOOK_COLUMNS: &str = "id, project_code, title, url, secret IS NOT NULL, events, enabled, created_by, \
     created_at, updated_at, failing_since, failed_attempts, last_error, disabled_at, disabled_reason";

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

impl From<&Row> for WebhookView {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get(0),
            project_code: row.get(1),
            title: row.get(2),
            url: row.get(3),
            has_secret: row.get(4),
            events: row.get(5),
            enabled: row.get(6),
            created_by: row.get(7),
            created_at: rfc3339::format(&row.get(8)),
            updated_at: rfc3339::format(&row.get(9)),
            failing_since: time(row.get(10)),
            failed_attempts: row.get(11),
            last_error: row.get(12),
            disabled_at: time(row.get(13)),
            disabled_reason: row.get(14),
        }
    }
}

/// Columns read for a [`DeliveryView`], in this order (table alias `d`). While an attempt is in
/// flight the next one cannot start before its lease ends.
pub const DELIVERY_COLUMNS: &str =
    "d.id, d.event_id, d.event_name, d.webhook_id, d.state, d.created_at,
     GREATEST(d.next_attempt_at, d.leased_until)";

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
}

impl From<&Row> for DeliveryView {
    fn from(row: &Row) -> Self {
        let state: String = row.get(4);
        let finished = state
            .parse::<DeliveryState>()
            .is_ok_and(DeliveryState::is_finished);
        Self {
            id: row.get(0),
            event_id: row.get(1),
            event_name: row.get(2),
            webhook_id: row.get(3),
            created_at: rfc3339::format(&row.get(5)),
            next_attempt_at: if finished { None } else { time(row.get(6)) },
            state,
            attempts: Vec::new(),
        }
    }
}

/// Columns read for an [`AttemptView`], after the delivery id.
pub const ATTEMPT_COLUMNS: &str = "delivery_id, at, success, status_code, error, duration_ms";

#[derive(Serialize)]
pub struct AttemptView {
    at: String,
    success: bool,
    status_code: Option<i32>,
    error: Option<String>,
    duration_ms: i32,
}

impl From<&Row> for AttemptView {
    fn from(row: &Row) -> Self {
        Self {
            at: rfc3339::format(&row.get(1)),
            success: row.get(2),
            status_code: row.get(3),
            error: row.get(4),
            duration_ms: row.get(5),
        }
    }
}
