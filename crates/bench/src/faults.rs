//! The faults the soak injects into its own world, one at a time: kill -9 of a service, SIGTERM of
//! a service (which must exit 0 within its shutdown grace), the services' broker connections
//! closed from the broker's side (`rabbitmqctl close_connection`), and the world's database taken
//! away for a few seconds. Whatever a fault stops is started again, and the injector then waits
//! until both services answer `/readyz` with 200.
//!
//! Only this world is touched: its own processes, the broker connections whose names carry its
//! prefix, and its own database.

use anyhow::Context;
use std::time::{Duration, Instant};

use crate::procfs::{self, RssSampler};
use crate::services::{Process, Service, World};

/// How long the database stays away.
pub const DATABASE_OUTAGE: Duration = Duration::from_secs(3);
/// How long a service may take to exit after SIGTERM: its `SHUTDOWN_GRACE` (20 s) and a margin.
const EXIT_WITHIN: Duration = Duration::from_secs(40);
/// How long the services may take to be connected and ready again after a fault.
const RECOVER_WITHIN: Duration = Duration::from_secs(120);
/// How often readiness and the broker's connection list are polled.
const POLL: Duration = Duration::from_millis(250);

/// The kinds of fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    KillSender,
    KillDispatcher,
    TermSender,
    TermDispatcher,
    BrokerConnections,
    DatabaseAway,
}

impl Fault {
    pub const ALL: [Fault; 6] = [
        Fault::KillSender,
        Fault::KillDispatcher,
        Fault::TermSender,
        Fault::TermDispatcher,
        Fault::BrokerConnections,
        Fault::DatabaseAway,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::KillSender => "kill -9 sender",
            Fault::KillDispatcher => "kill -9 dispatcher",
            Fault::TermSender => "SIGTERM sender",
            Fault::TermDispatcher => "SIGTERM dispatcher",
            Fault::BrokerConnections => "broker connections closed",
            Fault::DatabaseAway => "database away 3 s",
        }
    }
}

/// What an injected fault did, and what went wrong that should not have.
pub struct Injected {
    pub detail: String,
    pub problem: Option<String>,
}

/// Peak resident set of each service over every process that ran as it, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub struct Peaks {
    pub dispatcher_kib: u64,
    pub sender_kib: u64,
}

impl Peaks {
    /// Takes in what `service`'s current process reached so far (before it is stopped).
    pub fn fold(&mut self, world: &World, service: Service, sampler: &RssSampler) {
        let Some(process) = world.process(service) else {
            return;
        };
        let hwm = procfs::memory(process.pid).map_or(0, |m| m.hwm_kib);
        let peak = hwm.max(sampler.samples(service.name()).peak_kib);
        let slot = match service {
            Service::Dispatcher => &mut self.dispatcher_kib,
            Service::Sender => &mut self.sender_kib,
        };
        *slot = (*slot).max(peak);
    }
}

/// Injects faults into one world.
pub struct Injector<'a> {
    pub world: &'a mut World,
    pub sampler: &'a RssSampler,
    /// `postgres://user@host:port`, for the administrative connection.
    pub postgres: String,
    pub peaks: Peaks,
}

