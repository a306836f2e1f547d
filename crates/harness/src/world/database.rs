//! A world's database, read as a test checks it, and the clock its services run on.

use super::World;

/// How many webhooks are enabled (and not deleted): those a dispatcher's matching index holds.
pub(super) async fn enabled_webhooks(db: &tokio_postgres::Client) -> i64 {
    db.query_one(
        "SELECT count(*) FROM webhooks WHERE enabled AND deleted_at IS NULL",
        &[],
    )
    .await
    .expect("enabled webhooks")
    .get(0)
}

/// SQL for a new delivery id of the database's `now()`, for tests that insert deliveries by hand:
/// a UUIDv7 (its first 48 bits the milliseconds since the epoch, the rest random), as the
/// dispatcher makes them, so that it falls in today's partition of `deliveries`.
pub const DELIVERY_ID_NOW: &str = "(substr(lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0'), 1, 8) || '-' || \
     substr(lpad(to_hex((extract(epoch FROM now()) * 1000)::bigint), 12, '0'), 9, 4) || \
     substr(gen_random_uuid()::text, 14))::uuid";

impl World {
    /// How many deliveries are recorded for an event.
    pub async fn deliveries_of_event(&self, event_id: &str) -> i64 {
        self.db()
            .await
            .query_one(
                "SELECT count(*) FROM deliveries WHERE event_id = $1",
                &[&event_id],
            )
            .await
            .expect("count")
            .get(0)
    }

    /// Opens a database connection to this world's database.
    pub async fn db(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.database_url, tokio_postgres::NoTls)
                .await
                .expect("test database connection");
        tokio::spawn(connection);
        client
    }

    /// Deliveries recorded and not finished yet (pending or retrying): at a fault, the most that
    /// can be sent twice because of it.
    pub async fn unfinished_deliveries(&self) -> usize {
        let count: i64 = self
            .db()
            .await
            .query_one(
                "SELECT count(*) FROM deliveries WHERE state IN ('pending', 'retrying')",
                &[],
            )
            .await
            .expect("unfinished deliveries")
            .get(0);
        usize::try_from(count).unwrap_or(0)
    }

    /// Moves the clock to the earliest time a delivery of `webhook` waits for (a retry, or a
    /// delivery held back), so that the scheduler takes it on its next turn. Returns that time's
    /// distance from now, or `None` when no delivery of the webhook is waiting.
    pub async fn advance_to_next_attempt(&self, webhook: &str) -> Option<std::time::Duration> {
        let next: Option<chrono::DateTime<chrono::Utc>> = self
            .db()
            .await
            .query_one(
                "SELECT min(next_attempt_at) FROM deliveries
                 WHERE webhook_id = $1::text::uuid AND state IN ('pending', 'retrying')",
                &[&webhook],
            )
            .await
            .expect("next attempt")
            .get(0);
        let wait = (next? - self.clock.now()).to_std().unwrap_or_default();
        self.clock
            .advance(wait + std::time::Duration::from_millis(1));
        Some(wait)
    }
}
