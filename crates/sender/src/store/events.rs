//! Events' bodies read apart from a claim: those over `INLINE_BODY_MOST`, which a claim's answer
//! leaves out (see [`super::claims`]). Both statements reach `events` through its primary key
//! `(id, received_at)` by id alone, so in each day's partition: one small index probe per day
//! kept, for the few events over that size, where a claim (by far the most frequent read) names
//! the day.

use deadpool_postgres::Client;
use webhooks_core::db::StoreError;

/// The size in bytes of each of the events `ids` names, by event id; an event not found is left
/// out.
pub async fn body_sizes(client: &Client, ids: &[&str]) -> Result<Vec<(String, usize)>, StoreError> {
    let rows = client
        .query(
            "SELECT id, octet_length(body) FROM events WHERE id = ANY($1)",
            &[&ids],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let size = usize::try_from(row.get::<_, i32>(1)).unwrap_or(0);
            (row.get(0), size)
        })
        .collect())
}

/// The body of each of the events `ids` names, by event id; an event not found is left out.
pub async fn bodies(client: &Client, ids: &[&str]) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let rows = client
        .query("SELECT id, body FROM events WHERE id = ANY($1)", &[&ids])
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
