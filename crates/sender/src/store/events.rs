//! Events' bodies read apart from a claim: those over `INLINE_BODY_MOST`, which a claim's answer
//! leaves out (see [`super::claims`]). Both statements reach `events` through its primary key
//! `(id, received_at)`, in the day partitions between the earliest and the latest time the events
//! were received (`received_at BETWEEN`, as [`webhooks_core::retention::id_range`] does for
//! deliveries): the server skips every other day's partition when the statement starts, where the
//! ids alone (`id = ANY`, on which it cannot prune) would probe the index of every day kept and
//! every day created ahead. The events of one claim are nearly always of one day.

use chrono::{DateTime, Utc};
use deadpool_postgres::Client;
use webhooks_core::db::StoreError;

/// The statement of [`body_sizes`]: `$1` the ids, `$2` and `$3` the earliest and latest time
/// received. Public so that its plan can be examined against a real table.
pub const BODY_SIZES: &str = "SELECT id, octet_length(body) FROM events
     WHERE id = ANY($1) AND received_at BETWEEN $2 AND $3";

/// The statement of [`bodies`], with the parameters of [`BODY_SIZES`].
pub const BODIES: &str =
    "SELECT id, body FROM events WHERE id = ANY($1) AND received_at BETWEEN $2 AND $3";

/// The earliest and the latest of `times`; `(max, min)`, a range that holds nothing, when there
/// are none.
pub fn received_range(times: &[DateTime<Utc>]) -> (DateTime<Utc>, DateTime<Utc>) {
    let earliest = times
        .iter()
        .min()
        .copied()
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let latest = times
        .iter()
        .max()
        .copied()
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    (earliest, latest)
}

/// The size in bytes of each of the events `ids` names, received at one of `received` (each
/// event's `received_at`, in any order), by event id; an event not found is left out.
pub async fn body_sizes(
    client: &Client,
    ids: &[&str],
    received: &[DateTime<Utc>],
) -> Result<Vec<(String, usize)>, StoreError> {
    let (earliest, latest) = received_range(received);
    let statement = client.prepare_cached(BODY_SIZES).await?;
    let rows = client
        .query(&statement, &[&ids, &earliest, &latest])
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let size = usize::try_from(row.get::<_, i32>(1)).unwrap_or(0);
            (row.get(0), size)
        })
        .collect())
}

/// The body of each of the events `ids` names, received at one of `received`, by event id; an
/// event not found is left out.
pub async fn bodies(
    client: &Client,
    ids: &[&str],
    received: &[DateTime<Utc>],
) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    let (earliest, latest) = received_range(received);
    let statement = client.prepare_cached(BODIES).await?;
    let rows = client
        .query(&statement, &[&ids, &earliest, &latest])
        .await?;
    Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
}
