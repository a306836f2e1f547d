//! Publishes queued disable notifications (contract §5) from the outbox table with publisher
//! confirms, deleting each row only after the broker confirmed it. Rows are taken locked, skipping
//! those another sender has taken ([`crate::store::outbox::take`]), so several senders never
//! publish the same notification.

use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::{self, ConfirmedPublisher, Outgoing, Topology};

use crate::metrics::Metrics;
use crate::store;

const ROUTING_KEY: &str = "webhook.disabled";

/// Publishes until `stop` is cancelled; returns the first error (the broker session then restarts).
pub async fn run(
    pool: Pool,
    publisher: ConfirmedPublisher,
    topology: Topology,
    wake: Arc<Notify>,
    metrics: Metrics,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    loop {
        loop {
            let published = publish_some(&pool, &publisher, &topology).await?;
            metrics.notifications_published.inc_by(published as u64);
            if published == 0 {
                break;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            _ = wake.notified() => {}
            // Also look now and then: another instance may have queued rows and then died.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn publish_some(
    pool: &Pool,
    publisher: &ConfirmedPublisher,
    topology: &Topology,
) -> anyhow::Result<usize> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let queued = store::outbox::take(&tx).await?;
    if queued.is_empty() {
        return Ok(0);
    }
    let exchange = topology.notifications_exchange();
    let messages = queued
        .iter()
        .map(|n| Outgoing {
            exchange: &exchange,
            routing_key: ROUTING_KEY,
            body: &n.body,
            properties: amqp::persistent_json(),
        })
        .collect();
    publisher.publish_all(messages).await?;
    let ids: Vec<i64> = queued.iter().map(|n| n.id).collect();
    store::outbox::delete(&tx, &ids).await?;
    tx.commit().await?;
    Ok(ids.len())
}
