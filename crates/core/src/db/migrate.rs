//! The embedded migrations, applied in order under an advisory lock in one transaction, so several
//! instances starting at once apply each exactly once.
//!
//! Each applied migration is recorded in `schema_migrations` with the SHA-256 of its text. A
//! migration whose text here no longer matches the one recorded was edited after it ran: the
//! database holds what the old text made, not what this text makes, so the start is refused with
//! [`StoreError::MigrationChanged`] naming it. Migrations applied before checksums were recorded
//! (an installation upgraded from before version 8) are given the checksum of the text embedded
//! in the first version that records them: that version's text is trusted as what ran.

use deadpool_postgres::Pool;
use sha2::{Digest, Sha256};

use super::StoreError;

/// Migrations in order, by file name; the version is the position plus one.
pub(super) const MIGRATIONS: &[(&str, &str)] = &[
    ("0001_init.sql", include_str!("../migrations/0001_init.sql")),
    (
        "0002_drop_redundant_foreign_keys.sql",
        include_str!("../migrations/0002_drop_redundant_foreign_keys.sql"),
    ),
    (
        "0003_heap_only_leases.sql",
        include_str!("../migrations/0003_heap_only_leases.sql"),
    ),
    (
        "0004_deliveries_deduplicated_by_event.sql",
        include_str!("../migrations/0004_deliveries_deduplicated_by_event.sql"),
    ),
    (
        "0005_deliveries_leave_half_a_page.sql",
        include_str!("../migrations/0005_deliveries_leave_half_a_page.sql"),
    ),
    (
        "0006_attempts_bounded.sql",
        include_str!("../migrations/0006_attempts_bounded.sql"),
    ),
    (
        "0007_previous_secret.sql",
        include_str!("../migrations/0007_previous_secret.sql"),
    ),
    (
        "0008_partitioned_by_day.sql",
        include_str!("../migrations/0008_partitioned_by_day.sql"),
    ),
    (
        "0009_replays.sql",
        include_str!("../migrations/0009_replays.sql"),
    ),
    (
        "0010_last_success.sql",
        include_str!("../migrations/0010_last_success.sql"),
    ),
];

/// An arbitrary constant naming the migration lock.
const MIGRATION_LOCK: i64 = 0x5745_4248_4f4f_4b53; // "WEBHOOKS"

/// The SHA-256 of a migration's text, in hex.
pub fn checksum(sql: &str) -> String {
    Sha256::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

pub(super) async fn migrate(pool: &Pool) -> Result<(), StoreError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
         ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text",
    )
    .await?;
    let recorded = tx
        .query("SELECT version, checksum FROM schema_migrations", &[])
        .await?;
    let mut applied = 0;
    for row in &recorded {
        let version: i32 = row.get(0);
        applied = applied.max(version);
        let Some((name, sql)) = usize::try_from(version - 1)
            .ok()
            .and_then(|index| MIGRATIONS.get(index))
        else {
            // A newer version's migration: nothing here to compare it with.
            continue;
        };
        let expected = checksum(sql);
        match row.get::<_, Option<String>>(1) {
            None => {
                tx.execute(
                    "UPDATE schema_migrations SET checksum = $2 WHERE version = $1",
                    &[&version, &expected],
                )
                .await?;
            }
            Some(found) if found != expected => {
                return Err(StoreError::MigrationChanged {
                    version,
                    name,
                    found,
                    expected,
                });
            }
            Some(_) => {}
        }
    }
    for (index, (_, sql)) in MIGRATIONS.iter().enumerate() {
        let version = i32::try_from(index + 1).expect("few migrations");
        if version > applied {
            tx.batch_execute(sql).await?;
            tx.execute(
                "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                &[&version, &checksum(sql)],
            )
            .await?;
            tracing::info!(version, "applied migration");
        }
    }
    tx.commit().await?;
    Ok(())
}
