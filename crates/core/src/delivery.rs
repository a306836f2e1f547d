//! A delivery's states, and the one place their SQL spelling lives.
//!
//! A delivery is `pending` until its first attempt, `retrying` between failed attempts, and ends
//! `succeeded`, `failed` (given up after `DISABLE_AFTER`) or `cancelled` (its webhook was disabled
//! or deleted). Statements name states through the macros below, which expand to SQL literals at
//! compile time: `concat!("... WHERE state IN ", waiting_states!())`.

use std::fmt;
use std::str::FromStr;

/// Attempts a delivery keeps besides its first: the most recent ones. Older ones are removed as
/// new ones are recorded and counted on the delivery (`attempts_pruned`); the API lists no more.
///
/// With the default schedule (`RETRY_INITIAL` 10 s doubling up to `RETRY_MAX` 6 h, ±25%, given up
/// at the first failure `DISABLE_AFTER` 2 days after the first attempt) a delivery makes at most
/// about 22 attempts in its life, so the bound removes nothing of that: it removes what tighter
/// settings, `Retry-After` and manual retries (each restarting the two days) pile up. It keeps a
/// list of 200 deliveries under 5,000 attempts, and each attempt a few hundred bytes in storage.
pub const ATTEMPTS_KEPT_RECENT: usize = 24;

/// Where a delivery is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    Pending,
    Retrying,
    Succeeded,
    Failed,
    Cancelled,
}

impl DeliveryState {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Retrying,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
    ];

    /// As stored in `deliveries.state`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more happens to it (but a manual retry).
    pub const fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("not a delivery state: {text}"))
    }
}

/// The pending state in SQL.
#[macro_export]
macro_rules! pending_state {
    () => {
        "'pending'"
    };
}

/// The retrying state in SQL.
#[macro_export]
macro_rules! retrying_state {
    () => {
        "'retrying'"
    };
}

/// The cancelled state in SQL.
#[macro_export]
macro_rules! cancelled_state {
    () => {
        "'cancelled'"
    };
}

/// The states of a delivery still waiting for an attempt, as an SQL list: exactly the condition
/// of the `deliveries_due` index, so a statement that names it can be planned through that index.
#[macro_export]
macro_rules! waiting_states {
    () => {
        concat!(
            "(",
            $crate::pending_state!(),
            ", ",
            $crate::retrying_state!(),
            ")"
        )
    };
}

/// The states a delivery ends in, as an SQL list. Statements that must not be planned through
/// the due index spell "waiting" as "not finished" (see the sender's claim).
#[macro_export]
macro_rules! finished_states {
    () => {
        concat!("('succeeded', 'failed', ", $crate::cancelled_state!(), ")")
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quoted(state: DeliveryState) -> String {
        format!("'{}'", state.as_str())
    }

    #[test]
    fn the_sql_spelling_matches_the_stored_one() {
        assert_eq!(pending_state!(), quoted(DeliveryState::Pending));
        assert_eq!(retrying_state!(), quoted(DeliveryState::Retrying));
        assert_eq!(cancelled_state!(), quoted(DeliveryState::Cancelled));
        let waiting: Vec<String> = DeliveryState::ALL
            .into_iter()
            .filter(|s| !s.is_finished())
            .map(quoted)
            .collect();
        assert_eq!(waiting_states!(), format!("({})", waiting.join(", ")));
        let finished: Vec<String> = DeliveryState::ALL
            .into_iter()
            .filter(|s| s.is_finished())
            .map(quoted)
            .collect();
        assert_eq!(finished_states!(), format!("({})", finished.join(", ")));
    }

    #[test]
    fn parses_what_it_prints() {
        for state in DeliveryState::ALL {
            assert_eq!(state.to_string().parse::<DeliveryState>(), Ok(state));
        }
        assert!("done".parse::<DeliveryState>().is_err());
    }
}
