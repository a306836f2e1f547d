//! Faults inflicted on one world without touching any other on the same servers: its services'
//! broker connections closed from the broker's side (found by the prefix in their names), and its
//! database taken away (new connections refused, open ones ended) and given back.

use anyhow::Context;

/// The broker's ids of the connections whose client-given name contains `prefix` (the services
/// name theirs after their `AMQP_PREFIX`).
pub async fn connections(prefix: &str) -> anyhow::Result<Vec<String>> {
    let listed = rabbitmqctl(&["list_connections", "pid", "client_properties"]).await?;
    Ok(listed
        .lines()
        .filter(|line| line.contains(prefix))
        .filter_map(|line| line.split_whitespace().next().map(str::to_owned))
        .collect())
}

/// Closes connection `id` from the broker's side, as a broker restart or a network cut does.
pub async fn close_connection(id: &str, reason: &str) -> anyhow::Result<()> {
    rabbitmqctl(&["close_connection", id, reason]).await?;
    Ok(())
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

/// A database refusing connections, until [`DatabaseAway::restore`].
pub struct DatabaseAway {
    admin: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<Result<(), tokio_postgres::Error>>,
    database: String,
    /// The backends ended when it went away.
    pub ended: usize,
}

impl DatabaseAway {
    /// Refuses new connections to `database` on `pg_server` and ends its open ones, as a database
    /// restart does.
    pub async fn begin(pg_server: &str, database: &str) -> anyhow::Result<Self> {
        let url = format!("{}/postgres", pg_server.trim_end_matches('/'));
        let (admin, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let driver = tokio::spawn(connection);
        admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false"
            ))
            .await
            .context("refusing connections to the database")?;
        let mut away = Self {
            admin,
            driver,
            database: database.to_owned(),
            ended: 0,
        };
        let ended = away
            .admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()",
                &[&away.database],
            )
            .await;
        match ended {
            Ok(rows) => away.ended = rows.len(),
            Err(e) => {
                // Whatever happened, the database comes back.
                away.restore().await?;
                return Err(e).context("ending the database's connections");
            }
        }
        Ok(away)
    }

    /// Lets connections to the database in again.
    pub async fn restore(self) -> anyhow::Result<()> {
        let back = self
            .admin
            .batch_execute(&format!(
                "ALTER DATABASE \"{}\" ALLOW_CONNECTIONS true",
                self.database
            ))
            .await
            .context("allowing connections to the database again");
        drop(self.admin);
        let _ = self.driver.await;
        back
    }
}
