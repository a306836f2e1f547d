//! Deliveries written straight into a world's tables, many at once, for the benchmark's replay
//! scenario: a webhook's history of failures without pushing every event through the pipeline.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The UUIDv7 of the instant `at` (an SQL expression): its milliseconds in the first 48 bits and
/// random bits after, as the dispatcher makes delivery ids, so that the row falls in the day
/// partition of `at`.
const ID_OF_AT: &str = "(substr(lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0'), 1, 8) || '-' || \
     substr(lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0'), 9, 4) || \
     substr(gen_random_uuid()::text, 14))::uuid";

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
