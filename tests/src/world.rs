//! One test's world: a fresh database, broker names under a unique prefix, a receiver on port 0,
//! and the real dispatcher and sender started in-process with short timings. Dropping the world
//! stops the services and deletes the database, queues and exchanges it created.

use clap::Parser;
use lapin::options::ConfirmSelectOptions;
use lapin::{Channel, Connection, ConnectionProperties};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::Topology;
use webhooks_core::clock::Clock;

use crate::receiver::Receiver;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const TOKEN: &str = "test-admin-token";
/// The key both services sign and check hand-offs with.
pub const HANDOFF_KEY: &str = "4b7e19c2d05a8f36e1c94b20a7d5f38e";

/// A running service and the token that stops it.
struct Running {
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
    pub(crate) http: reqwest::Client,
    pub(crate) amqp: Connection,
    pub(crate) channel: Channel,
    dispatcher: Option<Running>,
    replicas: Vec<Running>,
    senders: Vec<Running>,
    pg_server: String,
    /// Set once `finish` removed everything; otherwise dropping the world does.
    finished: bool,
}

/// Knobs a test may turn before the services start.
pub struct Options {
    /// The broker every part of the world uses (the machine's by default).
    pub amqp_url: String,
    pub dispatcher: webhooks_dispatcher::Config,
    pub sender: webhooks_sender::Config,
    pub senders: usize,
    /// The PostgreSQL server (no database name) the world's database is created on (the
    /// machine's by default).
    pub pg_server: String,
}

impl Options {
    /// A shorter `DELIVERY_TIMEOUT`, for tests whose endpoints hang (the timeout runs on real
    /// time). The hand-off lease keeps the room over the timeout that production has (30 s over
    /// 15 s), so fresh deliveries are still carried, not claimed.
    pub fn delivery_timeout(&mut self, timeout: Duration) {
        self.sender.delivery_timeout = timeout;
        self.dispatcher.handoff_grace = timeout + Duration::from_secs(15);
    }

    /// Retries after 200 ms (at most 1 s apart), for services run as processes of their own:
    /// those run on the system clock, which a test cannot move. The breaker's pause follows
    /// `RETRY_INITIAL` down.
    pub fn quick_retries(&mut self) {
        self.sender.retry_initial = Duration::from_millis(200);
        self.sender.retry_max = Duration::from_secs(1);
    }
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
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
        let database_url = format!("{PG_SERVER}/wh_{id}");
        let prefix = format!("t{id}.");
        let events_exchange = format!("t{id}.domain.events");
        let receiver = Receiver::start().await;

        // The production defaults of every setting, timings included: a test that shortens one
        // says why, and shortens the settings it interacts with in proportion (see `Options`).
        // Time-driven rules (retries, the breaker, the disable window) follow `clock`, which a
        // test moves forward instead.
        let mut dispatcher = webhooks_dispatcher::Config::parse_from(["webhooks-dispatcher"]);
        dispatcher.common.amqp_url = AMQP_URL.into();
        dispatcher.common.database_url = database_url.as_str().into();
        dispatcher.common.amqp_prefix = prefix.clone();
        // Many worlds run at once against one PostgreSQL (100 connections).
        dispatcher.common.database_pool_size = 4;
        dispatcher.http_addr = "127.0.0.1:0".parse().expect("addr");
        dispatcher.admin_token = Some(TOKEN.into());
        dispatcher.handoff_key = Some(HANDOFF_KEY.into());
        dispatcher.events_exchange = events_exchange.clone();
        // The receiver listens on loopback.
        dispatcher.allowed_targets = vec!["127.0.0.0/8".parse().expect("cidr")];

        let mut sender = webhooks_sender::Config::parse_from(["webhooks-sender"]);
        sender.common = dispatcher.common.clone();
        sender.http_addr = "127.0.0.1:0".parse().expect("addr");
        sender.allowed_targets = dispatcher.allowed_targets.clone();
        sender.handoff_key = Some(HANDOFF_KEY.into());

        let mut options = Options {
            amqp_url: AMQP_URL.to_owned(),
            dispatcher,
            sender,
            senders: 1,
            pg_server: PG_SERVER.to_owned(),
        };
        adjust(&mut options);
        let database_url = format!("{}/wh_{id}", options.pg_server);
        options.dispatcher.common.database_url = database_url.as_str().into();
        options.sender.common.database_url = database_url.as_str().into();
        options.dispatcher.common.amqp_url = options.amqp_url.as_str().into();
        options.sender.common.amqp_url = options.amqp_url.as_str().into();

        let clock = Clock::shifted();
        let (amqp, channel) = open_channel(&options.amqp_url).await;

        let mut world = World {
            id,
            database_url,
            topology: Topology::new(&prefix, &events_exchange),
            clock,
            receiver,
            api_base: String::new(),
            sender_addr: "127.0.0.1:0".parse().expect("addr"),
            dispatcher_config: options.dispatcher,
            sender_config: options.sender,
            http: reqwest::Client::new(),
            amqp,
            channel,
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
        (Running { stop, done }, addr)
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
        self.sender_addr = service.http_addr;
        self.wait_ready(service.http_addr).await;
        let done = tokio::spawn(service.wait());
        self.senders.push(Running { stop, done });
    }

