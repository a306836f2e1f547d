//! The `deliveries` and `attempts` tables as the API sees them: a webhook's recent deliveries with
//! their attempts, the manual retry of one delivery, the record of a test delivery, and the
//! cancellation of a webhook's waiting deliveries when it is disabled or deleted.
//!
//! The senders write these rows (leases, outcomes, retries); the record of new ones is in
//! [`super::record`].

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Row, Transaction};
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::{ProjectCode, TEST_EVENT};
use webhooks_core::{cancelled_state, pending_state, retrying_state, waiting_states};

/// The columns of a [`DeliveryRow`], in the order [`DeliveryRow::from_row`] reads them (table
/// alias `d`). While an attempt is in flight the next one cannot start before its lease ends,
/// hence the later of the two times.
pub(super) const DELIVERY_COLUMNS: &str =
    "d.id, d.event_id, d.event_name, d.webhook_id, d.state, d.created_at,
     GREATEST(d.next_attempt_at, d.leased_until), d.attempts_pruned";

/// A delivery as the API shows it.
#[derive(Debug)]
pub struct DeliveryRow {
    pub id: Uuid,
    pub event_id: String,
    pub event_name: String,
    pub webhook_id: Uuid,
    /// As stored, one of [`webhooks_core::delivery::DeliveryState`].
    pub state: String,
    pub created_at: DateTime<Utc>,
    /// When it may be attempted next: the later of its due time and its lease.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// Attempts made but no longer stored (see [`webhooks_core::delivery::ATTEMPTS_KEPT_RECENT`]).
    pub attempts_pruned: i32,
}

impl DeliveryRow {
    pub(super) fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            event_id: row.get(1),
            event_name: row.get(2),
            webhook_id: row.get(3),
            state: row.get(4),
            created_at: row.get(5),
            next_attempt_at: row.get(6),
            attempts_pruned: row.get(7),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug)]
pub struct AttemptRow {
    pub delivery_id: Uuid,
    pub at: DateTime<Utc>,
    pub success: bool,
    pub status_code: Option<i32>,
    pub error: Option<String>,
    pub duration_ms: i32,
    /// The first bytes of the receiver's answer, when asked for.
    pub response: Option<String>,
    /// How many attempts its delivery has stored, shown or not.
    pub stored: i64,
}

/// The newest `limit` deliveries of a webhook, newest first. Through `deliveries_by_webhook
/// (webhook_id, created_at DESC)`, read in its order and stopped at the limit; the id (a UUIDv7,
/// so in creation order too) makes the order total among deliveries created at the same moment.
pub async fn recent(
    client: &Client,
    webhook: Uuid,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.webhook_id = $1
                 ORDER BY d.created_at DESC, d.id DESC LIMIT $2"
            ),
            &[&webhook, &limit],
        )
        .await?;
    Ok(rows.iter().map(DeliveryRow::from_row).collect())
}

/// The attempts of `deliveries` to show, oldest first: of each delivery its first and its `recent`
/// most recent, whatever it has stored (the senders keep no more than that, but attempts stored
/// before they pruned are not loaded either), with how many it has stored.
///
/// Per delivery, through `attempts_by_delivery (delivery_id, at)`: the most recent read backwards
/// and stopped at `recent`, the first read forwards and stopped at one (asked for only when there
/// are more stored than `recent`, so it is never listed twice), and the count, from the index
/// entries alone, a few dozen once pruned. The answers' first bytes only with `responses` (one
/// delivery's page): a list of many would carry them all.
pub async fn attempts(
    client: &Client,
    deliveries: &[Uuid],
    recent: i64,
    responses: bool,
) -> Result<Vec<AttemptRow>, StoreError> {
    let rows = client
        .query(
            "SELECT u.id, a.at, a.success, a.status_code, a.error, a.duration_ms, s.stored,
                    CASE WHEN $3 THEN a.response END
             FROM unnest($1::uuid[]) AS u(id)
             CROSS JOIN LATERAL (SELECT count(*) AS stored FROM attempts WHERE delivery_id = u.id) s
             CROSS JOIN LATERAL (
                 (SELECT at, success, status_code, error, duration_ms, response FROM attempts
                  WHERE delivery_id = u.id ORDER BY at DESC LIMIT $2)
                 UNION ALL
                 (SELECT at, success, status_code, error, duration_ms, response FROM attempts
                  WHERE delivery_id = u.id AND s.stored > $2 ORDER BY at LIMIT 1)
             ) a
             ORDER BY a.at",
            &[&deliveries, &recent, &responses],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| AttemptRow {
            delivery_id: row.get(0),
            at: row.get(1),
            success: row.get(2),
            status_code: row.get(3),
            error: row.get(4),
            duration_ms: row.get(5),
            stored: row.get(6),
            response: row.get(7),
        })
        .collect())
}

