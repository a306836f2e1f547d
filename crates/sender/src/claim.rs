//! Taking deliveries for an attempt. A claim leases the delivery in the database
//! (`leased_until`), so no other sender takes it meanwhile and, should this process die
//! mid-attempt, the scheduler of any sender picks it up once the lease expires.
//!
//! The lease is written to `leased_until` alone, a column no index covers, so that on a page with
//! room (the table's fillfactor leaves some) the claim is a heap-only update: a new row version
//! and no new index entries. The scheduler's due condition therefore reads both columns.
//!
//! A fresh delivery is recorded already leased, to its hand-off message (see
//! `webhooks_core::messages::CarriedHandoff`): the sender that takes that message first attempts
//! it without a claim ([`carried`]) while the lease leaves room for an attempt, and claims it by
//! that lease otherwise ([`by_ids`] with `reserved`).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use std::collections::HashMap;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::EventName;
use webhooks_core::memory::INLINE_BODY_MOST;
use webhooks_core::secret::Secret;
use webhooks_core::{cancelled_state, finished_states, retrying_state, waiting_states};

/// Everything one attempt needs.
#[derive(Clone, Debug)]
pub struct Job {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_name: EventName,
    pub url: Target,
    pub secret: Option<Secret>,
    /// The stored body, shared by the deliveries of one event.
    pub body: Bytes,
    /// Attempts made before this one.
    pub attempt_count: i32,
    pub first_attempt_at: Option<DateTime<Utc>>,
    /// When its webhook was last changed (created, edited, re-enabled).
    pub webhook_changed_at: DateTime<Utc>,
}

impl Job {
    /// Whether a person asked for this attempt: the API's manual retry clears the first attempt's
    /// time of a delivery that has been attempted, which no attempt's outcome ever does.
    pub fn is_manual_retry(&self) -> bool {
        self.attempt_count > 0 && self.first_attempt_at.is_none()
    }

    /// Since when this attempt deserves a fresh start: an endpoint's circuit that opened before
    /// it is closed for it (see [`crate::limiter::Limiter::enter`]).
    pub fn fresh_since(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if self.is_manual_retry() {
            now
        } else {
            self.webhook_changed_at
        }
    }
}

/// A webhook's URL, parsed once per claim for all of the claimed deliveries to it rather than
/// once per attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    Url(reqwest::Url),
    /// Stored but not a URL (the API accepts none such): an attempt fails with this error.
    Invalid {
        raw: String,
        error: String,
    },
}

impl Target {
    pub fn parse(raw: &str) -> Self {
        match reqwest::Url::parse(raw) {
            Ok(url) => Self::Url(url),
            Err(e) => Self::Invalid {
                raw: raw.to_owned(),
                error: e.to_string(),
            },
        }
    }

    /// The endpoint the limiter keys on: the URL in normal form (so `HTTP://Example.com:80/a`
    /// and `http://example.com/a` are one endpoint), or as stored if it does not parse.
    pub fn endpoint(&self) -> &str {
        match self {
            Self::Url(url) => url.as_str(),
            Self::Invalid { raw, .. } => raw,
        }
    }
}

/// Claims fresh deliveries named by a hand-off message; ids already taken or finished are skipped
/// (one that another sender is taking at that moment once it has been taken). A delivery is
/// taken if it holds no lease, or its lease has run out by `now`, or it holds `reserved`: the
/// lease it was recorded with, which the hand-off message it came in names, passed only by the
/// first receiver of that message.
///
/// The sender runs it on sessions whose commits do not wait for the disk: the attempt follows
/// the claim at once. A lease lost in a crash of the database is the only thing at stake, and
/// without it the delivery is merely taken again and attempted once more under the same id. The
/// outcome's commit flushes the lease with it, the log being written in order.
pub async fn by_ids(
    pool: &Pool,
    ids: &[Uuid],
    now: DateTime<Utc>,
    reserved: Option<DateTime<Utc>>,
    lease_until: DateTime<Utc>,
) -> Result<Claimed, StoreError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(&by_ids_statement()).await?;
    let rows = client
        .query(&statement, &[&ids, &lease_until, &now, &reserved])
        .await?;
    Ok(jobs(&rows))
}

