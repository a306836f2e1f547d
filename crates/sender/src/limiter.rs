//! Isolation of slow and failing endpoints: a cap on concurrent requests per endpoint and a
//! circuit breaker per endpoint.
//!
//! An endpoint (a webhook URL: customers on one shared host are separate endpoints) that hangs or
//! refuses connections must not take the slots that healthy endpoints need. A delivery whose
//! endpoint is at its cap waits briefly for a slot when the endpoint is answering (a busy but
//! healthy endpoint drains fast); when it is not answering, the delivery is held back: it goes back
//! to the schedule without an attempt, so it neither occupies a slot nor counts toward the
//! endpoint's failure window.
//!
//! The breaker saves slots, never a delivery's time. `BREAKER_FAILURES` failures in a row open an
//! endpoint's circuit; while it is open, deliveries are held back (written back to the schedule with
//! the time of the circuit's next probe, so the API tells the truth) and one probe goes through
//! after the pause, which is never longer than the earliest retry a held delivery would have had
//! (see [`LimiterConfig::breaker_pause`]). When a probe succeeds the circuit closes and every
//! delivery it held back is made due at once. A circuit that opened before its webhook last
//! changed (a re-enable, a new URL or secret) or before a manual retry starts over closed.
//!
//! The limiter also remembers each webhook's endpoint and gives a [`Verdict`] on deliveries
//! handed over for it before they are claimed: those for a full endpoint that is not answering are
//! left where they are (pending in the database, found by the scheduler later), and those for a
//! full endpoint that has not answered anything yet are parked (ids only, no permit, no lease) until
//! it either answers or falls silent. A dead endpoint then costs the healthy ones almost nothing.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::OwnedSemaphorePermit;
use uuid::Uuid;
use webhooks_core::clock::Clock;

mod circuit;
mod endpoint;
use endpoint::{ANSWERING, Endpoint, Gate};
pub use endpoint::{Finished, HeldBack, Verdict};

#[derive(Clone, Copy, Debug)]
pub struct LimiterConfig {
    pub max_per_endpoint: usize,
    /// Consecutive failures that open a circuit; 0 disables the breaker.
    pub breaker_failures: u32,
    /// How long an open circuit holds deliveries back before its probe. The sender passes the
    /// shorter of `BREAKER_PAUSE` and `RETRY_INITIAL`: a held delivery would otherwise have been
    /// attempted, and had that attempt failed, retried no sooner than `RETRY_INITIAL` later.
    pub breaker_pause: Duration,
    /// How long a delivery is held back when its endpoint is at its cap and not answering.
    pub busy_hold: Duration,
}

/// Webhooks whose endpoint is remembered; past this the memory starts over.
const WEBHOOKS_REMEMBERED: usize = 65_536;

/// Shared by every attempt of the process.
#[derive(Clone)]
pub struct Limiter {
    config: LimiterConfig,
    clock: Clock,
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    /// The endpoint of each webhook seen lately.
    webhooks: Arc<Mutex<HashMap<Uuid, String>>>,
}

/// A slot at an endpoint; report the outcome with [`Limiter::finish`].
#[derive(Debug)]
pub struct Slot {
    key: String,
    probe: bool,
    /// Deliveries a circuit reset on entry released, to be made due now.
    released: Vec<Uuid>,
    _permit: OwnedSemaphorePermit,
}

impl Slot {
    /// The deliveries that a circuit closed on entry had held back (see [`Limiter::enter`]).
    pub fn take_released(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.released)
    }
}

