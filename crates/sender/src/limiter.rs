//! Isolation of slow and failing endpoints, hosts and projects: a cap on concurrent requests per
//! endpoint, per host and per project, and a circuit breaker per endpoint.
//!
//! An endpoint (a webhook URL: customers on one shared host are separate endpoints) that hangs,
//! refuses connections or answers slowly must not take the slots that healthy endpoints need; nor
//! may one host (the URL's host and port as written: many URLs on one slow server) or one project
//! (one customer's many webhooks) take more than its share of the process's `MAX_IN_FLIGHT`. A
//! delivery takes one slot of each of its three scopes ([`Route`]), all at once and only while
//! all three have one free. A delivery one of whose scopes is at its cap waits briefly for a slot
//! when that scope is answering quickly (a busy but healthy scope drains fast); when it is not
//! answering, or its answers take a second or more, the delivery is held back: it goes back to
//! the schedule without an attempt, so it neither occupies a slot nor counts toward the
//! endpoint's failure window. While it waits it holds no slot of any scope.
//!
//! The breaker saves slots, never a delivery's time. `BREAKER_FAILURES` troubles in a row —
//! failures, and successes slower than `BREAKER_SLOW`, which still count as successes for the
//! delivery and its webhook's health — open an endpoint's circuit; while it is open, deliveries
//! are held back (written back to the schedule with the time of the circuit's next probe, so the
//! API tells the truth) and one probe goes through after the pause, which is never longer than the
//! earliest retry a held delivery would have had (see [`LimiterConfig::breaker_pause`]). When a
//! probe succeeds in good time the circuit closes and every delivery it held back is made due at
//! once. A circuit that opened before its webhook last changed (a re-enable, a new URL or secret)
//! or before a manual retry starts over closed.
//!
//! The limiter also remembers each webhook's route and gives a [`Verdict`] on deliveries
//! handed over for it before they are claimed: those for a full scope that is not answering (or
//! answers slowly) are left where they are (pending in the database, found by the scheduler
//! later), and those for a full scope that has not answered anything yet are parked (ids only, no
//! permit, no lease) until it either answers or falls silent. A dead or slow endpoint, host or
//! project then costs the healthy ones almost nothing.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;
use webhooks_core::clock::Clock;

mod circuit;
mod endpoint;
mod load;
mod slots;
use endpoint::{Breaker, Endpoint};
pub use endpoint::{Finished, HeldBack};
pub use load::Verdict;
use load::{ANSWERING, Load};
use slots::{Taken, Wanted};

#[derive(Clone, Copy, Debug)]
pub struct LimiterConfig {
    pub max_per_endpoint: usize,
    /// Requests in flight at once to one host (its host and port as written).
    pub max_per_host: usize,
    /// Requests in flight at once for the webhooks of one project.
    pub max_per_project: usize,
    /// Troubles in a row (failures and slow successes) that open a circuit; 0 disables the breaker.
    pub breaker_failures: u32,
    /// A success that took this long or longer counts toward opening its endpoint's circuit as a
    /// failure does; zero: none does.
    pub breaker_slow: Duration,
    /// How long an open circuit holds deliveries back before its probe. The sender passes the
    /// shorter of `BREAKER_PAUSE` and `RETRY_INITIAL`: a held delivery would otherwise have been
    /// attempted, and had that attempt failed, retried no sooner than `RETRY_INITIAL` later.
    pub breaker_pause: Duration,
    /// How long a delivery is held back when a scope of it is at its cap and not answering (or
    /// answering slowly).
    pub busy_hold: Duration,
}

/// Where a delivery goes, as the limiter counts it: its endpoint (the URL), its host (host and
/// port as written) and its webhook's project.
#[derive(Clone, Copy, Debug)]
pub struct Route<'a> {
    pub endpoint: &'a str,
    pub host: &'a str,
    pub project: &'a str,
}

/// A webhook's route as remembered.
struct Known {
    endpoint: String,
    host: String,
    project: String,
}

/// Every scope kept: those busy, failing, slow or silent.
#[derive(Default)]
struct Loads {
    endpoints: HashMap<String, Endpoint>,
    hosts: HashMap<String, Load>,
    projects: HashMap<String, Load>,
}

