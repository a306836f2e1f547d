//! A private RabbitMQ node for tests that restart the broker: its own node name, port and data
//! directory, so stopping it disturbs no other test running in parallel.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct PrivateBroker {
    pub port: u16,
    node: String,
    dir: PathBuf,
    server: std::process::Child,
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

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
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
    /// Starts a node and waits (up to a minute) until it accepts connections.
    pub async fn start() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let node = format!("whtest{id}@localhost");
        let dir = std::env::temp_dir().join(format!("whtest-rabbit-{id}"));
        std::fs::create_dir_all(&dir).expect("broker directory");
        let port = free_port();
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
        let broker = Self {
            port,
            node,
            dir,
            server,
        };
        crate::wait::until(
            "the private broker to listen",
            Duration::from_secs(90),
            || async { port_open(broker.port).then_some(()) },
        )
        .await;
        broker
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
        crate::wait::until(
            "the private broker to listen again",
            Duration::from_secs(60),
            || async { port_open(self.port).then_some(()) },
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
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
