//! Taking deliveries for an attempt. A claim leases the delivery in the database
//! (`leased_until`, also its `next_attempt_at`), so no other sender takes it meanwhile and, should
//! this process die mid-attempt, the scheduler of any sender picks it up once the lease expires.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::EventName;
use webhooks_core::secret::Secret;

/// Everything one attempt needs.
#[derive(Clone, Debug)]
pub struct Job {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_name: EventName,
    pub url: String,
    pub secret: Option<Secret>,
    /// The stored body, shared by the deliveries of one event.
    pub body: Bytes,
    /// Attempts made before this one.
    pub attempt_count: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
}

const CLAIMED_COLUMNS: &str = "c.id, c.webhook_id, c.event_name, c.attempt_count, c.first_attempt_at, c.url, c.secret, c.event_id, e.body";

/// Claims fresh deliveries named by a hand-off message; ids already taken or finished are skipped.
pub async fn by_ids(
    pool: &Pool,
    ids: &[Uuid],
    lease_until: DateTime<Utc>,
) -> Result<Vec<Job>, StoreError> {
    let client = pool.get().await?;
    let rows = client
        .query(
            &format!(
                "WITH claimed AS (
                    UPDATE deliveries d SET leased_until = $2, next_attempt_at = $2
                    FROM webhooks w
                    WHERE d.id = ANY($1) AND d.state = 'pending' AND d.leased_until IS NULL
                      AND w.id = d.webhook_id AND w.enabled AND w.deleted_at IS NULL
                    RETURNING d.id, d.webhook_id, d.event_name, d.attempt_count, d.first_attempt_at,
                              w.url, w.secret, d.event_id)
                 SELECT {CLAIMED_COLUMNS} FROM claimed c JOIN events e ON e.id = c.event_id"
            ),
            &[&ids, &lease_until],
        )
        .await?;
    Ok(jobs(&rows))
}

/// Claims up to `limit` deliveries that are due at `now`: retries, manual retries, lost hand-offs and
/// expired leases. Due deliveries of webhooks that are no longer enabled are cancelled instead.
pub async fn due(
    pool: &Pool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let client = pool.get().await?;
    client
        .execute(
            "UPDATE deliveries d SET state = 'cancelled', next_attempt_at = NULL, leased_until = NULL
             FROM webhooks w
             WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $1
               AND w.id = d.webhook_id AND NOT (w.enabled AND w.deleted_at IS NULL)",
            &[&now],
        )
        .await?;
    let rows = client
        .query(
            &format!(
                "WITH due AS (
                    SELECT d.id FROM deliveries d
                    WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $1
                    ORDER BY d.next_attempt_at LIMIT $3
                    FOR UPDATE SKIP LOCKED),
                 claimed AS (
                    UPDATE deliveries d SET leased_until = $2, next_attempt_at = $2
                    FROM due, webhooks w
                    WHERE d.id = due.id AND w.id = d.webhook_id AND w.enabled AND w.deleted_at IS NULL
                    RETURNING d.id, d.webhook_id, d.event_name, d.attempt_count, d.first_attempt_at,
                              w.url, w.secret, d.event_id)
                 SELECT {CLAIMED_COLUMNS} FROM claimed c JOIN events e ON e.id = c.event_id"
            ),
            &[&now, &lease_until, &limit],
        )
        .await?;
    Ok(jobs(&rows))
}

fn jobs(rows: &[tokio_postgres::Row]) -> Vec<Job> {
    // Deliveries of one event share one body buffer.
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    rows.iter()
        .filter_map(|row| {
            let event_id: String = row.get(7);
            let name: String = row.get(2);
            let Ok(event_name) = name.parse::<EventName>() else {
                tracing::error!(event_name = %name, "stored delivery has an unknown event name");
                return None;
            };
            let body = bodies
                .entry(event_id)
                .or_insert_with(|| Bytes::from(row.get::<_, Vec<u8>>(8)))
                .clone();
            Some(Job {
                delivery_id: row.get(0),
                webhook_id: row.get(1),
                event_name,
                attempt_count: row.get(3),
                first_attempt_at: row.get(4),
                url: row.get(5),
                secret: row.get::<_, Option<String>>(6).map(Secret::new),
                body,
            })
        })
        .collect()
}
