//! Leases: the statements that take deliveries for an attempt, and the read of the webhooks of
//! deliveries that came whole in their hand-off.
//!
//! A lease is written to `leased_until` alone, a column no index covers, so that on a page with
//! room (the table's fillfactor leaves half of each new page free) it is a heap-only update: a new
//! row version and no new index entries. The scheduler's due condition therefore reads both
//! `next_attempt_at` and `leased_until`.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use tokio_postgres::Row;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::memory::INLINE_BODY_MOST;
use webhooks_core::retention::id_range;
use webhooks_core::secret::Secret;
use webhooks_core::signing::PreviousSecret;
use webhooks_core::{cancelled_state, finished_states, retrying_state, waiting_states};

/// A delivery just leased, with what its attempt needs from its webhook and its event.
pub struct Leased {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    /// As stored; parsed by the caller.
    pub event_name: String,
    /// Attempts made before this one.
    pub attempt_count: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    pub url: String,
    pub secret: Option<Secret>,
    /// The secret a rotation replaced, while it may still sign.
    pub previous_secret: Option<PreviousSecret>,
    pub event_id: String,
    /// The event's body, on the first row of each event only (the deliveries of one event share
    /// it); empty when it is over [`INLINE_BODY_MOST`], to be read apart (no delivery body is
    /// empty).
    pub body: Option<Vec<u8>>,
    /// When its webhook was last changed (created, edited, re-enabled).
    pub webhook_changed_at: DateTime<Utc>,
    /// Its webhook's project.
    pub project_code: String,
    /// When its event was received (the delivery's `created_at`): the day of the event's
    /// partition, for a body read apart.
    pub received_at: DateTime<Utc>,
}

impl Leased {
    /// The columns of [`leasing`]'s answer, in order.
    fn from_row(row: &Row) -> Self {
        Self {
            delivery_id: row.get(0),
            webhook_id: row.get(1),
            event_name: row.get(2),
            attempt_count: row.get(3),
            first_attempt_at: row.get(4),
            url: row.get(5),
            secret: row.get::<_, Option<String>>(6).map(Secret::new),
            event_id: row.get(7),
            body: row.get(8),
            webhook_changed_at: row.get(9),
            project_code: row.get(10),
            previous_secret: previous_secret(row, 11),
            received_at: row.get(13),
        }
    }
}

/// Leases, until `lease_until`, the fresh deliveries among `ids` that hold no lease, or one run
/// out by `now`, or `reserved`: the lease they were recorded with, which the hand-off message
/// they came in names, passed only by the first receiver of that message. Ids already taken or
/// finished are skipped.
pub async fn by_ids(
    client: &Client,
    ids: &[Uuid],
    now: DateTime<Utc>,
    reserved: Option<DateTime<Utc>>,
    lease_until: DateTime<Utc>,
) -> Result<Vec<Leased>, StoreError> {
    let statement = client.prepare_cached(&by_ids_statement()).await?;
    let (low, high) = id_range(ids);
    let rows = client
        .query(
            &statement,
            &[&ids, &lease_until, &now, &reserved, &low, &high],
        )
        .await?;
    Ok(rows.iter().map(Leased::from_row).collect())
}

/// The statement [`by_ids`] runs: `$1` the ids, `$2` the end of the lease, `$3` now, `$4` the
/// reservation (or null), `$5` and `$6` the smallest and largest id. Public so that its plan can
/// be examined against a real table.
///
/// Driven from the id array through the primary key, in the day partitions that the ids' range
/// spans (see [`id_range`]). "Pending" is spelt as the states it is not
/// (`<> retrying AND NOT IN finished`), so that the planner cannot go through the due index,
/// whose condition names the waiting states and which holds every delivery waiting: a scan whose
/// cost grows with the backlog. No row lock is taken before the update: should another sender's
/// scheduler hold one of these rows, the update waits for it, then finds the row leased and skips
/// it.
pub fn by_ids_statement() -> String {
    leasing(
        None,
        concat!(
            "d.id = ANY($1) AND d.id BETWEEN $5 AND $6 AND d.state <> ",
            retrying_state!(),
            " AND d.state NOT IN ",
            finished_states!(),
            "
         AND (d.leased_until IS NULL OR d.leased_until <= $3 OR d.leased_until = $4)"
        ),
    )
}

/// The secret a rotation replaced and until when it signs, from the columns `at` and `at + 1`
/// (`previous_secret`, `previous_secret_until`); none when either is null.
fn previous_secret(row: &Row, at: usize) -> Option<PreviousSecret> {
    let secret: Option<String> = row.get(at);
    let until: Option<DateTime<Utc>> = row.get(at + 1);
    Some(PreviousSecret {
        secret: Secret::new(secret?),
        until: until?,
    })
}

