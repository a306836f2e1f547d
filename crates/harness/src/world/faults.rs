//! Faults a test can inflict on its own world without touching other tests: cut its broker
//! connections, take its database away.

use std::time::Duration;

use super::{World, open_channel};
use crate::faults::{DatabaseAway, close_connection, connections};

impl World {
    /// Opens the test's own broker connection again (after a broker restart).
    pub async fn reconnect_broker(&mut self) {
        let (amqp, channel) = open_channel(self.dispatcher_config.common.amqp_url.expose()).await;
        self.amqp = amqp;
        self.channel = channel;
    }

    /// Closes this world's service connections from the broker's side, as a broker restart or a
    /// network cut does, without touching other tests' connections. Waits first until both
    /// services are connected (after an earlier cut, until they have reconnected).
    pub async fn drop_service_connections(&self) {
        let prefix = &self.names.prefix;
        let ids = crate::wait::until(
            "both services connected",
            Duration::from_secs(30),
            || async {
                let ids = connections(prefix)
                    .await
                    .expect("rabbitmqctl list_connections");
                (ids.len() >= 2).then_some(ids)
            },
        )
        .await;
        for id in ids {
            close_connection(&id, "test: connection cut")
                .await
                .expect("rabbitmqctl close_connection");
        }
    }

    /// Takes this world's database away for `outage` (existing connections are cut, new ones are
    /// refused), then lets it back, as a database restart does.
    pub async fn database_outage(&self, outage: Duration) {
        let away = DatabaseAway::begin(&self.pg_server, &self.names.database)
            .await
            .expect("cut the database");
        tokio::time::sleep(outage).await;
        away.restore().await.expect("restore the database");
    }
}
