//! History inserted straight into a world's tables, many rows in one statement: for tests and
//! benchmark scenarios that need a table of a size the pipeline would take minutes to fill
//! (delivery lists at millions of rows, a replay of a hundred thousand failed deliveries).
//!
//! Rows are as the services record them: each delivery's id is a UUIDv7 of its creation time,
//! so it lands in that day's partition (which must exist: the services create today's and the
//! next days' at start), and it is finished (`next_attempt_at` and lease unset), so no sender
//! takes it up unless someone asks for it again. Its event is not stored: nothing that reads a
//! finished delivery's list needs it.

use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// What [`deliveries`] inserts: `per_webhook` deliveries of each of `webhooks`, created at even
/// intervals over `span` from `from`, in `state`, of the event `event_name`.
#[derive(Clone, Debug)]
pub struct Seed<'a> {
    pub webhooks: &'a [Uuid],
    pub per_webhook: i64,
    pub from: DateTime<Utc>,
    pub span: Duration,
    /// A finished state: `succeeded`, `failed` or `cancelled`.
    pub state: &'a str,
    pub event_name: &'a str,
    /// Whether each delivery gets one attempt too (a failed one in state `failed`).
    pub attempt: bool,
}

/// Inserts `seed`'s deliveries (and attempts) and refreshes the tables' statistics, as
/// autovacuum would after a day of traffic; returns how many deliveries were inserted.
pub async fn deliveries(db: &tokio_postgres::Client, seed: &Seed<'_>) -> u64 {
    let span = seed.span.as_secs_f64();
    let inserted: i64 = db
        .query_one(
            "WITH d AS (
                 INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at,
                                         first_attempt_at, attempt_count)
                 SELECT (substr(h, 1, 8) || '-' || substr(h, 9, 4)
                         || substr(gen_random_uuid()::text, 14))::uuid,
                        'seed-' || w.n || '-' || g, w.id, $5, $6, t, CASE WHEN $7 THEN t END,
                        CASE WHEN $7 THEN 1 ELSE 0 END
                 FROM unnest($1::uuid[]) WITH ORDINALITY AS w(id, n)
                 CROSS JOIN generate_series(1, $2::bigint) AS g
                 CROSS JOIN LATERAL (SELECT $3::timestamptz
                     + make_interval(secs => $4::float8 * (g - 1) / $2::bigint) AS t) at
                 CROSS JOIN LATERAL (SELECT lpad(to_hex((extract(epoch FROM t) * 1000)::bigint),
                                                 12, '0') AS h) hex
                 RETURNING id, created_at, state),
             a AS (
                 INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms)
                 SELECT id, created_at, state = 'succeeded',
                        CASE WHEN state = 'succeeded' THEN 200 ELSE 500 END,
                        CASE WHEN state = 'succeeded' THEN NULL ELSE 'HTTP 500' END, 12
                 FROM d WHERE $7)
             SELECT count(*) FROM d",
            &[
                &seed.webhooks,
                &seed.per_webhook,
                &seed.from,
                &span,
                &seed.event_name,
                &seed.state,
                &seed.attempt,
            ],
        )
        .await
        .expect("seeding deliveries")
        .get(0);
    db.batch_execute("ANALYZE deliveries; ANALYZE attempts")
        .await
        .expect("analyze");
    u64::try_from(inserted).unwrap_or(0)
}

/// The start of the current UTC day on the database's clock: with [`Seed::span`] under seven
/// days, rows from it are in partitions the services have created.
pub async fn today(db: &tokio_postgres::Client) -> DateTime<Utc> {
    db.query_one(
        "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
        &[],
    )
    .await
    .expect("today")
    .get(0)
}
