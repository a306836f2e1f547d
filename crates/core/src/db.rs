//! PostgreSQL: where it is and how to reach it (TLS included), the pools, creating the database
//! when it is missing, and the embedded migrations.
//!
//! Nothing connects until it is used: [`Database::new`] only reads the settings, and a pool opens
//! its connections on demand. A service builds its pools at once and runs [`Database::set_up`]
//! (retried until the server answers) before anything else uses them.
//!
//! Migrations run under an advisory lock in one transaction, so several instances starting at once
//! apply each migration exactly once; each is checksummed (see [`migrate`](mod@migrate)).

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use std::path::Path;
use std::time::Duration;
use tokio_postgres::Socket;

use crate::tls::{MakeRustls, RustlsStream, TlsError};

mod migrate;

pub use migrate::checksum;
use migrate::migrate;

/// The number of embedded migrations: the schema version this build brings a database to.
pub const SCHEMA_VERSION: usize = migrate::MIGRATIONS.len();

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("invalid DATABASE_URL: {0}")]
    Url(#[source] tokio_postgres::Error),
    #[error("database: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("database pool: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database pool set-up: {0}")]
    Build(#[from] deadpool_postgres::BuildError),
    #[error("database TLS: {0}")]
    Tls(#[from] TlsError),
    /// A migration applied earlier no longer reads as it did: see [`migrate`](mod@migrate).
    #[error(
        "migration {version} ({name}) was changed after it was applied: schema_migrations records \
         checksum {found}, this build's text has {expected}; restore the file and put the change \
         in a new migration"
    )]
    MigrationChanged {
        version: i32,
        name: &'static str,
        found: String,
        expected: String,
    },
}

impl StoreError {
    /// True when trying again cannot help: the database's schema is not one this build may use.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Self::MigrationChanged { .. })
    }

    /// True when the error says a row broke a unique constraint.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Postgres(e) => {
                e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION)
            }
            _ => false,
        }
    }
}

/// How a pool's sessions let the server reach rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reads {
    /// The server's defaults.
    Default,
    /// Never by a sequential scan where an index serves (`enable_seqscan=off`, which makes such a
    /// scan the last resort rather than forbidding it). For sessions whose statements reach rows by
    /// key only: a statement prepared once keeps the plan the server chose while a fresh table was
    /// nearly empty, when reading its one page beat an index, and scans the whole table at every
    /// run once it has grown, until the next ANALYZE. Planning every run instead cost more than a
    /// millisecond a statement.
    ByIndex,
}

/// The database named by `DATABASE_URL`, with its TLS settings: `sslmode` and `sslrootcert` in the
/// URL (see [`crate::tls`]) and `ca_file` (`DATABASE_CA_FILE`, which wins over `sslrootcert`).
#[derive(Clone)]
pub struct Database {
    config: tokio_postgres::Config,
    tls: MakeRustls,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // tokio-postgres's `Config` hides the password in its own `Debug`.
        f.debug_struct("Database")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Database {
    /// Reads the settings (and the CA file); connects to nothing.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, StoreError> {
        let split = crate::tls::split_url(url)?;
        let mut config: tokio_postgres::Config = split.url.parse().map_err(StoreError::Url)?;
        let mode = split.mode.unwrap_or_default();
        config.ssl_mode(mode.negotiation());
        // A server that never answers (a dropped route, not a refusal) must not hold a connection
        // attempt forever: the listener's connection has no pool timeout around it.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let ca_file = ca_file.or(split.root_cert.as_deref());
        let tls = MakeRustls::new(crate::tls::client_config(mode, ca_file)?);
        Ok(Self { config, tls })
    }

    /// A pool of at most `size` connections; see [`Reads`].
    pub fn pool(&self, size: usize, reads: Reads) -> Result<Pool, StoreError> {
        self.pool_of(session(self.config.clone(), reads, false), size)
    }

    /// A pool whose commits return as soon as they are written, before they reach the disk
    /// (`synchronous_commit=off`). For writes that a delivery waits for but whose loss in a
    /// database crash costs at most a repeated attempt: what must survive a crash is made durable
    /// by a [`flush`] before anything depends on it (an event is acked only after one). A crash of
    /// the client loses nothing: only the server's own crash can drop the last fraction of a
    /// second of such commits.
    pub fn unflushed_pool(&self, size: usize, reads: Reads) -> Result<Pool, StoreError> {
        self.pool_of(session(self.config.clone(), reads, true), size)
    }

