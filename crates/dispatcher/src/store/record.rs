//! The record of a batch of events: the events and one delivery per (event, webhook), in one
//! statement; and the deliveries of redelivered events that are still waiting for a hand-off.
//!
//! The hottest statements of the dispatcher: every batch runs [`record`], on a session whose
//! commits do not wait for the disk (see `webhooks_core::db::connect_unflushed`).

use chrono::{DateTime, Utc};
use serde_json::value::RawValue;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::{EventName, ProjectCode};
use webhooks_core::{pending_state, waiting_states};

/// Records a batch in one statement: inserts the events (`$1`–`$4`, received at `$5`), and one
/// delivery (`$7`–`$10`, leased to its hand-off until `$6` and due then should the hand-off be
/// lost) per (event, webhook) whose event was new here and whose webhook is still enabled;
/// returns the deliveries inserted.
///
/// - `ON CONFLICT (id) DO NOTHING` on `event_keys`' primary key is what makes the record
///   idempotent: an event recorded before (redelivered, or published again) returns no id from
///   `new_keys`, so it gets no event row and no deliveries now; it had them recorded with it, in
///   the same statement. Two dispatchers recording one event at once meet on that key: the second
///   waits for the first's commit and inserts nothing. This is why deliveries need no unique index
///   of their own (dropped by migration 0004). The key is in a table of its own because `events`
///   is partitioned by day, and a unique index of a partitioned table must hold the day: it could
///   not tell an event redelivered after midnight. A key stays as long as its event's partition
///   (see `webhooks_core::retention`).
/// - The webhook is read per row by primary key (a join would let the planner hash every webhook
///   for each batch), so a webhook disabled or deleted since the index last saw it gets nothing.
/// - `next_attempt_at = leased_until = $6` puts each delivery in the `deliveries_due` index due
///   at the end of its lease: a lost hand-off is found there by the senders' scheduler.
const RECORD: &str = concat!("
WITH new_keys AS (
    INSERT INTO event_keys (id) SELECT k.id FROM unnest($1::text[]) AS k(id)
    ON CONFLICT (id) DO NOTHING
    RETURNING id
), new_events AS (
    INSERT INTO events (id, event_name, project_code, body, received_at)
    SELECT e.id, e.name, e.project, e.body, $5
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bytea[]) AS e(id, name, project, body)
    WHERE e.id IN (SELECT id FROM new_keys)
    RETURNING id
)
INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at, next_attempt_at, leased_until)
SELECT d.id, d.event_id, d.webhook_id, d.name, ", pending_state!(), ", $5, $6, $6
FROM unnest($7::uuid[], $8::text[], $9::uuid[], $10::text[]) AS d(id, event_id, webhook_id, name)
WHERE d.event_id IN (SELECT id FROM new_events)
  AND (SELECT w.enabled AND w.deleted_at IS NULL FROM webhooks w WHERE w.id = d.webhook_id)
RETURNING id, webhook_id, event_id");

/// The deliveries of some events still waiting for their first attempt and not under a lease
/// running at `$2`.
///
/// Through the due index: deliveries still waiting are in it, and there is no index by event (it
/// cost every insert and every outcome more than this rare lookup saves). The first condition is
/// the due index's own (`waiting_states!`), which lets the planner read through it; the second,
/// `pending`, is the one that matters.
const WAITING_OF_EVENTS: &str = concat!(
    "SELECT id, webhook_id FROM deliveries
     WHERE state IN ",
    waiting_states!(),
    " AND event_id = ANY($1)
       AND state = ",
    pending_state!(),
    "
       AND (leased_until IS NULL OR leased_until <= $2) AND attempt_count = 0"
);

/// An event to record, with the webhooks it matched (at least one).
pub struct NewEvent<'a> {
    /// Unique within a batch.
    pub id: &'a str,
    pub name: EventName,
    pub project: &'a ProjectCode,
    /// The delivery body, one for all of the event's deliveries.
    pub body: &'a RawValue,
    pub webhooks: &'a [Uuid],
}

