//! The fairness scenario (`--scenario fair`): one customer's trouble stays its own. Ten projects,
//! each with one healthy webhook on a receiver port of its own, get events at a steady rate: first
//! alone (the baseline phase), then beside an eleventh project whose 50 webhooks all point at one
//! host (paths differ) that answers every request with 200 after 5 s while that project's events
//! keep coming. The healthy webhooks' delivered/s and p99 beside the slow project are compared
//! with the baseline's, in rounds (a baseline phase first in each), and the slow host counts the
//! requests it answers at once, which `MAX_PER_HOST` bounds. Each round's slow project has
//! webhooks of its own, deleted (cancelling what they still had pending) when its phase ends; the
//! next baseline waits until the slow host is idle.

use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use webhooks_harness::api::Api;
use webhooks_harness::marks::{Marks, now_ns};
use webhooks_harness::publisher::{EVENT_NAME, Pipeline, event_json};

use crate::ctx::{Ctx, Scene};
use crate::phase::{Measured, Probe, Progress, STALL};
use crate::report::Report;

mod report;
mod slow;
use report::{Round, judge};
use slow::SlowHost;

/// Healthy projects, one webhook each, each webhook its own receiver port.
const PROJECTS: usize = 10;
/// The slow project's webhooks, all on the slow host.
const SLOW_WEBHOOKS: usize = 50;
const SLOW_PROJECT: &str = "SLOW";
/// How long the slow host takes to answer: `BREAKER_SLOW`'s default, a third of the timeout.
const SLOW_ANSWER: Duration = Duration::from_secs(5);
/// Events per second over the healthy projects together (100 each).
const HEALTHY_RATE: f64 = 1_000.0;
/// Events per second of the slow project, each to its 50 webhooks: 500 requests a second for a
/// host that takes at most `MAX_PER_HOST` (128) every 5 s.
const SLOW_RATE: f64 = 10.0;
/// How long the slow project runs before the phase beside it is measured: past its first answers,
/// so that its host is full, answers slowly and trips the breaker.
const WARM_UP: Duration = Duration::from_secs(6);
/// Rounds of a baseline phase and a phase beside the slow project.
const ROUNDS: usize = 3;
/// Longest wait for the slow host to have answered everything after a round.
const IDLE_WITHIN: Duration = Duration::from_secs(30);

fn project(k: usize) -> String {
    format!("FAIR{k}")
}

/// A paced run of events: event `i` goes to `projects[i % projects.len()]` with seq
/// `i / projects.len()` in its payload's marks, `rate` a second, until `events` or `stop`.
struct Stream {
    exchange: String,
    projects: Vec<String>,
    phase: u32,
    events: u64,
    rate: f64,
    stop: CancellationToken,
}

impl Stream {
    /// Publishes in the background on a pipeline of its own, counting in `count`; the task ends
    /// once each event published is confirmed.
    async fn start(
        self,
        ctx: &Ctx,
        count: Arc<AtomicU64>,
    ) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
        let mut pipeline = Pipeline::open(&ctx.connection).await?;
        Ok(tokio::spawn(async move {
            let started = Instant::now();
            let n = self.projects.len() as u64;
            for i in 0..self.events {
                let due = started + Duration::from_secs_f64(i as f64 / self.rate);
                tokio::select! {
                    _ = self.stop.cancelled() => break,
                    _ = tokio::time::sleep_until(due.into()) => {}
                }
                let marks = Marks {
                    phase: self.phase,
                    seq: i / n,
                    sent_ns: now_ns(),
                };
                let body = event_json(
                    &uuid::Uuid::new_v4().to_string(),
                    EVENT_NAME,
                    marks.sent_ns / 1_000_000_000,
                    &self.projects[(i % n) as usize],
                    &format!("{{{}}}", marks.fields()),
                );
                pipeline
                    .publish(&self.exchange, EVENT_NAME, body.as_bytes())
                    .await?;
                count.fetch_add(1, Ordering::Relaxed);
            }
            pipeline.flush().await
        }))
    }
}

/// What the scenario's phases run against: the scene, and what this scenario adds to it.
struct Fair<'a> {
    ctx: &'a Ctx,
    scene: &'a Scene,
    api: Api,
    slow: SlowHost,
}

