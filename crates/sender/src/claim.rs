//! Taking deliveries for an attempt. A claim leases the delivery in the database
//! (`leased_until`), so no other sender takes it meanwhile and, should this process die
//! mid-attempt, the scheduler of any sender picks it up once the lease expires.
//!
//! The lease is written to `leased_until` alone, a column no index covers, so that on a page with
//! room (the table's fillfactor leaves some) the claim is a heap-only update: a new row version
//! and no new index entries. The scheduler's due condition therefore reads both columns.

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

/// Claims fresh deliveries named by a hand-off message; ids already taken, finished, or locked by
/// another sender's scheduler are skipped.
pub async fn by_ids(
    pool: &Pool,
    ids: &[Uuid],
    lease_until: DateTime<Utc>,
) -> Result<Vec<Job>, StoreError> {
    let client = pool.get().await?;
    // Driven from the id array through the primary key, so the plan does not depend on table
    // statistics (a fresh database has none, and a scan per webhook is ruinous).
    let statement = client
        .prepare_cached(&leasing(
            "SELECT d.id FROM unnest($1::uuid[]) AS ids(id)
             CROSS JOIN LATERAL (
                SELECT id FROM deliveries
                WHERE id = ids.id AND state = 'pending' AND leased_until IS NULL
                FOR UPDATE SKIP LOCKED) d",
        ))
        .await?;
    let rows = client.query(&statement, &[&ids, &lease_until]).await?;
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
    let cancel = client
        .prepare_cached(
            "UPDATE deliveries d SET state = 'cancelled', next_attempt_at = NULL, leased_until = NULL
             FROM webhooks w
             WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $1
               AND (d.leased_until IS NULL OR d.leased_until <= $1)
               AND w.id = d.webhook_id AND NOT (w.enabled AND w.deleted_at IS NULL)",
        )
        .await?;
    client.execute(&cancel, &[&now]).await?;
    let claim = client
        .prepare_cached(&leasing(
            "SELECT d.id FROM deliveries d
             WHERE d.state IN ('pending', 'retrying') AND d.next_attempt_at <= $1
               AND (d.leased_until IS NULL OR d.leased_until <= $1)
             ORDER BY d.next_attempt_at LIMIT $3
             FOR UPDATE SKIP LOCKED",
        ))
        .await?;
    let rows = client.query(&claim, &[&now, &lease_until, &limit]).await?;
    Ok(jobs(&rows))
}

/// The statement that leases the deliveries `picked` selects (and locks) until `$2`, if their
/// webhook is still enabled, and returns them with their webhook's URL and secret and their
/// event's body. The body is read by primary key and sent once per event (on the event's first
/// row): the deliveries of one event share one body buffer.
fn leasing(picked: &str) -> String {
    format!(
        "WITH picked AS ({picked})
         , claimed AS (
            UPDATE deliveries d SET leased_until = $2
            FROM picked, webhooks w
            WHERE d.id = picked.id AND w.id = d.webhook_id AND w.enabled AND w.deleted_at IS NULL
            RETURNING d.id, d.webhook_id, d.event_name, d.attempt_count, d.first_attempt_at,
                      w.url, w.secret, d.event_id)
         SELECT c.*, CASE WHEN row_number() OVER (PARTITION BY c.event_id) = 1
                          THEN (SELECT e.body FROM events e WHERE e.id = c.event_id) END
         FROM claimed c"
    )
}

/// Builds jobs from claimed rows.
fn jobs(rows: &[tokio_postgres::Row]) -> Vec<Job> {
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    for row in rows {
        if let Some(body) = row.get::<_, Option<Vec<u8>>>(8) {
            bodies.insert(row.get(7), Bytes::from(body));
        }
    }
    rows.iter()
        .filter_map(|row| {
            let name: String = row.get(2);
            let Ok(event_name) = name.parse::<EventName>() else {
                tracing::error!(event_name = %name, "stored delivery has an unknown event name");
                return None;
            };
            let event_id: String = row.get(7);
            let Some(body) = bodies.get(&event_id).cloned() else {
                tracing::error!(%event_id, "stored delivery has no event body");
                return None;
            };
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
