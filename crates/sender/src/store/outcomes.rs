//! Outcomes written back to deliveries: each attempt made and the state it leaves its delivery
//! in, the attempts beyond what a delivery keeps pruned, deliveries held back without an attempt,
//! and deliveries released by a closed circuit.
//!
//! Every statement reaches its deliveries by id (`d.id = ANY($1)`, through the primary key, in the
//! day partitions between the smallest and the largest id (`d.id BETWEEN`, see
//! [`webhooks_core::retention::id_range`]): beside
//! the join on `unnest` it looks redundant, but it puts the ids on the primary key itself, so the
//! rows are read by index whatever the planner guesses of the rows `unnest` yields, which it
//! cannot see in a plan kept for any array) and names the unfinished states by what
//! they are not (`NOT IN finished_states!()`): a delivery cancelled meanwhile (its webhook disabled
//! or deleted) stays cancelled, and the planner cannot read the rows through the due index, whose
//! condition names the waiting states and which holds every delivery waiting, a scan whose cost
//! grows with the backlog.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::delivery::{ATTEMPTS_KEPT_RECENT, DeliveryState};
use webhooks_core::finished_states;
use webhooks_core::retention::id_range;

/// One attempt, and where it leaves its delivery.
pub struct AttemptRecord<'a> {
    pub delivery_id: Uuid,
    /// When it started.
    pub at: DateTime<Utc>,
    pub success: bool,
    pub status_code: Option<u16>,
    /// What went wrong, as shown to the customer.
    pub error: Option<String>,
    pub duration: Duration,
    /// The first bytes of the response.
    pub response: Option<&'a str>,
    /// The delivery's state after it.
    pub state: DeliveryState,
    /// When the delivery is due again, if it is retried.
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The attempts the delivery had counted before this one (`attempt_count`).
    pub attempts_before: i32,
}

/// A delivery due again at `until`, without an attempt (held back), or due now at `until` (released).
pub struct Due {
    pub delivery_id: Uuid,
    pub until: DateTime<Utc>,
}

/// Writes a batch's outcomes in `tx`: the attempts and the deliveries they move on, the deliveries
/// held back (`deferred`), then those released by a closed circuit (`released`, after the
/// deferrals: a delivery may be held and released within one batch). The first three statements
/// are sent together, without waiting for each other's answer. Then the deliveries that now hold
/// more attempts than they keep are pruned (see [`prune`]).
pub async fn record(
    tx: &Transaction<'_>,
    attempts: &[AttemptRecord<'_>],
    deferred: &[Due],
    released: &[Due],
) -> Result<(), StoreError> {
    let columns = AttemptColumns::new(attempts);
    futures::try_join!(
        insert_attempts(tx, &columns),
        move_on(tx, &columns),
        defer(tx, deferred)
    )?;
    // Only a delivery past the bound by its count: most batches send no statement for this.
    let kept = ATTEMPTS_KEPT_RECENT + 1;
    let over: Vec<Uuid> = attempts
        .iter()
        .filter(|a| usize::try_from(a.attempts_before).is_ok_and(|n| n >= kept))
        .map(|a| a.delivery_id)
        .collect();
    prune(tx, &over).await?;
    release(tx, released).await
}

/// Removes the attempts of `deliveries` but the first and the [`ATTEMPTS_KEPT_RECENT`] most
/// recent, adding how many went to each delivery's `attempts_pruned`, in one statement after the
/// attempts' insert (which it must see).
///
/// The attempts are read through `attempts_by_delivery (delivery_id, at)`, a few dozen entries
/// each, and removed by their row's address (`ctid`, a TID scan), so nothing else is read. A
/// `ctid` names a row within one partition only, so the partition (`tableoid`) goes with it; and,
/// as everywhere here, the ids' range names the day partitions to look in. Only
/// the rows this statement removes are counted: should two senders prune one delivery at once
/// (its lease ran out during an attempt), the second skips the rows the first removed, and the
/// count stays exact. `attempts_pruned` is in no index, so its update can be heap-only.
async fn prune(tx: &Transaction<'_>, deliveries: &[Uuid]) -> Result<(), StoreError> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "WITH ranked AS (
                 SELECT a.tableoid AS part, a.ctid AS row,
                        row_number() OVER (PARTITION BY a.delivery_id ORDER BY a.at DESC) AS newer,
                        row_number() OVER (PARTITION BY a.delivery_id ORDER BY a.at) AS older
                 FROM attempts a WHERE a.delivery_id = ANY($1) AND a.delivery_id BETWEEN $3 AND $4
             ), pruned AS (
                 DELETE FROM attempts a USING ranked r
                 WHERE a.delivery_id BETWEEN $3 AND $4
                   AND a.tableoid = r.part AND a.ctid = r.row AND r.newer > $2 AND r.older > 1
                 RETURNING a.delivery_id
             )
             UPDATE deliveries d SET attempts_pruned = d.attempts_pruned + p.n
             FROM (SELECT delivery_id, count(*)::int AS n FROM pruned GROUP BY delivery_id) p
             WHERE d.id = ANY($1) AND d.id BETWEEN $3 AND $4 AND d.id = p.delivery_id",
        )
        .await?;
    let recent = i64::try_from(ATTEMPTS_KEPT_RECENT).expect("a small bound");
    let (low, high) = id_range(deliveries);
    tx.execute(&statement, &[&deliveries, &recent, &low, &high])
        .await?;
    Ok(())
}

