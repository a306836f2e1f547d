//! The count of the work waiting in the database.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use webhooks_core::db::StoreError;
use webhooks_core::{retrying_state, waiting_states};

/// What one count found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backlog {
    /// Due at `now` and under no lease.
    pub due: i64,
    /// In state `retrying`.
    pub retrying: i64,
    /// When the longest-due of `due` came due.
    pub oldest_due: Option<DateTime<Utc>>,
}

/// Counts the waiting work as at `now`, among the `most` deliveries soonest due.
///
/// The waiting states are named exactly as the due index's condition names them, and the rows are
/// taken in its order (`next_attempt_at`), so the count reads that index and stops after `most`
/// rows: its cost is bounded however large the backlog grows.
pub async fn count(client: &Client, now: DateTime<Utc>, most: i64) -> Result<Backlog, StoreError> {
    let statement = client
        .prepare_cached(concat!(
            "SELECT count(*) FILTER (WHERE due),
                    count(*) FILTER (WHERE state = ",
            retrying_state!(),
            "),
                    min(next_attempt_at) FILTER (WHERE due)
             FROM (SELECT state, next_attempt_at,
                          next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1) AS due
                   FROM deliveries
                   WHERE state IN ",
            waiting_states!(),
            "
                   ORDER BY next_attempt_at
                   LIMIT $2) waiting"
        ))
        .await?;
    let row = client.query_one(&statement, &[&now, &most]).await?;
    Ok(Backlog {
        due: row.get(0),
        retrying: row.get(1),
        oldest_due: row.get(2),
    })
}