/// A delivery recorded by [`record`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    pub delivery: Uuid,
    pub webhook: Uuid,
    /// Its event's id.
    pub event: String,
}

/// A delivery found waiting by [`waiting_of_events`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Waiting {
    pub delivery: Uuid,
    pub webhook: Uuid,
}

/// Records `events` received at `at`, each delivery leased to its hand-off until
/// `leased_until`; returns the deliveries inserted, in no particular order. One statement, so
/// one round trip and its own transaction: the events and their deliveries are committed
/// together or not at all.
pub async fn record(
    client: &deadpool_postgres::Client,
    events: &[NewEvent<'_>],
    at: DateTime<Utc>,
    leased_until: DateTime<Utc>,
) -> Result<Vec<Recorded>, StoreError> {
    let columns = Columns::of(events, at);
    let statement = client.prepare_cached(RECORD).await?;
    let rows = client
        .query(
            &statement,
            &[
                &columns.event_ids,
                &columns.event_names,
                &columns.projects,
                &columns.bodies,
                &at,
                &leased_until,
                &columns.delivery_ids,
                &columns.delivery_events,
                &columns.delivery_webhooks,
                &columns.delivery_names,
            ],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Recorded {
            delivery: row.get(0),
            webhook: row.get(1),
            event: row.get(2),
        })
        .collect())
}

/// The deliveries of `events` not attempted yet and not under a lease running at `now` (see
/// [`WAITING_OF_EVENTS`]). A running lease may be the reservation of an earlier hand-off of the
/// same event, taken by a sender that is attempting the delivery now: such deliveries are left to
/// that sender, or to the scheduler once the lease runs out.
pub async fn waiting_of_events(
    client: &tokio_postgres::Client,
    events: &[&str],
    now: DateTime<Utc>,
) -> Result<Vec<Waiting>, StoreError> {
    let rows = client.query(WAITING_OF_EVENTS, &[&events, &now]).await?;
    Ok(rows
        .iter()
        .map(|row| Waiting {
            delivery: row.get(0),
            webhook: row.get(1),
        })
        .collect())
}

/// Events and deliveries of a batch, column by column, for one `unnest` insert. Borrowed from
/// the events: a large body is held once more only as it is written.
struct Columns<'a> {
    event_ids: Vec<&'a str>,
    event_names: Vec<&'static str>,
    projects: Vec<&'a str>,
    bodies: Vec<&'a [u8]>,
    delivery_ids: Vec<Uuid>,
    delivery_events: Vec<&'a str>,
    delivery_webhooks: Vec<Uuid>,
    delivery_names: Vec<&'static str>,
}

impl<'a> Columns<'a> {
    fn of(events: &[NewEvent<'a>], at: DateTime<Utc>) -> Self {
        let deliveries: usize = events.iter().map(|e| e.webhooks.len()).sum();
        let mut columns = Self {
            event_ids: Vec::with_capacity(events.len()),
            event_names: Vec::with_capacity(events.len()),
            projects: Vec::with_capacity(events.len()),
            bodies: Vec::with_capacity(events.len()),
            delivery_ids: Vec::with_capacity(deliveries),
            delivery_events: Vec::with_capacity(deliveries),
            delivery_webhooks: Vec::with_capacity(deliveries),
            delivery_names: Vec::with_capacity(deliveries),
        };
        for event in events {
            columns.event_ids.push(event.id);
            columns.event_names.push(event.name.as_str());
            columns.projects.push(event.project.as_str());
            // One body per event, shared by all of its deliveries.
            columns.bodies.push(event.body.get().as_bytes());
            for webhook in event.webhooks {
                // Time-ordered, so a webhook's deliveries list in creation order by id too; of
                // the instant recorded, so the id's partition is the day of its event's.
                columns
                    .delivery_ids
                    .push(webhooks_core::retention::delivery_id(at));
                columns.delivery_events.push(event.id);
                columns.delivery_webhooks.push(*webhook);
                columns.delivery_names.push(event.name.as_str());
            }
        }
        columns
    }
}
