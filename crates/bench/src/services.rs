//! One scenario's world: a fresh database, broker names under a unique prefix, and the real
//! `webhooks-dispatcher` and `webhooks-sender` binaries (found next to this executable) running as
//! child processes configured by environment. The [`Janitor`] deletes what a world created.

use anyhow::Context;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::dbprofile::{DbProfile, DbSampler};
pub use crate::janitor::{Janitor, Names};

/// The API token the benchmark gives the dispatcher.
const ADMIN_TOKEN: &str = "bench-admin-token";
/// The key both services sign and check hand-offs with.
const HANDOFF_KEY: &str = "e2a91f4c07b36d58a4c1e9f0b7d2356c";
/// Longest wait for a service's `/readyz` (it creates and migrates its database first).
const READY_WITHIN: Duration = Duration::from_secs(60);
/// Service settings a user may set in the environment to tune a run; they pass through and are shown.
pub const TUNING_VARIABLES: &[&str] = &[
    "PREFETCH",
    "BATCH_SIZE",
    "BATCH_LINGER",
    "DATABASE_POOL_SIZE",
    "MAX_IN_FLIGHT",
    "MAX_PER_ENDPOINT",
    "BREAKER_FAILURES",
    "BREAKER_PAUSE",
    "SCHEDULER_INTERVAL",
    "HANDOFF_GRACE",
    "INDEX_RELOAD",
    "RETRY_INITIAL",
    "RETRY_MAX",
    "RESPONSE_SNIPPET_BYTES",
    "DELIVERY_TIMEOUT",
    "EVENTS_QUEUE_TYPE",
    "EVENTS_IN_FLIGHT_BYTES",
    "BODIES_IN_FLIGHT_BYTES",
    "MAX_EVENT_BYTES",
];

/// The kind of queue the dispatcher's events wait in, as `EVENTS_QUEUE_TYPE` (which passes through
/// to the dispatcher) sets it; broker-hop declares its queue the same way, so that the hop it
/// measures is the one the events take.
pub fn events_queue_type() -> anyhow::Result<webhooks_core::amqp::QueueType> {
    match std::env::var("EVENTS_QUEUE_TYPE") {
        Ok(value) => clap::ValueEnum::from_str(&value, true)
            .map_err(|e| anyhow::anyhow!("EVENTS_QUEUE_TYPE={value}: {e}")),
        Err(_) => Ok(webhooks_core::amqp::QueueType::default()),
    }
}

/// Where the binaries, the broker and the database server are.
pub struct Settings {
    pub bin_dir: PathBuf,
    pub amqp_url: String,
    /// `postgres://user@host:port`, without a database name.
    pub postgres: String,
}

impl Settings {
    /// Finds the service binaries in the directory of this executable.
    pub fn locate(amqp_url: &str, postgres: &str) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("locating the benchmark executable")?;
        let bin_dir = exe
            .parent()
            .context("the benchmark executable has no directory")?
            .to_path_buf();
        for binary in ["webhooks-dispatcher", "webhooks-sender"] {
            let path = bin_dir.join(binary);
            anyhow::ensure!(
                path.is_file(),
                "{} is missing: build the workspace in the same profile first (cargo build --release --workspace)",
                path.display()
            );
        }
        Ok(Self {
            bin_dir,
            amqp_url: amqp_url.to_owned(),
            postgres: postgres.trim_end_matches('/').to_owned(),
        })
    }
}

/// A service binary running as a child process.
pub struct Process {
    pub pid: u32,
    pub addr: SocketAddr,
    child: tokio::process::Child,
}

impl Process {
    /// Kills the process (SIGKILL) and reaps it.
    pub async fn kill(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Stops the process the way an orchestrator does (SIGTERM) and returns its exit status, or
    /// `None` when it was still running after `within` (it is then killed).
    pub async fn terminate(mut self, within: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .context("running kill -TERM")?;
        anyhow::ensure!(status.success(), "kill -TERM {}: {status}", self.pid);
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(exit) => Ok(Some(exit.context("waiting for the exit")?)),
            Err(_) => {
                self.kill().await;
                Ok(None)
            }
        }
    }
}

