//! What a world owns on the shared servers: a database, and queues and exchanges under a unique
//! prefix, so that worlds run side by side on one PostgreSQL and one RabbitMQ. [`remove`] deletes
//! them; the [`Janitor`] remembers the worlds not removed yet, for a run that ends early (an
//! error, ctrl-c or SIGTERM).

use anyhow::Context;
use lapin::{Connection, ConnectionProperties};
use std::sync::Mutex;
use std::time::Duration;
use webhooks_core::amqp::Topology;

/// The names one world owns.
#[derive(Clone, Debug)]
pub struct Names {
    /// `tag` and 10 random hex digits: unique among the worlds of every run.
    pub id: String,
    pub database: String,
    /// Of every queue and exchange the services declare (`AMQP_PREFIX`).
    pub prefix: String,
    /// The exchange events are published to (`EVENTS_EXCHANGE`).
    pub exchange: String,
}

impl Names {
    /// Fresh names whose id starts with `tag` (which says who made them: a test, the benchmark).
    pub fn fresh(tag: &str) -> Self {
        let id = format!("{tag}{}", &uuid::Uuid::new_v4().simple().to_string()[..10]);
        Self {
            database: format!("wh_{id}"),
            prefix: format!("{id}."),
            exchange: format!("{id}.domain.events"),
            id,
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix, &self.exchange)
    }

    /// A queue of this world's own, beside the services' (deleted with them when listed in
    /// [`remove`]'s `extra_queues`).
    pub fn queue(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The URL of this world's database on `server` (`postgres://user@host:port`).
    pub fn database_url(&self, server: &str) -> String {
        format!("{}/{}", server.trim_end_matches('/'), self.database)
    }
}

/// Deletes a world's queues (the services' and `extra_queues`), exchanges and database. Each step
/// is tried even when an earlier one failed; the first failure is returned.
pub async fn remove(
    names: &Names,
    amqp_url: &str,
    pg_server: &str,
    extra_queues: &[String],
) -> anyhow::Result<()> {
    let broker = delete_broker_names(names, amqp_url, extra_queues).await;
    let database = drop_database(pg_server, &names.database).await;
    broker
        .with_context(|| format!("broker names of {}", names.prefix))
        .and(database.with_context(|| format!("database {}", names.database)))
}

async fn delete_broker_names(
    names: &Names,
    amqp_url: &str,
    extra_queues: &[String],
) -> anyhow::Result<()> {
    let properties = ConnectionProperties::default().with_connection_name("cleanup".into());
    let connect = Connection::connect(amqp_url, properties);
    let connection = tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .context("the broker did not answer within 10 s")?
        .context("connecting to the broker")?;
    let deleted =
        webhooks_core::amqp::delete_topology(&connection, &names.topology(), extra_queues).await;
    webhooks_core::amqp::close_connection(&connection, "cleaned up").await;
    Ok(deleted?)
}

async fn drop_database(pg_server: &str, database: &str) -> anyhow::Result<()> {
    let url = format!("{}/postgres", pg_server.trim_end_matches('/'));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let driver = tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS \"{database}\" WITH (FORCE)"
        ))
        .await
        .context("dropping the database")?;
    drop(client);
    let _ = driver.await;
    Ok(())
}

/// Removes worlds, remembering those registered and not removed yet.
pub struct Janitor {
    amqp_url: String,
    pg_server: String,
    /// Queues of a world's own (by name under its prefix) deleted with every world.
    extra_queues: Vec<String>,
    pending: Mutex<Vec<Names>>,
}

impl Janitor {
    pub fn new(amqp_url: &str, pg_server: &str, extra_queues: &[&str]) -> Self {
        Self {
            amqp_url: amqp_url.to_owned(),
            pg_server: pg_server.trim_end_matches('/').to_owned(),
            extra_queues: extra_queues.iter().map(|q| (*q).to_owned()).collect(),
            pending: Mutex::default(),
        }
    }

    /// The broker's URL and the database server's (`postgres://user@host:port`).
    pub fn servers(&self) -> (&str, &str) {
        (&self.amqp_url, &self.pg_server)
    }

    pub fn register(&self, names: &Names) {
        let mut pending = self.pending.lock().expect("janitor lock");
        pending.push(names.clone());
    }

    /// Removes every world not removed yet (after an error or ctrl-c).
    pub async fn clean_all(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("janitor lock"));
        for names in pending {
            self.clean(&names).await;
        }
    }

    /// Removes the world; a failure is reported, not fatal.
    pub async fn clean(&self, names: &Names) {
        self.pending
            .lock()
            .expect("janitor lock")
            .retain(|n| n.id != names.id);
        let extra: Vec<String> = self.extra_queues.iter().map(|q| names.queue(q)).collect();
        if let Err(e) = remove(names, &self.amqp_url, &self.pg_server, &extra).await {
            eprintln!("cleanup: {e:#}");
        }
    }
}