    fn pool_of(&self, config: tokio_postgres::Config, size: usize) -> Result<Pool, StoreError> {
        let manager = Manager::from_config(
            config,
            self.tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        Ok(Pool::builder(manager)
            .max_size(size)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(5)))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()?)
    }

    /// Creates the database if it is missing and migrates it, through `pool` (one of this
    /// database's). Fails while the server is away; the caller tries again.
    pub async fn set_up(&self, pool: &Pool) -> Result<(), StoreError> {
        self.create_if_missing().await?;
        migrate(pool).await
    }

    /// One connection outside any pool (for LISTEN), with its driver to spawn.
    pub async fn connect(
        &self,
    ) -> Result<
        (
            tokio_postgres::Client,
            tokio_postgres::Connection<Socket, RustlsStream<Socket>>,
        ),
        StoreError,
    > {
        Ok(self.config.connect(self.tls.clone()).await?)
    }

    async fn create_if_missing(&self) -> Result<(), StoreError> {
        let Some(name) = self.config.get_dbname().map(str::to_owned) else {
            return Ok(());
        };
        let mut admin = self.config.clone();
        admin.dbname("postgres");
        admin.connect_timeout(Duration::from_secs(5));
        let (client, connection) = admin.connect(self.tls.clone()).await?;
        let driver = tokio::spawn(connection);
        let exists = client
            .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
            .await?
            .is_some();
        if !exists {
            let quoted = format!("\"{}\"", name.replace('"', "\"\""));
            if let Err(e) = client
                .batch_execute(&format!("CREATE DATABASE {quoted}"))
                .await
            {
                use tokio_postgres::error::SqlState;
                // Another instance created it between our check and our CREATE.
                let raced = e.code() == Some(&SqlState::DUPLICATE_DATABASE)
                    || e.code() == Some(&SqlState::UNIQUE_VIOLATION);
                if !raced {
                    return Err(e.into());
                }
            } else {
                tracing::info!(database = %name, "created database");
            }
        }
        drop(client);
        let _ = driver.await;
        Ok(())
    }
}

/// Creates the database if needed, migrates it and returns a pool of at most `size` connections:
/// [`Database::new`] without a CA file, [`Database::pool`] and [`Database::set_up`] at once.
pub async fn connect(url: &str, size: usize, reads: Reads) -> Result<Pool, StoreError> {
    let database = Database::new(url, None)?;
    let pool = database.pool(size, reads)?;
    database.set_up(&pool).await?;
    Ok(pool)
}

/// [`Database::unflushed_pool`] onto a database that [`connect`] has already set up.
pub fn connect_unflushed(url: &str, size: usize, reads: Reads) -> Result<Pool, StoreError> {
    Database::new(url, None)?.unflushed_pool(size, reads)
}

/// Returns once everything committed before it, on any connection and however committed, is on
/// disk. It writes a record of its own (a logical decoding message, which decoders that do not
/// ask for messages skip) and commits it with the session's `synchronous_commit`, raised to
/// `local` for this one transaction should the session or the server have it `off`. That commit
/// flushes the write-ahead log up to the record; the log is written in order, so every earlier
/// commit is flushed with it. (A transaction that writes nothing, `SELECT txid_current()` say, is
/// not flushed at commit.)
pub async fn flush(pool: &Pool) -> Result<(), StoreError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT CASE WHEN current_setting('synchronous_commit') = 'off'
                         THEN set_config('synchronous_commit', 'local', true) END,
                    pg_logical_emit_message(true, 'webhooks.flush', '')::text",
        )
        .await?;
    client.query_one(&statement, &[]).await?;
    Ok(())
}

/// The connection settings of a pool's sessions.
///
/// Every session runs without JIT compilation (`jit=off`): the server compiles a statement whose
/// estimated cost passes `jit_above_cost`, and a generic plan over many day partitions can pass it
/// while it reads a few dozen rows. The compilation then costs seconds of the server's CPU at
/// each execution, where the statement itself takes a millisecond (see docs/decisions.md).
fn session(
    mut config: tokio_postgres::Config,
    reads: Reads,
    unflushed: bool,
) -> tokio_postgres::Config {
    let mut options: Vec<&str> = config.get_options().into_iter().collect();
    options.push("-c jit=off");
    if reads == Reads::ByIndex {
        options.push("-c enable_seqscan=off");
    }
    if unflushed {
        options.push("-c synchronous_commit=off");
    }
    let options = options.join(" ");
    if !options.is_empty() {
        config.options(options);
    }
    config
}

/// True when a trivial query answers within a second.
pub async fn is_reachable(pool: &Pool) -> bool {
    let probe = async {
        let client = pool.get().await.ok()?;
        client.simple_query("SELECT 1").await.ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), probe).await,
        Ok(Some(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn settings_are_read_without_connecting_and_hide_the_password() {
        let database = Database::new(
            "postgres://app:pg-hunter2@db.invalid:5432/webhooks?sslmode=require",
            None,
        )
        .expect("settings");
        let shown = format!("{database:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        // No server exists at that name: building pools must not need one.
        database.pool(2, Reads::ByIndex).expect("a pool");
        database.unflushed_pool(2, Reads::Default).expect("a pool");
        let error = Database::new("postgres://db/w?sslmode=verify-everything", None)
            .expect_err("an unknown mode");
        assert!(error.to_string().contains("verify-everything"), "{error}");
    }
}
