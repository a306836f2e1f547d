//! A webhook's secret rotated with a grace period: the new secret in `secret`, the one it
//! replaced in `previous_secret` until `previous_secret_until` (migration 0007), during which the
//! senders sign with both.

use chrono::{DateTime, Utc};
use tokio_postgres::Transaction;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::ProjectCode;

/// Replaces the secret of a webhook of `project`, changed `now`; the secret it had, if any, keeps
/// signing until `grace_until` (not at all when `None`). Returns when the replaced secret stops
/// signing (`None` when it does not sign at all), or nothing when there is no such webhook.
///
/// By primary key, checking the project and that it is not deleted, as every read of one webhook
/// does. On the right of `SET`, `secret` is the value before the update: the one replaced. A
/// secret replaced again within its grace is dropped: only the one just replaced keeps signing.
/// `updated_at` moves, as with any change of the secret (the senders read it as a change).
pub async fn rotate(
    tx: &Transaction<'_>,
    project: &ProjectCode,
    id: Uuid,
    secret: &str,
    grace_until: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Option<Option<DateTime<Utc>>>, StoreError> {
    let row = tx
        .query_opt(
            "UPDATE webhooks SET
                previous_secret = CASE WHEN $4::timestamptz IS NULL THEN NULL ELSE secret END,
                previous_secret_until = CASE WHEN $4::timestamptz IS NULL OR secret IS NULL THEN NULL ELSE $4 END,
                secret = $3,
                updated_at = $5
             WHERE id = $1 AND project_code = $2 AND deleted_at IS NULL
             RETURNING previous_secret_until",
            &[&id, &project.as_str(), &secret, &grace_until, &now],
        )
        .await?;
    Ok(row.map(|row| row.get(0)))
}
