//! Faults injected, one at a time, into a world of service processes (the soak's): kill -9 of a
//! service, SIGTERM of a service (which must exit 0 within its shutdown grace), the services'
//! broker connections closed from the broker's side, and the world's database taken away for a
//! few seconds. Whatever a fault stops is started again, and the injector then waits until both
//! services answer `/readyz` with 200.
//!
//! Only this world is touched: its own processes, the broker connections whose names carry its
//! prefix, and its own database.

pub mod schedule;

use anyhow::Context;
use std::time::{Duration, Instant};

use crate::faults::{DatabaseAway, close_connection, connections};
use crate::process::Process;
use crate::service::Service;
use crate::services::Services;

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

    /// The service whose process the fault replaces with a new one.
    pub fn replaces(self) -> Option<Service> {
        match self {
            Fault::KillSender | Fault::TermSender => Some(Service::Sender),
            Fault::KillDispatcher | Fault::TermDispatcher => Some(Service::Dispatcher),
            Fault::BrokerConnections | Fault::DatabaseAway => None,
        }
    }
}

/// What an injected fault did, and what went wrong that should not have.
pub struct Injected {
    pub detail: String,
    pub problem: Option<String>,
}

/// Injects faults into one world.
pub struct Injector<'a> {
    pub world: &'a mut Services,
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

    fn take(&mut self, service: Service) -> anyhow::Result<Process> {
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
        Ok(started.elapsed().as_secs_f64())
    }

    async fn kill(&mut self, service: Service) -> anyhow::Result<Injected> {
        let mut process = self.take(service)?;
        let pid = process.pid().unwrap_or(0);
        process.kill().await.context("kill -9")?;
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
        let mut process = self.take(service)?;
        let pid = process.pid().unwrap_or(0);
        let asked = Instant::now();
        let exit = process.terminate_within(EXIT_WITHIN).await?;
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
        let closes = closed
            .iter()
            .map(|id| close_connection(id, "soak: connection cut"));
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
        let (_, pg_server) = self.world.servers();
        let away = DatabaseAway::begin(pg_server, &self.world.names.database).await?;
        let ended = away.ended;
        let unready = self.unready_meanwhile().await;
        away.restore().await?;
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

    /// The services that did not answer 200 on `/readyz` at some point during [`DATABASE_OUTAGE`].
    async fn unready_meanwhile(&self) -> Vec<&'static str> {
        let until = Instant::now() + DATABASE_OUTAGE;
        let mut unready = Vec::new();
        while Instant::now() < until {
            for service in Service::BOTH {
                if !unready.contains(&service.name()) && !self.world.ready(service).await {
                    unready.push(service.name());
                }
            }
            tokio::time::sleep(POLL).await;
        }
        unready
    }
}