impl Injector<'_> {
    /// Injects `fault`, restores what it took and waits until both services are ready again.
    pub async fn inject(&mut self, fault: Fault) -> anyhow::Result<Injected> {
        let mut injected = match fault {
            Fault::KillSender => self.kill(Service::Sender).await?,
            Fault::KillDispatcher => self.kill(Service::Dispatcher).await?,
            Fault::TermSender => self.terminate(Service::Sender).await?,
            Fault::TermDispatcher => self.terminate(Service::Dispatcher).await?,
            Fault::BrokerConnections => self.cut_broker().await?,
            Fault::DatabaseAway => self.database_away().await?,
        };
        let since = Instant::now();
        if self.both_ready_within(RECOVER_WITHIN).await {
            let waited = since.elapsed().as_secs_f64();
            injected.detail += &format!("; both ready {waited:.1} s later");
        } else if injected.problem.is_none() {
            injected.problem = Some(format!(
                "after {}: not both ready within {RECOVER_WITHIN:?}",
                fault.name()
            ));
        }
        Ok(injected)
    }

    async fn both_ready_within(&self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            if self.world.ready(Service::Dispatcher).await
                && self.world.ready(Service::Sender).await
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Takes `service`'s process out of the world, its memory peak noted.
    fn take(&mut self, service: Service) -> anyhow::Result<Process> {
        self.peaks.fold(self.world, service, self.sampler);
        self.world
            .take(service)
            .with_context(|| format!("the {} is not running", service.name()))
    }

    /// Starts a new `service`; returns how long it took to be ready.
    async fn restart(&mut self, service: Service) -> anyhow::Result<f64> {
        let started = Instant::now();
        self.world
            .start(service)
            .await
            .with_context(|| format!("starting a new {}", service.name()))?;
        if let Some(process) = self.world.process(service) {
            self.sampler.watch(service.name(), process.pid);
        }
        Ok(started.elapsed().as_secs_f64())
    }

    async fn kill(&mut self, service: Service) -> anyhow::Result<Injected> {
        let process = self.take(service)?;
        let pid = process.pid;
        process.kill().await;
        let ready = self.restart(service).await?;
        Ok(Injected {
            detail: format!(
                "{} pid {pid} killed; the new one was ready after {ready:.1} s",
                service.name()
            ),
            problem: None,
        })
    }

    async fn terminate(&mut self, service: Service) -> anyhow::Result<Injected> {
        let process = self.take(service)?;
        let pid = process.pid;
        let asked = Instant::now();
        let exit = process.terminate(EXIT_WITHIN).await?;
        let took = asked.elapsed().as_secs_f64();
        let name = service.name();
        let (said, problem) = match exit {
            Some(status) if status.success() => (format!("exited 0 after {took:.1} s"), None),
            Some(status) => (
                format!("exited with {status} after {took:.1} s"),
                Some(format!("SIGTERM of the {name} (pid {pid}): {status}")),
            ),
            None => (
                format!("still running after {EXIT_WITHIN:?}, killed"),
                Some(format!(
                    "SIGTERM of the {name} (pid {pid}): no exit within {EXIT_WITHIN:?}"
                )),
            ),
        };
        let ready = self.restart(service).await?;
        Ok(Injected {
            detail: format!("{name} pid {pid} {said}; the new one was ready after {ready:.1} s"),
            problem,
        })
    }

    /// Closes the services' broker connections and waits until as many new ones are open.
    async fn cut_broker(&mut self) -> anyhow::Result<Injected> {
        let prefix = self.world.names.prefix.clone();
        let deadline = Instant::now() + RECOVER_WITHIN;
        let closed = loop {
            let ids = connections(&prefix).await?;
            if ids.len() >= 2 {
                break ids;
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "only {} broker connections of the services are open",
                ids.len()
            );
            tokio::time::sleep(POLL).await;
        };
        // All at once: each rabbitmqctl call takes a second or more.
        let closes = closed.iter().map(|id| close_connection(id));
        for (id, result) in closed.iter().zip(futures::future::join_all(closes).await) {
            // A connection that closed by itself meanwhile is not an error of the soak.
            if let Err(e) = result {
                eprintln!("[soak] closing {id}: {e:#}");
            }
        }
        let cut = Instant::now();
        let reopened = loop {
            let fresh = connections(&prefix).await?;
            if fresh.iter().filter(|id| !closed.contains(id)).count() >= closed.len() {
                break Some(cut.elapsed().as_secs_f64());
            }
            if Instant::now() >= deadline {
                break None;
            }
            tokio::time::sleep(POLL).await;
        };
        let count = closed.len();
        Ok(match reopened {
            Some(secs) => Injected {
                detail: format!(
                    "{count} connections closed; as many new ones listed {secs:.1} s later \
                     (one listing takes about a second)"
                ),
                problem: None,
            },
            None => Injected {
                detail: format!("{count} connections closed; not all reopened"),
                problem: Some(format!(
                    "the services did not reconnect to the broker within {RECOVER_WITHIN:?}"
                )),
            },
        })
    }

    /// Refuses new connections to the world's database and ends its open ones, as a database
    /// restart does, for [`DATABASE_OUTAGE`]; notes whether each service reported itself unready.
    async fn database_away(&mut self) -> anyhow::Result<Injected> {
        let url = format!("{}/postgres", self.postgres);
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let driver = tokio::spawn(connection);
        let database = self.world.names.database.clone();
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false"
            ))
            .await
            .context("refusing connections to the database")?;
        let away = self.while_away(&admin, &database).await;
        // Whatever happened meanwhile, the database comes back.
        let back = admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true"
            ))
            .await
            .context("allowing connections to the database again");
        drop(admin);
        let _ = driver.await;
        back?;
        let (ended, unready) = away?;
        Ok(Injected {
            detail: format!(
                "{ended} backends ended, connections refused for {}s; /readyz not 200 meanwhile: {}",
                DATABASE_OUTAGE.as_secs(),
                if unready.is_empty() {
                    "neither".to_owned()
                } else {
                    unready.join(" and ")
                }
            ),
            problem: None,
        })
    }

    async fn while_away(
        &self,
        admin: &tokio_postgres::Client,
        database: &str,
    ) -> anyhow::Result<(usize, Vec<&'static str>)> {
        let ended = admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&database],
            )
            .await
            .context("ending the database's connections")?
            .len();
        let until = Instant::now() + DATABASE_OUTAGE;
        let mut unready = Vec::new();
        while Instant::now() < until {
            for service in [Service::Dispatcher, Service::Sender] {
                if !unready.contains(&service.name()) && !self.world.ready(service).await {
                    unready.push(service.name());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        Ok((ended, unready))
    }
}

/// The broker's ids of the connections whose client-given name contains `prefix`.
async fn connections(prefix: &str) -> anyhow::Result<Vec<String>> {
    let listed = rabbitmqctl(&["list_connections", "pid", "client_properties"]).await?;
    Ok(listed
        .lines()
        .filter(|line| line.contains(prefix))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect())
}

async fn close_connection(id: &str) -> anyhow::Result<String> {
    rabbitmqctl(&["close_connection", id, "soak: connection cut"]).await
}

async fn rabbitmqctl(args: &[&str]) -> anyhow::Result<String> {
    let output = tokio::process::Command::new("rabbitmqctl")
        .arg("-q")
        .args(args)
        .output()
        .await
        .context("running rabbitmqctl")?;
    anyhow::ensure!(
        output.status.success(),
        "rabbitmqctl {}: {} {}",
        args.join(" "),
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
