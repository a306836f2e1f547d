//! The broker session of the dispatcher: connect, declare the topology, consume domain events in
//! batches and hand each batch to [`Fanout`]. The session ends on any broker error and
//! [`webhooks_core::amqp::reconnect_loop`] starts a new one.

use anyhow::Context;
use deadpool_postgres::Pool;
use futures::{FutureExt, StreamExt};
use lapin::options::{BasicCancelOptions, BasicNackOptions};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::{self, Broker, ConfirmedPublisher, Topology};
use webhooks_core::clock::Clock;
use webhooks_core::handoff_auth::HandoffKey;
use webhooks_core::server::Readiness;

use crate::config::Config;
use crate::fanout::{Fanout, Sent};
use crate::index::WebhookIndex;
use crate::metrics::Metrics;
use crate::prefetch::Prefetch;

/// What every broker session of the process is given, one session after another (a new one
/// after each reconnection).
#[derive(Clone)]
pub struct Shared {
    pub pool: Pool,
    /// For the record of a batch: commits that do not wait for the disk (the ack does).
    pub record_pool: Pool,
    pub index: WebhookIndex,
    pub topology: Topology,
    pub clock: Clock,
    pub metrics: Metrics,
    /// Told whether the broker is up; shared with `/readyz`.
    pub readiness: Readiness,
    /// Where the broker is and how to reach it.
    pub broker: Broker,
    /// Signs every hand-off (`HANDOFF_KEY`).
    pub handoff_key: HandoffKey,
}

/// What the preparing stage hands to the finishing stage.
enum Stage {
    Finish(Sent),
    /// Answered once every batch before it has finished.
    Flushed(oneshot::Sender<()>),
}

/// One connection's life: returns Ok on shutdown, Err when the broker connection fails.
pub async fn session(
    config: &Config,
    shared: &Shared,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let connection = shared
        .broker
        .connect("webhooks-dispatcher", &shared.topology)
        .await?;
    let setup = connection.create_channel().await?;
    amqp::declare_events(&setup, &shared.topology, config.events_queue_type).await?;
    amqp::declare_deliveries(&setup, &shared.topology).await?;
    let fanout = Fanout {
        pool: shared.pool.clone(),
        record_pool: shared.record_pool.clone(),
        index: shared.index.clone(),
        publisher: ConfirmedPublisher::open(&connection).await?,
        topology: shared.topology.clone(),
        clock: shared.clock.clone(),
        metrics: shared.metrics.clone(),
        max_event_bytes: config.max_event_bytes,
        handoff_grace: config.handoff_grace,
        handoff_key: shared.handoff_key.clone(),
    };
    // The prefetch bounds the events held in memory: it follows their size (see `Prefetch`).
    // Batches form from what has already arrived.
    let queue = shared.topology.dispatcher_queue();
    let mut prefetch = Prefetch::new(
        config.events_in_flight_bytes,
        config.max_event_bytes,
        config.prefetch,
    );
    let (channel, consumer) = amqp::consume(&connection, &queue, prefetch.current())
        .await
        .context("consuming domain events")?;
    let mut consumer_tag = consumer.tag();
    shared.readiness.set_broker_up(true);
    tracing::info!(%queue, prefetch = prefetch.current(), "consuming domain events");

    // Two stages: one parses, records and hands off batch after batch; the other waits for each
    // batch's hand-off confirm and flush to disk, then acks it. Batches are finished strictly in
    // order.
    let (to_finish, mut finishing) = mpsc::channel::<Stage>(FINISHING_AHEAD);
    let finisher = async {
        while let Some(stage) = finishing.recv().await {
            match stage {
                Stage::Finish(prepared) => fanout.finish(&channel, prepared).await?,
                Stage::Flushed(done) => {
                    let _ = done.send(());
                }
            }
        }
        anyhow::Ok(())
    };
    let preparer = async {
        // Fused: a batch may end at the end of the stream, and the next call asks again.
        let mut consumer = consumer.fuse();
        // Whether the consumer has been cancelled to start again with a new prefetch.
        let mut restarting = false;
        let (most, linger) = (config.batch_size.max(1), config.batch_linger);
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break,
                batch = next_batch(&mut consumer, most, linger) => batch,
            };
            if batch.is_none() && restarting {
                // The cancelled consumer has handed over every message it was pushed. Once they
                // are acked, a new one starts with the new prefetch: the old one's unacked
                // messages and the new one's never add up.
                flushed(&to_finish).await?;
                let now = prefetch.current();
                consumer = amqp::consume_on(&channel, &queue, now)
                    .await
                    .context("consuming domain events again")?
                    .fuse();
                consumer_tag = consumer.get_ref().tag();
                restarting = false;
                tracing::debug!(
                    prefetch = now,
                    assumed_event_bytes = prefetch.assumed(),
                    "prefetch changed"
                );
                continue;
            }
            let batch = amqp::received(batch, "events")?;
            let mut changed = false;
            for delivery in &batch {
                changed |= prefetch.observe(delivery.data.len()).is_some();
            }
            if changed && !restarting {
                channel
                    .basic_cancel(consumer_tag.clone(), BasicCancelOptions::default())
                    .await
                    .context("cancelling the consumer to change its prefetch")?;
                restarting = true;
            }
            let mut from = 0;
            while from < batch.len() {
                match fanout.prepare(&batch, from).await {
                    Ok((prepared, next)) => {
                        from = next;
                        if let Some(prepared) = prepared {
                            let sent = fanout.hand_off(prepared).await?;
                            to_finish.send(Stage::Finish(sent)).await?;
                        }
                    }
                    Err(e) => {
                        // Let the batches (and parts) before this one finish, then deal with
                        // this batch alone.
                        flushed(&to_finish).await?;
                        recover(&fanout, &channel, &shared.pool, &batch, e).await?;
                        break;
                    }
                }
            }
        }
        drop(to_finish);
        anyhow::Ok(consumer_tag)
    };
    let (consumer_tag, ()) = tokio::try_join!(preparer, finisher)?;
    // Graceful stop: no new deliveries; the batch in hand was finished above; unacked prefetched
    // messages go back to the queue when the channel closes.
    amqp::close(&connection, &channel, consumer_tag).await;
    Ok(())
}