/// What a manual retry must know of a delivery before it asks for one.
#[derive(Debug)]
pub struct RetryTarget {
    /// Whether its webhook is enabled.
    pub webhook_enabled: bool,
    /// Whether a sender holds it under a lease running at the time asked about; `None` when it
    /// has no lease.
    pub leased: Option<bool>,
}

/// A delivery of a project's webhook that is not deleted, by primary key: a delivery has no
/// project of its own, so its webhook's (also by primary key) says whether it is this project's.
pub async fn retry_target(
    client: &Client,
    project: &ProjectCode,
    delivery: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<RetryTarget>, StoreError> {
    let row = client
        .query_opt(
            "SELECT w.enabled, d.leased_until > $3 FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.id = $1 AND w.project_code = $2 AND w.deleted_at IS NULL",
            &[&delivery, &project.as_str(), &now],
        )
        .await?;
    Ok(row.map(|row| RetryTarget {
        webhook_enabled: row.get(0),
        leased: row.get(1),
    }))
}

/// Makes a delivery due at `now`, whatever its state, with a fresh give-up window (no first
/// attempt yet). Being `retrying` with a due time puts it back in the `deliveries_due` index,
/// where the senders' scheduler finds it.
pub async fn retry(
    client: &Client,
    delivery: Uuid,
    now: DateTime<Utc>,
) -> Result<DeliveryRow, StoreError> {
    let row = client
        .query_one(
            &format!(
                concat!(
                    "UPDATE deliveries d SET state = ",
                    retrying_state!(),
                    ", next_attempt_at = $2,
                        leased_until = NULL, first_attempt_at = NULL
                     WHERE d.id = $1 RETURNING {columns}"
                ),
                columns = DELIVERY_COLUMNS
            ),
            &[&delivery, &now],
        )
        .await?;
    Ok(DeliveryRow::from_row(&row))
}

/// A test delivery to record with [`record_test`].
pub struct TestDelivery<'a> {
    pub delivery: Uuid,
    /// Its event's id, a fresh one: a test is an event of its own.
    pub event: &'a str,
    pub webhook: Uuid,
    pub project: &'a ProjectCode,
    pub body: &'a [u8],
}

/// Records a test delivery and its event, in the transaction that locked its webhook, due at
/// `now` and under no lease: the senders' scheduler takes it on its next turn, as it takes a
/// manual retry, and from there it is attempted, retried and recorded like any other. The event
/// row holds the body every attempt sends, as a published event's does. Both inserts are by
/// primary key; the delivery is in the `deliveries_due` index from the start (`pending`, due).
pub async fn record_test(
    tx: &Transaction<'_>,
    test: &TestDelivery<'_>,
    now: DateTime<Utc>,
) -> Result<DeliveryRow, StoreError> {
    tx.execute(
        "INSERT INTO events (id, event_name, project_code, body, received_at)
         VALUES ($1, $2, $3, $4, $5)",
        &[
            &test.event,
            &TEST_EVENT,
            &test.project.as_str(),
            &test.body,
            &now,
        ],
    )
    .await?;
    let row = tx
        .query_one(
            &format!(
                concat!(
                    "INSERT INTO deliveries AS d (id, event_id, webhook_id, event_name, state, created_at, next_attempt_at)
                     VALUES ($1, $2, $3, $4, ",
                    pending_state!(),
                    ", $5, $5) RETURNING {columns}"
                ),
                columns = DELIVERY_COLUMNS
            ),
            &[&test.delivery, &test.event, &test.webhook, &TEST_EVENT, &now],
        )
        .await?;
    Ok(DeliveryRow::from_row(&row))
}

/// Cancels every delivery of `webhook` still waiting for an attempt, in the transaction that
/// disables or deletes it. Found through `deliveries_by_webhook`; cancelled rows leave the
/// `deliveries_due` index (whose condition is the waiting states), so no scheduler sees them
/// again, and a sender's outcome for one attempted right now leaves it cancelled (its outcome
/// writes skip finished deliveries).
pub async fn cancel_waiting(tx: &Transaction<'_>, webhook: Uuid) -> Result<(), StoreError> {
    tx.execute(
        concat!(
            "UPDATE deliveries SET state = ",
            cancelled_state!(),
            ", next_attempt_at = NULL,
                leased_until = NULL
             WHERE webhook_id = $1 AND state IN ",
            waiting_states!()
        ),
        &[&webhook],
    )
    .await?;
    Ok(())
}
