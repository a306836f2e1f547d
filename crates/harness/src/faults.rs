//! Faults a test can inflict on its own world without touching other tests: cut its broker
//! connections, take its database away, and watch readiness.

use std::time::Duration;

use crate::world::{PG_SERVER, World};

impl World {
    /// Opens the test's own broker connection again (after a broker restart).
    pub async fn reconnect_broker(&mut self) {
        let (amqp, channel) =
            crate::world::open_channel(self.dispatcher_config.common.amqp_url.expose()).await;
        self.amqp = amqp;
        self.channel = channel;
    }

    /// The dispatcher's address (API, /metrics, /readyz).
    pub fn dispatcher_addr(&self) -> std::net::SocketAddr {
        self.api_base
            .trim_start_matches("http://")
            .trim_end_matches("/api/v1")
            .parse()
            .expect("dispatcher address")
    }

    /// The status /readyz answers (0 when nothing answers).
    pub async fn readyz(&self, addr: std::net::SocketAddr) -> u16 {
        match self.http.get(format!("http://{addr}/readyz")).send().await {
            Ok(response) => response.status().as_u16(),
            Err(_) => 0,
        }
    }

    /// The broker's ids of this world's service connections (their names carry the prefix).
    fn service_connections(&self) -> Vec<String> {
        let listed = std::process::Command::new("rabbitmqctl")
            .args(["-q", "list_connections", "pid", "client_properties"])
            .output()
            .expect("rabbitmqctl list_connections");
        let prefix = &self.dispatcher_config.common.amqp_prefix;
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .filter(|line| line.contains(prefix.as_str()))
            .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
            .collect()
    }

    /// Closes this world's service connections from the broker's side, as a broker restart or a
    /// network cut does, without touching other tests' connections. Waits first until both
    /// services are connected (after an earlier cut, until they have reconnected).
    pub async fn drop_service_connections(&self) {
        let pids = crate::wait::until(
            "both services connected",
            Duration::from_secs(30),
            || async {
                let pids = self.service_connections();
                (pids.len() >= 2).then_some(pids)
            },
        )
        .await;
        for pid in pids {
            let status = std::process::Command::new("rabbitmqctl")
                .args(["-q", "close_connection", &pid, "test: connection cut"])
                .status()
                .expect("rabbitmqctl close_connection");
            assert!(status.success());
        }
    }

    /// Takes this world's database away for `outage` (existing connections are cut, new ones are
    /// refused), then lets it back, as a database restart does.
    pub async fn database_outage(&self, outage: Duration) {
        let (admin, connection) =
            tokio_postgres::connect(&format!("{PG_SERVER}/postgres"), tokio_postgres::NoTls)
                .await
                .expect("admin connection");
        tokio::spawn(connection);
        let name = format!("wh_{}", self.id);
        admin
            .batch_execute(&format!(
                "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
                 SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}';"
            ))
            .await
            .expect("cut the database");
        tokio::time::sleep(outage).await;
        admin
            .batch_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
            .await
            .expect("restore the database");
    }
}
