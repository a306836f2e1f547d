//! One endpoint's state, and what it says about a delivery: its load (slots, whether it is
//! answering), its troubles in a row (failures and slow answers) and its circuit. The limiter
//! drives it under its lock, with the service clock's time.

use chrono::{DateTime, Utc};
use std::time::Duration;
use uuid::Uuid;

use super::circuit::{Circuit, Pass};
use super::load::Load;

/// Why a delivery is held back, and until when.
#[derive(Debug, PartialEq, Eq)]
pub enum HeldBack {
    /// Every slot of its endpoint, host or project is taken, and that scope is not answering or
    /// answers too slowly to be waited for.
    Busy(DateTime<Utc>),
    /// The endpoint's circuit is open, or its one probe is out.
    CircuitOpen(DateTime<Utc>),
}

impl HeldBack {
    /// When the delivery is due again.
    pub fn until(&self) -> DateTime<Utc> {
        match self {
            Self::Busy(at) | Self::CircuitOpen(at) => *at,
        }
    }
}

/// How an attempt made in a slot ended, as far as the endpoint's health goes. How long it took
/// is the slot's to tell (see [`super::Limiter::finish`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    /// A success; one slower than the breaker's `slow` counts toward opening the circuit all the
    /// same (it is still a success for the delivery and the webhook's health).
    Success,
    /// A failure the endpoint is to blame for; `answered` when it sent a response (any status).
    Failure { answered: bool },
    /// No request reached the network (a refused destination): not the endpoint's doing.
    NotSent,
}

/// The breaker's settings (see [`super::LimiterConfig`]).
#[derive(Clone, Copy, Debug)]
pub struct Breaker {
    /// Troubles in a row (failures and slow answers) that open a circuit; 0: no breaker.
    pub failures: u32,
    /// A success that took this long or longer is a slow answer; zero: none is.
    pub slow: Duration,
    /// How long an open circuit holds deliveries back before its probe.
    pub pause: chrono::Duration,
}

impl Breaker {
    fn is_slow(&self, took: Duration) -> bool {
        !self.slow.is_zero() && took >= self.slow
    }
}

/// A delivery let through an endpoint's circuit, to look for slots.
pub struct Entry {
    /// It goes as the circuit's probe.
    pub probe: bool,
    /// Deliveries a circuit closed on the way in had held back.
    pub released: Vec<Uuid>,
}

/// One endpoint's state, kept while it is busy, failing, slow or silent.
pub struct Endpoint {
    pub(super) load: Load,
    /// Failures and slow answers in a row.
    troubles: u32,
    circuit: Option<Circuit>,
}

impl Endpoint {
    pub fn new(max_per_endpoint: usize) -> Self {
        Self {
            load: Load::new(max_per_endpoint),
            troubles: 0,
            circuit: None,
        }
    }

    /// Whether `delivery` may look for slots at `now`. A circuit that opened before
    /// `fresh_since` is closed first, releasing what it held; an open one holds the delivery back
    /// or lets it through as its probe once `pause` is over.
    pub fn gate(
        &mut self,
        delivery: Uuid,
        fresh_since: DateTime<Utc>,
        now: DateTime<Utc>,
        pause: chrono::Duration,
    ) -> Result<Entry, HeldBack> {
        let mut probe = false;
        let mut released = Vec::new();
        if self
            .circuit
            .as_ref()
            .is_some_and(|c| c.is_older_than(fresh_since))
        {
            // The webhook changed (or a person asked for this retry) since the circuit opened.
            released = self
                .circuit
                .take()
                .map(Circuit::release)
                .unwrap_or_default();
            self.troubles = 0;
        } else if let Some(circuit) = self.circuit.as_mut() {
            match circuit.pass(delivery, now, pause) {
                Pass::Held(until) => return Err(HeldBack::CircuitOpen(until)),
                Pass::Probe => probe = true,
            }
        }
        Ok(Entry { probe, released })
    }

    /// A delivery let through the gate found no slot after all: its probe did not go, and what
    /// its entry released is held with the rest.
    pub fn not_entered(&mut self, entry: Entry) {
        if let Some(circuit) = self.circuit.as_mut() {
            if entry.probe {
                circuit.probe_ended();
            }
            circuit.hold_again(entry.released);
        }
    }

    /// Counts an attempt (the circuit's probe if `probe`) that ended `finished` after `took`, at
    /// `now`. With the breaker's `failures` troubles in a row (failures and slow successes), or a
    /// failed or slow probe, the circuit opens (again) for its pause; a success in good time
    /// closes it. Returns the deliveries a closed circuit released.
    pub fn finish(
        &mut self,
        probe: bool,
        finished: Finished,
        took: Duration,
        now: DateTime<Utc>,
        breaker: &Breaker,
    ) -> Vec<Uuid> {
        if matches!(
            finished,
            Finished::Success | Finished::Failure { answered: true }
        ) {
            self.load.answered_in(took);
        }
        if probe && let Some(circuit) = self.circuit.as_mut() {
            circuit.probe_ended();
        }
        let mut released = Vec::new();
        let trouble = match finished {
            Finished::Success => breaker.is_slow(took),
            Finished::Failure { .. } => true,
            Finished::NotSent => return released,
        };
        if !trouble {
            self.troubles = 0;
            if let Some(circuit) = self.circuit.take() {
                released = circuit.release();
            }
        } else if breaker.failures > 0 {
            self.troubles += 1;
            if probe || self.troubles >= breaker.failures {
                match self.circuit.as_mut() {
                    Some(circuit) => circuit.reopen(now, breaker.pause),
                    None => self.circuit = Some(Circuit::open(now, breaker.pause)),
                }
            }
        }
        released
    }

    /// Whether nothing about it is worth remembering: no slot taken, no trouble, no circuit.
    pub fn is_idle(&self) -> bool {
        self.load.is_idle() && self.troubles == 0 && self.circuit.is_none()
    }
}
