//! For tests and the benchmark, which set up throwaway installations.

use lapin::Connection;
use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};

use super::Topology;

/// Deletes every queue and exchange of `topology`, and `extra_queues`: for benchmarks and tests
/// that set up throwaway installations. What is not there is skipped; each delete gets a channel
/// of its own, since a failed delete closes its channel.
pub async fn delete_topology(
    connection: &Connection,
    topology: &Topology,
    extra_queues: &[String],
) -> Result<(), lapin::Error> {
    let queues = [
        topology.dispatcher_queue(),
        topology.dead_letter_queue(),
        topology.deliveries_queue(),
        topology.notifications_queue(),
    ];
    for queue in queues.iter().chain(extra_queues) {
        let channel = connection.create_channel().await?;
        let _ = channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    for exchange in [
        topology.events_exchange().to_owned(),
        topology.notifications_exchange(),
    ] {
        let channel = connection.create_channel().await?;
        let _ = channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await;
    }
    Ok(())
}
