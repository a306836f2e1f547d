//! The world a test, the benchmark or the soak runs in: its own database, its own broker names,
//! HTTP receivers on port 0, the real dispatcher and sender (in-process or as processes), faults
//! inflicted on that world alone, and an event publisher, all against the machine's PostgreSQL
//! and RabbitMQ. The end-to-end tests (`tests/`) and `webhooks-bench` both build on it.
//!
//! # Layout
//! - [`world`]: starts both services for one test and removes everything it created afterwards.
//! - [`broker`]: a private RabbitMQ node for tests that restart the broker.
//! - [`client`]: the API, the events exchange, the queues, the database and metrics of a world.
//! - [`faults`]: cutting a world's broker connections and taking its database away.
//! - [`postgres`]: a private PostgreSQL cluster for tests that restart the database server.
//! - [`process`]: a service binary as a child process, for crash (kill -9) and signal tests.
//! - [`rabbit`]: a private RabbitMQ node configured before it boots, optionally serving TLS.
//! - [`standalone`]: both services as processes configured by environment, against private backends.
//! - [`receiver`]: an HTTP receiver on port 0 that records requests and answers as told.
//! - [`wait`]: waiting for a condition with a deadline (never a bare sleep).

pub mod broker;
pub mod client;
pub mod faults;
pub mod postgres;
pub mod process;
pub mod rabbit;
pub mod receiver;
pub mod standalone;
pub mod wait;
pub mod world;
