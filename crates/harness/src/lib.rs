//! The world a test, the benchmark or the soak runs in: its own database, its own broker names,
//! HTTP receivers on port 0, the real dispatcher and sender (in-process or as processes), faults
//! inflicted on that world alone, and an event publisher, all against the machine's PostgreSQL
//! and RabbitMQ. The end-to-end tests (`tests/`) and `webhooks-bench` both build on it.
//!
//! # Layout
//! From the bottom up; a module uses only those above it in this list.
//! - [`wait`]: waiting for a condition with a deadline (never a bare sleep).
//! - [`names`]: what a world owns on the servers, and removing it.
//! - [`marks`]: what an event's payload carries for a receiver to match it to its publish.
//! - [`metrics`]: a service's `/metrics`, parsed.
//! - [`process`]: a service binary as a child process, for crash (kill -9) and signal tests.
//! - [`service`]: a running service's readiness and metrics, and the environment of a world.
//! - [`api`]: the management API as a client uses it.
//! - [`faults`]: cutting a world's broker connections and taking its database away.
//! - [`publisher`]: publishing events with confirms, pipelined, as other services do;
//!   [`publishing`]: a run of such events in the background.
//! - [`receiver`]: HTTP receivers: the tests' (records and answers as told) and the benchmark's
//!   (matches arrivals to publishes).
//! - [`seed`]: history inserted straight into a world's tables, millions of rows at once.
//! - [`broker`], [`postgres`]: a private RabbitMQ node and PostgreSQL cluster, for tests that
//!   restart them; [`rabbit`]: a private RabbitMQ node configured before it boots, optionally
//!   serving TLS.
//! - [`standalone`]: both services as processes configured by environment, against private
//!   backends.
//! - [`services`]: a world of service processes (the benchmark's and the soak's); [`injector`]:
//!   faults injected into it, on a seeded schedule; [`seed`]: many deliveries written into its
//!   tables at once.
//! - [`world`]: a test's world, with both services in-process.

pub mod api;
pub mod broker;
pub mod faults;
pub mod injector;
pub mod marks;
pub mod metrics;
pub mod names;
pub mod postgres;
pub mod process;
pub mod publisher;
pub mod publishing;
pub mod rabbit;
pub mod receiver;
pub mod seed;
pub mod service;
pub mod services;
pub mod standalone;
pub mod wait;
pub mod world;
