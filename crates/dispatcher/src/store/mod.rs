//! Every SQL statement of the dispatcher, each beside a comment on what it relies on: the index it
//! is planned through, why a predicate that looks redundant is there, what it locks.
//!
//! Functions take a client or a transaction (the caller decides which connection, and when to
//! commit), typed arguments, and return typed rows; nothing above this module writes SQL.
//! Delivery states are spelt through the macros of [`webhooks_core::delivery`]. The tables,
//! their indexes and their storage settings are defined by the migrations in `webhooks_core::db`.
//!
//! # Layout
//! - [`record`]: the record of a batch (events and their deliveries in one statement), and the
//!   waiting deliveries of redelivered events.
//! - [`webhooks`]: the webhooks the matching index loads, and the API's webhook statements.
//! - [`listing`]: a project's deliveries, one by id or pages of them filtered.
//! - [`secrets`]: a webhook's secret rotated with a grace period.
//! - [`deliveries`]: a webhook's recent deliveries and their attempts, the manual retry, and the
//!   cancellation of waiting deliveries.
//! - [`replays`]: bulk replays and their matches, as the API asks for them;
//!   [`replay_steps`]: the statements of the replay task that carries them out.

pub mod deliveries;
pub mod listing;
pub mod record;
pub mod replay_steps;
pub mod replays;
pub mod secrets;
pub mod webhooks;