/// The statement [`by_ids`] runs: `$1` the ids, `$2` the end of the lease, `$3` now, `$4` the
/// reservation (or null). Public so that its plan can be examined against a real table.
///
/// Driven from the id array through the primary key; "pending" is spelt as the states it is not,
/// so that the planner cannot go through the due index, which holds every delivery waiting (see
/// the recorder). No row lock is taken before the update: should another sender's scheduler hold
/// one of these rows, the update waits for it, then finds the row leased and skips it.
pub fn by_ids_statement() -> String {
    leasing(
        None,
        concat!(
            "d.id = ANY($1) AND d.state <> ",
            retrying_state!(),
            " AND d.state NOT IN ",
            finished_states!(),
            "
         AND (d.leased_until IS NULL OR d.leased_until <= $3 OR d.leased_until = $4)"
        ),
    )
}

/// A fresh delivery as its hand-off message carries it: everything an attempt needs but the
/// webhook's URL and secret.
#[derive(Clone, Debug)]
pub struct Carried {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    pub event_name: EventName,
    pub body: Bytes,
    pub recorded_at: DateTime<Utc>,
    /// The lease it was recorded with.
    pub reserved: DateTime<Utc>,
}

/// Jobs for carried deliveries, with a read of their webhooks alone (one row per webhook, not per
/// delivery). Deliveries of a webhook no longer enabled are left out, for the scheduler to cancel
/// once their lease runs out; those of a webhook changed since they were recorded (whose change may
/// have cancelled them) are returned apart, with their reservation, to be claimed by it instead.
pub async fn carried(
    pool: &Pool,
    carried: &[Carried],
) -> Result<(Vec<Job>, Vec<(DateTime<Utc>, Uuid)>), StoreError> {
    let mut ids: Vec<Uuid> = carried.iter().map(|c| c.webhook_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, url, secret, updated_at FROM webhooks
             WHERE id = ANY($1) AND enabled AND deleted_at IS NULL",
        )
        .await?;
    let rows = client.query(&statement, &[&ids]).await?;
    let webhooks: HashMap<Uuid, (Target, Option<Secret>, DateTime<Utc>)> = rows
        .iter()
        .map(|row| {
            let url: &str = row.get(1);
            let secret = row.get::<_, Option<String>>(2).map(Secret::new);
            (row.get(0), (Target::parse(url), secret, row.get(3)))
        })
        .collect();
    let mut changed = Vec::new();
    let jobs = carried
        .iter()
        .filter_map(|c| {
            let (url, secret, updated_at) = webhooks.get(&c.webhook_id)?;
            if *updated_at >= c.recorded_at {
                changed.push((c.reserved, c.delivery_id));
                return None;
            }
            Some(Job {
                delivery_id: c.delivery_id,
                webhook_id: c.webhook_id,
                event_name: c.event_name,
                url: url.clone(),
                secret: secret.clone(),
                body: c.body.clone(),
                attempt_count: 0,
                first_attempt_at: None,
                webhook_changed_at: *updated_at,
            })
        })
        .collect();
    Ok((jobs, changed))
}

/// Claims up to `limit` deliveries that are due at `now`: retries, manual retries, lost hand-offs and
/// expired leases. Due deliveries of webhooks that are no longer enabled are cancelled instead.
pub async fn due(
    pool: &Pool,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
) -> Result<Claimed, StoreError> {
    let client = pool.get().await?;
    let cancel = client
        .prepare_cached(concat!(
            "UPDATE deliveries d SET state = ",
            cancelled_state!(),
            ", next_attempt_at = NULL, leased_until = NULL
             FROM webhooks w
             WHERE d.state IN ",
            waiting_states!(),
            " AND d.next_attempt_at <= $1
               AND (d.leased_until IS NULL OR d.leased_until <= $1)
               AND w.id = d.webhook_id AND NOT (w.enabled AND w.deleted_at IS NULL)"
        ))
        .await?;
    client.execute(&cancel, &[&now]).await?;
    let claim = client
        .prepare_cached(&leasing(
            Some(concat!(
                "SELECT d.id FROM deliveries d
             WHERE d.state IN ",
                waiting_states!(),
                " AND d.next_attempt_at <= $1
               AND (d.leased_until IS NULL OR d.leased_until <= $1)
             ORDER BY d.next_attempt_at LIMIT $3
             FOR UPDATE SKIP LOCKED"
            )),
            "d.id IN (SELECT id FROM picked)",
        ))
        .await?;
    let rows = client.query(&claim, &[&now, &lease_until, &limit]).await?;
    Ok(jobs(&rows))
}

