//! Where the database time goes: samples `pg_stat_activity` of one world's database every
//! [`EVERY`] and counts, per statement and per wait event, how many backends were busy with it.
//! A statement's count divided by the number of samples is the average number of backends running
//! it: 1.0 means one connection spent the whole phase in that statement. Backends "idle in
//! transaction" are waiting for their client's next statement (a round trip inside a transaction).

use anyhow::Context;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often `pg_stat_activity` is read.
pub const EVERY: Duration = Duration::from_millis(50);
/// Characters of a statement kept as its label.
const LABEL_CHARS: usize = 72;

#[derive(Default)]
struct Tally {
    samples: u64,
    statements: HashMap<String, u64>,
    waits: HashMap<String, u64>,
}

/// Average busy backends per statement and per wait event over a phase, largest first.
#[derive(Clone, Debug, Default)]
pub struct DbProfile {
    pub samples: u64,
    pub statements: Vec<(String, f64)>,
    pub waits: Vec<(String, f64)>,
}

/// Samples until dropped.
pub struct DbSampler {
    tally: Arc<Mutex<Tally>>,
    task: tokio::task::JoinHandle<()>,
}

impl DbSampler {
    /// Starts sampling the activity of `database` through a connection to `postgres`'s own database.
    pub async fn start(postgres: &str, database: &str) -> anyhow::Result<Self> {
        let url = format!("{postgres}/postgres");
        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .with_context(|| format!("connecting to {url}"))?;
        let tally: Arc<Mutex<Tally>> = Arc::default();
        let shared = tally.clone();
        let database = database.to_owned();
        let task = tokio::spawn(async move {
            let driver = tokio::spawn(connection);
            let mut tick = tokio::time::interval(EVERY);
            loop {
                tick.tick().await;
                let Ok(rows) = client
                    .query(
                        "SELECT state, COALESCE(wait_event_type || ':' || wait_event, 'CPU'), query
                         FROM pg_stat_activity
                         WHERE datname = $1 AND pid <> pg_backend_pid() AND state <> 'idle'",
                        &[&database],
                    )
                    .await
                else {
                    break;
                };
                let mut tally = shared.lock().expect("db sampler lock");
                tally.samples += 1;
                for row in rows {
                    let state: Option<String> = row.get(0);
                    let wait: String = row.get(1);
                    let query: Option<String> = row.get(2);
                    let (statement, wait) = match state.as_deref() {
                        Some("active") => (label(query.as_deref().unwrap_or("")), wait),
                        Some(other) => (
                            format!("({other}: waiting for the client)"),
                            other.to_owned(),
                        ),
                        None => continue,
                    };
                    *tally.statements.entry(statement).or_default() += 1;
                    *tally.waits.entry(wait).or_default() += 1;
                }
            }
            driver.abort();
        });
        Ok(Self { tally, task })
    }

    /// Forgets what was sampled so far (a new phase starts).
    pub fn reset(&self) {
        *self.tally.lock().expect("db sampler lock") = Tally::default();
    }

    /// What was sampled since the last reset.
    pub fn profile(&self) -> DbProfile {
        let tally = self.tally.lock().expect("db sampler lock");
        let samples = tally.samples.max(1) as f64;
        let ranked = |counts: &HashMap<String, u64>| {
            let mut ranked: Vec<(String, f64)> = counts
                .iter()
                .map(|(label, count)| (label.clone(), *count as f64 / samples))
                .collect();
            ranked.sort_by(|a, b| b.1.total_cmp(&a.1));
            ranked
        };
        DbProfile {
            samples: tally.samples,
            statements: ranked(&tally.statements),
            waits: ranked(&tally.waits),
        }
    }
}

impl Drop for DbSampler {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A statement's first characters with its whitespace collapsed.
fn label(query: &str) -> String {
    let collapsed = query.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut label: String = collapsed.chars().take(LABEL_CHARS).collect();
    if collapsed.chars().count() > LABEL_CHARS {
        label.push('…');
    }
    label.replace('|', "/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_collapse_whitespace_and_stay_short() {
        assert_eq!(label("SELECT\n   1"), "SELECT 1");
        let long = format!("UPDATE deliveries SET {}", "x = 1, ".repeat(30));
        assert_eq!(label(&long).chars().count(), LABEL_CHARS + 1);
    }
}
