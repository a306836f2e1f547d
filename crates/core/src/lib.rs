//! Pieces shared by the webhook dispatcher and sender.
//!
//! # Layout
//! - [`event`]: domain events parsed at the edge into typed [`event::Event`]s or a rejection reason.
//! - [`body`]: the HTTP body a subscriber receives, built once per event.
//! - [`signing`]: the Standard Webhooks signature over a delivery.
//! - [`headers`]: the headers of one attempt, sent by the sender and shown by the API.
//! - [`secret`]: secrets that never print.
//! - [`clock`]: the time source, real or driven by tests.
//! - [`duration`]: durations written like `500ms`, `15s`, `2d`.
//! - [`config`]: configuration both services share (broker, database, logging).
//! - [`destination`]: which addresses deliveries may reach (SSRF guard, `ALLOWED_TARGETS`); the
//!   blocks refused are one table in [`destination::special`].
//! - [`delivery`]: a delivery's states and their SQL spelling.
//! - [`db`]: the PostgreSQL pools, database creation and embedded, checksummed migrations.
//! - [`retention`]: daily partitions created ahead and dropped past `RETENTION`.
//! - [`tls`]: TLS to PostgreSQL with libpq's `sslmode` meanings.
//! - [`reconnect`]: backoff with jitter between attempts to reach a backend; error causes for logs.
//! - [`amqp`]: broker connection, topology and confirmed publishing.
//! - [`messages`]: versioned bodies of the queues between our services and to the e-mail service.
//! - [`handoff_auth`]: the dispatcher's signature on hand-off messages, checked by the sender.
//! - [`labels`]: counters split by a label whose values are an enum.
//! - [`server`]: `/healthz`, `/readyz` and `/metrics` for both services.
//! - [`listener`]: the HTTP server they and the API run on, with its timeouts and connection cap.
//! - [`shutdown`]: SIGTERM/SIGINT into one cancellation token.
//! - [`telemetry`]: `tracing` subscriber set-up (text or JSON).

pub mod amqp;
pub mod body;
pub mod clock;
pub mod config;
pub mod db;
pub mod delivery;
pub mod destination;
pub mod duration;
pub mod event;
pub mod handoff_auth;
pub mod headers;
pub mod labels;
pub mod listener;
pub mod memory;
pub mod messages;
pub mod reconnect;
pub mod retention;
pub mod secret;
pub mod server;
pub mod shutdown;
pub mod signing;
pub mod telemetry;
pub mod tls;
