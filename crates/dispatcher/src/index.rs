//! The in-memory index of enabled webhooks by (project, event), so matching an event costs no
//! database round-trip.
//!
//! It is filled by a full load at start, kept fresh by PostgreSQL `LISTEN webhooks_changed` (a
//! trigger notifies every dispatcher instance when a webhook's matching fields change), reloaded in
//! full periodically and after every reconnection, and updated synchronously by this instance's own
//! API calls. A stale entry can only ever cause a lookup miss for a moment: inserting a delivery
//! re-checks in the same statement that the webhook is still enabled.

use futures::StreamExt;
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_postgres::AsyncMessage;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use webhooks_core::db::StoreError;
use webhooks_core::event::EventName;

use crate::store::webhooks::{self as store, Subscription};

#[derive(Default)]
struct Inner {
    by_key: HashMap<(String, EventName), Vec<Uuid>>,
    by_id: HashMap<Uuid, (String, Vec<EventName>)>,
}

/// Shared, read-mostly index; readers never wait on the database.
#[derive(Clone, Default)]
pub struct WebhookIndex {
    inner: Arc<RwLock<Inner>>,
}

impl WebhookIndex {
    /// Webhooks of `project` listening to `event`.
    pub fn matching(&self, project: &str, event: EventName) -> Vec<Uuid> {
        let inner = self.inner.read().expect("index lock");
        // The key must be owned to look up; projects codes are short.
        inner
            .by_key
            .get(&(project.to_owned(), event))
            .cloned()
            .unwrap_or_default()
    }

    pub fn len(&self) -> usize {
        self.inner.read().expect("index lock").by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Replaces the whole index.
    pub fn replace_all(&self, entries: Vec<Subscription>) {
        let mut fresh = Inner::default();
        for entry in entries {
            insert(&mut fresh, entry);
        }
        *self.inner.write().expect("index lock") = fresh;
    }

    /// Applies the current state of `ids`: present entries are (re)inserted, the others removed.
    pub fn apply(&self, ids: &[Uuid], present: Vec<Subscription>) {
        let mut inner = self.inner.write().expect("index lock");
        for id in ids {
            remove(&mut inner, *id);
        }
        for entry in present {
            insert(&mut inner, entry);
        }
    }

    /// Loads every enabled webhook, on a connection the caller holds.
    pub async fn load_all(&self, client: &tokio_postgres::Client) -> Result<(), StoreError> {
        self.replace_all(store::subscriptions(client).await?);
        Ok(())
    }

    /// Re-reads the given webhooks and applies what it finds, on a connection the caller holds
    /// (an API request's own, after its commit): it never asks a pool for another.
    pub async fn refresh(
        &self,
        client: &tokio_postgres::Client,
        ids: &[Uuid],
    ) -> Result<(), StoreError> {
        self.apply(ids, store::subscriptions_among(client, ids).await?);
        Ok(())
    }
}

fn insert(inner: &mut Inner, entry: Subscription) {
    for event in &entry.events {
        inner
            .by_key
            .entry((entry.project_code.clone(), *event))
            .or_default()
            .push(entry.id);
    }
    inner
        .by_id
        .insert(entry.id, (entry.project_code, entry.events));
}

fn remove(inner: &mut Inner, id: Uuid) {
    let Some((project, events)) = inner.by_id.remove(&id) else {
        return;
    };
    for event in events {
        let key = (project.clone(), event);
        if let Some(ids) = inner.by_key.get_mut(&key) {
            ids.retain(|other| *other != id);
            if ids.is_empty() {
                inner.by_key.remove(&key);
            }
        }
    }
}

/// Keeps `index` fresh until `shutdown`: LISTEN for changes, full reload on every (re)connection and
/// every `reload_every`. It reads on its listening connection, a connection of its own outside the
/// pool, so it neither waits behind the API's requests for a pooled connection nor takes one from
/// them.
pub async fn keep_fresh(
    index: WebhookIndex,
    database: webhooks_core::db::Database,
    reload_every: Duration,
    gauge: prometheus::IntGauge,
    shutdown: CancellationToken,
) {
    let mut wait = Duration::from_millis(100);
    while !shutdown.is_cancelled() {
        match listen_session(&index, &database, reload_every, &gauge, &shutdown).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(
                error = format!("{e:#}"),
                "webhook change listener failed; reconnecting"
            ),
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

async fn listen_session(
    index: &WebhookIndex,
    database: &webhooks_core::db::Database,
    reload_every: Duration,
    gauge: &prometheus::IntGauge,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let (client, mut connection) = database.connect().await?;
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut messages = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = messages.next().await {
            match message {
                Ok(AsyncMessage::Notification(note)) => {
                    let _ = tx.send(note.payload().parse::<Uuid>().ok());
                }
                Ok(_) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    });
    store::listen(&client).await?;
    // Listening before loading: no change can fall between the two.
    index.load_all(&client).await?;
    gauge.set(index.len() as i64);
    let mut reload = tokio::time::interval(reload_every);
    reload.reset();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break Ok(()),
            _ = reload.tick() => {
                if let Err(e) = index.load_all(&client).await {
                    break Err(e.into());
                }
            }
            change = changes.recv() => {
                let Some(first) = change else {
                    break match driver.await {
                        Ok(Err(e)) => Err(e.into()),
                        _ => Err(anyhow::anyhow!("listener connection closed")),
                    };
                };
                let mut ids: Vec<Uuid> = first.into_iter().collect();
                while let Ok(more) = changes.try_recv() {
                    ids.extend(more);
                }
                if let Err(e) = index.refresh(&client, &ids).await {
                    break Err(e.into());
                }
            }
        }
        gauge.set(index.len() as i64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: Uuid, project: &str, events: &[EventName]) -> Subscription {
        Subscription {
            id,
            project_code: project.into(),
            events: events.to_vec(),
        }
    }

    #[test]
    fn matches_by_project_and_event() {
        let index = WebhookIndex::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        index.replace_all(vec![
            entry(a, "DEMO", &[EventName::RunStarted, EventName::CaseCreated]),
            entry(b, "OTHER", &[EventName::RunStarted]),
        ]);
        assert_eq!(index.matching("DEMO", EventName::RunStarted), vec![a]);
        assert_eq!(index.matching("DEMO", EventName::CaseCreated), vec![a]);
        assert_eq!(index.matching("OTHER", EventName::RunStarted), vec![b]);
        assert!(index.matching("DEMO", EventName::RunAborted).is_empty());
    }

    #[test]
    fn apply_replaces_and_removes() {
        let index = WebhookIndex::default();
        let a = Uuid::new_v4();
        index.replace_all(vec![entry(a, "DEMO", &[EventName::RunStarted])]);
        index.apply(&[a], vec![entry(a, "DEMO", &[EventName::CaseCreated])]);
        assert!(index.matching("DEMO", EventName::RunStarted).is_empty());
        assert_eq!(index.matching("DEMO", EventName::CaseCreated), vec![a]);
        index.apply(&[a], vec![]);
        assert!(index.matching("DEMO", EventName::CaseCreated).is_empty());
        assert!(index.is_empty());
    }
}
