//! Isolation of slow and failing endpoints: a cap on concurrent requests per endpoint and a
//! circuit breaker per endpoint.
//!
//! An endpoint (scheme, host, port) that hangs or refuses connections must not take the slots that
//! healthy endpoints need. A delivery that would exceed its endpoint's cap, or whose endpoint's
//! circuit is open, is held back: it goes back to the schedule for later without an attempt, so it
//! neither occupies a slot nor counts toward the endpoint's failure window.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug)]
pub struct LimiterConfig {
    pub max_per_endpoint: usize,
    /// Consecutive failures that open a circuit; 0 disables the breaker.
    pub breaker_failures: u32,
    pub breaker_pause: Duration,
}

#[derive(Default)]
struct Endpoint {
    in_flight: usize,
    consecutive_failures: u32,
    open_until: Option<Instant>,
    probing: bool,
}

/// Shared by every attempt of the process.
#[derive(Clone)]
pub struct Limiter {
    config: LimiterConfig,
    endpoints: Arc<Mutex<HashMap<String, Endpoint>>>,
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
}

/// How long a delivery waits when its endpoint is at its cap.
const BUSY_WAIT: Duration = Duration::from_secs(1);

impl Limiter {
    pub fn new(config: LimiterConfig) -> Self {
        Self {
            config,
            endpoints: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The endpoint of a URL: scheme, host and port.
    pub fn endpoint_of(url: &str) -> String {
        match reqwest::Url::parse(url) {
            Ok(u) => format!(
                "{}://{}:{}",
                u.scheme(),
                u.host_str().unwrap_or(""),
                u.port_or_known_default().unwrap_or(0)
            ),
            Err(_) => url.to_owned(),
        }
    }

    pub fn try_enter(&self, endpoint: &str) -> Result<Slot, HeldBack> {
        self.try_enter_at(endpoint, Instant::now())
    }

    fn try_enter_at(&self, endpoint: &str, now: Instant) -> Result<Slot, HeldBack> {
        let mut endpoints = self.endpoints.lock().expect("limiter lock");
        let state = endpoints.entry(endpoint.to_owned()).or_default();
        let mut probe = false;
        if let Some(until) = state.open_until {
            if now < until {
                return Err(HeldBack::CircuitOpen(until - now));
            }
            if state.probing {
                // One probe at a time while half-open.
                return Err(HeldBack::CircuitOpen(self.config.breaker_pause));
            }
            probe = true;
            state.probing = true;
        }
        if state.in_flight >= self.config.max_per_endpoint {
            if probe {
                state.probing = false;
            }
            return Err(HeldBack::Busy(BUSY_WAIT));
        }
        state.in_flight += 1;
        Ok(Slot {
            key: endpoint.to_owned(),
            probe,
        })
    }

    /// Releases a slot; `reached` is false when no request reached the network (not the endpoint's fault).
    pub fn finish(&self, slot: Slot, success: bool, reached: bool) {
        self.finish_at(slot, success, reached, Instant::now());
    }

    fn finish_at(&self, slot: Slot, success: bool, reached: bool, now: Instant) {
        let mut endpoints = self.endpoints.lock().expect("limiter lock");
        let Some(state) = endpoints.get_mut(&slot.key) else {
            return;
        };
        state.in_flight = state.in_flight.saturating_sub(1);
        if slot.probe {
            state.probing = false;
        }
        if success {
            state.consecutive_failures = 0;
            state.open_until = None;
        } else if reached && self.config.breaker_failures > 0 {
            state.consecutive_failures += 1;
            if slot.probe || state.consecutive_failures >= self.config.breaker_failures {
                state.open_until = Some(now + self.config.breaker_pause);
            }
        }
        if state.in_flight == 0 && state.consecutive_failures == 0 && state.open_until.is_none() {
            endpoints.remove(&slot.key);
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
            breaker_pause: Duration::from_secs(30),
        })
    }

    #[test]
    fn caps_concurrency_per_endpoint() {
        let l = limiter(2, 0);
        let a = l.try_enter("e").expect("first");
        let _b = l.try_enter("e").expect("second");
        assert_eq!(
            l.try_enter("e").expect_err("third"),
            HeldBack::Busy(BUSY_WAIT)
        );
        assert!(
            l.try_enter("other").is_ok(),
            "other endpoints are not affected"
        );
        l.finish(a, true, true);
        assert!(l.try_enter("e").is_ok());
    }

    #[test]
    fn opens_after_failures_then_probes_once() {
        let l = limiter(10, 3);
        let now = Instant::now();
        for _ in 0..3 {
            let slot = l.try_enter_at("e", now).expect("closed");
            l.finish_at(slot, false, true, now);
        }
        assert!(matches!(
            l.try_enter_at("e", now),
            Err(HeldBack::CircuitOpen(_))
        ));
        let later = now + Duration::from_secs(31);
        let probe = l.try_enter_at("e", later).expect("probe after the pause");
        assert!(
            matches!(l.try_enter_at("e", later), Err(HeldBack::CircuitOpen(_))),
            "one probe at a time"
        );
        l.finish_at(probe, true, true, later);
        assert!(
            l.try_enter_at("e", later).is_ok(),
            "closed again after a successful probe"
        );
    }

    #[test]
    fn failed_probe_reopens() {
        let l = limiter(10, 1);
        let now = Instant::now();
        let slot = l.try_enter_at("e", now).expect("closed");
        l.finish_at(slot, false, true, now);
        let later = now + Duration::from_secs(31);
        let probe = l.try_enter_at("e", later).expect("probe");
        l.finish_at(probe, false, true, later);
        assert!(matches!(
            l.try_enter_at("e", later),
            Err(HeldBack::CircuitOpen(_))
        ));
    }

    #[test]
    fn refused_destinations_do_not_trip_the_breaker() {
        let l = limiter(10, 1);
        let slot = l.try_enter("e").expect("closed");
        l.finish(slot, false, false);
        assert!(l.try_enter("e").is_ok());
    }

    #[test]
    fn endpoint_is_scheme_host_port() {
        assert_eq!(
            Limiter::endpoint_of("https://Example.com/a?b"),
            "https://example.com:443"
        );
        assert_eq!(
            Limiter::endpoint_of("http://127.0.0.1:9000/x"),
            "http://127.0.0.1:9000"
        );
    }
}
