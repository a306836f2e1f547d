//! One test's world: a fresh database, broker names under a unique prefix, a receiver on port 0,
//! and the real dispatcher and sender started in-process with short timings. Dropping the world
//! stops the services and deletes the database, queues and exchanges it created.

use clap::Parser;
use lapin::options::{
    BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeleteOptions,
    QueueDeleteOptions,
};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::{Value, json};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webhooks_core::amqp::Topology;
use webhooks_core::clock::Clock;

use crate::receiver::Receiver;

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const PG_SERVER: &str = "postgres://postgres@127.0.0.1:5432";
pub const TOKEN: &str = "test-admin-token";

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
    http: reqwest::Client,
    amqp: Connection,
    channel: Channel,
    dispatcher: Option<Running>,
    replicas: Vec<Running>,
    senders: Vec<Running>,
}

/// Knobs a test may turn before the services start.
pub struct Options {
    /// The broker every part of the world uses (the machine's by default).
    pub amqp_url: String,
    pub dispatcher: webhooks_dispatcher::Config,
    pub sender: webhooks_sender::Config,
    pub senders: usize,
}

impl World {
    /// A world with default test timings.
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

        let mut dispatcher = webhooks_dispatcher::Config::parse_from(["webhooks-dispatcher"]);
        dispatcher.common.amqp_url = AMQP_URL.into();
        dispatcher.common.database_url = database_url.clone();
        dispatcher.common.amqp_prefix = prefix.clone();
        dispatcher.common.database_pool_size = 4;
        dispatcher.common.shutdown_grace = Duration::from_secs(10);
        dispatcher.http_addr = "127.0.0.1:0".parse().expect("addr");
        dispatcher.admin_token = Some(TOKEN.into());
        dispatcher.events_exchange = events_exchange.clone();
        dispatcher.allowed_targets = vec!["127.0.0.0/8".parse().expect("cidr")];
        dispatcher.handoff_grace = Duration::from_secs(2);

        let mut sender = webhooks_sender::Config::parse_from(["webhooks-sender"]);
        sender.common = dispatcher.common.clone();
        sender.http_addr = "127.0.0.1:0".parse().expect("addr");
        sender.allowed_targets = dispatcher.allowed_targets.clone();
        sender.delivery_timeout = Duration::from_secs(2);
        sender.retry_initial = Duration::from_millis(200);
        sender.retry_max = Duration::from_secs(1);
        sender.scheduler_interval = Duration::from_millis(50);
        sender.breaker_failures = 0;

