//! Webhook health and disabling: the failures recorded against each webhook, and the write that
//! disables one, cancels its waiting deliveries and (with [`super::outbox::queue`]) queues its
//! notification, all in the transaction that records the failing attempt.
//!
//! Row locks are taken webhooks first, then deliveries, each batch's webhooks in id order: the
//! order the API locks them in too, so neither side can deadlock over a webhook and its
//! deliveries.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::{cancelled_state, waiting_states};

/// The change a batch of attempts makes to one webhook's failure tracking.
pub struct HealthChange<'a> {
    pub webhook_id: Uuid,
    /// A success was seen: the failing window restarts at `first_failure` (none: healthy).
    pub reset: bool,
    /// When the last success seen ended.
    pub last_success: Option<DateTime<Utc>>,
    /// The first failure after the last success (or of the batch); starts the window if none is
    /// open.
    pub first_failure: Option<DateTime<Utc>>,
    /// Failures to add (to count afresh when `reset`).
    pub failures: i32,
    pub last_error: Option<&'a str>,
}

/// A webhook's failing window as written by [`record_health`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FailingWindow {
    pub webhook_id: Uuid,
    /// The end of its first failed attempt since its last success (or ever); none when healthy.
    pub failing_since: Option<DateTime<Utc>>,
}

/// Applies `changes` (in webhook id order, so that concurrent senders lock in one order) and
/// returns the failing window of every webhook written. Each of those rows stays locked by `tx`
/// until it ends, so the windows returned stay true for the rest of the transaction: what
/// [`disable`] relies on.
///
/// `last_success_at` is kept to the minute: written with a webhook's other changes, or on its own
/// when the success is a minute or more after the one stored.
pub async fn record_health(
    tx: &Transaction<'_>,
    changes: &[HealthChange<'_>],
) -> Result<Vec<FailingWindow>, StoreError> {
    if changes.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = changes.iter().map(|c| c.webhook_id).collect();
    let reset: Vec<bool> = changes.iter().map(|c| c.reset).collect();
    let succeeded: Vec<Option<DateTime<Utc>>> = changes.iter().map(|c| c.last_success).collect();
    let first: Vec<Option<DateTime<Utc>>> = changes.iter().map(|c| c.first_failure).collect();
    let failures: Vec<i32> = changes.iter().map(|c| c.failures).collect();
    let errors: Vec<Option<&str>> = changes.iter().map(|c| c.last_error).collect();
    let statement = tx
        .prepare_cached(
            "UPDATE webhooks w SET
                failing_since = CASE WHEN u.reset THEN u.first_failure ELSE COALESCE(w.failing_since, u.first_failure) END,
                failed_attempts = CASE WHEN u.reset THEN u.failures ELSE w.failed_attempts + u.failures END,
                last_error = COALESCE(u.last_error, w.last_error),
                last_success_at = GREATEST(w.last_success_at, u.last_success)
             FROM unnest($1::uuid[], $2::bool[], $3::timestamptz[], $4::int[], $5::text[], $6::timestamptz[])
                  AS u(id, reset, first_failure, failures, last_error, last_success)
             -- A success on a healthy webhook changes nothing but its last success, and that only
             -- once a minute: do not write a new row version for every success.
             WHERE w.id = u.id AND (u.failures > 0 OR w.failing_since IS NOT NULL OR w.failed_attempts <> 0
                   OR u.last_success >= COALESCE(w.last_success_at, '-infinity') + interval '1 minute')
             RETURNING w.id, w.failing_since",
        )
        .await?;
    let rows = tx
        .query(
            &statement,
            &[&ids, &reset, &first, &failures, &errors, &succeeded],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| FailingWindow {
            webhook_id: row.get(0),
            failing_since: row.get(1),
        })
        .collect())
}

/// A webhook as it was disabled: what its notification says.
pub struct Disabled {
    pub webhook_id: Uuid,
    pub project_code: String,
    pub title: String,
    pub url: String,
    pub created_by: Option<i64>,
    /// Set: a webhook is disabled only while its failing window is open.
    pub failing_since: DateTime<Utc>,
    /// Empty when none was recorded.
    pub last_error: String,
    pub failed_attempts: i32,
}

/// Disables, at `now`, those of `ids` still enabled and not deleted, and cancels their waiting
/// deliveries; returns the webhooks it disabled.
///
/// `ids` must be among the webhooks [`record_health`] wrote in `tx`: their rows are locked, so the
/// window they were chosen by has not moved. `enabled` in the condition is what lets exactly one
/// transaction disable a webhook: another recording its failures at the same time waits for the
/// row, then finds it disabled and leaves it, so exactly one notification is queued.
pub async fn disable(
    tx: &Transaction<'_>,
    ids: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Disabled>, StoreError> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let statement = tx
        .prepare_cached(
            "UPDATE webhooks w SET enabled = false, disabled_at = $2, updated_at = $2,
                disabled_reason = COALESCE(w.last_error, 'failing')
             WHERE w.id = ANY($1) AND w.enabled AND w.deleted_at IS NULL
             RETURNING w.id, w.project_code, w.title, w.url, w.created_by, w.failing_since,
                       COALESCE(w.last_error, ''), w.failed_attempts",
        )
        .await?;
    let rows = tx.query(&statement, &[&ids, &now]).await?;
    let disabled: Vec<Disabled> = rows
        .iter()
        .map(|row| Disabled {
            webhook_id: row.get(0),
            project_code: row.get(1),
            title: row.get(2),
            url: row.get(3),
            created_by: row.get(4),
            failing_since: row.get(5),
            last_error: row.get(6),
            failed_attempts: row.get(7),
        })
        .collect();
    if disabled.is_empty() {
        return Ok(disabled);
    }
    let ids: Vec<Uuid> = disabled.iter().map(|d| d.webhook_id).collect();
    // After the webhooks (the lock order above). The waiting states are named exactly as the due
    // index's condition names them, the statement the API runs on a disable too.
    let cancel = tx
        .prepare_cached(concat!(
            "UPDATE deliveries SET state = ",
            cancelled_state!(),
            ", next_attempt_at = NULL, leased_until = NULL
             WHERE webhook_id = ANY($1) AND state IN ",
            waiting_states!()
        ))
        .await?;
    tx.execute(&cancel, &[&ids]).await?;
    Ok(disabled)
}
