//! The outbox of disable notifications: queued in the transaction that disables the webhook,
//! deleted once the broker has confirmed them, so a crash in between loses none and sends none
//! twice.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use uuid::Uuid;
use webhooks_core::db::StoreError;

/// A notification waiting for the broker.
pub struct Queued {
    pub id: i64,
    pub body: Vec<u8>,
}

/// Queues one notification per `(webhook, body)`, created at `now`.
pub async fn queue(
    tx: &Transaction<'_>,
    notifications: &[(Uuid, Vec<u8>)],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let (ids, bodies): (Vec<Uuid>, Vec<&[u8]>) = notifications
        .iter()
        .map(|(id, body)| (*id, body.as_slice()))
        .unzip();
    let statement = tx
        .prepare_cached(
            "INSERT INTO notification_outbox (webhook_id, body, created_at)
             SELECT id, body, $3 FROM unnest($1::uuid[], $2::bytea[]) AS n(id, body)",
        )
        .await?;
    tx.execute(&statement, &[&ids, &bodies, &now]).await?;
    Ok(())
}

/// Up to 100 queued notifications, oldest first, locked until `tx` ends. `SKIP LOCKED`: the
/// senders' publishers each take rows no other is publishing, rather than waiting for them, so
/// no notification is published twice at once.
pub async fn take(tx: &Transaction<'_>) -> Result<Vec<Queued>, StoreError> {
    let rows = tx
        .query(
            "SELECT id, body FROM notification_outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| Queued {
            id: row.get(0),
            body: row.get(1),
        })
        .collect())
}

/// Deletes published notifications.
pub async fn delete(tx: &Transaction<'_>, ids: &[i64]) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM notification_outbox WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    Ok(())
}
