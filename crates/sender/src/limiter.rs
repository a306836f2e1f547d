//! Isolation of slow and failing endpoints: a cap on concurrent requests per endpoint and a
//! circuit breaker per endpoint.
//!
//! An endpoint (a webhook URL: customers on one shared host are separate endpoints) that hangs or refuses connections must not take the slots that
//! healthy endpoints need. A delivery whose endpoint is at its cap waits briefly for a slot when the
//! endpoint is answering (a busy but healthy endpoint drains fast); when it is not answering, or
//! its circuit is open, the delivery is held back: it goes back to the schedule without an attempt,
//! so it neither occupies a slot nor counts toward the endpoint's failure window.
//!
//! The limiter also remembers each webhook's endpoint and gives a [`Verdict`] on deliveries
//! handed over for it before they are claimed: those for an endpoint it is holding back are left
//! where they are (pending in the database, found by the scheduler later), and those for a full
//! endpoint that has not answered anything yet are parked (ids only, no permit, no lease) until it
//! either answers or falls silent. A dead endpoint then costs the healthy ones almost nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

#[derive(Clone, Copy, Debug)]
pub struct LimiterConfig {
    pub max_per_endpoint: usize,
    /// Consecutive failures that open a circuit; 0 disables the breaker.
    pub breaker_failures: u32,
    pub breaker_pause: Duration,
    /// How long a delivery is held back when its endpoint is at its cap and not answering.
    pub busy_hold: Duration,
}

/// An endpoint that answered (or was first used) this recently counts as answering.
const ANSWERING: Duration = Duration::from_secs(1);
/// Webhooks whose endpoint is remembered; past this the memory starts over.
const WEBHOOKS_REMEMBERED: usize = 65_536;

struct Endpoint {
    slots: Arc<Semaphore>,
    /// When it last answered (any HTTP status), or when it was first used.
    last_sign_of_life: Instant,
    /// Whether it has answered at all.
    answered: bool,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// Shared by every attempt of the process.
#[derive(Clone)]
pub struct Limiter {
    config: LimiterConfig,
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
    /// The endpoint of each webhook seen lately.
    webhooks: Arc<Mutex<HashMap<Uuid, String>>>,
}

/// What to do with a delivery before it is claimed (see [`Limiter::verdict`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    Park,
    HoldBack,
}

/// Why a delivery is held back, and for how long.
#[derive(Debug, PartialEq, Eq)]
pub enum HeldBack {
    Busy(Duration),
    CircuitOpen(Duration),
}

impl HeldBack {
    pub fn for_how_long(&self) -> Duration {
        match self {
            Self::Busy(d) | Self::CircuitOpen(d) => *d,
        }
    }
}

/// A slot at an endpoint; report the outcome with [`Limiter::finish`].
#[derive(Debug)]
pub struct Slot {
    key: String,
    probe: bool,
    _permit: OwnedSemaphorePermit,
}

enum Gate {
    Slots(Arc<Semaphore>, bool, bool),
    Held(HeldBack),
}