/// Which service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Service {
    Dispatcher,
    Sender,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Dispatcher => "dispatcher",
            Service::Sender => "sender",
        }
    }
    fn binary(self) -> &'static str {
        match self {
            Service::Dispatcher => "webhooks-dispatcher",
            Service::Sender => "webhooks-sender",
        }
    }
}

/// A database, broker names and the services of one scenario.
pub struct World {
    pub names: Names,
    settings: Arc<Settings>,
    janitor: Arc<Janitor>,
    /// `DELIVERY_TIMEOUT` given to the sender, when the scenario sets one.
    delivery_timeout: Option<&'static str>,
    http: reqwest::Client,
    pub dispatcher: Option<Process>,
    pub sender: Option<Process>,
    /// Samples the database's activity once it exists.
    db: Option<DbSampler>,
    /// Settings a scenario gives one service on top of the usual ones.
    env: Vec<(Service, &'static str, String)>,
}

impl World {
    /// A world with fresh names (nothing runs yet).
    pub fn new(
        settings: Arc<Settings>,
        janitor: Arc<Janitor>,
        delivery_timeout: Option<&'static str>,
    ) -> anyhow::Result<Self> {
        let names = Names::fresh();
        janitor.register(&names);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the API client")?;
        Ok(Self {
            names,
            settings,
            janitor,
            delivery_timeout,
            http,
            dispatcher: None,
            sender: None,
            db: None,
            env: Vec::new(),
        })
    }

    /// Sets `name=value` in `service`'s environment from its next start on.
    pub fn set_env(&mut self, service: Service, name: &'static str, value: &str) {
        self.env.push((service, name, value.to_owned()));
    }

    /// Takes `service`'s process out of the world, to stop it by hand.
    pub fn take(&mut self, service: Service) -> Option<Process> {
        match service {
            Service::Dispatcher => self.dispatcher.take(),
            Service::Sender => self.sender.take(),
        }
    }

    pub fn process(&self, service: Service) -> Option<&Process> {
        match service {
            Service::Dispatcher => self.dispatcher.as_ref(),
            Service::Sender => self.sender.as_ref(),
        }
    }

