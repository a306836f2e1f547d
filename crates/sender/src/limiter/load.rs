//! How loaded one scope is — an endpoint, a host or a project: its slots, whether it is
//! answering, and how fast its answers come. The same rules hold at every scope: a delivery whose
//! scope is full waits briefly only while that scope frees slots fast, and is held back otherwise.

use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// What to do with a delivery before it is claimed (see [`super::Limiter::verdict`]), mildest
/// first: a delivery meets the strictest verdict of its endpoint, host and project.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    Go,
    Park,
    HoldBack,
}

/// A scope that answered (or was first used) this recently counts as answering; one whose latest
/// answer took this long or longer frees its slots too slowly to be waited for.
pub const ANSWERING: Duration = Duration::from_secs(1);

/// One scope's slots and signs of life.
pub struct Load {
    pub(super) slots: Arc<Semaphore>,
    cap: usize,
    /// When it last answered (any HTTP status), or when it was first used.
    pub(super) last_sign_of_life: Instant,
    /// Whether it has answered at all.
    pub(super) answered: bool,
    /// How long its latest answer took.
    pub(super) last_answer_took: Duration,
}

impl Load {
    pub fn new(cap: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(cap)),
            cap,
            last_sign_of_life: Instant::now(),
            answered: false,
            last_answer_took: Duration::ZERO,
        }
    }

    pub fn is_answering(&self) -> bool {
        self.last_sign_of_life.elapsed() < ANSWERING
    }

    /// Whether a delivery finding it full may wait a moment for a slot: it is answering, and
    /// quickly (a scope whose answers take seconds frees a slot for one waiter in many).
    pub fn drains_fast(&self) -> bool {
        self.is_answering() && self.last_answer_took < ANSWERING
    }

    /// What to do with a delivery not claimed yet, as far as this scope goes: go ahead unless
    /// every slot is taken; then hold it back when it is not answering or answers slowly, park it
    /// when it has not answered anything yet (a moment tells whether it will), go ahead otherwise.
    pub fn verdict(&self) -> Verdict {
        if self.slots.available_permits() > 0 {
            Verdict::Go
        } else if !self.is_answering() {
            Verdict::HoldBack
        } else if !self.answered {
            Verdict::Park
        } else if self.last_answer_took >= ANSWERING {
            Verdict::HoldBack
        } else {
            Verdict::Go
        }
    }

    /// A slot, if one is free now.
    #[cfg(test)]
    pub fn try_take(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    /// It answered (any status) after `took`.
    pub fn answered_in(&mut self, took: Duration) {
        self.last_sign_of_life = Instant::now();
        self.answered = true;
        self.last_answer_took = took;
    }

    /// Whether none of its slots is taken.
    pub fn is_idle(&self) -> bool {
        self.slots.available_permits() == self.cap
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_scope_is_waited_for_only_while_it_answers_quickly() {
        let mut load = Load::new(1);
        assert_eq!(load.verdict(), Verdict::Go);
        let _taken = load.try_take().expect("a free slot");
        assert!(load.try_take().is_none());
        assert_eq!(load.verdict(), Verdict::Park, "full, never answered yet");
        load.answered_in(Duration::from_millis(5));
        assert_eq!(load.verdict(), Verdict::Go, "full, answering quickly");
        assert!(load.drains_fast());
        load.answered_in(ANSWERING);
        assert_eq!(load.verdict(), Verdict::HoldBack, "full, answering slowly");
        assert!(!load.drains_fast());
        load.answered_in(Duration::from_millis(5));
        load.last_sign_of_life -= Duration::from_secs(2);
        assert_eq!(load.verdict(), Verdict::HoldBack, "full and silent");
        assert!(!load.drains_fast());
    }

    #[test]
    fn is_idle_once_every_slot_is_back() {
        let load = Load::new(2);
        let taken = load.try_take().expect("slot");
        assert!(!load.is_idle());
        drop(taken);
        assert!(load.is_idle());
    }
}
