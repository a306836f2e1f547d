//! One test's world: fresh [`Names`] (a database, broker names under a unique prefix), a receiver
//! on port 0, and the real dispatcher and sender started in-process with the production defaults
//! on a clock the test moves. Dropping the world stops the services and deletes the database,
//! queues and exchanges it created.
//!
//! # Layout
//! - [`options`]: what a test may set before the services start.
//! - [`processes`]: the services as processes of their own, and readiness.
//! - [`api`]: the management API and the metrics, as users call them.
//! - [`queues`]: the events exchange and the queues the services fill.
//! - [`database`]: the world's database and its clock.
//! - [`faults`]: cutting the world's broker connections, taking its database away.

mod api;
mod database;
mod faults;
mod options;
mod processes;
mod queues;

use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::Topology;
use webhooks_core::clock::Clock;

pub use crate::service::HANDOFF_KEY;
pub use database::DELIVERY_ID_NOW;
pub use options::{AMQP_URL, Options, PG_SERVER, TOKEN};

use crate::names::{self, Names};
use crate::receiver::Receiver;

/// A running service, where it listens, and the token that stops it.
struct Running {
    addr: std::net::SocketAddr,
    stop: CancellationToken,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.done.await?
    }
}

pub struct World {
    pub id: String,
    pub database_url: String,
    pub topology: Topology,
    pub clock: Clock,
    pub receiver: Receiver,
    pub api_base: String,
    pub sender_addr: std::net::SocketAddr,
    pub dispatcher_config: webhooks_dispatcher::Config,
    pub sender_config: webhooks_sender::Config,
    http: reqwest::Client,
    amqp: Connection,
    channel: Channel,
    names: Names,
    dispatcher: Option<Running>,
    replicas: Vec<Running>,
    senders: Vec<Running>,
    pg_server: String,
    /// Set once `finish` removed everything; otherwise dropping the world does.
    finished: bool,
}

impl World {
    /// A world with the production defaults.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A world whose configuration `adjust` may change first.
    pub async fn start_with(adjust: impl FnOnce(&mut Options)) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        webhooks_core::telemetry::init(webhooks_core::telemetry::LogFormat::Text);
        let names = Names::fresh("t");
        let receiver = Receiver::start().await;
        let mut options = Options::defaults(&names);
        adjust(&mut options);
        let database_url = options.place(&names);
        let clock = Clock::shifted();
        let (amqp, channel) = open_channel(&options.amqp_url).await;

        let mut world = World {
            id: names.id.clone(),
            database_url,
            topology: names.topology(),
            clock,
            receiver,
            api_base: String::new(),
            sender_addr: "127.0.0.1:0".parse().expect("addr"),
            dispatcher_config: options.dispatcher,
            sender_config: options.sender,
            http: reqwest::Client::new(),
            amqp,
            channel,
            names,
            dispatcher: None,
            replicas: Vec::new(),
            senders: Vec::new(),
            pg_server: options.pg_server,
            finished: false,
        };
        world.start_dispatcher().await;
        for _ in 0..options.senders {
            world.start_sender().await;
        }
        world
    }

    pub async fn start_dispatcher(&mut self) {
        let (running, addr) = self.run_dispatcher("dispatcher starts").await;
        self.api_base = format!("http://{addr}/api/v1");
        self.dispatcher = Some(running);
    }

    /// Starts a second dispatcher against the same broker and database; returns its address.
    /// Webhooks made with [`World::webhook`] from then on are in its matching index before that
    /// returns.
    pub async fn start_dispatcher_replica(&mut self) -> std::net::SocketAddr {
        let (running, addr) = self.run_dispatcher("dispatcher replica starts").await;
        self.replicas.push(running);
        addr
    }

    /// Starts a dispatcher in this process and waits until it is ready.
    async fn run_dispatcher(&self, expect: &str) -> (Running, std::net::SocketAddr) {
        let stop = CancellationToken::new();
        let service = webhooks_dispatcher::start(
            self.dispatcher_config.clone(),
            self.clock.clone(),
            stop.clone(),
        )
        .await
        .expect(expect);
        let addr = service.http_addr;
        self.wait_ready(addr).await;
        let done = tokio::spawn(service.wait());
        (Running { addr, stop, done }, addr)
    }

    pub async fn stop_dispatcher(&mut self) {
        if let Some(running) = self.dispatcher.take() {
            running.stop().await.expect("dispatcher stops cleanly");
        }
    }

    pub async fn start_sender(&mut self) {
        let stop = CancellationToken::new();
        let service =
            webhooks_sender::start(self.sender_config.clone(), self.clock.clone(), stop.clone())
                .await
                .expect("sender starts");
        let addr = service.http_addr;
        self.sender_addr = addr;
        self.wait_ready(addr).await;
        let done = tokio::spawn(service.wait());
        self.senders.push(Running { addr, stop, done });
    }

    /// Stops every sender gracefully.
    pub async fn stop_senders(&mut self) {
        for running in self.senders.drain(..) {
            running.stop().await.expect("sender stops cleanly");
        }
    }

    /// Where the dispatcher replicas listen.
    pub fn replica_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.replicas.iter().map(|r| r.addr).collect()
    }

    /// Stops everything and removes what the world created.
    pub async fn finish(mut self) {
        self.stop_senders().await;
        self.stop_dispatcher().await;
        for replica in self.replicas.drain(..) {
            replica.stop().await.expect("replica stops cleanly");
        }
        self.cleanup().await;
    }

    async fn cleanup(&mut self) {
        let _ = self.amqp.close(200, "done".into()).await;
        let amqp_url = self.dispatcher_config.common.amqp_url.expose();
        let _ = names::remove(&self.names, amqp_url, &self.pg_server, &[]).await;
        self.finished = true;
    }
}

/// A test that panicked never reaches `finish`: remove what it created all the same.
impl Drop for World {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // Stop the services first, or they would declare their queues again.
        let running: Vec<&Running> = self
            .dispatcher
            .iter()
            .chain(&self.replicas)
            .chain(&self.senders)
            .collect();
        for service in &running {
            service.stop.cancel();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while running.iter().any(|s| !s.done.is_finished()) && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let names = self.names.clone();
        let url = self.dispatcher_config.common.amqp_url.expose().to_owned();
        let pg_server = self.pg_server.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime
                .block_on(names::remove(&names, &url, &pg_server, &[]))
                .ok()
        })
        .join();
    }
}

/// A broker connection of the test's own, with a channel in confirm mode.
async fn open_channel(url: &str) -> (Connection, Channel) {
    let amqp = Connection::connect(url, ConnectionProperties::default())
        .await
        .expect("test broker connection");
    let channel = amqp.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    (amqp, channel)
}
