//! Taking deliveries for an attempt. A claim leases the delivery in the database
//! (`leased_until`, see [`crate::store::claims`]), so no other sender takes it meanwhile and,
//! should this process die mid-attempt, the scheduler of any sender picks it up once the lease
//! expires. This module turns what a claim returns into [`Job`]s.
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
use webhooks_core::event::{DeliveredName, EventName};
use webhooks_core::secret::Secret;
use webhooks_core::signing::PreviousSecret;

use crate::store::claims::{self, Leased};

/// Everything one attempt needs.
#[derive(Clone, Debug)]
pub struct Job {
    pub delivery_id: Uuid,
    pub webhook_id: Uuid,
    /// Its webhook's project: the limiter caps the requests of one project in flight.
    pub project: String,
    /// Sent as `X-Qase-Event`.
    pub event_name: DeliveredName,
    pub url: Target,
    pub secret: Option<Secret>,
    /// The secret a rotation replaced, while it may still sign.
    pub previous_secret: Option<PreviousSecret>,
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

    /// The host the limiter keys on: the URL's host and port as written (in normal form, the
    /// scheme's port when none is written), never what it resolves to, so that every URL naming
    /// one server shares its cap whatever its path; the URL as stored if it does not parse.
    pub fn host(&self) -> String {
        match self {
            Self::Url(url) => match (url.host_str(), url.port_or_known_default()) {
                (Some(host), Some(port)) => format!("{host}:{port}"),
                (Some(host), None) => host.to_owned(),
                (None, _) => url.as_str().to_owned(),
            },
            Self::Invalid { raw, .. } => raw.clone(),
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
    let leased = claims::by_ids(&client, ids, now, reserved, lease_until).await?;
    Ok(jobs(leased))
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
    let webhooks: HashMap<Uuid, (Target, claims::Webhook)> =
        claims::enabled_webhooks(&client, &ids)
            .await?
            .into_iter()
            .map(|w| (w.webhook_id, (Target::parse(&w.url), w)))
            .collect();
    let mut changed = Vec::new();
    let jobs = carried
        .iter()
        .filter_map(|c| {
            let (url, webhook) = webhooks.get(&c.webhook_id)?;
            if webhook.changed_at >= c.recorded_at {
                changed.push((c.reserved, c.delivery_id));
                return None;
            }
            Some(Job {
                delivery_id: c.delivery_id,
                webhook_id: c.webhook_id,
                project: webhook.project_code.clone(),
                event_name: c.event_name.into(),
                url: url.clone(),
                secret: webhook.secret.clone(),
                previous_secret: webhook.previous_secret.clone(),
                body: c.body.clone(),
                attempt_count: 0,
                first_attempt_at: None,
                webhook_changed_at: webhook.changed_at,
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
    let leased = claims::due(&client, now, lease_until, limit).await?;
    Ok(jobs(leased))
}

/// Claimed deliveries: the jobs whose bodies came with the claim, and those of each event whose
/// body is to be read apart (over [`INLINE_BODY_MOST`](webhooks_core::memory::INLINE_BODY_MOST); their body is empty until then).
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<Job>,
    /// By event: its id, when it was received (its partition's day) and its jobs.
    pub unread: Vec<(String, DateTime<Utc>, Vec<Job>)>,
}

impl Claimed {
    pub fn len(&self) -> usize {
        self.jobs.len()
            + self
                .unread
                .iter()
                .map(|(_, _, jobs)| jobs.len())
                .sum::<usize>()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Builds jobs from leased rows: each URL parsed once, each event's body shared by its deliveries.
fn jobs(mut rows: Vec<Leased>) -> Claimed {
    let mut bodies: HashMap<String, Bytes> = HashMap::new();
    for row in &mut rows {
        if let Some(body) = row.body.take() {
            bodies.insert(row.event_id.clone(), Bytes::from(body));
        }
    }
    let mut targets: HashMap<&str, Target> = HashMap::new();
    for row in &rows {
        targets
            .entry(&row.url)
            .or_insert_with(|| Target::parse(&row.url));
    }
    let mut events: HashMap<Uuid, (&str, DateTime<Utc>)> = HashMap::new();
    let jobs: Vec<Job> = rows
        .iter()
        .filter_map(|row| {
            let Ok(event_name) = row.event_name.parse::<DeliveredName>() else {
                tracing::error!(event_name = %row.event_name, "stored delivery has an unknown event name");
                return None;
            };
            let Some(body) = bodies.get(row.event_id.as_str()).cloned() else {
                tracing::error!(event_id = %row.event_id, "stored delivery has no event body");
                return None;
            };
            if body.is_empty() {
                events.insert(row.delivery_id, (&row.event_id, row.received_at));
            }
            Some(Job {
                delivery_id: row.delivery_id,
                webhook_id: row.webhook_id,
                project: row.project_code.clone(),
                event_name,
                attempt_count: row.attempt_count,
                first_attempt_at: row.first_attempt_at,
                url: targets[row.url.as_str()].clone(),
                secret: row.secret.clone(),
                previous_secret: row.previous_secret.clone(),
                body,
                webhook_changed_at: row.webhook_changed_at,
            })
        })
        .collect();
    unread_apart(jobs, &events)
}

/// Sets apart, by event, the jobs whose body is to be read apart (empty: over
/// [`INLINE_BODY_MOST`](webhooks_core::memory::INLINE_BODY_MOST)); `events` names the event of
/// each of them, and when it was received.
fn unread_apart(jobs: Vec<Job>, events: &HashMap<Uuid, (&str, DateTime<Utc>)>) -> Claimed {
    if events.is_empty() {
        return Claimed {
            jobs,
            unread: Vec::new(),
        };
    }
    let mut claimed = Claimed::default();
    let mut at: HashMap<&str, usize> = HashMap::new();
    for job in jobs {
        if !job.body.is_empty() {
            claimed.jobs.push(job);
            continue;
        }
        let (event, received_at) = events[&job.delivery_id];
        let i = *at.entry(event).or_insert_with(|| {
            claimed
                .unread
                .push((event.to_owned(), received_at, Vec::new()));
            claimed.unread.len() - 1
        });
        claimed.unread[i].2.push(job);
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

    #[test]
    fn host_is_host_and_port_as_written_whatever_the_path() {
        assert_eq!(
            Target::parse("HTTPS://Example.com/a?b").host(),
            "example.com:443"
        );
        assert_eq!(
            Target::parse("http://example.com/x").host(),
            "example.com:80"
        );
        assert_eq!(
            Target::parse("http://127.0.0.1:9000/x").host(),
            Target::parse("http://127.0.0.1:9000/y").host()
        );
        assert_ne!(
            Target::parse("http://127.0.0.1:9000/x").host(),
            Target::parse("http://127.0.0.1:9001/x").host()
        );
        assert_eq!(Target::parse("http://[::1]:8/").host(), "[::1]:8");
        assert_eq!(Target::parse("not a url").host(), "not a url");
    }
}