    /// Stops every sender gracefully.
    pub async fn stop_senders(&mut self) {
        for running in self.senders.drain(..) {
            running.stop().await.expect("sender stops cleanly");
        }
    }

    /// Starts the `webhooks-sender` binary as a process of its own, configured like the in-process
    /// senders (but on the system clock), and waits until it is ready.
    pub async fn sender_process(&self) -> crate::process::Process {
        self.sender_process_with(&[]).await
    }

    /// [`World::sender_process`] with more variables (or others in place of its own).
    pub async fn sender_process_with(&self, extra: &[(&str, String)]) -> crate::process::Process {
        let c = &self.sender_config;
        let env = vec![
            (
                "DELIVERY_TIMEOUT",
                webhooks_core::duration::format(c.delivery_timeout),
            ),
            (
                "RETRY_INITIAL",
                webhooks_core::duration::format(c.retry_initial),
            ),
            ("RETRY_MAX", webhooks_core::duration::format(c.retry_max)),
            (
                "DISABLE_AFTER",
                webhooks_core::duration::format(c.disable_after),
            ),
            (
                "SCHEDULER_INTERVAL",
                webhooks_core::duration::format(c.scheduler_interval),
            ),
            ("BREAKER_FAILURES", c.breaker_failures.to_string()),
        ];
        let env = [env.as_slice(), extra].concat();
        let process = crate::process::Process::spawn("webhooks-sender", &self.common_env(), &env);
        self.wait_ready(process.addr).await;
        process
    }

    /// Starts the `webhooks-dispatcher` binary as a process of its own and waits until it is ready.
    pub async fn dispatcher_process(&self) -> crate::process::Process {
        self.dispatcher_process_with(&[]).await
    }

    /// [`World::dispatcher_process`] with more variables (or others in place of its own).
    pub async fn dispatcher_process_with(
        &self,
        extra: &[(&str, String)],
    ) -> crate::process::Process {
        let process = self.spawn_dispatcher_process(extra, &[]);
        self.wait_ready(process.addr).await;
        process
    }

    /// Starts the `webhooks-dispatcher` binary with `extra` variables and without those in
    /// `unset`, and returns at once (it may never become ready).
    pub fn spawn_dispatcher_process(
        &self,
        extra: &[(&str, String)],
        unset: &[&str],
    ) -> crate::process::Process {
        let c = &self.dispatcher_config;
        let env = vec![
            ("ADMIN_TOKEN", TOKEN.to_owned()),
            ("EVENTS_EXCHANGE", c.events_exchange.clone()),
            (
                "HANDOFF_GRACE",
                webhooks_core::duration::format(c.handoff_grace),
            ),
        ];
        let env: Vec<(&str, String)> = env
            .into_iter()
            .filter(|(name, _)| !unset.contains(name))
            .chain(extra.iter().cloned())
            .collect();
        crate::process::Process::spawn_without(
            "webhooks-dispatcher",
            &self.common_env(),
            &env,
            unset,
        )
    }

    fn common_env(&self) -> Vec<(&'static str, String)> {
        let c = &self.sender_config.common;
        vec![
            ("AMQP_URL", c.amqp_url.expose().to_owned()),
            ("DATABASE_URL", c.database_url.expose().to_owned()),
            ("AMQP_PREFIX", c.amqp_prefix.clone()),
            ("ALLOWED_TARGETS", "127.0.0.0/8".to_owned()),
            ("DATABASE_POOL_SIZE", "4".to_owned()),
            ("HANDOFF_KEY", HANDOFF_KEY.to_owned()),
        ]
    }

    /// Waits until a service's /readyz says 200 (its queues are declared and consumed).
    pub async fn wait_ready(&self, addr: std::net::SocketAddr) {
        crate::wait::until(
            "the service to be ready",
            Duration::from_secs(20),
            || async {
                let response = self
                    .http
                    .get(format!("http://{addr}/readyz"))
                    .send()
                    .await
                    .ok()?;
                (response.status() == 200).then_some(())
            },
        )
        .await;
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
        remove_world(
            &self.id,
            &self.topology,
            self.dispatcher_config.common.amqp_url.expose(),
            &self.pg_server,
        )
        .await;
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
        let (id, topology) = (self.id.clone(), self.topology.clone());
        let url = self.dispatcher_config.common.amqp_url.expose().to_owned();
        let pg_server = self.pg_server.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(remove_world(&id, &topology, &url, &pg_server));
            Some(())
        })
        .join();
    }
}

/// Deletes a world's queues, exchanges and database.
async fn remove_world(id: &str, topology: &Topology, amqp_url: &str, pg_server: &str) {
    let connect = Connection::connect(amqp_url, ConnectionProperties::default());
    if let Ok(Ok(amqp)) = tokio::time::timeout(Duration::from_secs(5), connect).await {
        let _ = webhooks_core::amqp::delete_topology(&amqp, topology, &[]).await;
        let _ = amqp.close(200, "done".into()).await;
    }
    if let Ok((client, connection)) =
        tokio_postgres::connect(&format!("{pg_server}/postgres"), tokio_postgres::NoTls).await
    {
        tokio::spawn(connection);
        let _ = client
            .batch_execute(&format!("DROP DATABASE IF EXISTS wh_{id} WITH (FORCE)"))
            .await;
    }
}

pub(crate) async fn open_channel(url: &str) -> (Connection, Channel) {
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
