//! When to try a failed delivery again: exponential backoff with jitter, and `Retry-After`.
//!
//! This is the one place that uses the `backoff` crate, so it can be swapped without touching
//! anything else. A receiver's `Retry-After` (either form of RFC 9110 §10.2.3) is read here too,
//! and kept within `RETRY_INITIAL` and `RETRY_MAX` like any other wait.

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The backoff bounds.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

/// How much the delay varies around its nominal value (±25%).
const JITTER: f64 = 0.25;

/// A receiver's `Retry-After`, as it was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RetryAfter {
    /// `Retry-After: 120`: a delay from the answer.
    Delay(Duration),
    /// `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`: a time, read against the service's clock.
    At(DateTime<Utc>),
}

impl RetryAfter {
    /// Reads a header value: delay-seconds, or an HTTP-date in any of its three forms
    /// (IMF-fixdate, and the obsolete RFC 850 and asctime ones recipients must still accept).
    /// Anything else is `None`, and the backoff applies as if there were no header.
    pub fn parse(value: &[u8]) -> Option<Self> {
        let text = std::str::from_utf8(value).ok()?.trim();
        if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
            // More digits than a u64 holds is still "a very long time", not "no header".
            let seconds = text.parse().unwrap_or(u64::MAX);
            return Some(Self::Delay(Duration::from_secs(seconds)));
        }
        let at = httpdate::parse_http_date(text).ok()?;
        Some(Self::At(DateTime::<Utc>::from(at)))
    }

    /// The wait this asks for from `now`; a time already past asks for none.
    fn wait_from(self, now: DateTime<Utc>) -> Duration {
        match self {
            Self::Delay(delay) => delay,
            Self::At(at) => (at - now).to_std().unwrap_or(Duration::ZERO),
        }
    }
}

impl RetryPolicy {
    /// Delay before the attempt that follows failed attempt number `failed` (1 = the first attempt
    /// failed), counted from `now`, the failed attempt's time on the service's clock.
    /// `retry_after` is the receiver's own request on 429/503: followed, but never sooner than
    /// `initial` (a receiver cannot make us retry it in a tight loop) nor later than `max`.
    pub fn delay(
        &self,
        failed: u32,
        retry_after: Option<RetryAfter>,
        now: DateTime<Utc>,
    ) -> Duration {
        if let Some(asked) = retry_after {
            return asked.wait_from(now).max(self.initial).min(self.max);
        }
        let exponent = failed.saturating_sub(1).min(32);
        let nominal = self
            .initial
            .saturating_mul(1u32 << exponent.min(31))
            .min(self.max);
        let mut backoff = ExponentialBackoff {
            current_interval: nominal,
            initial_interval: self.initial,
            randomization_factor: JITTER,
            multiplier: 2.0,
            max_interval: self.max,
            max_elapsed_time: None,
            ..ExponentialBackoff::default()
        };
        backoff.next_backoff().unwrap_or(nominal).min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(6 * 3600),
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-10-21T07:28:00Z".parse().unwrap()
    }

    #[test]
    fn first_retry_is_about_initial() {
        for _ in 0..100 {
            let delay = policy().delay(1, None, now());
            assert!(
                delay >= Duration::from_millis(7_500) && delay <= Duration::from_millis(12_500),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn grows_exponentially_up_to_max() {
        let p = policy();
        let third = p.delay(3, None, now());
        assert!(
            third >= Duration::from_secs(30) && third <= Duration::from_secs(50),
            "{third:?}"
        );
        for failed in [20, 40, 1000] {
            assert!(p.delay(failed, None, now()) <= p.max);
            assert!(p.delay(failed, None, now()) >= p.max.mul_f64(0.75));
        }
    }

    fn after(value: &str) -> Duration {
        let asked = RetryAfter::parse(value.as_bytes()).expect(value);
        policy().delay(1, Some(asked), now())
    }

    #[test]
    fn retry_after_in_seconds_is_followed_between_initial_and_max() {
        assert_eq!(after("120"), Duration::from_secs(120));
        assert_eq!(after(" 120 "), Duration::from_secs(120));
        assert_eq!(after("10"), Duration::from_secs(10));
        // Below RETRY_INITIAL: raised to it, so "Retry-After: 0" or "1" is no tight loop.
        for short in ["0", "1", "9"] {
            assert_eq!(after(short), policy().initial, "{short}");
        }
        assert_eq!(after("86400"), policy().max);
        assert_eq!(after("99999999999999999999999"), policy().max);
    }

    #[test]
    fn retry_after_as_a_date_is_read_against_the_clock() {
        // now() is 07:28:00 on that day.
        assert_eq!(
            after("Wed, 21 Oct 2026 07:30:00 GMT"),
            Duration::from_secs(120)
        );
        // The obsolete forms of the same time.
        assert_eq!(
            after("Wednesday, 21-Oct-26 07:30:00 GMT"),
            Duration::from_secs(120)
        );
        assert_eq!(after("Wed Oct 21 07:30:00 2026"), Duration::from_secs(120));
        // Sooner than RETRY_INITIAL, now, or past: the floor.
        assert_eq!(after("Wed, 21 Oct 2026 07:28:03 GMT"), policy().initial);
        assert_eq!(after("Wed, 21 Oct 2026 07:28:00 GMT"), policy().initial);
        assert_eq!(after("Thu, 01 Jan 1970 00:00:00 GMT"), policy().initial);
        // Further than RETRY_MAX: the cap.
        assert_eq!(after("Thu, 22 Oct 2026 07:28:00 GMT"), policy().max);
    }

    #[test]
    fn an_unreadable_retry_after_is_no_retry_after() {
        for bad in [
            "",
            "soon",
            "-5",
            "1.5",
            "+3",
            "0x10",
            "Wed, 21 Oct 2026 07:30:00",
            "21 Oct 2026 07:30:00 GMT",
            "Wed, 32 Oct 2026 07:30:00 GMT",
        ] {
            assert_eq!(RetryAfter::parse(bad.as_bytes()), None, "{bad:?}");
        }
        assert_eq!(RetryAfter::parse(b"\xff120"), None);
    }
}
