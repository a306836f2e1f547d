//! The baselines measured in the same run, so that the scenarios' figures can be read as
//! ratios that hold on a noisy machine:
//! - `http-ceiling`: the sender's own HTTP client code ([`webhooks_sender::attempt::Sender`], same
//!   client settings, same headers, same body size) posting straight to the receiver with
//!   [`CONCURRENCY`] requests in flight: no broker, no database. No delivery pipeline can beat it.
//! - `broker-hop`: RabbitMQ alone, one hop: persistent publishes with confirms into a durable
//!   queue and a consumer acking (multiple) with a prefetch of [`PREFETCH`]. At full speed it is
//!   the bound of fan-out 1's rate; paced at the steady scenario's rate, its publish→consume
//!   latency is the broker's own share of the steady scenario's.

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use uuid::Uuid;
use webhooks_core::destination::{Destinations, parse_net};
use webhooks_core::event::Event;
use webhooks_sender::attempt::Sender;
use webhooks_sender::claim::{Job, Target};

use crate::phase::{Progress, RABBITMQ};
use crate::procfs;
use crate::publisher::{Pipeline, event_body};
use crate::receiver::{Arrivals, Receiver, latency_us, now_ns};
use crate::services::{Janitor, Names};

/// Requests in flight in the HTTP ceiling.
pub const CONCURRENCY: usize = 256;
/// Unacknowledged messages the broker-hop consumer may hold: the dispatcher's default.
pub const PREFETCH: u16 = webhooks_core::amqp::EVENTS_PREFETCH;

/// A baseline's rate and (where it has one) its latency.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub label: &'static str,
    pub count: u64,
    /// Messages (or requests) per second, first send → last receive.
    pub rate: f64,
    /// Receiver ports (endpoints) the HTTP ceiling spread its requests over.
    pub ports: usize,
    pub arrivals: Option<Arrivals>,
    /// Measurements this figure stands for (see [`Baseline::combined`]).
    pub rounds: usize,
    /// CPU seconds of the broker's processes while it ran (broker-hop only).
    pub rabbitmq_cpu_s: Option<f64>,
    /// How long broker-hop's consumer held each batch before acking it (`--hop-ack-delay`).
    pub ack_delay: Duration,
}

impl Baseline {
    /// One figure for several measurements of the same baseline: their count over their summed
    /// time, and the latencies of all of them together. `None` for none.
    pub fn combined(rounds: &[Baseline]) -> Option<Baseline> {
        let first = rounds.first()?;
        let count: u64 = rounds.iter().map(|b| b.count).sum();
        let seconds: f64 = rounds
            .iter()
            .map(|b| b.count as f64 / b.rate.max(1e-9))
            .sum();
        let arrivals = first.arrivals.as_ref().map(|first| {
            let mut latencies_us: Vec<u32> = rounds
                .iter()
                .filter_map(|b| b.arrivals.as_ref())
                .flat_map(|a| a.latencies_us.iter().copied())
                .collect();
            latencies_us.sort_unstable();
            Arrivals {
                unique: count,
                latencies_us,
                ..first.clone()
            }
        });
        Some(Baseline {
            label: first.label,
            count,
            rate: count as f64 / seconds.max(1e-9),
            ports: first.ports,
            arrivals,
            rounds: rounds.iter().map(|b| b.rounds).sum(),
            rabbitmq_cpu_s: rounds.iter().map(|b| b.rabbitmq_cpu_s).sum(),
            ack_delay: first.ack_delay,
        })
    }
}

/// The sender's HTTP client posting `requests` delivery bodies straight to a fresh receiver with
/// `ports` listeners (requests spread round robin, as fan-out spreads deliveries over endpoints).
pub async fn http_ceiling(requests: u64, ports: usize) -> anyhow::Result<Baseline> {
    let receiver = Receiver::start(ports).await?;
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
        ack_delay: Duration::ZERO,
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
        event_name: event.name,
        url: Target::parse(url),
        secret: None,
        body: webhooks_core::body::delivery_body(&event).into(),
        attempt_count: 0,
        first_attempt_at: None,
        webhook_changed_at: Default::default(),
    })
}

/// The label of broker-hop published at a steady rate ([`Hop::paced`]), whose latency is the
/// broker's own share of a steady scenario's.
pub const BROKER_HOP_STEADY: &str = "broker-hop-steady";

/// How broker-hop runs.
#[derive(Clone, Copy, Debug)]
pub struct Hop {
    /// How long the consumer holds each batch before acking it (zero: acks at once).
    pub ack_delay: Duration,
    /// Messages per second to publish at, measuring each message's publish→consume latency;
    /// `None`: as fast as confirms allow, rate only.
    pub paced: Option<f64>,
}

/// RabbitMQ alone: `messages` persistent publishes with confirms → one consumer with acks, sent
/// `hop.ack_delay` after each batch arrived (zero: at once).
///
/// A consumer that commits what it consumed before acking (the dispatcher, whose ack waits for the
/// event's record to be on disk) holds each message for a while, and the broker spends more CPU per
/// message on such a consumer than on one that acks at once: `--hop-ack-delay` measures how much.
///
/// Paced, it is the steady scenario's first leg alone: the events' own publisher and body, the
/// same broker path, a consumer that does nothing else. A delay it shows, no service caused.
pub async fn broker_hop(
    connection: &lapin::Connection,
    amqp_url: &str,
    janitor: &Janitor,
    messages: u64,
    hop: Hop,
) -> anyhow::Result<Baseline> {
    let names = Names::fresh();
    janitor.register(&names);
    let outcome = one_hop(connection, amqp_url, &names, messages, hop).await;
    janitor.clean(&names).await;
    outcome
}

