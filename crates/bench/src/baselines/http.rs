//! `http-ceiling`: the sender's own HTTP client code ([`webhooks_sender::attempt::Sender`], same
//! client settings, same headers, same body size) posting straight to the receiver with
//! [`CONCURRENCY`] requests in flight, spread over its ports as fan-out spreads deliveries over
//! endpoints.

use anyhow::Context;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::destination::{Destinations, parse_net};
use webhooks_core::event::Event;
use webhooks_harness::marks::now_ns;
use webhooks_harness::publisher::event_body;
use webhooks_harness::receiver::tracking::Tracking;
use webhooks_sender::attempt::Sender;
use webhooks_sender::claim::{Job, Target};

use super::Baseline;
use crate::phase::Progress;

/// Requests in flight.
pub const CONCURRENCY: usize = 256;

/// The sender's HTTP client posting `requests` delivery bodies straight to a fresh receiver with
/// `ports` listeners (requests spread round robin, as fan-out spreads deliveries over endpoints).
pub async fn http_ceiling(requests: u64, ports: usize) -> anyhow::Result<Baseline> {
    let receiver = Tracking::start(ports).await?;
    receiver.tracker().begin(0, 1, requests);
    let allowed = parse_net("127.0.0.0/8").map_err(anyhow::Error::msg)?;
    // The sender's defaults: DELIVERY_TIMEOUT 15s, 1 KiB of response kept, and a pool with room
    // for every request in flight.
    let sender = Sender::new(
        Destinations::new(vec![allowed]),
        Duration::from_secs(15),
        1024,
        CONCURRENCY,
    )
    .context("building the sender's HTTP client")?;
    // Webhook 0's path on every port, so the tracker counts each request once.
    let urls: Arc<Vec<String>> =
        Arc::new((0..ports.max(1)).map(|p| receiver.port_url(p, 0)).collect());
    let next = Arc::new(AtomicU64::new(0));
    let failures = Arc::new(AtomicU64::new(0));
    let started_ns = now_ns();
    let workers: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (sender, urls, next, failures) =
                (sender.clone(), urls.clone(), next.clone(), failures.clone());
            tokio::spawn(async move {
                loop {
                    let seq = next.fetch_add(1, Ordering::Relaxed);
                    if seq >= requests {
                        break;
                    }
                    let url = &urls[usize::try_from(seq)? % urls.len()];
                    let job = job(url, seq)?;
                    if !sender
                        .attempt(&job, (now_ns() / 1_000_000_000) as i64)
                        .await
                        .success
                    {
                        failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    let mut progress = Progress::new("http-ceiling");
    while workers.iter().any(|w| !w.is_finished()) {
        progress.tick(
            "sent",
            next.load(Ordering::Relaxed).min(requests),
            "received",
            receiver.tracker().delivered(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for worker in workers {
        worker.await??;
    }
    let failures = failures.load(Ordering::Relaxed);
    anyhow::ensure!(
        failures == 0,
        "{failures} requests of the HTTP ceiling failed"
    );
    let arrivals = receiver.tracker().finish();
    let seconds = arrivals.last_ns.saturating_sub(started_ns) as f64 / 1e9;
    Ok(Baseline {
        label: "http-ceiling",
        count: arrivals.unique,
        rate: arrivals.unique as f64 / seconds.max(1e-9),
        ports,
        arrivals: Some(arrivals),
        rounds: 1,
        rabbitmq_cpu_s: None,
    })
}

/// A job as the sender would build it from a claimed delivery of a benchmark event.
fn job(url: &str, seq: u64) -> anyhow::Result<Job> {
    let event = Event::parse(&event_body(0, seq), None, 1 << 20)
        .map_err(|rejection| anyhow::anyhow!("benchmark event rejected: {rejection}"))?;
    Ok(Job {
        delivery_id: Uuid::now_v7(),
        webhook_id: Uuid::nil(),
        project: String::new(),
        event_name: event.name.into(),
        url: Target::parse(url),
        secret: None,
        previous_secret: None,
        body: webhooks_core::body::delivery_body(&event).into(),
        attempt_count: 0,
        first_attempt_at: None,
        webhook_changed_at: Default::default(),
    })
}