        let mut options = Options {
            amqp_url: AMQP_URL.to_owned(),
            dispatcher,
            sender,
            senders: 1,
        };
        adjust(&mut options);
        options
            .dispatcher
            .common
            .amqp_url
            .clone_from(&options.amqp_url);
        options.sender.common.amqp_url.clone_from(&options.amqp_url);

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
        };
        world.start_dispatcher().await;
        for _ in 0..options.senders {
            world.start_sender().await;
        }
        world
    }

    pub async fn start_dispatcher(&mut self) {
        let stop = CancellationToken::new();
        let service = webhooks_dispatcher::start(
            self.dispatcher_config.clone(),
            self.clock.clone(),
            stop.clone(),
        )
        .await
        .expect("dispatcher starts");
        self.api_base = format!("http://{}/api/v1", service.http_addr);
        self.wait_ready(service.http_addr).await;
        let done = tokio::spawn(service.wait());
        self.dispatcher = Some(Running { stop, done });
    }

    /// Starts a second dispatcher against the same broker and database.
    pub async fn start_dispatcher_replica(&mut self) {
        let stop = CancellationToken::new();
        let service = webhooks_dispatcher::start(
            self.dispatcher_config.clone(),
            self.clock.clone(),
            stop.clone(),
        )
        .await
        .expect("dispatcher replica starts");
        self.wait_ready(service.http_addr).await;
        let done = tokio::spawn(service.wait());
        self.replicas.push(Running { stop, done });
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
        let process = crate::process::Process::spawn("webhooks-sender", &self.common_env(), &env);
        self.wait_ready(process.addr).await;
        process
    }

    /// Starts the `webhooks-dispatcher` binary as a process of its own and waits until it is ready.
    pub async fn dispatcher_process(&self) -> crate::process::Process {
        let c = &self.dispatcher_config;
        let env = vec![
            ("ADMIN_TOKEN", TOKEN.to_owned()),
            ("EVENTS_EXCHANGE", c.events_exchange.clone()),
            (
                "HANDOFF_GRACE",
                webhooks_core::duration::format(c.handoff_grace),
            ),
        ];
        let process =
            crate::process::Process::spawn("webhooks-dispatcher", &self.common_env(), &env);
        self.wait_ready(process.addr).await;
        process
    }

    fn common_env(&self) -> Vec<(&'static str, String)> {
        let c = &self.sender_config.common;
        vec![
            ("AMQP_URL", c.amqp_url.clone()),
            ("DATABASE_URL", c.database_url.clone()),
            ("AMQP_PREFIX", c.amqp_prefix.clone()),
            ("ALLOWED_TARGETS", "127.0.0.0/8".to_owned()),
            ("DATABASE_POOL_SIZE", "4".to_owned()),
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

    /// Opens the test's own broker connection again (after a broker restart).
    pub async fn reconnect_broker(&mut self) {
        let (amqp, channel) = open_channel(&self.dispatcher_config.common.amqp_url).await;
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

    // ---- the management API ----

    /// Calls the API with the right token; returns the status and the JSON answer (Null if none).
    pub async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.api_as(Some(TOKEN), method, path, body).await
    }

    pub async fn api_as(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}{}", self.api_base, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let response = request.send().await.expect("API answers");
        let status = response.status().as_u16();
        let text = response.text().await.expect("API body");
        let value = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        (status, value)
    }

    /// Creates a webhook of `project` pointing at the receiver's `path`; returns its id.
    pub async fn webhook(
        &self,
        project: &str,
        path: &str,
        events: &[&str],
        secret: Option<&str>,
    ) -> String {
        let mut body = json!({"title": format!("hook {path}"), "url": self.receiver.url(path), "events": events});
        if let Some(secret) = secret {
            body["secret"] = json!(secret);
        }
        let (status, answer) = self
            .api(
                reqwest::Method::POST,
                &format!("/projects/{project}/webhooks"),
                Some(body),
            )
            .await;
        assert_eq!(status, 201, "webhook created: {answer}");
        answer["id"].as_str().expect("id").to_owned()
    }

    pub async fn deliveries(&self, project: &str, webhook: &str) -> Vec<Value> {
        let (status, answer) = self
            .api(
                reqwest::Method::GET,
                &format!("/projects/{project}/webhooks/{webhook}/deliveries"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer.as_array().cloned().expect("array")
    }

    pub async fn get_webhook(&self, project: &str, webhook: &str) -> Value {
        let (status, answer) = self
            .api(
                reqwest::Method::GET,
                &format!("/projects/{project}/webhooks/{webhook}"),
                None,
            )
            .await;
        assert_eq!(status, 200, "{answer}");
        answer
    }

    // ---- the broker ----

    /// Publishes a raw body to the events exchange, as another service would.
    pub async fn publish_raw(&self, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let confirm = self
            .channel
            .basic_publish(
                self.topology.events_exchange().into(),
                routing_key.into(),
                BasicPublishOptions::default(),
                body,
                properties
                    .with_delivery_mode(2)
                    .with_content_type("application/json".into()),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack());
    }

    /// Publishes a well-formed event and returns its id.
    pub async fn publish(&self, project: &str, event_name: &str, payload: Value) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.publish_event(&id, project, event_name, &payload.to_string())
            .await;
        id
    }

    /// Publishes an event with a given id and raw payload text.
    pub async fn publish_event(&self, id: &str, project: &str, event_name: &str, payload: &str) {
        let body = format!(
            r#"{{"id":"{id}","event_name":"{event_name}","timestamp":1650540069,"project_code":"{project}","team_member_id":40,"payload":{payload}}}"#
        );
        self.publish_raw(event_name, body.as_bytes(), BasicProperties::default())
            .await;
    }

    /// Takes one message from `queue`, if any.
    pub async fn take(&self, queue: &str) -> Option<lapin::message::BasicGetMessage> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get")
    }

    /// Waits for `count` messages on `queue` and takes them.
    pub async fn take_n(
        &self,
        queue: &str,
        count: usize,
        deadline: Duration,
    ) -> Vec<lapin::message::BasicGetMessage> {
        let end = tokio::time::Instant::now() + deadline;
        let mut got = Vec::new();
        while got.len() < count {
            match self.take(queue).await {
                Some(message) => got.push(message),
                None if tokio::time::Instant::now() >= end => {
                    panic!(
                        "timed out after {deadline:?} with {} of {count} messages on {queue}",
                        got.len()
                    )
                }
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        got
    }

    /// Opens a database connection to this world's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("test database connection");
        tokio::spawn(connection);
        client
    }

    /// Fetches a counter from a service's /metrics (sum over its labels).
    pub async fn metric(&self, addr: std::net::SocketAddr, name: &str) -> f64 {
        let text = self
            .http
            .get(format!("http://{addr}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        text.lines()
            .filter(|line| line.starts_with(name) && line[name.len()..].starts_with([' ', '{']))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
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
        for queue in [
            self.topology.dispatcher_queue(),
            self.topology.dead_letter_queue(),
            self.topology.deliveries_queue(),
            self.topology.notifications_queue(),
        ] {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for exchange in [
            self.topology.events_exchange().to_owned(),
            self.topology.notifications_exchange(),
        ] {
            let _ = self
                .channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
        let _ = self.amqp.close(200, "done".into()).await;
        if let Ok((client, connection)) =
            tokio_postgres::connect(&format!("{PG_SERVER}/postgres"), tokio_postgres::NoTls).await
        {
            tokio::spawn(connection);
            let _ = client
                .batch_execute(&format!(
                    "DROP DATABASE IF EXISTS wh_{} WITH (FORCE)",
                    self.id
                ))
                .await;
        }
    }
}

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