async fn one_hop(
    connection: &lapin::Connection,
    amqp_url: &str,
    names: &Names,
    messages: u64,
    hop: Hop,
) -> anyhow::Result<Baseline> {
    let Hop { ack_delay, paced } = hop;
    let queue = format!("{}bench.hop", names.prefix);
    // The consumer gets a connection of its own, as a service would have.
    let consuming = crate::publisher::connect(amqp_url, "webhooks-bench-hop").await?;
    let channel = consuming.create_channel().await?;
    crate::publisher::declare_durable(&channel, &queue, crate::services::events_queue_type()?)
        .await?;
    // The dispatcher's default prefetch, so that the hop measured is the one the events take.
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let consumer = channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let consumed = Arc::new(AtomicU64::new(0));
    let counter = consumed.clone();
    // Acks go out in order (each one acks everything up to its tag), each `ack_delay` after its
    // batch arrived.
    let (held, mut due) = tokio::sync::mpsc::unbounded_channel::<(Instant, lapin::Acker)>();
    let acking_task = tokio::spawn(async move {
        while let Some((at, acker)) = due.recv().await {
            tokio::time::sleep_until(at).await;
            acker.ack(BasicAckOptions { multiple: true }).await?;
        }
        Ok::<_, anyhow::Error>(())
    });
    let consuming_task = tokio::spawn(async move {
        let mut chunks = consumer.ready_chunks(usize::from(PREFETCH));
        let mut latencies_us = Vec::new();
        while counter.load(Ordering::Relaxed) < messages {
            let chunk = chunks
                .next()
                .await
                .context("the broker ended the consumer")?;
            let chunk = chunk.into_iter().collect::<Result<Vec<_>, _>>()?;
            if paced.is_some() {
                let arrived = now_ns();
                latencies_us.extend(chunk.iter().filter_map(|d| latency_us(&d.data, arrived)));
            }
            if let Some(last) = chunk.last() {
                if ack_delay.is_zero() {
                    last.acker.ack(BasicAckOptions { multiple: true }).await?;
                } else {
                    held.send((Instant::now() + ack_delay, last.acker.clone()))?;
                }
            }
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok::<_, anyhow::Error>((now_ns(), latencies_us))
    });

    let mut pipeline = Pipeline::open(connection).await?;
    let rabbitmq_cpu = procfs::cpu_seconds_of_command(RABBITMQ);
    let started_ns = now_ns();
    let label = if paced.is_some() {
        BROKER_HOP_STEADY
    } else {
        "broker-hop"
    };
    let mut progress = Progress::new(label);
    let started = Instant::now();
    for seq in 0..messages {
        if let Some(rate) = paced {
            tokio::time::sleep_until(started + Duration::from_secs_f64(seq as f64 / rate)).await;
        }
        pipeline.publish("", &queue, &event_body(0, seq)).await?;
        progress.tick(
            "published",
            seq + 1,
            "consumed",
            consumed.load(Ordering::Relaxed),
        );
    }
    pipeline.flush().await?;
    while !consuming_task.is_finished() {
        progress.tick(
            "published",
            messages,
            "consumed",
            consumed.load(Ordering::Relaxed),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (last_ns, mut latencies_us) = consuming_task.await??;
    // The consumer is done, so the channel closes once the last held ack has gone out.
    acking_task.await??;
    let rabbitmq_cpu_s = procfs::cpu_seconds_of_command(RABBITMQ) - rabbitmq_cpu;
    webhooks_core::amqp::close_connection(&consuming, "done").await;
    let seconds = last_ns.saturating_sub(started_ns) as f64 / 1e9;
    let arrivals = paced.map(|_| {
        latencies_us.sort_unstable();
        Arrivals {
            unique: messages,
            latencies_us,
            first_ns: Some(started_ns),
            last_ns,
            ..Arrivals::default()
        }
    });
    Ok(Baseline {
        label,
        count: messages,
        rate: messages as f64 / seconds.max(1e-9),
        ports: 0,
        arrivals,
        rounds: 1,
        rabbitmq_cpu_s: Some(rabbitmq_cpu_s),
        ack_delay,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_baselines_sum_their_counts_and_time_and_pool_their_latencies() {
        let round = |count: u64, seconds: f64, latencies_us: Vec<u32>, cpu_s: f64| Baseline {
            label: "http-ceiling",
            count,
            rate: count as f64 / seconds,
            ports: 10,
            arrivals: Some(Arrivals {
                unique: count,
                latencies_us,
                ..Arrivals::default()
            }),
            rounds: 1,
            rabbitmq_cpu_s: Some(cpu_s),
            ack_delay: Duration::ZERO,
        };
        // 1,000 in 1 s and 3,000 in 3 s: 4,000 in 4 s.
        let b = Baseline::combined(&[
            round(1_000, 1.0, vec![1, 5], 0.5),
            round(3_000, 3.0, vec![2, 3], 1.5),
        ])
        .unwrap();
        assert_eq!(b.count, 4_000);
        assert!((b.rate - 1_000.0).abs() < 1e-6, "{}", b.rate);
        assert_eq!(b.rounds, 2);
        assert_eq!(b.rabbitmq_cpu_s, Some(2.0));
        let arrivals = b.arrivals.unwrap();
        assert_eq!(arrivals.latencies_us, vec![1, 2, 3, 5]);
        assert_eq!(arrivals.unique, 4_000);
        assert!(Baseline::combined(&[]).is_none());
    }
}
