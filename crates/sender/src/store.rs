//! Every SQL statement of the sender, beside the rows it reads and writes. Callers pass a session
//! or a transaction and typed values and get typed rows back; what to write is decided elsewhere
//! ([`crate::outcome`], [`crate::disable`]). This module imports nothing of the sender's own.
//!
//! # Layout
//! - [`claims`]: leases on deliveries for an attempt, and the webhooks of carried deliveries.
//! - [`events`]: the bodies too large to come with a claim, read apart.
//! - [`outcomes`]: attempts, the states they leave deliveries in, the attempts pruned beyond
//!   what a delivery keeps, deferrals and releases.
//! - [`webhooks`]: webhook health, and the disable with the cancel of its waiting deliveries.
//! - [`outbox`]: the disable notifications waiting for the broker.
//! - [`backlog`]: the count of the work waiting.
//!
//! # What the statements rely on
//! - **The due index** (`deliveries_due`: `next_attempt_at`, partial on the waiting states). A
//!   statement that looks for waiting work names the waiting states exactly as its condition does
//!   (`waiting_states!` from core's `delivery` module), so that it can be planned through it. A
//!   statement that reaches deliveries by id spells the states it wants as the ones it does not
//!   (`NOT IN finished_states!()`, and `<> retrying_state!()` for "pending"), so that the planner
//!   cannot choose that index, which holds every waiting delivery, over the primary key.
//! - **Index-only sessions**: the sender's sessions plan no sequential scan where an index serves
//!   (`Reads::ByIndex` in core's `db`), so a statement prepared while a table was nearly empty
//!   keeps reaching rows by key as it grows.
//! - **Heap-only leases**: a lease writes `leased_until` alone, which no index covers, on pages
//!   left half free (fillfactor 50), so that it adds no index entries.
//! - **Lock order**: webhooks before deliveries, each in id order, as the API locks them.
//! - **`SKIP LOCKED`** where several senders take work from one queue (due deliveries, the
//!   outbox): each takes rows no other is taking, instead of waiting for them.

pub mod backlog;
pub mod claims;
pub mod events;
pub mod outbox;
pub mod outcomes;
pub mod webhooks;
