//! Retention: events, deliveries and attempts are kept in daily partitions (migration 0008), the
//! partitions of the coming days are created ahead of time, and those wholly older than
//! `RETENTION` are detached and dropped, a day at a time.
//!
//! Every service creates partitions ahead (at start, before it writes anything: [`prepare`];
//! then every `MAINTENANCE_INTERVAL`); the senders also drop, since they know `DISABLE_AFTER`, which the
//! window must exceed ([`check`]). Each turn is a transaction that first takes an advisory lock
//! without waiting: with several instances, one works and the others skip that turn. The DDL is
//! idempotent (partitions are named by their day, created only when missing), and runs under a
//! short `lock_timeout`: a statement waiting for the table's lock would queue every query of the
//! table behind it, so it gives up and the next turn tries again.
//!
//! A day is dropped only once its end is `RETENTION` old and none of its deliveries is still
//! pending or retrying (checked under the partitions' lock, so no retry can start in between): a
//! delivery is never lost to retention, only held past it. Event ids stay known to the
//! de-duplication (`event_keys`) as long as their event's partition exists.
//!
//! Days are UTC days. A delivery's partition is the day of its id, a UUIDv7 made from the
//! service's clock when it is recorded ([`delivery_id`]), the same instant as its event's
//! `received_at`: a day's three partitions go together.

mod store;

use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use deadpool_postgres::Pool;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::clock::Clock;
use crate::db::StoreError;

pub use store::Partition;

/// Days ahead of today that have their partitions: a service that cannot reach the database for
/// a while, or a clock moved forward by a test, still finds them there.
pub const AHEAD_DAYS: u64 = 7;

/// What a service does with the partitions on each turn.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Drop the days older than this; `None`: only create ahead.
    pub keep: Option<Duration>,
    /// How often a turn runs.
    pub every: Duration,
}

/// Refuses a window that a delivery still retrying could outlive: deliveries are retried for up
/// to `DISABLE_AFTER` after their first attempt, so `RETENTION` must be longer.
pub fn check(retention: Duration, disable_after: Duration) -> Result<(), String> {
    if retention <= disable_after {
        return Err(format!(
            "RETENTION ({}) must be longer than DISABLE_AFTER ({}): a delivery is retried for up \
             to DISABLE_AFTER, and retention must not drop one still retrying",
            humantime::format_duration(retention),
            humantime::format_duration(disable_after)
        ));
    }
    Ok(())
}

/// The id of a delivery recorded at `at`: a UUIDv7 of that instant, so that its partition is the
/// day it was recorded on the service's clock.
pub fn delivery_id(at: DateTime<Utc>) -> Uuid {
    let millis = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let seconds = millis / 1000;
    let nanos = u32::try_from(millis % 1000).unwrap_or(0) * 1_000_000;
    Uuid::new_v7(uuid::Timestamp::from_unix(uuid::NoContext, seconds, nanos))
}

/// The smallest delivery id of the instant `at`: the bound of a day's range of ids.
pub fn id_floor(at: DateTime<Utc>) -> Uuid {
    let millis = u128::try_from(at.timestamp_millis()).unwrap_or(0);
    Uuid::from_u128(millis << 80)
}

/// The smallest and the largest of `ids`, for statements that reach deliveries by id: `d.id
/// BETWEEN` them beside `d.id = ANY(..)` lets the server skip, when the statement starts, every
/// day's partition outside that range, generic plan or not (it cannot prune on the array
/// itself). `(max, nil)`, a range that holds nothing, when there are none.
pub fn id_range(ids: &[Uuid]) -> (Uuid, Uuid) {
    let low = ids.iter().min().copied().unwrap_or(Uuid::max());
    let high = ids.iter().max().copied().unwrap_or(Uuid::nil());
    (low, high)
}

/// The start of a UTC day.
pub fn day_start(day: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&day.and_time(chrono::NaiveTime::MIN))
}

/// Creates the partitions of today and the [`AHEAD_DAYS`] after it that are missing; returns how
/// many days it created (0 when another instance is at it: its turn creates them).
pub async fn create_ahead(pool: &Pool, now: DateTime<Utc>) -> Result<usize, StoreError> {
    store::create(pool, &coming_days(now), false).await
}