/// Appends the attempts to their deliveries' history.
async fn insert_attempts(
    tx: &Transaction<'_>,
    rows: &AttemptColumns<'_>,
) -> Result<(), StoreError> {
    if rows.ids.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(
            "INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms, response)
             SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::int[], $5::text[], $6::int[], $7::text[])",
        )
        .await?;
    tx.execute(
        &statement,
        &[
            &rows.ids,
            &rows.at,
            &rows.success,
            &rows.status,
            &rows.error,
            &rows.duration_ms,
            &rows.response,
        ],
    )
    .await?;
    Ok(())
}

/// Moves each attempted delivery to its next state, ending its lease and counting the attempt.
async fn move_on(tx: &Transaction<'_>, rows: &AttemptColumns<'_>) -> Result<(), StoreError> {
    if rows.ids.is_empty() {
        return Ok(());
    }
    let statement = tx
        .prepare_cached(concat!(
            "UPDATE deliveries d SET state = u.state, next_attempt_at = u.next, leased_until = NULL,
                attempt_count = d.attempt_count + 1, first_attempt_at = COALESCE(d.first_attempt_at, u.at)
             FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(id, state, next, at)
             WHERE d.id = ANY($1) AND d.id BETWEEN $5 AND $6 AND d.id = u.id AND d.state NOT IN ",
            finished_states!()
        ))
        .await?;
    let (low, high) = id_range(&rows.ids);
    tx.execute(
        &statement,
        &[&rows.ids, &rows.state, &rows.next, &rows.at, &low, &high],
    )
    .await?;
    Ok(())
}

/// Makes held-back deliveries due at their `until`, ending their lease.
async fn defer(tx: &Transaction<'_>, deferred: &[Due]) -> Result<(), StoreError> {
    if deferred.is_empty() {
        return Ok(());
    }
    let (ids, until) = columns(deferred);
    let statement = tx
        .prepare_cached(concat!(
            "UPDATE deliveries d SET next_attempt_at = u.until, leased_until = NULL
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, until)
             WHERE d.id = ANY($1) AND d.id BETWEEN $3 AND $4 AND d.id = u.id AND d.state NOT IN ",
            finished_states!()
        ))
        .await?;
    let (low, high) = id_range(&ids);
    tx.execute(&statement, &[&ids, &until, &low, &high]).await?;
    Ok(())
}

/// Makes released deliveries due at their `until` (now). One that has been taken meanwhile keeps
/// its lease; one already due keeps its time.
async fn release(tx: &Transaction<'_>, released: &[Due]) -> Result<(), StoreError> {
    if released.is_empty() {
        return Ok(());
    }
    let (ids, at) = columns(released);
    let statement = tx
        .prepare_cached(concat!(
            "UPDATE deliveries d SET next_attempt_at = u.at
             FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
             WHERE d.id = ANY($1) AND d.id BETWEEN $3 AND $4 AND d.id = u.id AND d.state NOT IN ",
            finished_states!(),
            "
               AND (d.leased_until IS NULL OR d.leased_until <= u.at) AND d.next_attempt_at > u.at"
        ))
        .await?;
    let (low, high) = id_range(&ids);
    tx.execute(&statement, &[&ids, &at, &low, &high]).await?;
    Ok(())
}

fn columns(due: &[Due]) -> (Vec<Uuid>, Vec<DateTime<Utc>>) {
    due.iter().map(|d| (d.delivery_id, d.until)).unzip()
}

/// Attempts of a batch, column by column, for `unnest`.
struct AttemptColumns<'a> {
    ids: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
    success: Vec<bool>,
    status: Vec<Option<i32>>,
    error: Vec<Option<&'a str>>,
    duration_ms: Vec<i32>,
    response: Vec<Option<String>>,
    state: Vec<&'static str>,
    next: Vec<Option<DateTime<Utc>>>,
}

impl<'a> AttemptColumns<'a> {
    fn new(attempts: &'a [AttemptRecord<'_>]) -> Self {
        Self {
            ids: attempts.iter().map(|a| a.delivery_id).collect(),
            at: attempts.iter().map(|a| a.at).collect(),
            success: attempts.iter().map(|a| a.success).collect(),
            status: attempts
                .iter()
                .map(|a| a.status_code.map(i32::from))
                .collect(),
            error: attempts.iter().map(|a| a.error.as_deref()).collect(),
            duration_ms: attempts
                .iter()
                .map(|a| i32::try_from(a.duration.as_millis()).unwrap_or(i32::MAX))
                .collect(),
            // PostgreSQL text cannot hold NUL bytes.
            response: attempts
                .iter()
                .map(|a| a.response.map(|r| r.replace('\0', "")))
                .collect(),
            state: attempts.iter().map(|a| a.state.as_str()).collect(),
            next: attempts.iter().map(|a| a.next_attempt_at).collect(),
        }
    }
}
