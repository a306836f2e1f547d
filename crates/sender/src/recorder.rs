//! Writes outcomes in batches: attempts, delivery states, webhook health, and — in the same
//! transaction — disabling webhooks that have failed for `DISABLE_AFTER`, cancelling their pending
//! deliveries and queueing one notification each in the outbox.
//!
//! Only one transaction can flip a webhook from enabled to disabled (the row lock decides), so
//! however many senders see its failures at once, exactly one notification is queued.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Pool, Transaction};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use uuid::Uuid;
use webhooks_core::clock::Clock;
use webhooks_core::db::StoreError;
use webhooks_core::messages::{Notification, WebhookDisabled};
use webhooks_core::{cancelled_state, finished_states, waiting_states};

use crate::metrics::Metrics;
use crate::outcome::{self, Next, Outcome};
use crate::retry::RetryPolicy;

/// Most outcomes written in one transaction.
const BATCH: usize = 1000;
/// How long the first outcome of a batch waits for company. Recording is not on the way to the
/// receiver (it follows the attempt), so a short wait costs no delivery latency, while at a
/// moderate rate it turns one transaction per couple of outcomes into one per this interval.
const LINGER: Duration = Duration::from_millis(20);

pub struct Recorder {
    pub pool: Pool,
    pub clock: Clock,
    pub policy: RetryPolicy,
    pub disable_after: Duration,
    pub metrics: Metrics,
    /// Woken when notifications were queued.
    pub outbox: Arc<Notify>,
}