    /// Starts `service` and waits until its `/readyz` answers 200.
    pub async fn start(&mut self, service: Service) -> anyhow::Result<()> {
        let addr = free_port().context("finding a free port")?;
        let stdout = std::io::stderr()
            .as_fd()
            .try_clone_to_owned()
            .context("duplicating stderr")?;
        let database_url = format!("{}/{}", self.settings.postgres, self.names.database);
        let mut command =
            tokio::process::Command::new(self.settings.bin_dir.join(service.binary()));
        command
            .env("AMQP_URL", &self.settings.amqp_url)
            .env("DATABASE_URL", database_url)
            .env("AMQP_PREFIX", &self.names.prefix)
            .env("EVENTS_EXCHANGE", &self.names.exchange)
            .env("HTTP_ADDR", addr.to_string())
            .env("ADMIN_TOKEN", ADMIN_TOKEN)
            .env("HANDOFF_KEY", HANDOFF_KEY)
            .env("ALLOWED_TARGETS", "127.0.0.0/8")
            .env("RUST_LOG", "warn")
            // The services log to stdout; keep the benchmark's stdout for the table.
            .stdout(Stdio::from(stdout))
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let (Service::Sender, Some(timeout)) = (service, self.delivery_timeout) {
            command.env("DELIVERY_TIMEOUT", timeout);
        }
        for (_, name, value) in self.env.iter().filter(|(s, _, _)| *s == service) {
            command.env(name, value);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", service.binary()))?;
        let pid = child.id().context("the child has no pid")?;
        let mut process = Process { pid, addr, child };
        self.wait_ready(service, &mut process).await?;
        match service {
            Service::Dispatcher => self.dispatcher = Some(process),
            Service::Sender => self.sender = Some(process),
        }
        if self.db.is_none() {
            // The service created the database before it was ready.
            self.db = Some(DbSampler::start(&self.settings.postgres, &self.names.database).await?);
        }
        Ok(())
    }

    /// Starts a new database profile (a phase begins).
    pub fn reset_db_profile(&self) {
        if let Some(db) = &self.db {
            db.reset();
        }
    }

    /// The database profile since the last reset.
    pub fn db_profile(&self) -> DbProfile {
        self.db.as_ref().map(DbSampler::profile).unwrap_or_default()
    }

    /// Whether `service` runs and answers 200 on `/readyz` within a second.
    pub async fn ready(&self, service: Service) -> bool {
        let Some(process) = self.process(service) else {
            return false;
        };
        self.http
            .get(format!("http://{}/readyz", process.addr))
            .timeout(Duration::from_secs(1))
            .send()
            .await
            .is_ok_and(|response| response.status() == 200)
    }

    async fn wait_ready(&self, service: Service, process: &mut Process) -> anyhow::Result<()> {
        let url = format!("http://{}/readyz", process.addr);
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = process.child.try_wait().context("checking the child")? {
                anyhow::bail!("{} exited during start-up: {status}", service.binary());
            }
            if let Ok(response) = self.http.get(&url).send().await
                && response.status() == 200
            {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} not ready within {READY_WITHIN:?}",
                service.binary()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The address of the benchmark project's webhooks in the dispatcher's API, then `rest`.
    fn webhooks_api(&self, rest: &str) -> anyhow::Result<String> {
        let dispatcher = self
            .dispatcher
            .as_ref()
            .context("the dispatcher is not running")?;
        Ok(format!(
            "http://{}/api/v1/projects/{}/webhooks{rest}",
            dispatcher.addr,
            crate::publisher::PROJECT
        ))
    }

    /// Creates a webhook of the benchmark project for `run.started`, pointing at `url`; returns
    /// its id.
    pub async fn create_webhook(&self, title: &str, url: &str) -> anyhow::Result<String> {
        let response = self.post_webhook(title, url).await?;
        let status = response.status();
        let text = response.text().await.context("reading the API answer")?;
        anyhow::ensure!(status == 201, "creating a webhook: {status} {text}");
        let created: serde_json::Value =
            serde_json::from_str(&text).context("reading the created webhook")?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("no id in the created webhook: {text}"))
    }

    /// Creates a webhook as [`World::create_webhook`] does and returns the API's status alone.
    pub async fn create_webhook_status(&self, title: &str, url: &str) -> anyhow::Result<u16> {
        let response = self.post_webhook(title, url).await?;
        let status = response.status().as_u16();
        // Read to the end, so that the connection serves the next request.
        response.bytes().await.context("reading the API answer")?;
        Ok(status)
    }

    async fn post_webhook(&self, title: &str, url: &str) -> anyhow::Result<reqwest::Response> {
        let endpoint = self.webhooks_api("")?;
        let body = serde_json::json!({
            "title": title,
            "url": url,
            "events": [crate::publisher::EVENT_NAME],
        });
        self.http
            .post(&endpoint)
            .bearer_auth(ADMIN_TOKEN)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .context("creating a webhook")
    }

    /// Deletes webhook `id` of the benchmark project (its unfinished deliveries are cancelled).
    pub async fn delete_webhook(&self, id: &str) -> anyhow::Result<()> {
        let endpoint = self.webhooks_api(&format!("/{id}"))?;
        let response = self
            .http
            .delete(&endpoint)
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .context("deleting a webhook")?;
        let status = response.status();
        anyhow::ensure!(status == 204, "deleting webhook {id}: {status}");
        Ok(())
    }

    /// The Prometheus text of `service`'s `/metrics`.
    pub async fn metrics(&self, service: Service) -> anyhow::Result<String> {
        let process = self
            .process(service)
            .with_context(|| format!("the {} is not running", service.name()))?;
        self.http
            .get(format!("http://{}/metrics", process.addr))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .with_context(|| format!("scraping the {}", service.name()))?
            .text()
            .await
            .context("reading metrics")
    }

    /// Kills the services and deletes the world's database, queues and exchanges.
    pub async fn finish(mut self) {
        self.db = None;
        for process in [self.sender.take(), self.dispatcher.take()]
            .into_iter()
            .flatten()
        {
            process.kill().await;
        }
        self.janitor.clean(&self.names).await;
    }
}

/// A port nobody listens on right now (bound then released for the child to take).
fn free_port() -> std::io::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.local_addr()
}