/// [`create_ahead`] at start, before the service writes anything: waits for another instance's
/// turn to end (it may be creating these very days), and fails, to be tried again, rather than go
/// on while the partitions may be missing.
pub async fn prepare(pool: &Pool, now: DateTime<Utc>) -> Result<usize, StoreError> {
    store::create(pool, &coming_days(now), true).await
}

fn coming_days(now: DateTime<Utc>) -> Vec<NaiveDate> {
    let today = now.date_naive();
    (0..=AHEAD_DAYS)
        .filter_map(|ahead| today.checked_add_days(Days::new(ahead)))
        .collect()
}

/// A day (or the legacy partitions) dropped.
#[derive(Clone, Debug)]
pub struct Dropped {
    pub partition: Partition,
    /// How long the three tables' lock was waited for and held: what the drop cost the
    /// statements of the services, which wait for it.
    pub took: Duration,
}

/// Deletes the replays that finished `keep` before `now`, then drops the days whose end is that
/// old and that hold no waiting delivery, oldest first; returns the days dropped (none when
/// another instance is at it). A day still holding one is kept (and logged) until it holds none.
pub async fn drop_expired(
    pool: &Pool,
    now: DateTime<Utc>,
    keep: Duration,
) -> Result<Vec<Dropped>, StoreError> {
    let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
    let Some(horizon) = now.checked_sub_signed(keep) else {
        return Ok(Vec::new());
    };
    let Some(mut drops) = store::Drops::begin(pool).await? else {
        return Ok(Vec::new());
    };
    let dropped = drop_past(&mut drops, horizon).await;
    // Whatever became of the drops: a lock left held would stop every instance's turns.
    drops.end().await?;
    dropped
}

async fn drop_past(
    drops: &mut store::Drops,
    horizon: DateTime<Utc>,
) -> Result<Vec<Dropped>, StoreError> {
    let forgotten = drops.forget_replays(horizon).await?;
    if forgotten > 0 {
        tracing::info!(
            replays = forgotten,
            "deleted replays finished before RETENTION"
        );
    }
    let mut dropped = Vec::new();
    for partition in drops.partitions().await? {
        if partition.end() > horizon {
            continue;
        }
        match drops.drop(&partition).await? {
            store::Outcome::Dropped(took) => {
                tracing::info!(partition = %partition, took_ms = took.as_millis() as u64, "dropped a day past RETENTION");
                dropped.push(Dropped { partition, took });
            }
            store::Outcome::Waiting => {
                tracing::warn!(partition = %partition, "kept a day past RETENTION: a delivery of it is still waiting");
            }
            store::Outcome::Busy => break,
        }
    }
    let forgotten = drops.forget_replays(horizon).await?;
    if forgotten > 0 {
        tracing::info!(
            replays = forgotten,
            "deleted replays finished before RETENTION"
        );
    }
    Ok(dropped)
}

/// One turn: the partitions ahead, then (with `keep`) the days past it.
pub async fn turn(
    pool: &Pool,
    now: DateTime<Utc>,
    keep: Option<Duration>,
) -> Result<(), StoreError> {
    create_ahead(pool, now).await?;
    if let Some(keep) = keep {
        drop_expired(pool, now, keep).await?;
    }
    Ok(())
}

/// Runs a turn every `policy.every` until `shutdown`; a failed turn is logged and tried again at
/// the next.
pub async fn run(pool: Pool, clock: Clock, policy: Policy, shutdown: CancellationToken) {
    let mut ticks = tokio::time::interval(policy.every.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticks.tick() => {}
        }
        if let Err(e) = turn(&pool, clock.now(), policy.keep).await {
            tracing::warn!(error = %e, "partition maintenance failed; trying again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_id_falls_within_its_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 6).expect("day");
        let start = day_start(day);
        let end = day_start(day.succ_opt().expect("next"));
        for at in [
            start,
            start + chrono::Duration::hours(13),
            end - chrono::Duration::milliseconds(1),
        ] {
            let id = delivery_id(at);
            assert!(id_floor(start) <= id && id < id_floor(end), "{id} at {at}");
        }
        assert!(delivery_id(end) >= id_floor(end));
    }

    #[test]
    fn the_window_must_exceed_the_give_up_time() {
        let day = Duration::from_secs(86_400);
        let refused = check(2 * day, 2 * day).expect_err("equal");
        assert!(
            refused.contains("RETENTION (2days)") && refused.contains("DISABLE_AFTER (2days)"),
            "{refused}"
        );
        assert!(check(30 * day, 2 * day).is_ok());
    }
}
