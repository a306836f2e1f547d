//! What a world owns on the shared servers (a database, queues and exchanges under a unique
//! prefix) and the [`Janitor`] that deletes them: after each scenario, and for every world left
//! over when the run ends early (an error, ctrl-c or SIGTERM).

use anyhow::Context;
use std::sync::Mutex;
use webhooks_core::amqp::Topology;

/// The names one world owns.
#[derive(Clone, Debug)]
pub struct Names {
    pub id: String,
    pub database: String,
    pub prefix: String,
    pub exchange: String,
}

impl Names {
    pub fn fresh() -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string()[..10].to_owned();
        Self {
            database: format!("whbench_{id}"),
            prefix: format!("bench{id}."),
            exchange: format!("bench{id}.domain.events"),
            id,
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix, &self.exchange)
    }
}

/// Deletes the queues, exchanges and databases of worlds, remembering those not yet cleaned.
pub struct Janitor {
    amqp_url: String,
    postgres: String,
    pending: Mutex<Vec<Names>>,
}

impl Janitor {
    pub fn new(amqp_url: &str, postgres: &str) -> Self {
        Self {
            amqp_url: amqp_url.to_owned(),
            postgres: postgres.trim_end_matches('/').to_owned(),
            pending: Mutex::default(),
        }
    }

    pub fn register(&self, names: &Names) {
        self.pending
            .lock()
            .expect("janitor lock")
            .push(names.clone());
    }

    /// Cleans every world not cleaned yet (after an error or ctrl-c).
    pub async fn clean_all(&self) {
        let pending = std::mem::take(&mut *self.pending.lock().expect("janitor lock"));
        for names in pending {
            self.clean(&names).await;
        }
    }

    /// Deletes the world's queues, exchanges and database; failures are reported, not fatal.
    pub async fn clean(&self, names: &Names) {
        self.pending
            .lock()
            .expect("janitor lock")
            .retain(|n| n.id != names.id);
        if let Err(e) = self.delete_broker_names(names).await {
            eprintln!("cleanup: broker names of {}: {e:#}", names.prefix);
        }
        if let Err(e) = self.drop_database(&names.database).await {
            eprintln!("cleanup: database {}: {e:#}", names.database);
        }
    }

    async fn delete_broker_names(&self, names: &Names) -> anyhow::Result<()> {
        let connection = crate::publisher::connect(&self.amqp_url, "webhooks-bench-cleanup")
            .await
            .context("connecting to the broker")?;
        webhooks_core::amqp::delete_topology(
            &connection,
            &names.topology(),
            &[format!("{}bench.hop", names.prefix)],
        )
        .await?;
        webhooks_core::amqp::close_connection(&connection, "cleaned up").await;
        Ok(())
    }

    async fn drop_database(&self, database: &str) -> anyhow::Result<()> {
        let url = format!("{}/postgres", self.postgres);
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
}
