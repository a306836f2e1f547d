//! One endpoint's state, and what it says about a delivery: its slots, whether it is answering,
//! its failures in a row and its circuit. The limiter drives it under its lock, with the service
//! clock's time.

use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::circuit::{Circuit, Pass};

/// An endpoint that answered (or was first used) this recently counts as answering.
pub const ANSWERING: Duration = Duration::from_secs(1);

/// What to do with a delivery before it is claimed (see [`super::Limiter::verdict`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Go,
    Park,
    HoldBack,
}

/// Why a delivery is held back, and until when.
#[derive(Debug, PartialEq, Eq)]
pub enum HeldBack {
    /// Every slot is taken by requests the endpoint is not answering.
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

/// How an attempt made in a slot ended, as far as the endpoint's health goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finished {
    Success,
    /// A failure the endpoint is to blame for; `answered` when it sent a response (any status).
    Failure {
        answered: bool,
    },
    /// No request reached the network (a refused destination): not the endpoint's doing.
    NotSent,
}

/// Whether a delivery may wait for one of an endpoint's slots.
pub enum Gate {
    Slots {
        slots: Arc<Semaphore>,
        /// It goes as the circuit's probe.
        probe: bool,
        answering: bool,
        /// Deliveries a circuit closed on the way in had held back.
        released: Vec<Uuid>,
    },
    Held(HeldBack),
}

/// One endpoint's state, kept while it is busy, failing or silent.
pub struct Endpoint {
    pub(super) slots: Arc<Semaphore>,
    /// When it last answered (any HTTP status), or when it was first used.
    pub(super) last_sign_of_life: Instant,
    /// Whether it has answered at all.
    pub(super) answered: bool,
    consecutive_failures: u32,
    circuit: Option<Circuit>,
}

impl Endpoint {
    pub fn new(max_per_endpoint: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_per_endpoint)),
            last_sign_of_life: Instant::now(),
            answered: false,
            consecutive_failures: 0,
            circuit: None,
        }
    }

    fn is_answering(&self) -> bool {
        self.last_sign_of_life.elapsed() < ANSWERING
    }

    /// What to do with a delivery not claimed yet (see [`super::Limiter::verdict`]).
    pub fn verdict(&self) -> Verdict {
        if self.slots.available_permits() > 0 {
            Verdict::Go
        } else if !self.is_answering() {
            Verdict::HoldBack
        } else if self.answered {
            Verdict::Go
        } else {
            Verdict::Park
        }
    }

    /// Whether `delivery` may wait for a slot at `now`. A circuit that opened before
    /// `fresh_since` is closed first, releasing what it held; an open one holds the delivery back
    /// or lets it through as its probe once `pause` is over.
    pub fn gate(
        &mut self,
        delivery: Uuid,
        fresh_since: DateTime<Utc>,
        now: DateTime<Utc>,
        pause: chrono::Duration,
    ) -> Gate {
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
            self.consecutive_failures = 0;
        } else if let Some(circuit) = self.circuit.as_mut() {
            match circuit.pass(delivery, now, pause) {
                Pass::Held(until) => return Gate::Held(HeldBack::CircuitOpen(until)),
                Pass::Probe => probe = true,
            }
        }
        Gate::Slots {
            slots: self.slots.clone(),
            probe,
            answering: self.is_answering(),
            released,
        }
    }

    /// A delivery let through the gate found no slot after all: its probe did not go, and what
    /// its entry released is held with the rest.
    pub fn not_entered(&mut self, probe: bool, released: Vec<Uuid>) {
        if let Some(circuit) = self.circuit.as_mut() {
            if probe {
                circuit.probe_ended();
            }
            circuit.hold_again(released);
        }
    }

    /// Counts an attempt (the circuit's probe if `probe`) that ended `finished` at `now`. With
    /// `breaker_failures` (0: no breaker) failures in a row, or a failed probe, the circuit opens
    /// (again) for `pause`; a success closes it. Returns the deliveries a closed circuit released.
    pub fn finish(
        &mut self,
        probe: bool,
        finished: Finished,
        now: DateTime<Utc>,
        breaker_failures: u32,
        pause: chrono::Duration,
    ) -> Vec<Uuid> {
        if matches!(
            finished,
            Finished::Success | Finished::Failure { answered: true }
        ) {
            self.last_sign_of_life = Instant::now();
            self.answered = true;
        }
        if probe && let Some(circuit) = self.circuit.as_mut() {
            circuit.probe_ended();
        }
        let mut released = Vec::new();
        match finished {
            Finished::Success => {
                self.consecutive_failures = 0;
                if let Some(circuit) = self.circuit.take() {
                    released = circuit.release();
                }
            }
            Finished::Failure { .. } if breaker_failures > 0 => {
                self.consecutive_failures += 1;
                if probe || self.consecutive_failures >= breaker_failures {
                    match self.circuit.as_mut() {
                        Some(circuit) => circuit.reopen(now, pause),
                        None => self.circuit = Some(Circuit::open(now, pause)),
                    }
                }
            }
            Finished::Failure { .. } | Finished::NotSent => {}
        }
        released
    }

    /// Whether nothing about it is worth remembering: no slot taken, no failure, no circuit.
    pub fn is_idle(&self, max_per_endpoint: usize) -> bool {
        self.slots.available_permits() == max_per_endpoint
            && self.consecutive_failures == 0
            && self.circuit.is_none()
    }
}
