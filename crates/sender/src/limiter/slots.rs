//! Taking a delivery's slots at its endpoint, its host and its project together: all three or
//! none, so that a delivery waiting for one scope holds no slot of another meanwhile.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::load::Load;

/// The slots a delivery needs, narrowest scope first, each with whether it may be waited for.
pub struct Wanted {
    scopes: [(Arc<Semaphore>, bool); 3],
}

/// A slot at each scope, given back when dropped.
#[derive(Debug)]
pub struct Taken {
    _permits: Vec<OwnedSemaphorePermit>,
}

impl Wanted {
    /// The slots of `loads` (endpoint, host, project), each waited for only while it drains fast.
    pub fn of(loads: [&Load; 3]) -> Self {
        Self {
            scopes: loads.map(|load| (load.slots.clone(), load.drains_fast())),
        }
    }

    /// A slot at every scope if each has one free now (with `waited`, a slot already taken at
    /// one of them); otherwise the index of the first full scope, and nothing is held.
    pub fn try_take(
        &self,
        mut waited: Option<(usize, OwnedSemaphorePermit)>,
    ) -> Result<Taken, usize> {
        let mut taken = Vec::with_capacity(self.scopes.len());
        for (at, (slots, _)) in self.scopes.iter().enumerate() {
            let permit = match waited.take_if(|(scope, _)| *scope == at) {
                Some((_, permit)) => permit,
                None => slots.clone().try_acquire_owned().map_err(|_| at)?,
            };
            taken.push(permit);
        }
        Ok(Taken { _permits: taken })
    }

    /// Every slot, waiting up to `within` while the full scope (`full` first) drains fast. It
    /// waits for that scope's slot alone, then takes the others at once if they are free, or lets
    /// it go and waits for the next full one. `None` when a full scope is not to be waited for
    /// or the time is up.
    pub async fn wait(self, mut full: usize, within: Duration) -> Option<Taken> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let (slots, may_wait) = &self.scopes[full];
            if !may_wait {
                return None;
            }
            let permit = tokio::time::timeout_at(deadline, slots.clone().acquire_owned())
                .await
                .ok()?
                .ok()?;
            match self.try_take(Some((full, permit))) {
                Ok(taken) => return Some(taken),
                Err(next) => full = next,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn takes_all_or_nothing() {
        let (a, b, c) = (Load::new(1), Load::new(1), Load::new(2));
        let wanted = Wanted::of([&a, &b, &c]);
        let _b_taken = b.try_take().expect("free");
        assert_eq!(wanted.try_take(None).map(|_| ()), Err(1));
        assert!(a.is_idle() && c.is_idle(), "nothing held while one is full");
    }

    #[tokio::test]
    async fn waits_for_a_fast_scope_and_holds_nothing_meanwhile() {
        let (mut a, b, c) = (Load::new(1), Load::new(1), Load::new(1));
        a.answered_in(Duration::ZERO);
        let in_flight = a.try_take().expect("free");
        let wanted = Wanted::of([&a, &b, &c]);
        let full = wanted.try_take(None).map(|_| ()).expect_err("a is full");
        let waiter = tokio::spawn(wanted.wait(full, Duration::from_secs(5)));
        tokio::task::yield_now().await;
        assert!(
            b.is_idle() && c.is_idle(),
            "waiting for a holds no other slot"
        );
        drop(in_flight);
        let taken = waiter.await.expect("task").expect("a came free");
        assert!(!b.is_idle() && !c.is_idle());
        drop(taken);
        assert!(a.is_idle() && b.is_idle() && c.is_idle());
    }

    #[tokio::test]
    async fn does_not_wait_for_a_slow_scope() {
        let (a, mut b, c) = (Load::new(1), Load::new(1), Load::new(1));
        b.answered_in(Duration::from_secs(5));
        let _in_flight = b.try_take().expect("free");
        let wanted = Wanted::of([&a, &b, &c]);
        assert!(wanted.wait(1, Duration::from_secs(5)).await.is_none());
    }
}
