//! End-to-end tests: the real dispatcher and sender, the machine's RabbitMQ and PostgreSQL, and a
//! real HTTP receiver, each test in a world of its own.

mod api;
mod attempts;
mod breaker;
mod console;
mod console_actions;
mod console_deliveries;
mod console_replay;
mod console_scoped;
mod delivery_detail;
mod fair;
mod faults;
mod handoffs;
mod hardening;
mod history;
mod metrics;
mod openapi;
mod pipeline;
mod plans;
mod promises;
mod replay;
mod retention;
mod retries;
mod secrets;
mod security;
mod startup;
mod test_delivery;
mod tls;
mod tokens;

use std::time::Duration;

/// How long a test waits for something that should take milliseconds.
pub const SOON: Duration = Duration::from_secs(15);

/// Waits until the newest delivery of `webhook` is in `state`; returns it.
pub async fn wait_state(
    world: &webhooks_tests::world::World,
    project: &str,
    webhook: &str,
    state: &str,
) -> serde_json::Value {
    webhooks_tests::wait::until(&format!("a delivery in state {state}"), SOON, || async {
        let deliveries = world.deliveries(project, webhook).await;
        deliveries
            .into_iter()
            .next()
            .filter(|d| d["state"] == state)
    })
    .await
}
