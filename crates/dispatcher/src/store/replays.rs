//! Bulk replays (migration 0009): a replay's row and its matches (`replay_items`), written by the
//! API when it is asked for and by the replay task ([`crate::replay`]) as it hands its matches back
//! to the senders, a batch per transaction.
//!
//! A match handed back is made `pending` and due at once, under no lease, like a delivery whose
//! hand-off never arrived: the senders claim it by id from the replay's hand-off message, or their
//! scheduler finds it through the due index should the message be lost. Its attempt count and its
//! first attempt's time stay: the attempt is recorded as its next one, and its give-up window is
//! still that of its first attempt (a manual retry restarts it; a replay does not).

use chrono::{DateTime, Utc};
use tokio_postgres::{Client, Row, Transaction};
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::ProjectCode;
use webhooks_core::retention::id_range;
use webhooks_core::{pending_state, waiting_states};

use crate::replay::progress::Progress;

/// A replay still handing back its matches or waiting for their attempts, as stored.
pub const RUNNING: &str = "running";
/// A replay with nothing left to do, as stored.
pub const FINISHED: &str = "finished";

/// The columns of a [`ReplayRow`], in the order [`ReplayRow::from_row`] reads them (alias `r`).
const REPLAY_COLUMNS: &str = "r.id, r.webhook_id, r.idempotency_key, r.from_at, r.to_at, r.states,
     r.state, r.matched, r.queued, r.skipped, r.done, r.next_after, r.in_flight_from,
     r.stopped_reason, r.created_at, r.finished_at";

/// A replay as the API shows it.
#[derive(Debug, Clone)]
pub struct ReplayRow {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub idempotency_key: Option<String>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Sorted, as stored.
    pub states: Vec<String>,
    /// [`RUNNING`] or [`FINISHED`].
    pub state: String,
    pub progress: Progress,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl ReplayRow {
    fn from_row(row: &Row) -> Self {
        Self {
            id: row.get(0),
            webhook_id: row.get(1),
            idempotency_key: row.get(2),
            from: row.get(3),
            to: row.get(4),
            states: row.get(5),
            state: row.get(6),
            progress: Progress {
                matched: row.get(7),
                queued: row.get(8),
                skipped: row.get(9),
                done: row.get(10),
                next_after: row.get(11),
                in_flight_from: row.get(12),
                stopped_reason: row.get(13),
            },
            created_at: row.get(14),
            finished_at: row.get(15),
        }
    }
}

/// What a new replay asks for.
#[derive(Debug)]
pub struct NewReplay<'a> {
    pub id: Uuid,
    pub webhook: Uuid,
    pub idempotency_key: Option<&'a str>,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub states: &'a [&'static str],
}

/// Whether a webhook of the project exists (not deleted) and is enabled; `None` when it does not
/// exist. By primary key.
pub async fn webhook_enabled(
    client: &Client,
    project: &ProjectCode,
    webhook: Uuid,
) -> Result<Option<bool>, StoreError> {
    let row = client
        .query_opt(
            "SELECT enabled FROM webhooks WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL",
            &[&webhook, &project.as_str()],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}

/// The replay of `webhook` made with `key`, if any (through `replays_by_key`).
pub async fn by_key(
    client: &Client,
    webhook: Uuid,
    key: &str,
) -> Result<Option<ReplayRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {REPLAY_COLUMNS} FROM replays r
                 WHERE r.webhook_id = $1 AND r.idempotency_key = $2"
            ),
            &[&webhook, &key],
        )
        .await?;
    Ok(row.as_ref().map(ReplayRow::from_row))
}

/// Inserts a replay, running and with nothing matched yet; `false` when its webhook already has
/// a replay of its idempotency key. A concurrent request with the same key waits here, on the
/// unique index, until the first one's transaction ends, and then finds the key taken (or free,
/// if the first one was refused and rolled back).
pub async fn insert(
    tx: &Transaction<'_>,
    new: &NewReplay<'_>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = tx
        .execute(
            "INSERT INTO replays (id, webhook_id, idempotency_key, from_at, to_at, states, state, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (webhook_id, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING",
            &[
                &new.id,
                &new.webhook,
                &new.idempotency_key,
                &new.from,
                &new.to,
                &new.states,
                &RUNNING,
                &now,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// Records as the replay's matches the deliveries of its webhook created in its range and now in
/// one of its states, at most `most` of them; returns how many. In one statement, through
/// `deliveries_by_webhook (webhook_id, created_at DESC)` in each day's partition (a range may
/// span days; the id range is not used to prune them, since a test delivery's id is not made from
/// the services' clock), each row's state read from the heap.
pub async fn match_items(
    tx: &Transaction<'_>,
    new: &NewReplay<'_>,
    most: i64,
) -> Result<u64, StoreError> {
    Ok(tx
        .execute(
            "INSERT INTO replay_items (replay_id, delivery_id, attempts)
             SELECT $1, d.id, d.attempt_count FROM deliveries d
             WHERE d.webhook_id = $2 AND d.created_at >= $3 AND d.created_at < $4
               AND d.state = ANY($5)
             LIMIT $6",
            &[
                &new.id,
                &new.webhook,
                &new.from,
                &new.to,
                &new.states,
                &most,
            ],
        )
        .await?)
}

/// Sets how many deliveries the new replay matched (finished at once when none); returns it.
pub async fn set_matched(
    tx: &Transaction<'_>,
    replay: Uuid,
    matched: i32,
    now: DateTime<Utc>,
) -> Result<ReplayRow, StoreError> {
    let row = tx
        .query_one(
            &format!(
                "UPDATE replays r SET matched = $2,
                     state = CASE WHEN $2 = 0 THEN $3::text ELSE r.state END,
                     finished_at = CASE WHEN $2 = 0 THEN $4::timestamptz END
                 WHERE r.id = $1 RETURNING {REPLAY_COLUMNS}"
            ),
            &[&replay, &matched, &FINISHED, &now],
        )
        .await?;
    Ok(ReplayRow::from_row(&row))
}

/// A replay of a project's webhook (not deleted), by primary key.
pub async fn get(
    client: &Client,
    project: &ProjectCode,
    webhook: Uuid,
    replay: Uuid,
) -> Result<Option<ReplayRow>, StoreError> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {REPLAY_COLUMNS} FROM replays r JOIN webhooks w ON w.id = r.webhook_id
                 WHERE r.id = $1 AND r.webhook_id = $2 AND w.project_code = $3
                   AND w.deleted_at IS NULL"
            ),
            &[&replay, &webhook, &project.as_str()],
        )
        .await?;
    Ok(row.as_ref().map(ReplayRow::from_row))
}

/// The newest `limit` replays of a webhook, newest first, through `replays_by_webhook`.
pub async fn recent(
    client: &Client,
    webhook: Uuid,
    limit: i64,
) -> Result<Vec<ReplayRow>, StoreError> {
    let rows = client
        .query(
            &format!(
                "SELECT {REPLAY_COLUMNS} FROM replays r WHERE r.webhook_id = $1
                 ORDER BY r.created_at DESC, r.id DESC LIMIT $2"
            ),
            &[&webhook, &limit],
        )
        .await?;
    Ok(rows.iter().map(ReplayRow::from_row).collect())
}

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
