//! The time source. Services read "now" only from here, so tests can move time forward by days
//! in an instant (retry schedules, the disable window) while production uses the system clock.

use chrono::{DateTime, Duration, Utc};
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// System time, optionally shifted by an offset that tests control.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    #[default]
    System,
    /// System time plus an offset in milliseconds that [`Clock::advance`] grows.
    Shifted(Arc<AtomicI64>),
}

impl Clock {
    /// A clock that starts at system time and can be moved forward.
    pub fn shifted() -> Self {
        Self::Shifted(Arc::new(AtomicI64::new(0)))
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Self::System => Utc::now(),
            Self::Shifted(offset) => {
                Utc::now() + Duration::milliseconds(offset.load(Ordering::SeqCst))
            }
        }
    }

    /// Moves a shifted clock forward; a system clock cannot be moved and ignores it.
    pub fn advance(&self, by: std::time::Duration) {
        if let Self::Shifted(offset) = self {
            let millis = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
            offset.fetch_add(millis, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shifted_clock_moves_forward() {
        let clock = Clock::shifted();
        let before = clock.now();
        clock.advance(std::time::Duration::from_secs(2 * 86_400));
        let after = clock.now();
        assert!(after - before >= Duration::days(2));
        assert!(after - before < Duration::days(2) + Duration::seconds(5));
    }
}
