//! A private RabbitMQ node that a test configures before it boots: its ports (AMQP, Erlang
//! distribution and, with TLS, AMQPS) are chosen free at once, so services can be pointed at it
//! while it is still down, and it may serve TLS with a test's certificate. Its own node name and
//! directory keep it apart from the machine's broker and from every other test; dropping it stops
//! the node and removes the directory.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

/// The certificate (with its chain), key and authority, all PEM, of a node that serves TLS.
pub struct NodeTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

pub struct PrivateRabbit {
    /// Plain AMQP, for the test's own publishing.
    pub port: u16,
    /// AMQP over TLS, when the node serves it.
    pub tls_port: Option<u16>,
    dist_port: u16,
    node: String,
    dir: PathBuf,
    server: Option<std::process::Child>,
}

/// Distinct free ports, all held at once while they are chosen so that no two are the same.
fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    held.iter()
        .map(|l| l.local_addr().expect("address").port())
        .collect()
}

fn port_open(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

impl PrivateRabbit {
    /// Chooses the ports and writes the node's configuration; boots nothing.
    pub fn configure(tls: Option<&NodeTls>) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        let node = format!("whtest{id}@localhost");
        let dir = std::env::temp_dir().join(format!("whtest-rabbitmq-{id}"));
        std::fs::create_dir_all(&dir).expect("node directory");
        let ports = free_ports(3);
        let mut config = format!("listeners.tcp.local = 127.0.0.1:{}\n", ports[0]);
        let tls_port = tls.map(|tls| {
            for (name, pem) in [
                ("server.pem", &tls.cert_pem),
                ("server.key", &tls.key_pem),
                ("ca.pem", &tls.ca_pem),
            ] {
                std::fs::write(dir.join(name), pem).expect("TLS file");
            }
            config.push_str(&format!(
                "listeners.ssl.local = 127.0.0.1:{}\n\
                 ssl_options.cacertfile = {}\n\
                 ssl_options.certfile = {}\n\
                 ssl_options.keyfile = {}\n\
                 ssl_options.verify = verify_none\n\
                 ssl_options.fail_if_no_peer_cert = false\n",
                ports[2],
                dir.join("ca.pem").display(),
                dir.join("server.pem").display(),
                dir.join("server.key").display(),
            ));
            ports[2]
        });
        std::fs::write(dir.join("rabbitmq.conf"), config).expect("config");
        std::fs::write(dir.join("plugins"), "[].\n").expect("plugins");
        // The server drops to the rabbitmq user, which must own its files.
        let _ = Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&dir)
            .status();
        Self {
            port: ports[0],
            tls_port,
            dist_port: ports[1],
            node,
            dir,
            server: None,
        }
    }

    /// Boots the node and waits (up to 90 s) until every listener accepts connections.
    pub async fn boot(&mut self) {
        assert!(self.server.is_none(), "the node runs already");
        let dir = &self.dir;
        let server = Command::new("rabbitmq-server")
            .env("RABBITMQ_NODENAME", &self.node)
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq.conf"))
            .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", dir.join("log"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("plugins"))
            .env("RABBITMQ_PID_FILE", dir.join("pid"))
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rabbitmq-server starts");
        self.server = Some(server);
        let ports: Vec<u16> = std::iter::once(self.port).chain(self.tls_port).collect();
        crate::wait::until(
            "the private RabbitMQ node to listen",
            Duration::from_secs(90),
            || async { ports.iter().all(|p| port_open(*p)).then_some(()) },
        )
        .await;
    }

    /// Plain AMQP to the node.
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// AMQP over TLS to the node, reached by `host` (the name its certificate must carry).
    pub fn tls_url(&self, host: &str) -> String {
        let port = self.tls_port.expect("a node configured with TLS");
        format!("amqps://guest:guest@{host}:{port}/%2f")
    }
}

impl Drop for PrivateRabbit {
    fn drop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let _ = Command::new("rabbitmqctl")
                .args(["-q", "-n", &self.node, "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            let _ = server.kill();
            let _ = server.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