impl Fair<'_> {
    /// One measured phase: `events` events over the healthy projects at [`HEALTHY_RATE`], until
    /// each has arrived at its project's webhook (or arrivals stall).
    async fn healthy(&self, label: String, phase: u32, events: u64) -> anyhow::Result<Measured> {
        let seqs = events / PROJECTS as u64;
        let expected = seqs * PROJECTS as u64;
        let tracker = self.scene.receiver.tracker();
        tracker.begin(phase, PROJECTS, seqs);
        self.scene.sampler.reset();
        let probe = Probe::start(self.scene).await?;
        let count = Arc::new(AtomicU64::new(0));
        let first_ns = now_ns();
        let stream = Stream {
            exchange: self.scene.world.names.exchange.clone(),
            projects: (0..PROJECTS).map(project).collect(),
            phase,
            events: expected,
            rate: HEALTHY_RATE,
            stop: CancellationToken::new(),
        };
        let mut publishing = stream.start(self.ctx, count.clone()).await?;
        let mut progress = Progress::new(&label);
        let (mut done_ns, mut last, mut last_change) = (None, 0, Instant::now());
        let complete = loop {
            if done_ns.is_none() && publishing.is_finished() {
                (&mut publishing).await.context("the publisher")??;
                done_ns = Some(now_ns());
            }
            let delivered = tracker.delivered();
            let sent = count.load(Ordering::Relaxed);
            progress.tick("published", sent, "delivered", delivered);
            if delivered != last {
                (last, last_change) = (delivered, Instant::now());
            }
            if done_ns.is_some() && (delivered >= expected || last_change.elapsed() > STALL) {
                break delivered >= expected;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let span = done_ns.unwrap_or(first_ns).saturating_sub(first_ns) as f64 / 1e9;
        let mut measured = Measured {
            label,
            events: expected,
            expected,
            published_rate: expected as f64 / span.max(1e-9),
            first_publish_ns: first_ns,
            arrivals: tracker.finish(),
            complete,
            ..Measured::default()
        };
        probe.finish(self.scene, &mut measured).await?;
        Ok(measured)
    }

    /// Round `n`: the healthy projects alone, then the slow project's webhooks created and its
    /// events started, [`WARM_UP`], the healthy projects beside it, and the slow project removed.
    async fn round(&self, n: usize, events: u64) -> anyhow::Result<Round> {
        let phase = u32::try_from(2 * n + 1).unwrap_or(u32::MAX);
        let label = |what: &str| format!("fair: healthy {what} ({}/{ROUNDS})", n + 1);
        let alone = self.healthy(label("alone"), phase, events).await?;
        let mut hooks = Vec::new();
        for k in 0..SLOW_WEBHOOKS {
            let url = format!("http://127.0.0.1:{}/slow/{n}/{k}", self.slow.port);
            let id = self
                .api
                .create_webhook(SLOW_PROJECT, "slow", &url, &[EVENT_NAME])
                .await?;
            hooks.push(id);
        }
        let stop = CancellationToken::new();
        let stream = Stream {
            exchange: self.scene.world.names.exchange.clone(),
            projects: vec![SLOW_PROJECT.to_owned()],
            // Phase 0 is never measured: the tracker counts none of these, nor do they reach it.
            phase: 0,
            events: u64::MAX,
            rate: SLOW_RATE,
            stop: stop.clone(),
        };
        let slow_publishing = stream.start(self.ctx, Arc::default()).await?;
        tokio::time::sleep(WARM_UP).await;
        self.slow.reset();
        let beside = self
            .healthy(label("beside the slow project"), phase + 1, events)
            .await;
        let (slow_requests, slow_most) = self.slow.counted();
        stop.cancel();
        slow_publishing.await.context("the slow publisher")??;
        for id in &hooks {
            self.api.delete_webhook(SLOW_PROJECT, id).await?;
        }
        anyhow::ensure!(
            self.slow.idle(IDLE_WITHIN).await,
            "the slow host still answering {IDLE_WITHIN:?} after its webhooks were deleted"
        );
        Ok(Round {
            alone,
            beside: beside?,
            slow_requests,
            slow_most,
        })
    }
}

pub async fn run(ctx: &Ctx, report: &mut Report, events: u64) -> anyhow::Result<()> {
    let rounds = ctx
        .scene(PROJECTS, None, async |scene| {
            scene.start_services().await?;
            let api = scene.world.api()?;
            for k in 0..PROJECTS {
                let url = scene.receiver.url(k, false);
                api.create_webhook(&project(k), "fair", &url, &[EVENT_NAME])
                    .await?;
            }
            let fair = Fair {
                ctx,
                scene,
                api,
                slow: SlowHost::start(SLOW_ANSWER).await?,
            };
            let mut rounds = Vec::new();
            for n in 0..ROUNDS {
                rounds.push(fair.round(n, events).await?);
            }
            Ok(rounds)
        })
        .await?;
    for r in &rounds {
        report.add_stages(&r.alone);
        report.add_stages(&r.beside);
    }
    judge(&rounds, report);
    Ok(())
}