/// A webhook as an attempt needs it.
pub struct Webhook {
    pub webhook_id: Uuid,
    pub url: String,
    pub secret: Option<Secret>,
    pub previous_secret: Option<PreviousSecret>,
    /// When it was last changed (created, edited, re-enabled).
    pub changed_at: DateTime<Utc>,
    pub project_code: String,
}

/// The webhooks among `ids` that are enabled and not deleted (one row per webhook, by primary
/// key).
pub async fn enabled_webhooks(client: &Client, ids: &[Uuid]) -> Result<Vec<Webhook>, StoreError> {
    let statement = client
        .prepare_cached(
            "SELECT id, url, secret, updated_at, project_code, previous_secret, previous_secret_until
             FROM webhooks WHERE id = ANY($1) AND enabled AND deleted_at IS NULL",
        )
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    Ok(rows
        .iter()
        .map(|row| Webhook {
            webhook_id: row.get(0),
            url: row.get(1),
            secret: row.get::<_, Option<String>>(2).map(Secret::new),
            changed_at: row.get(3),
            project_code: row.get(4),
            previous_secret: previous_secret(row, 5),
        })
        .collect())
}

/// Cancels the deliveries due at `now` (and under no lease) whose webhook is no longer enabled,
/// then leases up to `limit` of the rest that are due, soonest due first, until `lease_until`.
///
/// Both name the waiting states exactly as the due index's condition does (`waiting_states!`),
/// so that they are planned through it, ordered by `next_attempt_at`: the `LIMIT` then reads only
/// the due rows it takes. `FOR UPDATE SKIP LOCKED` lets the schedulers of several senders claim
/// at once, each skipping the rows another is taking, instead of waiting for them.
pub async fn due(
    client: &Client,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Leased>, StoreError> {
    let cancel = client
        .prepare_cached(concat!(
            "UPDATE deliveries d SET state = ",
            cancelled_state!(),
            ", next_attempt_at = NULL, leased_until = NULL
             FROM webhooks w
             WHERE d.state IN ",
            waiting_states!(),
            " AND d.next_attempt_at <= $1
               AND (d.leased_until IS NULL OR d.leased_until <= $1)
               AND w.id = d.webhook_id AND NOT (w.enabled AND w.deleted_at IS NULL)"
        ))
        .await?;
    client.execute(&cancel, &[&now]).await?;
    let claim = client
        .prepare_cached(&leasing(
            Some(concat!(
                "SELECT d.id FROM deliveries d
             WHERE d.state IN ",
                waiting_states!(),
                " AND d.next_attempt_at <= $1
               AND (d.leased_until IS NULL OR d.leased_until <= $1)
             ORDER BY d.next_attempt_at LIMIT $3
             FOR UPDATE SKIP LOCKED"
            )),
            "d.id IN (SELECT id FROM picked)",
        ))
        .await?;
    let rows = client.query(&claim, &[&now, &lease_until, &limit]).await?;
    Ok(rows.iter().map(Leased::from_row).collect())
}

/// The statement that leases the deliveries `which` names (among those `picked` selects and
/// locks, when given) until `$2`, if their webhook is still enabled, and returns them as
/// [`Leased`] rows: with their webhook's URL and secret and their event's body. The body is read
/// by primary key (the delivery's `created_at` is its event's `received_at`, which names the day
/// partition to look in) and sent once per event (on the event's first row), so the deliveries of one
/// event share one body buffer. A body over [`INLINE_BODY_MOST`] comes as an empty one instead,
/// to be read apart once the sender's budget of bodies in flight has room for it: a claim's
/// answer stays small whatever the events' size.
///
/// The update reaches the webhook through a subquery run per row rather than a join, so the
/// planner has no way in through the webhook (a scan of all of its deliveries) and takes each
/// picked row by primary key.
fn leasing(picked: Option<&str>, which: &str) -> String {
    let picked = picked
        .map(|p| format!("picked AS ({p}),"))
        .unwrap_or_default();
    format!(
        "WITH {picked} claimed AS (
            UPDATE deliveries d SET leased_until = $2
            WHERE {which}
              AND (SELECT w.enabled AND w.deleted_at IS NULL FROM webhooks w WHERE w.id = d.webhook_id)
            RETURNING d.id, d.webhook_id, d.event_name, d.attempt_count, d.first_attempt_at, d.event_id, d.created_at)
         SELECT c.id, c.webhook_id, c.event_name, c.attempt_count, c.first_attempt_at,
                w.url, w.secret, c.event_id,
                CASE WHEN row_number() OVER (PARTITION BY c.event_id) = 1
                     THEN (SELECT CASE WHEN octet_length(e.body) <= {INLINE_BODY_MOST} THEN e.body ELSE ''::bytea END
                           FROM events e WHERE e.id = c.event_id AND e.received_at = c.created_at) END,
                w.updated_at, w.project_code, w.previous_secret, w.previous_secret_until, c.created_at
         FROM claimed c JOIN webhooks w ON w.id = c.webhook_id"
    )
}
