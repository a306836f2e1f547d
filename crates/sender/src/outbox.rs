//! Publishes queued disable notifications (contract §5) from the outbox table with publisher
//! confirms, deleting each row only after the broker confirmed it. Rows are taken with
//! `FOR UPDATE SKIP LOCKED`, so several senders never publish the same notification.

use deadpool_postgres::Pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::{self, ConfirmedPublisher, Outgoing, Topology};

use crate::metrics::Metrics;

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
    let rows = tx
        .query(
            "SELECT id, body FROM notification_outbox ORDER BY id LIMIT 100 FOR UPDATE SKIP LOCKED",
            &[],
        )
        .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let exchange = topology.notifications_exchange();
    let bodies: Vec<Vec<u8>> = rows.iter().map(|row| row.get(1)).collect();
    let messages = bodies
        .iter()
        .map(|body| Outgoing {
            exchange: &exchange,
            routing_key: ROUTING_KEY,
            body,
            properties: amqp::persistent_json(),
        })
        .collect();
    publisher.publish_all(messages).await?;
    let ids: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    tx.execute(
        "DELETE FROM notification_outbox WHERE id = ANY($1)",
        &[&ids],
    )
    .await?;
    tx.commit().await?;
    Ok(ids.len())
}
