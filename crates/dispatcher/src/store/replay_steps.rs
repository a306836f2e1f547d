//! The statements of the replay task ([`crate::replay`]): which replays are running, one locked
//! for a step, its matches in flight forgotten once done, its next batch handed back to the
//! senders, and its progress saved, each step in one transaction. A replay's row and its matches
//! are written, when it is asked for, in [`super::replays`].

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Transaction};
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::retention::id_range;
use webhooks_core::{pending_state, waiting_states};

use super::replays::{FINISHED, RUNNING};
use crate::replay::progress::Progress;

/// The running replays, oldest first, at most `limit` (through `replays_running`).
pub async fn running(client: &Client, limit: i64) -> Result<Vec<Uuid>, StoreError> {
    let rows = client
        .query(
            "SELECT id FROM replays WHERE state = 'running' ORDER BY created_at LIMIT $1",
            &[&limit],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// A running replay taken for one step of the replay task, locked until its transaction ends.
#[derive(Debug)]
pub struct Locked {
    pub webhook: Uuid,
    pub states: Vec<String>,
    pub progress: Progress,
    /// Why its webhook can take no more deliveries (disabled or deleted); `None` while it can.
    pub webhook_gone: Option<&'static str>,
}

/// Locks a running replay for a step, with its webhook's state. `SKIP LOCKED`: a replay another
/// dispatcher is stepping right now is left to it (`None`), as is one no longer running.
pub async fn lock(tx: &Transaction<'_>, replay: Uuid) -> Result<Option<Locked>, StoreError> {
    let row = tx
        .query_opt(
            "SELECT r.webhook_id, r.states, r.matched, r.queued, r.skipped, r.done, r.next_after,
                    r.in_flight_from, r.stopped_reason, w.deleted_at IS NOT NULL, w.enabled
             FROM replays r JOIN webhooks w ON w.id = r.webhook_id
             WHERE r.id = $1 AND r.state = 'running'
             FOR UPDATE OF r SKIP LOCKED",
            &[&replay],
        )
        .await?;
    Ok(row.map(|row| {
        let (deleted, enabled): (bool, bool) = (row.get(9), row.get(10));
        Locked {
            webhook: row.get(0),
            states: row.get(1),
            progress: Progress {
                matched: row.get(2),
                queued: row.get(3),
                skipped: row.get(4),
                done: row.get(5),
                next_after: row.get(6),
                in_flight_from: row.get(7),
                stopped_reason: row.get(8),
            },
            webhook_gone: if deleted {
                Some("webhook deleted")
            } else if !enabled {
                Some("webhook disabled")
            } else {
                None
            },
        }
    }))
}

/// Forgets the matches in flight (ids from `from` to `through`) that are done: attempted since
/// (their count of attempts grew), finished without an attempt (cancelled), or gone with their
/// day's partition. Returns how many, and the smallest id still in flight. Only the matches from
/// the oldest in flight on are read (those before it are done, their rows deleted), each delivery
/// found by primary key.
pub async fn forget_done(
    tx: &Transaction<'_>,
    replay: Uuid,
    from: Uuid,
    through: Uuid,
) -> Result<(i64, Option<Uuid>), StoreError> {
    let row = tx
        .query_one(
            concat!(
                "WITH flight AS (
                     SELECT i.delivery_id, EXISTS (
                         SELECT 1 FROM deliveries d
                         WHERE d.id = i.delivery_id AND d.state IN ",
                waiting_states!(),
                " AND d.attempt_count = i.attempts) AS waiting
                     FROM replay_items i
                     WHERE i.replay_id = $1 AND i.delivery_id BETWEEN $2 AND $3
                 ), done AS (
                     DELETE FROM replay_items i USING flight f
                     WHERE i.replay_id = $1 AND i.delivery_id = f.delivery_id AND NOT f.waiting
                     RETURNING 1
                 )
                 SELECT (SELECT count(*) FROM done),
                        (SELECT delivery_id FROM flight WHERE waiting ORDER BY delivery_id LIMIT 1)"
            ),
            &[&replay, &from, &through],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}

/// Forgets the matches not handed back yet (ids after `next_after`); returns how many.
pub async fn forget_rest(
    tx: &Transaction<'_>,
    replay: Uuid,
    next_after: Uuid,
) -> Result<i64, StoreError> {
    Ok(i64::try_from(
        tx.execute(
            "DELETE FROM replay_items WHERE replay_id = $1 AND delivery_id > $2",
            &[&replay, &next_after],
        )
        .await?,
    )
    .unwrap_or(i64::MAX))
}

/// The next `limit` matches after `next_after`, in id order, with their attempt counts as matched.
pub async fn next_batch(
    tx: &Transaction<'_>,
    replay: Uuid,
    next_after: Uuid,
    limit: i64,
) -> Result<Vec<(Uuid, i32)>, StoreError> {
    let rows = tx
        .query(
            "SELECT delivery_id, attempts FROM replay_items
             WHERE replay_id = $1 AND delivery_id > $2 ORDER BY delivery_id LIMIT $3",
            &[&replay, &next_after, &limit],
        )
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}

/// Hands `batch` back to the senders: each delivery still in one of `states` and attempted no
/// more since it was matched becomes `pending`, due at `now` and under no lease; returns those
/// handed back. By primary key in the days the ids span (as the senders' outcome statements reach
/// deliveries); the states named are finished ones, so the due index is no way in.
pub async fn hand_back(
    tx: &Transaction<'_>,
    batch: &[(Uuid, i32)],
    states: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let (ids, attempts): (Vec<Uuid>, Vec<i32>) = batch.iter().copied().unzip();
    let (low, high) = id_range(&ids);
    let statement = concat!(
        "UPDATE deliveries d SET state = ",
        pending_state!(),
        ", next_attempt_at = $3, leased_until = NULL
             FROM unnest($1::uuid[], $2::int[]) AS u(id, attempts)
             WHERE d.id = ANY($1) AND d.id BETWEEN $5 AND $6 AND d.id = u.id
               AND d.state = ANY($4) AND d.attempt_count = u.attempts
             RETURNING d.id"
    );
    let rows = tx
        .query(statement, &[&ids, &attempts, &now, &states, &low, &high])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Forgets the matches `ids` (left alone: they had changed).
pub async fn forget(tx: &Transaction<'_>, replay: Uuid, ids: &[Uuid]) -> Result<(), StoreError> {
    if ids.is_empty() {
        return Ok(());
    }
    tx.execute(
        "DELETE FROM replay_items WHERE replay_id = $1 AND delivery_id = ANY($2)",
        &[&replay, &ids],
    )
    .await?;
    Ok(())
}

/// Writes a step's progress; the replay is finished (at `now`) once the progress says so.
pub async fn save(
    tx: &Transaction<'_>,
    replay: Uuid,
    progress: &Progress,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let finished = progress.is_finished();
    tx.execute(
        "UPDATE replays SET queued = $2, skipped = $3, done = $4, next_after = $5,
             in_flight_from = $6, stopped_reason = $7, state = $8, finished_at = $9
         WHERE id = $1",
        &[
            &replay,
            &progress.queued,
            &progress.skipped,
            &progress.done,
            &progress.next_after,
            &progress.in_flight_from,
            &progress.stopped_reason,
            &if finished { FINISHED } else { RUNNING },
            &finished.then_some(now),
        ],
    )
    .await?;
    Ok(())
}

/// How many deliveries are due at `now` and taken by no sender, counting no further than `most`:
/// the senders' queue of work, which a replay does not add to while it is long. Through the due
/// index, in its order, stopped at `most` rows (as the senders' own count of it).
pub async fn due_backlog(
    client: &Client,
    now: DateTime<Utc>,
    most: i64,
) -> Result<i64, StoreError> {
    let statement = concat!(
        "SELECT count(*) FROM (SELECT 1 FROM deliveries
             WHERE state IN ",
        waiting_states!(),
        " AND next_attempt_at <= $1 AND (leased_until IS NULL OR leased_until <= $1)
             ORDER BY next_attempt_at LIMIT $2) due"
    );
    Ok(client.query_one(statement, &[&now, &most]).await?.get(0))
}