impl Recorder {
    /// Writes outcomes until every sender of the channel is gone, then returns.
    pub async fn run(self, mut outcomes: mpsc::Receiver<Outcome>) {
        let mut batch = Vec::with_capacity(BATCH);
        while outcomes.recv_many(&mut batch, BATCH).await > 0 {
            let gathered = tokio::time::Instant::now() + LINGER;
            while batch.len() < BATCH {
                let room = BATCH - batch.len();
                match tokio::time::timeout_at(gathered, outcomes.recv_many(&mut batch, room)).await
                {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            let mut wait = Duration::from_millis(100);
            loop {
                match self.write(&batch).await {
                    Ok(()) => break,
                    Err(e) => {
                        // The database is away: keep the batch (senders wait on the bounded
                        // channel) and try again; leases keep other senders off these deliveries.
                        tracing::warn!(error = %e, outcomes = batch.len(), "recording outcomes failed; retrying");
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(Duration::from_secs(5));
                    }
                }
            }
            batch.clear();
        }
    }

    async fn write(&self, batch: &[Outcome]) -> Result<(), StoreError> {
        let now = self.clock.now();
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let health = outcome::health(batch);
        // Webhooks before deliveries, the order the API locks them in too, so the two can never
        // deadlock over a webhook and its deliveries.
        write_health(&tx, &health).await?;
        let given_up = self.write_deliveries(&tx, batch).await?;
        let failing: Vec<(Uuid, DateTime<Utc>)> = health
            .iter()
            .filter_map(|h| Some((h.webhook_id, h.last_failure?)))
            .collect();
        let disabled = self.disable(&tx, &failing, now).await?;
        tx.commit().await?;

        self.metrics.deliveries_given_up.inc_by(given_up);
        if disabled > 0 {
            self.metrics.webhooks_disabled.inc_by(disabled);
            self.outbox.notify_one();
        }
        Ok(())
    }

    /// Records attempts and moves deliveries on; returns how many were given up.
    async fn write_deliveries(
        &self,
        tx: &Transaction<'_>,
        batch: &[Outcome],
    ) -> Result<u64, StoreError> {
        let mut rows = AttemptRows::default();
        let (mut deferred_ids, mut deferred_until) = (Vec::new(), Vec::new());
        let (mut released_ids, mut released_at) = (Vec::new(), Vec::new());
        let mut given_up = 0;
        for outcome in batch {
            match outcome {
                Outcome::Deferred { delivery_id, until } => {
                    deferred_ids.push(*delivery_id);
                    deferred_until.push(*until);
                }
                Outcome::Released { delivery_id, at } => {
                    released_ids.push(*delivery_id);
                    released_at.push(*at);
                }
                Outcome::Attempted {
                    delivery_id,
                    attempts_before,
                    first_attempt_at,
                    at,
                    attempt,
                    ..
                } => {
                    let next = outcome::next(
                        attempt,
                        *at,
                        *first_attempt_at,
                        *attempts_before,
                        &self.policy,
                        self.disable_after,
                    );
                    match next {
                        Next::GivenUp => given_up += 1,
                        Next::Retry(_) => self.metrics.retries_scheduled.inc(),
                        Next::Succeeded => {}
                    }
                    rows.push(*delivery_id, *at, attempt, next);
                }
            }
        }
        let attempts = async {
            if rows.ids.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &tx.prepare_cached(
                "INSERT INTO attempts (delivery_id, at, success, status_code, error, duration_ms, response)
                 SELECT * FROM unnest($1::uuid[], $2::timestamptz[], $3::bool[], $4::int[], $5::text[], $6::int[], $7::text[])",
                ).await?,
                &[&rows.ids, &rows.at, &rows.success, &rows.status, &rows.error, &rows.duration_ms, &rows.response],
            )
            .await
        };
        // A delivery cancelled meanwhile (webhook disabled or deleted) stays cancelled. The
        // unfinished states are named by what they are not, so that the planner cannot read the
        // rows through the due index (whose condition names them): that index holds every
        // delivery waiting, a scan whose cost grows with the backlog. The ids are looked up.
        let moved_on = async {
            if rows.ids.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &tx.prepare_cached(
                concat!("UPDATE deliveries d SET state = u.state, next_attempt_at = u.next, leased_until = NULL,
                    attempt_count = d.attempt_count + 1, first_attempt_at = COALESCE(d.first_attempt_at, u.at)
                 FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[]) AS u(id, state, next, at)
                 WHERE d.id = ANY($1) AND d.id = u.id AND d.state NOT IN ", finished_states!()),
                ).await?,
                &[&rows.ids, &rows.state, &rows.next, &rows.at],
            )
            .await
        };
        let deferred = async {
            if deferred_ids.is_empty() {
                return Ok(0);
            }
            tx.execute(
                &tx.prepare_cached(concat!(
                    "UPDATE deliveries d SET next_attempt_at = u.until, leased_until = NULL
                 FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, until)
                 WHERE d.id = ANY($1) AND d.id = u.id AND d.state NOT IN ",
                    finished_states!()
                ))
                .await?,
                &[&deferred_ids, &deferred_until],
            )
            .await
        };
        futures::try_join!(attempts, moved_on, deferred)?;
        // After the deferrals (a delivery may be held and released within one batch). One that
        // has been taken meanwhile keeps its lease; one already due keeps its time.
        if !released_ids.is_empty() {
            tx.execute(
                &tx.prepare_cached(
                    concat!("UPDATE deliveries d SET next_attempt_at = u.at
                 FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
                 WHERE d.id = ANY($1) AND d.id = u.id AND d.state NOT IN ", finished_states!(), "
                   AND (d.leased_until IS NULL OR d.leased_until <= u.at) AND d.next_attempt_at > u.at"),
                )
                .await?,
                &[&released_ids, &released_at],
            )
            .await?;
        }
        Ok(given_up)
    }

