//! A private RabbitMQ node for tests that restart the broker: its own node name, port and data
//! directory, so stopping it disturbs no other test running in parallel.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct PrivateBroker {
    pub port: u16,
    node: String,
    dir: PathBuf,
    /// Behind a lock so that a wait may look whether it stopped while it is shared.
    server: std::sync::Mutex<std::process::Child>,
}

fn free_port() -> u16 {
    // The node also needs port + 1 for Erlang distribution: look for a free pair.
    loop {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        let port = listener.local_addr().expect("address").port();
        if port < 65_000 && std::net::TcpListener::bind(("127.0.0.1", port + 1)).is_ok() {
            return port;
        }
    }
}

/// True once a broker at `url` completes an AMQP handshake: an open port may be another
/// process's listener (see [`PrivateBroker::start`]).
async fn accepts(url: &str) -> bool {
    let connect = lapin::Connection::connect(url, lapin::ConnectionProperties::default());
    match tokio::time::timeout(Duration::from_secs(5), connect).await {
        Ok(Ok(connection)) => {
            let _ = connection.close(200, "ready".into()).await;
            true
        }
        _ => false,
    }
}

fn rabbitmqctl(node: &str, args: &[&str]) {
    let status = Command::new("rabbitmqctl")
        .args(["-q", "-n", node])
        .args(args)
        .stdout(Stdio::null())
        .status()
        .expect("rabbitmqctl runs");
    assert!(status.success(), "rabbitmqctl {args:?} failed");
}

impl PrivateBroker {
    /// Starts a node and waits until it accepts connections. The port it is given was free when
    /// chosen, but another test's listener may take it before the node binds it: the node then
    /// stops, and it is started again on other ports (three tries).
    pub async fn start() -> Self {
        for _ in 0..3 {
            if let Some(broker) = Self::try_start(free_port()).await {
                return broker;
            }
        }
        panic!("the private broker did not start on three pairs of ports");
    }

    /// One try, on `port` (and `port + 1` for Erlang distribution): `None` when the node stopped
    /// before it accepted a connection.
    async fn try_start(port: u16) -> Option<Self> {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let node = format!("whtest{id}@localhost");
        let dir = std::env::temp_dir().join(format!("whtest-rabbit-{id}"));
        std::fs::create_dir_all(&dir).expect("broker directory");
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{port}\n"),
        )
        .expect("config");
        std::fs::write(dir.join("plugins"), "[].\n").expect("plugins");
        // The server drops to the rabbitmq user, which must own its files.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        let server = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_DIST_PORT", (port + 1).to_string())
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts");
        // Built before the wait, so that a wait that times out still stops the node.
        let broker = Self {
            port,
            node,
            dir,
            server: std::sync::Mutex::new(server),
        };
        let url = broker.url();
        let accepted = crate::wait::until(
            "the private broker to accept a connection or stop",
            Duration::from_secs(90),
            || async {
                if accepts(&url).await {
                    return Some(true);
                }
                let stopped = broker.server.lock().expect("server").try_wait();
                matches!(stopped, Ok(Some(_))).then_some(false)
            },
        )
        .await;
        // One that stopped is dropped here, and its directory goes.
        accepted.then_some(broker)
    }

    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Stops the broker application (connections drop, the port closes); data stays.
    pub fn stop_app(&self) {
        rabbitmqctl(&self.node, &["stop_app"]);
    }

    pub async fn start_app(&self) {
        rabbitmqctl(&self.node, &["start_app"]);
        let url = self.url();
        crate::wait::until(
            "the private broker to accept connections again",
            Duration::from_secs(60),
            || async { accepts(&url).await.then_some(()) },
        )
        .await;
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl")
            .args(["-q", "-n", &self.node, "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if let Ok(server) = self.server.get_mut() {
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A port another listener took after it was chosen: the handshake fails against that
    /// listener, the node stops, and the try says so rather than hand out a broker that is not one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_whose_port_was_taken_is_not_taken_for_a_broker() {
        let port = free_port();
        let taken = std::net::TcpListener::bind(("127.0.0.1", port)).expect("take the port");
        // The other listener answers nothing AMQP would: it closes what it accepts.
        std::thread::spawn(move || {
            for stream in taken.incoming() {
                drop(stream);
            }
        });
        assert!(PrivateBroker::try_start(port).await.is_none());
    }
}
