//! A world whose services run as processes of the built binaries (the benchmark's and the soak's):
//! fresh [`Names`] registered with a [`Janitor`], at most one dispatcher and one sender, each
//! started from the world's environment and taken out again to be stopped by hand.

use anyhow::Context;
use std::sync::Arc;
use std::time::Duration;

use crate::api::Api;
use crate::names::{Janitor, Names};
use crate::process::Process;
use crate::service::{self, Service};

/// The API token the services of such a world are given.
const ADMIN_TOKEN: &str = "b3e1a97c05d84f26e9c7b1a0d3f5e8c2";
/// Longest wait for a service's `/readyz` (it creates and migrates its database first).
const READY_WITHIN: Duration = Duration::from_secs(60);

/// A database, broker names and the service processes of one world.
pub struct Services {
    pub names: Names,
    janitor: Arc<Janitor>,
    http: reqwest::Client,
    dispatcher: Option<Process>,
    sender: Option<Process>,
    /// Settings a service is given on top of the world's.
    env: Vec<(Service, &'static str, String)>,
}

impl Services {
    /// A world with fresh names tagged `tag` (nothing runs yet).
    pub fn new(janitor: Arc<Janitor>, tag: &str) -> anyhow::Result<Self> {
        let names = Names::fresh(tag);
        janitor.register(&names);
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .context("building the API client")?;
        Ok(Self {
            names,
            janitor,
            http,
            dispatcher: None,
            sender: None,
            env: Vec::new(),
        })
    }

    /// Sets `name=value` in `service`'s environment from its next start on (variables not set
    /// here are inherited from ours).
    pub fn set_env(&mut self, service: Service, name: &'static str, value: &str) {
        self.env.push((service, name, value.to_owned()));
    }

    fn slot(&mut self, service: Service) -> &mut Option<Process> {
        match service {
            Service::Dispatcher => &mut self.dispatcher,
            Service::Sender => &mut self.sender,
        }
    }

    /// Takes `service`'s process out of the world, to stop it by hand.
    pub fn take(&mut self, service: Service) -> Option<Process> {
        self.slot(service).take()
    }

    pub fn process(&self, service: Service) -> Option<&Process> {
        match service {
            Service::Dispatcher => self.dispatcher.as_ref(),
            Service::Sender => self.sender.as_ref(),
        }
    }

    /// The broker's URL and the database server's (`postgres://user@host:port`).
    pub fn servers(&self) -> (&str, &str) {
        self.janitor.servers()
    }

    /// Starts `service` and waits until its `/readyz` answers 200.
    pub async fn start(&mut self, service: Service) -> anyhow::Result<()> {
        let (amqp_url, pg_server) = self.janitor.servers();
        let world = service::env(&self.names, amqp_url, pg_server, ADMIN_TOKEN);
        let own: Vec<(&str, String)> = self
            .env
            .iter()
            .filter(|(s, _, _)| *s == service)
            .map(|(_, name, value)| (*name, value.clone()))
            .collect();
        let mut process = Process::start(service.binary(), &world, &own, &[])?;
        let addr = process.addr;
        service::wait_ready(&self.http, addr, Some(&mut process), READY_WITHIN)
            .await
            .with_context(|| format!("starting the {}", service.name()))?;
        *self.slot(service) = Some(process);
        Ok(())
    }

    /// Whether `service` runs and answers 200 on `/readyz` within a second.
    pub async fn ready(&self, service: Service) -> bool {
        match self.process(service) {
            Some(process) => {
                service::readyz(&self.http, process.addr, Duration::from_secs(1)).await == 200
            }
            None => false,
        }
    }

    /// The Prometheus text of `service`'s `/metrics`.
    pub async fn metrics(&self, service: Service) -> anyhow::Result<String> {
        let process = self
            .process(service)
            .with_context(|| format!("the {} is not running", service.name()))?;
        service::metrics_text(&self.http, process.addr).await
    }

    /// A connection to the world's database.
    pub async fn db(&self) -> anyhow::Result<tokio_postgres::Client> {
        let url = self.names.database_url(self.janitor.servers().1);
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .context("connecting to the world's database")?;
        tokio::spawn(connection);
        Ok(client)
    }

    /// The running dispatcher's API.
    pub fn api(&self) -> anyhow::Result<Api> {
        let dispatcher = self
            .process(Service::Dispatcher)
            .context("the dispatcher is not running")?;
        Ok(Api::new(self.http.clone(), dispatcher.addr, ADMIN_TOKEN))
    }

    /// Kills the services and removes the world's database, queues and exchanges.
    pub async fn finish(mut self) {
        for service in [Service::Sender, Service::Dispatcher] {
            if let Some(mut process) = self.take(service) {
                let _ = process.kill().await;
            }
        }
        self.janitor.clean(&self.names).await;
    }
}
