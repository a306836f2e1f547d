//! Configuration both services share. Each binary flattens [`Common`] into its own `clap` parser,
//! so every setting comes from a flag or from the environment variable named in the contract.

use std::time::Duration;

use crate::secret::ConnectionUrl;

/// Broker, database and logging settings.
#[derive(clap::Args, Clone, Debug)]
pub struct Common {
    /// RabbitMQ URL (by default amqp://guest:***@127.0.0.1:5672/%2f).
    // Neither its value nor its default shows in `--help` (both may hold a password); `Debug`
    // hides the password.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        hide_default_value = true
    )]
    pub amqp_url: ConnectionUrl,

    /// PostgreSQL URL; the database is created and migrated at start-up if missing.
    // Its value does not show in `--help` (it may hold a password; the default holds none);
    // `Debug` hides the password.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/webhooks",
        hide_env_values = true
    )]
    pub database_url: ConnectionUrl,

    /// PEM file of the certificate authorities the database's certificate must come from (with
    /// `sslmode=verify-ca` or `verify-full` in DATABASE_URL; it makes `require` check the chain
    /// too). Wins over `sslrootcert` in the URL. Without either, the system's authorities.
    #[arg(long, env = "DATABASE_CA_FILE")]
    pub database_ca_file: Option<std::path::PathBuf>,

    /// PEM file of certificate authorities the broker's certificate may come from, besides the
    /// system's (AMQP_URL `amqps://`).
    #[arg(long, env = "AMQP_CA_FILE")]
    pub amqp_ca_file: Option<std::path::PathBuf>,

    /// Prefix for every queue and exchange name this service declares, except EVENTS_EXCHANGE
    /// (lets several isolated installations share one vhost; empty in production).
    #[arg(long, env = "AMQP_PREFIX", default_value = "")]
    pub amqp_prefix: String,

    /// Largest number of PostgreSQL connections this process opens.
    #[arg(long, env = "DATABASE_POOL_SIZE", default_value_t = 16)]
    pub database_pool_size: usize,

    /// Log format: `text` or `json`.
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: crate::telemetry::LogFormat,

    /// Longest a client may take to send a request's head (and an idle connection may stay open).
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", default_value = "10s", value_parser = crate::duration::parse)]
    pub http_header_timeout: Duration,

    /// Longest a request to the HTTP server may take, its body included; beyond it, 408.
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", default_value = "30s", value_parser = crate::duration::parse)]
    pub http_request_timeout: Duration,

    /// Most connections the HTTP server serves at once; more wait to be accepted.
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", default_value_t = 256)]
    pub http_max_connections: usize,

    /// How long SIGTERM waits for in-flight work before exiting.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "20s", value_parser = crate::duration::parse)]
    pub shutdown_grace: Duration,

    /// How often the partitions of the coming days are created when missing (and, by the senders,
    /// the days past RETENTION dropped); see `webhooks_core::retention`.
    #[arg(long, env = "MAINTENANCE_INTERVAL", default_value = "1m", value_parser = crate::duration::parse)]
    pub maintenance_interval: Duration,
}