impl Loads {
    /// Forgets `host` and `project` if none of their slots is taken: they hold nothing back.
    fn forget_idle(&mut self, host: &str, project: &str) {
        if self.hosts.get(host).is_some_and(Load::is_idle) {
            self.hosts.remove(host);
        }
        if self.projects.get(project).is_some_and(Load::is_idle) {
            self.projects.remove(project);
        }
    }
}

/// Webhooks whose route is remembered; past this the memory starts over.
const WEBHOOKS_REMEMBERED: usize = 65_536;

/// Shared by every attempt of the process.
#[derive(Clone)]
pub struct Limiter {
    config: LimiterConfig,
    clock: Clock,
    loads: Arc<Mutex<Loads>>,
    /// The route of each webhook seen lately.
    webhooks: Arc<Mutex<HashMap<Uuid, Known>>>,
}

/// A slot at an endpoint, its host and its project; report the outcome with [`Limiter::finish`].
#[derive(Debug)]
pub struct Slot {
    endpoint: String,
    host: String,
    project: String,
    probe: bool,
    /// Deliveries a circuit reset on entry released, to be made due now.
    released: Vec<Uuid>,
    /// When it was entered: the attempt's answer time counts from here.
    entered: Instant,
    _taken: Taken,
}

impl Slot {
    /// The deliveries that a circuit closed on entry had held back (see [`Limiter::enter`]).
    pub fn take_released(&mut self) -> Vec<Uuid> {
        std::mem::take(&mut self.released)
    }
}

/// The value of `key` in `map`, made with `new` if there is none (the key is copied only then).
fn kept<'m, V>(map: &'m mut HashMap<String, V>, key: &str, new: impl FnOnce() -> V) -> &'m mut V {
    if !map.contains_key(key) {
        map.insert(key.to_owned(), new());
    }
    map.get_mut(key).expect("kept just now")
}