impl Limiter {
    pub fn new(config: LimiterConfig, clock: Clock) -> Self {
        Self {
            config,
            clock,
            endpoints: Arc::new(Mutex::new(HashMap::new())),
            webhooks: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Remembers that `webhook` delivers to `endpoint`.
    pub fn learn(&self, webhook: Uuid, endpoint: &str) {
        let mut webhooks = self.webhooks.lock().expect("limiter lock");
        if webhooks
            .get(&webhook)
            .is_some_and(|known| known == endpoint)
        {
            return;
        }
        if webhooks.len() >= WEBHOOKS_REMEMBERED {
            webhooks.clear();
        }
        webhooks.insert(webhook, endpoint.to_owned());
    }

    /// What to do with a delivery to `webhook` that is not claimed yet: go ahead unless every slot
    /// of its endpoint is taken; then hold it back when the endpoint is not answering, park it
    /// when the endpoint has not answered anything yet (it may be new and healthy, or it may hang:
    /// a moment tells), and go ahead when it answers. Unknown webhooks go ahead. An open circuit
    /// does not hold a delivery back here: that is decided on [`Limiter::enter`], where the
    /// delivery's webhook is known and the time of its next probe is written with it.
    pub fn verdict(&self, webhook: Uuid) -> Verdict {
        // Runs for every delivery handed over: look up without copying the endpoint. The only
        // place both locks are held, always `webhooks` first.
        let webhooks = self.webhooks.lock().expect("limiter lock");
        let Some(endpoint) = webhooks.get(&webhook) else {
            return Verdict::Go;
        };
        let endpoints = self.endpoints.lock().expect("limiter lock");
        endpoints
            .get(endpoint)
            .map_or(Verdict::Go, Endpoint::verdict)
    }

    /// A slot at `endpoint` for `delivery`, or why it is held back and until when. A circuit that
    /// opened before `fresh_since` (when the delivery's webhook last changed, or now for a manual
    /// retry) is closed first; the deliveries it held back are then in the slot's
    /// [`Slot::take_released`].
    pub async fn enter(
        &self,
        endpoint: &str,
        delivery: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> Result<Slot, HeldBack> {
        let (slots, probe, answering, released) = match self.gate(endpoint, delivery, fresh_since) {
            Gate::Held(held) => return Err(held),
            Gate::Slots {
                slots,
                probe,
                answering,
                released,
            } => (slots, probe, answering, released),
        };
        let permit = match slots.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) if answering => tokio::time::timeout(ANSWERING, slots.acquire_owned())
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        match permit {
            Some(permit) => Ok(Slot {
                key: endpoint.to_owned(),
                probe,
                released,
                _permit: permit,
            }),
            None => {
                let mut endpoints = self.endpoints.lock().expect("limiter lock");
                if let Some(state) = endpoints.get_mut(endpoint) {
                    state.not_entered(probe, released);
                }
                let wait = chrono::Duration::from_std(self.config.busy_hold).unwrap_or_default();
                Err(HeldBack::Busy(self.clock.now() + wait))
            }
        }
    }

    fn gate(&self, endpoint: &str, delivery: Uuid, fresh_since: DateTime<Utc>) -> Gate {
        let now = self.clock.now();
        let pause = chrono::Duration::from_std(self.config.breaker_pause).unwrap_or_default();
        let mut endpoints = self.endpoints.lock().expect("limiter lock");
        endpoints
            .entry(endpoint.to_owned())
            .or_insert_with(|| Endpoint::new(self.config.max_per_endpoint))
            .gate(delivery, fresh_since, now, pause)
    }

    /// Releases a slot after its attempt ended `finished`; returns the deliveries held back by a
    /// circuit that this closed, to be made due now.
    pub fn finish(&self, slot: Slot, finished: Finished) -> Vec<Uuid> {
        let now = self.clock.now();
        let config = self.config;
        let pause = chrono::Duration::from_std(config.breaker_pause).unwrap_or_default();
        let mut endpoints = self.endpoints.lock().expect("limiter lock");
        let Some(state) = endpoints.get_mut(&slot.key) else {
            return Vec::new();
        };
        let released = state.finish(slot.probe, finished, now, config.breaker_failures, pause);
        let key = slot.key.clone();
        drop(slot);
        // Forget idle, healthy endpoints so the map does not grow with every URL ever seen (a
        // silent one is remembered: that is what holds its next deliveries back).
        let answered = matches!(
            finished,
            Finished::Success | Finished::Failure { answered: true }
        );
        if answered
            && endpoints
                .get(&key)
                .is_some_and(|state| state.is_idle(config.max_per_endpoint))
        {
            endpoints.remove(&key);
        }
        released
    }

    #[cfg(test)]
    fn with(&self, endpoint: &str, change: impl FnOnce(&mut Endpoint)) {
        if let Some(state) = self
            .endpoints
            .lock()
            .expect("limiter lock")
            .get_mut(endpoint)
        {
            change(state);
        }
    }
}

#[cfg(test)]
mod tests;
