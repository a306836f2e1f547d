//! `broker-hop`: RabbitMQ alone, one hop as the events take it: persistent publishes with
//! confirms into a durable queue of the events' queue type, and a consumer acking (multiple)
//! with the dispatcher's prefetch, [`PREFETCH`].

use anyhow::Context;
use futures::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use webhooks_harness::marks::{latency_us, now_ns};
use webhooks_harness::names::Names;
use webhooks_harness::publisher::{self, Pipeline, event_body};
use webhooks_harness::receiver::tracker::Arrivals;

use super::Baseline;
use crate::ctx::Ctx;
use crate::phase::{Progress, RABBITMQ};
use crate::procfs;

/// Unacknowledged messages the consumer may hold: the dispatcher's default.
pub const PREFETCH: u16 = webhooks_core::amqp::EVENTS_PREFETCH;
/// The queue, under the prefix of names of its own.
pub const HOP_QUEUE: &str = "bench.hop";

/// The label of broker-hop published at a steady rate, whose latency is the broker's own share
/// of a steady scenario's.
pub const BROKER_HOP_STEADY: &str = "broker-hop-steady";

/// RabbitMQ alone: `messages` persistent publishes with confirms → one consumer acking each batch
/// at once; as fast as confirms allow (rate only), or `paced` at that many messages per second,
/// measuring each message's publish→consume latency.
///
/// Paced, it is the steady scenario's first leg alone: the events' own publisher and body, the
/// same broker path, a consumer that does nothing else. A delay it shows, no service caused.
pub async fn broker_hop(ctx: &Ctx, messages: u64, paced: Option<f64>) -> anyhow::Result<Baseline> {
    let names = Names::fresh("bench");
    ctx.janitor.register(&names);
    let amqp_url = &ctx.args.amqp_url;
    let outcome = one_hop(&ctx.connection, amqp_url, &names, messages, paced).await;
    ctx.janitor.clean(&names).await;
    outcome
}

async fn one_hop(
    connection: &lapin::Connection,
    amqp_url: &str,
    names: &Names,
    messages: u64,
    paced: Option<f64>,
) -> anyhow::Result<Baseline> {
    let queue = names.queue(HOP_QUEUE);
    // The consumer gets a connection of its own, as a service would have.
    let consuming = publisher::connect(amqp_url, "webhooks-bench-hop").await?;
    let channel = consuming.create_channel().await?;
    publisher::declare_durable(&channel, &queue, events_queue_type()?).await?;
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
                last.acker.ack(BasicAckOptions { multiple: true }).await?;
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
    })
}

/// The kind of queue the dispatcher's events wait in, as `EVENTS_QUEUE_TYPE` (which passes through
/// to the dispatcher) sets it; broker-hop declares its queue the same way, so that the hop it
/// measures is the one the events take.
fn events_queue_type() -> anyhow::Result<webhooks_core::amqp::QueueType> {
    match std::env::var("EVENTS_QUEUE_TYPE") {
        Ok(value) => clap::ValueEnum::from_str(&value, true)
            .map_err(|e| anyhow::anyhow!("EVENTS_QUEUE_TYPE={value}: {e}")),
        Err(_) => Ok(webhooks_core::amqp::QueueType::default()),
    }
}