impl Limiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
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

    /// What to do with a delivery to `webhook` that is not claimed yet: go ahead when nothing is
    /// known against its endpoint; hold it back when the circuit is open (or its one probe is
    /// out), or every slot is taken and the endpoint is not answering; park it when every slot is
    /// taken by an endpoint that has not answered anything yet (it may be new and healthy, or it
    /// may hang: a moment tells). Unknown webhooks go ahead.
    pub fn verdict(&self, webhook: Uuid) -> Verdict {
        // Runs for every delivery handed over: look up without copying the endpoint. The only
        // place both locks are held, always `webhooks` first.
        let webhooks = self.webhooks.lock().expect("limiter lock");
        let Some(endpoint) = webhooks.get(&webhook) else {
            return Verdict::Go;
        };
        let now = Instant::now();
        let endpoints = self.endpoints.lock().expect("limiter lock");
        let Some(state) = endpoints.get(endpoint) else {
            return Verdict::Go;
        };
        if let Some(until) = state.open_until
            && (now < until || state.probing)
        {
            return Verdict::HoldBack;
        }
        if state.slots.available_permits() > 0 {
            Verdict::Go
        } else if now.duration_since(state.last_sign_of_life) >= ANSWERING {
            Verdict::HoldBack
        } else if state.answered {
            Verdict::Go
        } else {
            Verdict::Park
        }
    }

    /// A slot at `endpoint`, or why the delivery is held back.
    pub async fn enter(&self, endpoint: &str) -> Result<Slot, HeldBack> {
        let now = Instant::now();
        let (slots, probe, answering) = match self.gate(endpoint, now) {
            Gate::Held(held) => return Err(held),
            Gate::Slots(slots, probe, answering) => (slots, probe, answering),
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
                _permit: permit,
            }),
            None => {
                if probe {
                    self.with(endpoint, |state| state.probing = false);
                }
                Err(HeldBack::Busy(self.config.busy_hold))
            }
        }
    }

    fn gate(&self, endpoint: &str, now: Instant) -> Gate {
        let mut endpoints = self.endpoints.lock().expect("limiter lock");
        let state = endpoints
            .entry(endpoint.to_owned())
            .or_insert_with(|| Endpoint {
                slots: Arc::new(Semaphore::new(self.config.max_per_endpoint)),
                last_sign_of_life: now,
                answered: false,
                consecutive_failures: 0,
                open_until: None,
                probing: false,
            });
        let mut probe = false;
        if let Some(until) = state.open_until {
            if now < until {
                return Gate::Held(HeldBack::CircuitOpen(until - now));
            }
            if state.probing {
                // One probe at a time while half-open.
                return Gate::Held(HeldBack::CircuitOpen(self.config.breaker_pause));
            }
            probe = true;
            state.probing = true;
        }
        let answering = now.duration_since(state.last_sign_of_life) < ANSWERING;
        Gate::Slots(state.slots.clone(), probe, answering)
    }

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

    /// Releases a slot; `reached` is false when no request reached the network (not the
    /// endpoint's fault), `answered` whether the endpoint sent a response (any status).
    pub fn finish(&self, slot: Slot, success: bool, reached: bool, answered: bool) {
        let now = Instant::now();
        let config = self.config;
        let mut endpoints = self.endpoints.lock().expect("limiter lock");
        let Some(state) = endpoints.get_mut(&slot.key) else {
            return;
        };
        if answered {
            state.last_sign_of_life = now;
            state.answered = true;
        }
        if slot.probe {
            state.probing = false;
        }
        if success {
            state.consecutive_failures = 0;
            state.open_until = None;
        } else if reached && config.breaker_failures > 0 {
            state.consecutive_failures += 1;
            if slot.probe || state.consecutive_failures >= config.breaker_failures {
                state.open_until = Some(now + config.breaker_pause);
            }
        }
        let key = slot.key.clone();
        drop(slot);
        // Forget idle, healthy endpoints so the map does not grow with every URL ever seen (a
        // silent one is remembered: that is what holds its next deliveries back).
        if answered
            && let Some(state) = endpoints.get(&key)
            && state.slots.available_permits() == config.max_per_endpoint
            && state.consecutive_failures == 0
            && state.open_until.is_none()
        {
            endpoints.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(max: usize, failures: u32) -> Limiter {
        Limiter::new(LimiterConfig {
            max_per_endpoint: max,
            breaker_failures: failures,
            breaker_pause: Duration::from_millis(200),
            busy_hold: Duration::from_secs(15),
        })
    }

    #[tokio::test]
    async fn caps_concurrency_per_endpoint_and_waits_briefly_while_it_answers() {
        let l = limiter(2, 0);
        let a = l.enter("e").await.expect("first");
        let _b = l.enter("e").await.expect("second");
        assert!(
            l.enter("other").await.is_ok(),
            "other endpoints are not affected"
        );
        // At the cap and answering: waits for a slot, which frees when `a` finishes.
        let l2 = l.clone();
        let waiter = tokio::spawn(async move { l2.enter("e").await.map(|_| ()) });
        tokio::task::yield_now().await;
        l.finish(a, true, true, true);
        assert_eq!(waiter.await.expect("task"), Ok(()));
    }

    #[tokio::test]
    async fn holds_back_when_the_endpoint_is_not_answering() {
        let l = limiter(1, 0);
        let _hanging = l.enter("e").await.expect("first");
        // Last sign of life two seconds ago: not answering.
        l.with("e", |state| {
            state.last_sign_of_life -= Duration::from_secs(2)
        });
        assert_eq!(
            l.enter("e").await.expect_err("held"),
            HeldBack::Busy(Duration::from_secs(15))
        );
    }

    #[tokio::test]
    async fn opens_after_failures_then_probes_once() {
        let l = limiter(10, 3);
        for _ in 0..3 {
            let slot = l.enter("e").await.expect("closed");
            l.finish(slot, false, true, true);
        }
        assert!(matches!(l.enter("e").await, Err(HeldBack::CircuitOpen(_))));
        l.with("e", |state| state.open_until = Some(Instant::now()));
        let probe = l.enter("e").await.expect("probe after the pause");
        assert!(
            matches!(l.enter("e").await, Err(HeldBack::CircuitOpen(_))),
            "one probe at a time"
        );
        l.finish(probe, true, true, true);
        assert!(
            l.enter("e").await.is_ok(),
            "closed again after a successful probe"
        );
    }

    #[tokio::test]
    async fn failed_probe_reopens() {
        let l = limiter(10, 1);
        let slot = l.enter("e").await.expect("closed");
        l.finish(slot, false, true, true);
        l.with("e", |state| state.open_until = Some(Instant::now()));
        let probe = l.enter("e").await.expect("probe");
        l.finish(probe, false, true, true);
        assert!(matches!(l.enter("e").await, Err(HeldBack::CircuitOpen(_))));
    }

    #[tokio::test]
    async fn refused_destinations_do_not_trip_the_breaker() {
        let l = limiter(10, 1);
        let slot = l.enter("e").await.expect("closed");
        l.finish(slot, false, false, false);
        assert!(l.enter("e").await.is_ok());
    }

    #[tokio::test]
    async fn a_timeout_is_no_sign_of_life() {
        let l = limiter(1, 0);
        let webhook = Uuid::new_v4();
        l.learn(webhook, "e");
        let slot = l.enter("e").await.expect("slot");
        l.with("e", |state| {
            state.last_sign_of_life -= Duration::from_secs(2)
        });
        // No response within the timeout: the endpoint still counts as silent.
        l.finish(slot, false, true, false);
        let _hanging = l.enter("e").await.expect("the slot is free again");
        assert_eq!(l.verdict(webhook), Verdict::HoldBack, "full and silent");
    }

    #[tokio::test]
    async fn tells_which_webhooks_are_held_back() {
        let l = limiter(1, 1);
        let (hanging, failing, healthy) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        l.learn(hanging, "h");
        l.learn(failing, "f");
        l.learn(healthy, "ok");
        assert_eq!(
            l.verdict(hanging),
            Verdict::Go,
            "nothing known against it yet"
        );
        assert_eq!(
            l.verdict(Uuid::new_v4()),
            Verdict::Go,
            "unknown webhooks go ahead"
        );

        let _in_flight = l.enter("h").await.expect("slot");
        assert_eq!(
            l.verdict(hanging),
            Verdict::Park,
            "full, first used a moment ago, never answered: wait and see"
        );
        l.with("h", |state| {
            state.last_sign_of_life -= Duration::from_secs(2)
        });
        assert_eq!(l.verdict(hanging), Verdict::HoldBack, "full and silent");

        let slot = l.enter("f").await.expect("slot");
        l.finish(slot, false, true, true);
        assert_eq!(l.verdict(failing), Verdict::HoldBack, "circuit open");
        l.with("f", |state| state.open_until = Some(Instant::now()));
        assert_eq!(l.verdict(failing), Verdict::Go, "due for its probe");
        let _probe = l.enter("f").await.expect("probe");
        assert_eq!(
            l.verdict(failing),
            Verdict::HoldBack,
            "its one probe is out"
        );

        let slot = l.enter("ok").await.expect("slot");
        assert_eq!(l.verdict(healthy), Verdict::Park, "full and not proven yet");
        l.finish(slot, true, true, true);
        assert_eq!(l.verdict(healthy), Verdict::Go);
        // Full, but it has answered lately: go ahead and wait briefly for a slot.
        let _busy = l.enter("ok").await.expect("slot");
        l.with("ok", |state| state.answered = true);
        assert_eq!(l.verdict(healthy), Verdict::Go);
    }
}
