//! The budget of delivery bodies in flight (`BODIES_IN_FLIGHT_BYTES`): every job holds its body's
//! bytes of it, from before its attempt until the body's last copy is dropped, so that what the
//! sender holds is bounded in bytes and not only in requests. A body is counted once however many
//! deliveries share it.
//!
//! Claimed jobs are started a body at a time as the budget has room: those whose body came with
//! them at once, those whose body was too large to come with the claim (see
//! [`crate::claim::Claimed`]) once it has been read. A body larger than the whole budget takes all
//! of it. Nothing waits for the budget while holding any of it but running jobs, which end within
//! `DELIVERY_TIMEOUT`, so the wait always ends.

use bytes::Bytes;
use deadpool_postgres::Pool;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::claim::{Claimed, Job};
use crate::runner::Runner;
use crate::store::events;

/// Most bytes of bodies read in one query.
const READ_BYTES_MOST: usize = 1 << 20;

/// An event whose body is to be read apart: its size, id, when it was received, and its jobs.
type Sized = (usize, String, chrono::DateTime<chrono::Utc>, Vec<Job>);

/// The budget of body bytes in flight, shared by the broker session and the scheduler.
#[derive(Clone, Debug)]
pub struct Bodies {
    budget: Arc<Semaphore>,
    total: usize,
}

/// A body and its share of the budget, given back when the last copy of the body goes.
struct Held {
    body: Bytes,
    _share: OwnedSemaphorePermit,
}

impl AsRef<[u8]> for Held {
    fn as_ref(&self) -> &[u8] {
        &self.body
    }
}

impl Bodies {
    pub fn new(total_bytes: usize) -> Self {
        let total = total_bytes.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            budget: Arc::new(Semaphore::new(total)),
            total,
        }
    }

    /// The share of the budget a body of `len` bytes takes: all of it at most.
    fn share(&self, len: usize) -> u32 {
        u32::try_from(len.min(self.total)).unwrap_or(u32::MAX)
    }

    /// Waits until the budget has room for `bytes`, and takes it.
    async fn take(&self, bytes: usize) -> anyhow::Result<OwnedSemaphorePermit> {
        Ok(Arc::clone(&self.budget)
            .acquire_many_owned(self.share(bytes))
            .await?)
    }

    /// The same bytes, holding `share` of the budget until the last copy is dropped.
    fn hold(body: Bytes, share: OwnedSemaphorePermit) -> Bytes {
        Bytes::from_owner(Held {
            body,
            _share: share,
        })
    }

    /// Starts `claimed`'s jobs, a body at a time, as the budget has room for each, reading apart
    /// the bodies that did not come with the claim. `permits` holds an in-flight permit per job.
    /// On an error (the database), the jobs not started are left to their lease.
    pub async fn run(
        &self,
        runner: &Runner,
        pool: &Pool,
        claimed: Claimed,
        mut permits: OwnedSemaphorePermit,
    ) -> anyhow::Result<()> {
        for group in by_body(claimed.jobs) {
            let share = self.take(group[0].body.len()).await?;
            start(runner, group, share, &mut permits);
        }
        let mut unread = claimed.unread;
        if unread.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = unread.iter().map(|(event, _, _)| event.as_str()).collect();
        let received: Vec<_> = unread.iter().map(|(_, at, _)| *at).collect();
        let client = pool.get().await?;
        let sizes = events::body_sizes(&client, &ids, &received).await?;
        let size_of = |event: &str| -> usize {
            sizes
                .iter()
                .find(|(id, _)| id == event)
                .map_or(0, |(_, size)| *size)
        };
        let mut sized: Vec<Sized> = unread
            .drain(..)
            .map(|(event, at, jobs)| (size_of(&event), event, at, jobs))
            .collect();
        while !sized.is_empty() {
            // As many events as one read may bring, the first whatever its size.
            let mut bytes = sized[0].0;
            let mut n = 1;
            while n < sized.len() && bytes + sized[n].0 <= READ_BYTES_MOST.min(self.total) {
                bytes += sized[n].0;
                n += 1;
            }
            let mut share = self.take(bytes).await?;
            let group: Vec<Sized> = sized.drain(..n).collect();
            let ids: Vec<&str> = group
                .iter()
                .map(|(_, event, _, _)| event.as_str())
                .collect();
            let received: Vec<_> = group.iter().map(|(_, _, at, _)| *at).collect();
            let mut read = events::bodies(&client, &ids, &received).await?;
            for (_, event, _, mut jobs) in group {
                let Some(at) = read.iter().position(|(id, _)| *id == event) else {
                    tracing::error!(event_id = %event, "stored delivery has no event body");
                    continue;
                };
                let body = Bytes::from(read.swap_remove(at).1);
                let own = match share.split(self.share(body.len()) as usize) {
                    Some(own) => own,
                    // Larger than read as: take the rest of its share now.
                    None => {
                        let more = self.take(body.len()).await?;
                        std::mem::replace(&mut share, more)
                    }
                };
                let body = Self::hold(body, own);
                for job in &mut jobs {
                    job.body = body.clone();
                }
                drop(body);
                let n = jobs.len();
                if let Some(p) = permits.split(n) {
                    runner.run(jobs, p);
                }
            }
        }
        Ok(())
    }
}

/// Starts `jobs`, which share one body, with that body holding `share` of the budget.
fn start(
    runner: &Runner,
    mut jobs: Vec<Job>,
    share: OwnedSemaphorePermit,
    permits: &mut OwnedSemaphorePermit,
) {
    let body = Bodies::hold(jobs[0].body.clone(), share);
    for job in &mut jobs {
        job.body = body.clone();
    }
    drop(body);
    let n = jobs.len();
    if let Some(p) = permits.split(n) {
        runner.run(jobs, p);
    }
}

/// `jobs` in groups that share one body (one event's deliveries), in the order their first job
/// came.
fn by_body(jobs: Vec<Job>) -> Vec<Vec<Job>> {
    let mut groups: Vec<Vec<Job>> = Vec::new();
    let mut at: HashMap<(usize, usize), usize> = HashMap::new();
    for job in jobs {
        let key = (job.body.as_ptr() as usize, job.body.len());
        match at.get(&key) {
            Some(&i) => groups[i].push(job),
            None => {
                at.insert(key, groups.len());
                groups.push(vec![job]);
            }
        }
    }
    groups
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_holds_its_bytes_until_its_last_copy_goes() {
        let bodies = Bodies::new(1_000);
        let share = bodies.take(600).await.expect("room");
        let body = Bodies::hold(Bytes::from(vec![b'x'; 600]), share);
        let copy = body.clone();
        assert_eq!(bodies.budget.available_permits(), 400);
        assert_eq!(&copy[..3], b"xxx");
        drop(body);
        assert_eq!(bodies.budget.available_permits(), 400);
        drop(copy);
        assert_eq!(bodies.budget.available_permits(), 1_000);
    }

    #[tokio::test]
    async fn a_body_waits_for_room_and_one_larger_than_the_budget_takes_it_all() {
        let bodies = Bodies::new(1_000);
        let first = Bodies::hold(
            Bytes::from(vec![0; 700]),
            bodies.take(700).await.expect("room"),
        );
        let waiting = tokio::spawn({
            let bodies = bodies.clone();
            async move { bodies.take(5_000).await.map(|p| p.num_permits()) }
        });
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert!(!waiting.is_finished());
        drop(first);
        assert_eq!(waiting.await.expect("joined").expect("room"), 1_000);
    }
}