    /// Disables the webhooks among `failing` (each with the end of its last failed attempt) that
    /// had been failing for the whole window when that attempt failed; returns how many.
    async fn disable(
        &self,
        tx: &Transaction<'_>,
        failing: &[(Uuid, DateTime<Utc>)],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        if failing.is_empty() {
            return Ok(0);
        }
        let window =
            chrono::Duration::from_std(self.disable_after).unwrap_or(chrono::Duration::days(2));
        let ids: Vec<Uuid> = failing.iter().map(|(id, _)| *id).collect();
        let cutoffs: Vec<DateTime<Utc>> = failing.iter().map(|(_, at)| *at - window).collect();
        let disabled = tx
            .query(
                &tx.prepare_cached(
                "UPDATE webhooks w SET enabled = false, disabled_at = $3, updated_at = $3,
                    disabled_reason = COALESCE(w.last_error, 'failing')
                 FROM unnest($1::uuid[], $2::timestamptz[]) AS f(id, cutoff)
                 WHERE w.id = f.id AND w.enabled AND w.deleted_at IS NULL AND w.failing_since <= f.cutoff
                 RETURNING w.id, w.project_code, w.title, w.url, w.created_by, w.failing_since,
                           COALESCE(w.last_error, ''), w.failed_attempts",
                ).await?,
                &[&ids, &cutoffs, &now],
            )
            .await?;
        if disabled.is_empty() {
            return Ok(0);
        }
        let ids: Vec<Uuid> = disabled.iter().map(|row| row.get(0)).collect();
        tx.execute(
            &tx.prepare_cached(concat!(
                "UPDATE deliveries SET state = ",
                cancelled_state!(),
                ", next_attempt_at = NULL, leased_until = NULL
             WHERE webhook_id = ANY($1) AND state IN ",
                waiting_states!()
            ))
            .await?,
            &[&ids],
        )
        .await?;
        let bodies: Vec<Vec<u8>> = disabled
            .iter()
            .map(|row| {
                let message = Notification::WebhookDisabled(WebhookDisabled {
                    webhook_id: row.get(0),
                    project_code: row.get(1),
                    title: row.get(2),
                    url: row.get(3),
                    created_by: row.get(4),
                    failing_since: row.get(5),
                    disabled_at: now,
                    last_error: row.get(6),
                    failed_attempts: i64::from(row.get::<_, i32>(7)),
                });
                tracing::warn!(webhook_id = %row.get::<_, Uuid>(0), "webhook disabled after failing for DISABLE_AFTER");
                serde_json::to_vec(&message).expect("notification serialises")
            })
            .collect();
        tx.execute(
            &tx.prepare_cached(
                "INSERT INTO notification_outbox (webhook_id, body, created_at)
             SELECT id, body, $3 FROM unnest($1::uuid[], $2::bytea[]) AS n(id, body)",
            )
            .await?,
            &[&ids, &bodies, &now],
        )
        .await?;
        Ok(ids.len() as u64)
    }
}

async fn write_health(tx: &Transaction<'_>, health: &[outcome::Health]) -> Result<(), StoreError> {
    if health.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = health.iter().map(|h| h.webhook_id).collect();
    let reset: Vec<bool> = health.iter().map(|h| h.reset).collect();
    let first: Vec<Option<DateTime<Utc>>> = health.iter().map(|h| h.first_failure).collect();
    let failures: Vec<i32> = health.iter().map(|h| h.failures).collect();
    let errors: Vec<Option<String>> = health.iter().map(|h| h.last_error.clone()).collect();
    // Rows are in webhook id order (see outcome::health), so concurrent senders lock in one order.
    tx.execute(
        &tx.prepare_cached(
        "UPDATE webhooks w SET
            failing_since = CASE WHEN u.reset THEN u.first_failure ELSE COALESCE(w.failing_since, u.first_failure) END,
            failed_attempts = CASE WHEN u.reset THEN u.failures ELSE w.failed_attempts + u.failures END,
            last_error = COALESCE(u.last_error, w.last_error)
         FROM unnest($1::uuid[], $2::bool[], $3::timestamptz[], $4::int[], $5::text[])
              AS u(id, reset, first_failure, failures, last_error)
         -- A success on a healthy webhook changes nothing: do not write a new row version for it.
         WHERE w.id = u.id AND (u.failures > 0 OR w.failing_since IS NOT NULL OR w.failed_attempts <> 0)",
        ).await?,
        &[&ids, &reset, &first, &failures, &errors],
    )
    .await?;
    Ok(())
}

/// Attempts of a batch, column by column, for `unnest`.
#[derive(Default)]
struct AttemptRows {
    ids: Vec<Uuid>,
    at: Vec<DateTime<Utc>>,
    success: Vec<bool>,
    status: Vec<Option<i32>>,
    error: Vec<Option<String>>,
    duration_ms: Vec<i32>,
    response: Vec<Option<String>>,
    state: Vec<&'static str>,
    next: Vec<Option<DateTime<Utc>>>,
}

impl AttemptRows {
    fn push(&mut self, id: Uuid, at: DateTime<Utc>, attempt: &crate::attempt::Attempt, next: Next) {
        self.ids.push(id);
        self.at.push(at);
        self.success.push(attempt.success);
        self.status.push(attempt.status_code.map(i32::from));
        self.error
            .push(attempt.error.as_ref().map(ToString::to_string));
        self.duration_ms
            .push(i32::try_from(attempt.duration.as_millis()).unwrap_or(i32::MAX));
        // PostgreSQL text cannot hold NUL bytes.
        self.response
            .push(attempt.response.as_ref().map(|r| r.replace('\0', "")));
        self.state.push(next.state().as_str());
        self.next.push(next.next_attempt_at());
    }
}