impl Limiter {
    pub fn new(config: LimiterConfig, clock: Clock) -> Self {
        Self {
            config,
            clock,
            loads: Arc::new(Mutex::new(Loads::default())),
            webhooks: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Remembers that `webhook` delivers along `route`.
    pub fn learn(&self, webhook: Uuid, route: Route<'_>) {
        let mut webhooks = self.webhooks.lock().expect("limiter lock");
        if webhooks.get(&webhook).is_some_and(|known| {
            known.endpoint == route.endpoint
                && known.host == route.host
                && known.project == route.project
        }) {
            return;
        }
        if webhooks.len() >= WEBHOOKS_REMEMBERED {
            webhooks.clear();
        }
        webhooks.insert(
            webhook,
            Known {
                endpoint: route.endpoint.to_owned(),
                host: route.host.to_owned(),
                project: route.project.to_owned(),
            },
        );
    }

    /// What to do with a delivery to `webhook` that is not claimed yet: the strictest verdict of
    /// its endpoint, host and project (see [`Load::verdict`]): go ahead unless one of them has
    /// every slot taken; then hold it back when that one is not answering or answers slowly, park
    /// it when it has not answered anything yet (it may be new and healthy, or it may hang: a
    /// moment tells), and go ahead when it answers quickly. Unknown webhooks go ahead. An open
    /// circuit does not hold a delivery back here: that is decided on [`Limiter::enter`], where
    /// the delivery's webhook is known and the time of its next probe is written with it.
    pub fn verdict(&self, webhook: Uuid) -> Verdict {
        // Runs for every delivery handed over: look up without copying the route. The only
        // place both locks are held, always `webhooks` first.
        let webhooks = self.webhooks.lock().expect("limiter lock");
        let Some(known) = webhooks.get(&webhook) else {
            return Verdict::Go;
        };
        let loads = self.loads.lock().expect("limiter lock");
        let endpoint = loads.endpoints.get(&known.endpoint).map(|e| &e.load);
        let host = loads.hosts.get(&known.host);
        let project = loads.projects.get(&known.project);
        [endpoint, host, project]
            .into_iter()
            .flatten()
            .map(Load::verdict)
            .max()
            .unwrap_or(Verdict::Go)
    }

    /// A slot along `route` for `delivery`, or why it is held back and until when. A circuit that
    /// opened before `fresh_since` (when the delivery's webhook last changed, or now for a manual
    /// retry) is closed first; the deliveries it held back are then in the slot's
    /// [`Slot::take_released`].
    pub async fn enter(
        &self,
        route: Route<'_>,
        delivery: Uuid,
        fresh_since: DateTime<Utc>,
    ) -> Result<Slot, HeldBack> {
        let now = self.clock.now();
        let pause = chrono::Duration::from_std(self.config.breaker_pause).unwrap_or_default();
        let config = self.config;
        let (entry, taken) = {
            let mut loads = self.loads.lock().expect("limiter lock");
            let Loads {
                endpoints,
                hosts,
                projects,
            } = &mut *loads;
            let endpoint = kept(endpoints, route.endpoint, || {
                Endpoint::new(config.max_per_endpoint)
            });
            let entry = endpoint.gate(delivery, fresh_since, now, pause)?;
            let host = kept(hosts, route.host, || Load::new(config.max_per_host));
            let project = kept(projects, route.project, || {
                Load::new(config.max_per_project)
            });
            let wanted = Wanted::of([&endpoint.load, host, project]);
            (entry, wanted.try_take(None).map_err(|full| (wanted, full)))
        };
        let taken = match taken {
            Ok(taken) => Some(taken),
            Err((wanted, full)) => wanted.wait(full, ANSWERING).await,
        };
        let Some(taken) = taken else {
            let mut loads = self.loads.lock().expect("limiter lock");
            if let Some(state) = loads.endpoints.get_mut(route.endpoint) {
                state.not_entered(entry);
            }
            loads.forget_idle(route.host, route.project);
            let wait = chrono::Duration::from_std(config.busy_hold).unwrap_or_default();
            return Err(HeldBack::Busy(self.clock.now() + wait));
        };
        Ok(Slot {
            endpoint: route.endpoint.to_owned(),
            host: route.host.to_owned(),
            project: route.project.to_owned(),
            probe: entry.probe,
            released: entry.released,
            entered: Instant::now(),
            _taken: taken,
        })
    }

    /// Releases a slot after its attempt ended `finished` (its answer time is the time since
    /// the slot was entered); returns the deliveries held back by a circuit that this closed, to
    /// be made due now.
    pub fn finish(&self, slot: Slot, finished: Finished) -> Vec<Uuid> {
        let took = slot.entered.elapsed();
        let now = self.clock.now();
        let config = self.config;
        let breaker = Breaker {
            failures: config.breaker_failures,
            slow: config.breaker_slow,
            pause: chrono::Duration::from_std(config.breaker_pause).unwrap_or_default(),
        };
        let answered = matches!(
            finished,
            Finished::Success | Finished::Failure { answered: true }
        );
        let mut guard = self.loads.lock().expect("limiter lock");
        let loads = &mut *guard;
        let released = loads
            .endpoints
            .get_mut(&slot.endpoint)
            .map(|state| state.finish(slot.probe, finished, took, now, &breaker))
            .unwrap_or_default();
        if answered {
            let host = loads.hosts.get_mut(&slot.host);
            let project = loads.projects.get_mut(&slot.project);
            for load in [host, project].into_iter().flatten() {
                load.answered_in(took);
            }
        }
        let Slot {
            endpoint,
            host,
            project,
            _taken,
            ..
        } = slot;
        drop(_taken);
        // Forget idle, healthy endpoints so the map does not grow with every URL ever seen (a
        // silent one is remembered: that is what holds its next deliveries back).
        if answered
            && loads
                .endpoints
                .get(&endpoint)
                .is_some_and(Endpoint::is_idle)
        {
            loads.endpoints.remove(&endpoint);
        }
        loads.forget_idle(&host, &project);
        released
    }

    /// Changes the load of `endpoint`.
    #[cfg(test)]
    fn with(&self, endpoint: &str, change: impl FnOnce(&mut Load)) {
        if let Some(state) = self
            .loads
            .lock()
            .expect("limiter lock")
            .endpoints
            .get_mut(endpoint)
        {
            change(&mut state.load);
        }
    }

    /// Changes the load of `host`.
    #[cfg(test)]
    fn with_host(&self, host: &str, change: impl FnOnce(&mut Load)) {
        if let Some(load) = self.loads.lock().expect("limiter lock").hosts.get_mut(host) {
            change(load);
        }
    }
}

#[cfg(test)]
mod tests;
