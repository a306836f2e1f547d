//! History inserted straight into a world's tables, many rows in one statement: for tests and
//! benchmark scenarios that need a table of a size the pipeline would take minutes to fill
//! (delivery lists at millions of rows: [`deliveries`]; a replay of a hundred thousand failed
//! deliveries, with the events they resend: [`failed_deliveries`]).
//!
//! Rows are as the services record them: each delivery's id is a UUIDv7 of its creation time,
//! so it lands in that day's partition (which must exist: the services create today's and the
//! next days' at start), and it is finished (`next_attempt_at` and lease unset), so no sender
//! takes it up unless someone asks for it again.

use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

/// The UUIDv7 of the instant `at` (an SQL expression): its milliseconds in the first 48 bits and
/// random bits after, as the dispatcher makes delivery ids, so that the row falls in the day
/// partition of `at`.
const ID_OF_AT: &str = "(substr(lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0'), 1, 8) || '-' || \
     substr(lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0'), 9, 4) || \
     substr(gen_random_uuid()::text, 14))::uuid";

/// What [`deliveries`] inserts: `per_webhook` deliveries of each of `webhooks`, created at even
/// intervals over `span` from `from`, in `state`, of the event `event_name`. Their events are
/// not stored: nothing that lists finished deliveries reads them.
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
            &format!(
                "WITH d AS (
                 INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at,
                                         first_attempt_at, attempt_count)
                 SELECT {ID_OF_AT},
                        'seed-' || w.n || '-' || g, w.id, $5, $6, at, CASE WHEN $7 THEN at END,
                        CASE WHEN $7 THEN 1 ELSE 0 END
                 FROM unnest($1::uuid[]) WITH ORDINALITY AS w(id, n)
                 CROSS JOIN generate_series(1, $2::bigint) AS g
                 CROSS JOIN LATERAL (SELECT $3::timestamptz
                     + make_interval(secs => $4::float8 * (g - 1) / $2::bigint) AS at) times
                 RETURNING id, created_at, state),
             a AS (
                 INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms)
                 SELECT id, created_at, state = 'succeeded',
                        CASE WHEN state = 'succeeded' THEN 200 ELSE 500 END,
                        CASE WHEN state = 'succeeded' THEN NULL ELSE 'HTTP 500' END, 12
                 FROM d WHERE $7)
             SELECT count(*) FROM d"
            ),
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

/// Writes `count` deliveries of `event_name` to `webhook` (of `project`), each of an event of its
/// own, given up (`failed`) after one failed attempt, as the sender leaves them: created over the
/// last ten minutes (no earlier than today's start, UTC, whose partitions the services made),
/// each with its event's body and its attempt. One statement; then the tables are analysed, so
/// that what the planner knows does not change under a measurement. Returns the first and the
/// last creation time.
pub async fn failed_deliveries(
    db: &tokio_postgres::Client,
    project: &str,
    event_name: &str,
    webhook: Uuid,
    count: i64,
) -> anyhow::Result<(DateTime<Utc>, DateTime<Utc>)> {
    let statement = format!(
        "WITH times AS (
             SELECT i, greatest(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                                now() - interval '10 minutes')
                       + (now() - greatest(date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
                                           now() - interval '10 minutes')) * i / $4::bigint AS at
             FROM generate_series(0::bigint, $4::bigint - 1) AS i
         ), seeded AS (
             SELECT i, at, {ID_OF_AT} AS id, 'seed-' || $3::text || '-' || i AS event_id FROM times
         ), events AS (
             INSERT INTO events (id, event_name, project_code, body, received_at)
             SELECT event_id, $2::text, $1::text,
                    convert_to(json_build_object('event_name', $2::text,
                        'timestamp', extract(epoch FROM at)::bigint, 'payload', json_build_object('seq', i),
                        'team_member_id', NULL, 'project_code', $1::text)::text, 'UTF8'),
                    at
             FROM seeded
         ), deliveries AS (
             INSERT INTO deliveries (id, event_id, webhook_id, event_name, state, created_at,
                                     first_attempt_at, attempt_count)
             SELECT id, event_id, $3::text::uuid, $2::text, 'failed', at, at, 1 FROM seeded
         )
         INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms)
         SELECT id, at, false, 500, 'HTTP 500', 1 FROM seeded"
    );
    // As text: the statement reads it as text (in the events' ids) before it reads it as a uuid.
    let webhook_text = webhook.to_string();
    db.execute(&statement, &[&project, &event_name, &webhook_text, &count])
        .await?;
    db.batch_execute("ANALYZE events, deliveries, attempts")
        .await?;
    let row = db
        .query_one(
            "SELECT min(created_at), max(created_at) FROM deliveries WHERE webhook_id = $1",
            &[&webhook],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
