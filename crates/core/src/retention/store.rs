//! Every SQL statement of retention: the catalog reads that list the partitions, their creation,
//! and the drop of a day. Identifiers are built from the three table names and a date, never from
//! input.

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Pool, Transaction};
use std::time::{Duration, Instant};
use tokio_postgres::GenericClient;
use tokio_postgres::error::SqlState;

use super::{day_start, id_floor};
use crate::db::StoreError;
use crate::waiting_states;

/// The partitioned tables, in the order their locks are taken.
const TABLES: [&str; 3] = ["events", "deliveries", "attempts"];

/// An arbitrary constant naming the lock of partition maintenance.
const MAINTENANCE_LOCK: i64 = 0x5245_5445_4e54_494f; // "RETENTIO"

/// How long a drop or a creation waits for a table's lock before giving the turn up: less than
/// the server's `deadlock_timeout` (1 s), so that should a service's transaction and this one
/// wait for each other, this one gives up before the deadlock check would abort either.
const LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '500ms'";

/// One day of the three tables, or the first partitions a migrated installation's old tables
/// became.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Partition {
    Day(NaiveDate),
    /// Everything up to `end` (migration 0008).
    Legacy {
        end: DateTime<Utc>,
    },
}

impl Partition {
    /// When the newest row it may hold was recorded, at the latest.
    pub fn end(&self) -> DateTime<Utc> {
        match self {
            Self::Day(day) => day_start(day.succ_opt().unwrap_or(*day)),
            Self::Legacy { end } => *end,
        }
    }

    /// Its name in `table`.
    pub fn name(&self, table: &str) -> String {
        match self {
            Self::Day(day) => format!("{table}_p{}", day.format("%Y%m%d")),
            Self::Legacy { .. } => format!("{table}_legacy"),
        }
    }
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Day(day) => write!(f, "{day}"),
            Self::Legacy { end } => write!(f, "legacy (to {end})"),
        }
    }
}

/// What became of a drop.
pub(super) enum Outcome {
    /// With how long the tables' lock was waited for and held.
    Dropped(Duration),
    /// A delivery of the day is still pending or retrying.
    Waiting,
    /// A table's lock did not come in time.
    Busy,
}

/// The partitions that exist, oldest first (the days are read from `events`; the three tables'
/// days are created and dropped together).
async fn listed(client: &impl GenericClient) -> Result<Vec<Partition>, StoreError> {
    let mut found = Vec::new();
    if let Some(end) = legacy_end(client).await? {
        found.push(Partition::Legacy { end });
    }
    let rows = client
        .query(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'events'::regclass",
            &[],
        )
        .await?;
    let mut days: Vec<NaiveDate> = rows
        .iter()
        .filter_map(|row| {
            let name: String = row.get(0);
            NaiveDate::parse_from_str(name.strip_prefix("events_p")?, "%Y%m%d").ok()
        })
        .collect();
    days.sort();
    found.extend(days.into_iter().map(Partition::Day));
    Ok(found)
}

/// The end of the legacy partitions' range, when they exist: the upper bound of `events_legacy`.
async fn legacy_end(client: &impl GenericClient) -> Result<Option<DateTime<Utc>>, StoreError> {
    let row = client
        .query_opt(
            "SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \\(''([^'']+)''\\)')::timestamptz
             FROM pg_class c WHERE c.oid = to_regclass('events_legacy') AND c.relispartition",
            &[],
        )
        .await?;
    Ok(row.and_then(|row| row.get(0)))
}

/// Those of `days` that have no partitions and that the legacy partitions do not cover.
async fn missing(
    client: &impl GenericClient,
    days: &[NaiveDate],
) -> Result<Vec<NaiveDate>, StoreError> {
    let existing = listed(client).await?;
    let covered = existing.iter().find_map(|p| match p {
        Partition::Legacy { end } => Some(*end),
        Partition::Day(_) => None,
    });
    Ok(days
        .iter()
        .copied()
        .filter(|day| !existing.contains(&Partition::Day(*day)))
        .filter(|day| covered.is_none_or(|end| day_start(*day) >= end))
        .collect())
}

/// Creates the partitions of those of `days` that are [`missing`], in one transaction; returns
/// how many days it created. With `wait`, another instance's turn is waited for (up to 30 s) and a
/// lock that does not come is an error; without, the turn is left to that
/// instance (0). The days missing are read again under the lock: another instance may have
/// created them meanwhile.
pub(super) async fn create(
    pool: &Pool,
    days: &[NaiveDate],
    wait: bool,
) -> Result<usize, StoreError> {
    let mut client = pool.get().await?;
    if missing(&**client, days).await?.is_empty() {
        return Ok(0);
    }
    let tx = client.transaction().await?;
    if wait {
        // Waiting for another instance's turn holds up no one else: longer than for a table.
        tx.batch_execute("SET LOCAL lock_timeout = '30s'").await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MAINTENANCE_LOCK])
            .await?;
        tx.batch_execute(LOCK_TIMEOUT).await?;
    } else if !locked(&tx).await? {
        return Ok(0);
    }
    let missing = missing(&*tx, days).await?;
    if missing.is_empty() {
        return Ok(0);
    }
    for day in &missing {
        let partition = Partition::Day(*day);
        let (start, end) = (day_start(*day), partition.end());
        let (id_start, id_end) = (id_floor(start), id_floor(end));
        // Under the lock, so none of these exists; IF NOT EXISTS all the same, as any DDL here.
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {events} PARTITION OF events
                 FOR VALUES FROM ('{start}') TO ('{end}');
             CREATE TABLE IF NOT EXISTS {deliveries} PARTITION OF deliveries
                 FOR VALUES FROM ('{id_start}') TO ('{id_end}') WITH (fillfactor = 50);
             CREATE TABLE IF NOT EXISTS {attempts} PARTITION OF attempts
                 FOR VALUES FROM ('{id_start}') TO ('{id_end}');",
            events = partition.name("events"),
            deliveries = partition.name("deliveries"),
            attempts = partition.name("attempts"),
            start = start.to_rfc3339(),
            end = end.to_rfc3339(),
        );
        match tx.batch_execute(&ddl).await {
            Ok(()) => {}
            Err(e) if !wait && e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => return Ok(0),
            Err(e) => return Err(e.into()),
        }
    }
    tx.commit().await?;
    tracing::info!(days = missing.len(), "created partitions ahead");
    Ok(missing.len())
}

