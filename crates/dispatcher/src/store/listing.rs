//! A project's deliveries as the API searches them: one by id, and pages of them filtered by
//! webhook, state, event name and creation time, newest first, each page ending where the next
//! one starts (a cursor: the creation time and id of the last delivery shown).
//!
//! A delivery has no project of its own: its webhook's, read by primary key, says whether it is
//! the project's, as for a manual retry. Deleted webhooks' deliveries are not shown.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::ProjectCode;

use super::deliveries::{DELIVERY_COLUMNS, DeliveryRow};

/// The statement of [`one`]: `$1` the delivery's id, `$2` the project. By primary key, in the
/// partition of the id's day alone. Public so that a test can show its plan.
pub fn one_statement() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN webhooks w ON w.id = d.webhook_id
         WHERE d.id = $1 AND w.project_code = $2 AND w.deleted_at IS NULL"
    )
}

/// A delivery of a project's webhook, by primary key.
pub async fn one(
    client: &Client,
    project: &ProjectCode,
    delivery: Uuid,
) -> Result<Option<DeliveryRow>, StoreError> {
    let row = client
        .query_opt(&one_statement(), &[&delivery, &project.as_str()])
        .await?;
    Ok(row.as_ref().map(DeliveryRow::from_row))
}

/// What an attempt of a delivery sends besides its headers' stamps: its event's body and its
/// webhook's secrets as they are now.
pub struct Sent {
    /// `None` when the event is no longer stored.
    pub body: Option<Vec<u8>>,
    pub secret: Option<String>,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
}

/// What the attempts of `delivery` (a row [`one`] gave) send. The event by its primary key (its
/// id and receipt time, which is its deliveries' creation time), the webhook by its own.
pub async fn sent(client: &Client, delivery: &DeliveryRow) -> Result<Sent, StoreError> {
    let row = client
        .query_one(
            "SELECT (SELECT body FROM events WHERE id = $2 AND received_at = $3),
                    w.secret, w.previous_secret, w.previous_secret_until
             FROM webhooks w WHERE w.id = $1",
            &[
                &delivery.webhook_id,
                &delivery.event_id,
                &delivery.created_at,
            ],
        )
        .await?;
    Ok(Sent {
        body: row.get(0),
        secret: row.get(1),
        previous_secret: row.get(2),
        previous_secret_until: row.get(3),
    })
}

/// What a page of deliveries is filtered by; `None` filters nothing.
#[derive(Debug, Default)]
pub struct Filter<'a> {
    pub webhook: Option<Uuid>,
    /// As stored.
    pub state: Option<&'a str>,
    pub event_name: Option<&'a str>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
    /// Created before this delivery (its creation time and id): the page after the one it ended.
    pub after: Option<(DateTime<Utc>, Uuid)>,
}

/// The statement of [`page`]: `$1` the project, `$2`–`$8` the [`Filter`] in its fields' order
/// (the cursor as two parameters), `$9` the limit. Public so that a test can show its plan.
///
/// Per webhook of the project (from `webhooks_by_project`), at most `limit` of its deliveries
/// through `deliveries_by_webhook (webhook_id, created_at DESC)`, read in that order from each
/// day's partition, merged, and stopped at the limit; then the newest `limit` of those. What is
/// read is bounded by the limit and the number of the project's webhooks, whatever the size of
/// the table. `since`, `until` and the cursor bound each webhook's range of the index; the state
/// and event name are checked on the entries read, so a rare one is found after reading past the
/// others of the range (bound it with `since`).
pub fn page_statement() -> String {
    format!(
        "SELECT {DELIVERY_COLUMNS}
 FROM unnest(ARRAY(
        SELECT w.id FROM webhooks w
        WHERE w.project_code = $1 AND w.deleted_at IS NULL
          AND ($2::uuid IS NULL OR w.id = $2))) AS w(id)
 CROSS JOIN LATERAL (
     SELECT * FROM deliveries d
     WHERE d.webhook_id = w.id
       AND ($3::text IS NULL OR d.state = $3)
       AND ($4::text IS NULL OR d.event_name = $4)
       AND ($5::timestamptz IS NULL OR d.created_at >= $5)
       AND ($6::timestamptz IS NULL OR d.created_at < $6)
       AND ($7::timestamptz IS NULL OR d.created_at <= $7)
       AND ($7::timestamptz IS NULL OR (d.created_at, d.id) < ($7, $8::uuid))
     ORDER BY d.created_at DESC, d.id DESC LIMIT $9) d
 ORDER BY d.created_at DESC, d.id DESC LIMIT $9"
    )
}

/// Up to `limit` deliveries of `project` that pass `filter`, newest first (ties by id, a UUIDv7,
/// so in creation order too: the order is total, and a cursor resumes exactly where a page
/// ended). See [`page_statement`] for how they are read.
pub async fn page(
    client: &Client,
    project: &ProjectCode,
    filter: &Filter<'_>,
    limit: i64,
) -> Result<Vec<DeliveryRow>, StoreError> {
    let (after_at, after_id) = filter.after.unzip();
    let rows = client
        .query(
            &page_statement(),
            &[
                &project.as_str(),
                &filter.webhook,
                &filter.state,
                &filter.event_name,
                &filter.since,
                &filter.until,
                &after_at,
                &after_id,
                &limit,
            ],
        )
        .await?;
    Ok(rows.iter().map(DeliveryRow::from_row).collect())
}
