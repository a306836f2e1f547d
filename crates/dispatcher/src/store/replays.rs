//! Bulk replays (migration 0009): a replay's row and its matches (`replay_items`), written by the
//! API when it is asked for and by the replay task ([`crate::replay`]) as it hands its matches back
//! to the senders, a batch per transaction ([`super::replay_steps`]).
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