/// A connection holding the maintenance lock (at session level) for a run of drops: no other
/// instance creates or drops partitions until [`Drops::end`]. A connection that breaks meanwhile
/// takes the lock with it.
pub(super) struct Drops {
    client: deadpool_postgres::Object,
}

impl Drops {
    /// The lock if no other instance holds it.
    pub(super) async fn begin(pool: &Pool) -> Result<Option<Self>, StoreError> {
        let client = pool.get().await?;
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1)", &[&MAINTENANCE_LOCK])
            .await?;
        Ok(row.get::<_, bool>(0).then_some(Self { client }))
    }

    /// The partitions as they are now, under the lock.
    pub(super) async fn partitions(&self) -> Result<Vec<Partition>, StoreError> {
        listed(&**self.client).await
    }

    /// Drops a day's three partitions unless a delivery of it is still waiting.
    ///
    /// First, outside the tables' locks, the day's event ids leave `event_keys` (through its
    /// primary key; they are past the de-duplication window already), which is vacuumed. Then,
    /// in one transaction, the three parent tables are locked (`ACCESS EXCLUSIVE`, which
    /// detaching needs), the check for waiting deliveries is made again under that lock (through
    /// the partition's due index), and the partitions are detached and dropped, reading no rows:
    /// the lock is held little longer than it took to get.
    pub(super) async fn drop(&mut self, partition: &Partition) -> Result<Outcome, StoreError> {
        let deliveries = partition.name("deliveries");
        let waiting = format!(
            "SELECT EXISTS (SELECT 1 FROM {deliveries} WHERE state IN {})",
            waiting_states!()
        );
        if self
            .client
            .query_one(&waiting, &[])
            .await?
            .get::<_, bool>(0)
        {
            return Ok(Outcome::Waiting);
        }
        let events = partition.name("events");
        self.client
            .execute(
                &format!("DELETE FROM event_keys k USING {events} e WHERE k.id = e.id"),
                &[],
            )
            .await?;
        // The space of the keys deleted is free for the next days' at once, rather than at
        // autovacuum's next visit: the keys of a day are a third of the table when RETENTION is
        // 3 days. VACUUM does not stop the inserts meanwhile (SHARE UPDATE EXCLUSIVE).
        self.client.batch_execute("VACUUM event_keys").await?;
        let tx = self.client.transaction().await?;
        tx.batch_execute(LOCK_TIMEOUT).await?;
        let locking = Instant::now();
        let lock = format!("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE", TABLES.join(", "));
        match tx.batch_execute(&lock).await {
            Ok(()) => {}
            Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                return Ok(Outcome::Busy);
            }
            Err(e) => return Err(e.into()),
        }
        if tx.query_one(&waiting, &[]).await?.get::<_, bool>(0) {
            return Ok(Outcome::Waiting);
        }
        for table in TABLES {
            let name = partition.name(table);
            tx.batch_execute(&format!(
                "ALTER TABLE {table} DETACH PARTITION {name}; DROP TABLE {name};"
            ))
            .await?;
        }
        tx.commit().await?;
        Ok(Outcome::Dropped(locking.elapsed()))
    }

    /// Deletes the replays that finished before `horizon`: a finished replay keeps no matches
    /// (`replay_items`), and the deliveries it handed back are past the window too. Running ones
    /// stay, however old. Returns how many went.
    pub(super) async fn forget_replays(&self, horizon: DateTime<Utc>) -> Result<u64, StoreError> {
        Ok(self
            .client
            .execute("DELETE FROM replays WHERE finished_at < $1", &[&horizon])
            .await?)
    }

    /// Lets the lock go.
    pub(super) async fn end(self) -> Result<(), StoreError> {
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&MAINTENANCE_LOCK])
            .await?;
        Ok(())
    }
}

/// Takes the maintenance lock for the rest of `tx` if no other session holds it, and bounds the
/// wait for tables' locks ([`LOCK_TIMEOUT`]).
async fn locked(tx: &Transaction<'_>) -> Result<bool, StoreError> {
    tx.batch_execute(LOCK_TIMEOUT).await?;
    let row = tx
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&MAINTENANCE_LOCK])
        .await?;
    Ok(row.get(0))
}