/// The statement that leases the deliveries `which` names (among those `picked` selects and
/// locks, when given) until `$2`, if their webhook is still enabled, and returns them with their
/// webhook's URL and secret and their event's body. The body is read by primary key and sent once per event (on the event's first
/// row): the deliveries of one event share one body buffer. A body over [`INLINE_BODY_MOST`]
/// comes as an empty one instead (no delivery body is empty), to be read apart once the sender's
/// budget of bodies in flight has room for it (see [`Claimed`]): a claim's answer stays small
/// whatever the events' size.
///
/// The update reaches the webhook through a subquery run per row rather than a join, so the
/// planner has no way in through the webhook (a scan of all of its deliveries) and takes each
/// picked row by primary key.
fn leasing(picked: Option<&str>, which: &str) -> String {
    let picked = picked
        .map(|p| format!("picked AS ({p}),"))
        .unwrap_or_default();
    format!(
        "WITH {picked} claimed AS (
            UPDATE deliveries d SET leased_until = $2
            WHERE {which}
              AND (SELECT w.enabled AND w.deleted_at IS NULL FROM webhooks w WHERE w.id = d.webhook_id)
            RETURNING d.id, d.webhook_id, d.event_name, d.attempt_count, d.first_attempt_at, d.event_id)
         SELECT c.id, c.webhook_id, c.event_name, c.attempt_count, c.first_attempt_at,
                w.url, w.secret, c.event_id,
                CASE WHEN row_number() OVER (PARTITION BY c.event_id) = 1
                     THEN (SELECT CASE WHEN octet_length(e.body) <= {INLINE_BODY_MOST} THEN e.body ELSE ''::bytea END
                           FROM events e WHERE e.id = c.event_id) END,
                w.updated_at
         FROM claimed c JOIN webhooks w ON w.id = c.webhook_id"
    )
}

/// Claimed deliveries: the jobs whose bodies came with the claim, and those of each event whose
/// body is to be read apart (over [`INLINE_BODY_MOST`]; their body is empty until then).
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<Job>,
    /// By event id.
    pub unread: Vec<(String, Vec<Job>)>,
}

impl Claimed {
    pub fn len(&self) -> usize {
        self.jobs.len()
            + self
                .unread
                .iter()
                .map(|(_, jobs)| jobs.len())
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds jobs from claimed rows.
fn jobs(rows: &[tokio_postgres::Row]) -> Claimed {
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    let mut targets: HashMap<&str, Target> = HashMap::new();
    for row in rows {
        if let Some(body) = row.get::<_, Option<Vec<u8>>>(8) {
            bodies.insert(row.get(7), Bytes::from(body));
        }
        let url: &str = row.get(5);
        targets.entry(url).or_insert_with(|| Target::parse(url));
    }
    let jobs: Vec<Job> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(2);
            let Ok(event_name) = name.parse::<EventName>() else {
                tracing::error!(event_name = %name, "stored delivery has an unknown event name");
                return None;
            };
            let event_id: String = row.get(7);
            let Some(body) = bodies.get(&event_id).cloned() else {
                tracing::error!(%event_id, "stored delivery has no event body");
                return None;
            };
            Some(Job {
                delivery_id: row.get(0),
                webhook_id: row.get(1),
                event_name,
                attempt_count: row.get(3),
                first_attempt_at: row.get(4),
                url: targets[row.get::<_, &str>(5)].clone(),
                secret: row.get::<_, Option<String>>(6).map(Secret::new),
                body,
                webhook_changed_at: row.get(9),
            })
        })
        .collect();
    unread_apart(jobs, rows)
}

/// Sets apart, by event, the jobs whose body is to be read apart (empty: see [`leasing`]).
fn unread_apart(jobs: Vec<Job>, rows: &[tokio_postgres::Row]) -> Claimed {
    if jobs.iter().all(|job| !job.body.is_empty()) {
        return Claimed {
            jobs,
            unread: Vec::new(),
        };
    }
    let events: HashMap<Uuid, String> = rows.iter().map(|row| (row.get(0), row.get(7))).collect();
    let mut claimed = Claimed::default();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for job in jobs {
        if !job.body.is_empty() {
            claimed.jobs.push(job);
            continue;
        }
        let event = events[&job.delivery_id].as_str();
        let i = *at.entry(event).or_insert_with(|| {
            claimed.unread.push((event.to_owned(), Vec::new()));
            claimed.unread.len() - 1
        });
        claimed.unread[i].1.push(job);
    }
    claimed
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn endpoint_is_the_normalised_url() {
        assert_eq!(
            Target::parse("HTTPS://Example.com:443/a?b").endpoint(),
            "https://example.com/a?b"
        );
        assert_ne!(
            Target::parse("http://127.0.0.1:9000/x"),
            Target::parse("http://127.0.0.1:9000/y")
        );
        assert_eq!(Target::parse("not a url").endpoint(), "not a url");
    }
}
