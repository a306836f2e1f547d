//! The outbox of disable notifications: queued in the transaction that disables the webhook,
//! deleted once the broker has confirmed them, so a crash in between loses none and sends none
//! twice.

use deadpool_postgres::Transaction;
use webhooks_core::db::StoreError;

/// A notification waiting for the broker.
pub struct Queued {
    pub id: i64,
    pub body: Vec<u8>,
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
