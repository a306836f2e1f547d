//! A publishing run: a [`Plan`] of events published in the background on a pipeline of their
//! own, paced or at full speed, with its progress ([`Published`]) readable meanwhile.

use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::marks::now_ns;
use crate::publisher::{EVENT_NAME, Pipeline, sized_event_body};

/// Progress of a publishing run, read by the progress line.
#[derive(Default)]
pub struct Published {
    count: AtomicU64,
    first_ns: AtomicU64,
    done_ns: AtomicU64,
}

impl Published {
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    /// When the first event was published (0 before).
    pub fn first_ns(&self) -> u64 {
        self.first_ns.load(Ordering::Relaxed)
    }
    /// When the last confirm arrived (0 while publishing).
    pub fn done_ns(&self) -> u64 {
        self.done_ns.load(Ordering::Relaxed)
    }
    /// Events per second from the first publish to the last confirm.
    pub fn rate(&self) -> f64 {
        let span = self.done_ns().saturating_sub(self.first_ns());
        if span == 0 {
            return 0.0;
        }
        self.count() as f64 / (span as f64 / 1e9)
    }
}

/// What to publish.
#[derive(Clone, Debug)]
pub struct Plan {
    pub exchange: String,
    pub phase: u32,
    pub events: u64,
    /// Events per second; `None` is as fast as confirms allow.
    pub rate: Option<f64>,
    /// Size of each event's body in bytes (see [`sized_event_body`]); 0 for the plain body.
    pub bytes: usize,
}

impl Plan {
    /// `events` plain events of `phase` to `exchange`, as fast as confirms allow.
    pub fn new(exchange: &str, phase: u32, events: u64) -> Self {
        Self {
            exchange: exchange.to_owned(),
            phase,
            events,
            rate: None,
            bytes: 0,
        }
    }
}

/// Bytes of events left unconfirmed at most when they are large: a few thousand events of a
/// megabyte would otherwise sit in this process's buffers.
const WINDOW_BYTES: usize = 64 << 20;

/// Publishes `plan.events` events, paced by `plan.rate`, then waits for every confirm.
async fn publish_events(
    mut pipeline: Pipeline,
    plan: Plan,
    published: Arc<Published>,
) -> anyhow::Result<()> {
    let started = Instant::now();
    pipeline.limit_bytes(WINDOW_BYTES, plan.bytes);
    published.first_ns.store(now_ns(), Ordering::Relaxed);
    for seq in 0..plan.events {
        if let Some(rate) = plan.rate {
            let due = started + Duration::from_secs_f64(seq as f64 / rate);
            tokio::time::sleep_until(due.into()).await;
        }
        let body = sized_event_body(plan.phase, seq, plan.bytes);
        pipeline.publish(&plan.exchange, EVENT_NAME, &body).await?;
        published.count.fetch_add(1, Ordering::Relaxed);
    }
    pipeline.flush().await?;
    published.done_ns.store(now_ns(), Ordering::Relaxed);
    Ok(())
}

/// A publishing run under way.
pub struct Publishing {
    pub published: Arc<Published>,
    /// Until it has ended and been joined.
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl Publishing {
    /// Starts publishing `plan` on a pipeline of its own over `connection`.
    pub async fn start(connection: &lapin::Connection, plan: Plan) -> anyhow::Result<Self> {
        let pipeline = Pipeline::open(connection).await?;
        let published = Arc::new(Published::default());
        let task = tokio::spawn(publish_events(pipeline, plan, published.clone()));
        Ok(Self {
            published,
            task: Some(task),
        })
    }

    /// Whether every event is published and confirmed; an error when publishing failed.
    pub async fn done(&mut self) -> anyhow::Result<bool> {
        match &self.task {
            Some(task) if task.is_finished() => self.finish().await.map(|()| true),
            Some(_) => Ok(false),
            None => Ok(true),
        }
    }

    /// Waits until every event is published and confirmed.
    pub async fn finish(&mut self) -> anyhow::Result<()> {
        if let Some(task) = self.task.take() {
            task.await.context("the publishing task")??;
        }
        Ok(())
    }
}