/// Returns once every batch sent to the finisher before has finished.
async fn flushed(to_finish: &mpsc::Sender<Stage>) -> anyhow::Result<()> {
    let (done, flushed) = oneshot::channel();
    to_finish.send(Stage::Flushed(done)).await?;
    flushed.await?;
    Ok(())
}

/// Batches (or parts of one) handed off and waiting for their ack. A flush to disk now and then
/// takes tens of milliseconds; this many batches keep being recorded and handed off meanwhile.
/// The events they hold are bounded by the prefetch, as all unacked events are.
const FINISHING_AHEAD: usize = 32;

/// The next batch: the first event to arrive, then every event already waiting, up to `most`; then,
/// for up to `linger` after the first, those that arrive meanwhile. `None` when the stream has
/// ended.
///
/// At a moderate rate events arrive one at a time, and each batch costs a database commit, a
/// hand-off message and a sender's claim whatever its size, so a short linger divides those costs
/// among several events.
async fn next_batch<S, T>(stream: &mut S, most: usize, linger: Duration) -> Option<Vec<T>>
where
    S: futures::stream::FusedStream<Item = T> + Unpin,
{
    let first = stream.next().await?;
    let deadline = tokio::time::Instant::now() + linger;
    let mut batch = vec![first];
    while batch.len() < most {
        match stream.next().now_or_never() {
            Some(Some(item)) => batch.push(item),
            Some(None) => break,
            None if linger.is_zero() => break,
            None => match tokio::time::timeout_at(deadline, stream.next()).await {
                Ok(Some(item)) => batch.push(item),
                Ok(None) | Err(_) => break,
            },
        }
    }
    Some(batch)
}

/// A batch failed. If the database is away, everything goes back to the queue for later. Otherwise
/// one message may be at fault: retry one by one, and dead-letter a message that fails again after
/// already having been redelivered, so it can neither block the queue nor loop forever.
async fn recover(
    fanout: &Fanout,
    channel: &lapin::Channel,
    pool: &deadpool_postgres::Pool,
    batch: &[lapin::message::Delivery],
    error: anyhow::Error,
) -> anyhow::Result<()> {
    tracing::warn!(
        error = format!("{error:#}"),
        events = batch.len(),
        "batch failed"
    );
    if !webhooks_core::db::is_reachable(pool).await {
        if let Some(last) = batch.last() {
            let requeue = BasicNackOptions {
                multiple: true,
                requeue: true,
            };
            channel.basic_nack(last.delivery_tag, requeue).await?;
        }
        // The database is away: pause so the outage does not become a hot loop.
        tokio::time::sleep(Duration::from_millis(500)).await;
        return Ok(());
    }
    for delivery in batch {
        let Err(e) = fanout.handle(channel, std::slice::from_ref(delivery)).await else {
            continue;
        };
        if delivery.redelivered {
            fanout.give_up(channel, delivery, &e).await?;
        } else {
            let requeue = BasicNackOptions {
                multiple: false,
                requeue: true,
            };
            channel.basic_nack(delivery.delivery_tag, requeue).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::next_batch;
    use futures::StreamExt;
    use std::time::Duration;
    use tokio::time::Instant;

    /// Items arriving at the given milliseconds after the start (time is paused, so exactly then).
    fn arriving(at_ms: &'static [u64]) -> impl futures::stream::FusedStream<Item = u64> + Unpin {
        let start = Instant::now();
        let stream = futures::stream::unfold(0, move |i| async move {
            let at = *at_ms.get(i)?;
            tokio::time::sleep_until(start + Duration::from_millis(at)).await;
            Some((at, i + 1))
        });
        Box::pin(stream.fuse())
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_linger_a_batch_is_what_has_already_arrived() {
        let mut events = arriving(&[0, 0, 0, 1, 7]);
        let none = Duration::ZERO;
        assert_eq!(next_batch(&mut events, 2, none).await, Some(vec![0, 0]));
        assert_eq!(next_batch(&mut events, 2, none).await, Some(vec![0]));
        assert_eq!(next_batch(&mut events, 2, none).await, Some(vec![1]));
        assert_eq!(next_batch(&mut events, 2, none).await, Some(vec![7]));
        assert_eq!(next_batch(&mut events, 2, none).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_linger_gathers_what_arrives_soon_after_the_first_and_no_more() {
        let mut events = arriving(&[0, 1, 2, 4, 10, 11, 12, 13, 14]);
        let linger = Duration::from_millis(3);
        let started = Instant::now();
        // 4 arrives 1 ms after the deadline (0 + 3): it opens the next batch.
        assert_eq!(
            next_batch(&mut events, 10, linger).await,
            Some(vec![0, 1, 2])
        );
        assert_eq!(started.elapsed(), Duration::from_millis(3));
        assert_eq!(next_batch(&mut events, 10, linger).await, Some(vec![4]));
        // A full batch does not wait out the linger.
        assert_eq!(
            next_batch(&mut events, 3, linger).await,
            Some(vec![10, 11, 12])
        );
        assert_eq!(started.elapsed(), Duration::from_millis(12));
        assert_eq!(
            next_batch(&mut events, 10, linger).await,
            Some(vec![13, 14])
        );
        assert_eq!(next_batch(&mut events, 10, linger).await, None);
    }
}
