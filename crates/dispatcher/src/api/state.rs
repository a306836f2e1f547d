//! What every handler of the API is given, and how it takes its one database connection.

use deadpool_postgres::Pool;
use std::sync::Arc;
use webhooks_core::clock::Clock;
use webhooks_core::destination::Destinations;
use webhooks_core::secret::Secret;

use super::error::ApiError;
use crate::index::WebhookIndex;
use crate::metrics::Metrics;
use crate::project_token::TokenKey;

/// Longest a request queues for a pooled database connection before it is answered 503.
pub const POOL_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// What every handler needs.
#[derive(Clone)]
pub struct Api {
    pub pool: Pool,
    pub index: WebhookIndex,
    pub clock: Clock,
    pub destinations: Destinations,
    pub token: Arc<Secret>,
    /// Signs and checks project tokens; derived from `token`.
    pub token_key: TokenKey,
    pub metrics: Metrics,
    /// Wakes the replay task when a replay is created.
    pub replays: crate::replay::Wake,
}

impl Api {
    /// A pooled connection, queueing for one for at most [`POOL_WAIT`] (then [`ApiError::busy`]).
    /// A handler takes one and no other: it never asks the pool again while holding it.
    pub(super) async fn client(&self) -> Result<deadpool_postgres::Client, ApiError> {
        let timeouts = deadpool_postgres::Timeouts {
            wait: Some(POOL_WAIT),
            ..self.pool.timeouts()
        };
        Ok(self.pool.timeout_get(&timeouts).await?)
    }
}
