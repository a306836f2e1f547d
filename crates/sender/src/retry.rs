//! When to try a failed delivery again: exponential backoff with jitter, and `Retry-After`.
//!
//! This is the one place that uses the `backoff` crate, so it can be swapped without touching
//! anything else.

use backoff::ExponentialBackoff;
use backoff::backoff::Backoff;
use std::time::Duration;

/// The backoff bounds.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    pub initial: Duration,
    pub max: Duration,
}

/// How much the delay varies around its nominal value (±25%).
const JITTER: f64 = 0.25;

impl RetryPolicy {
    /// Delay before the attempt that follows failed attempt number `failed` (1 = the first attempt
    /// failed). `retry_after` is the receiver's own request on 429/503, honoured up to `max`.
    pub fn delay(&self, failed: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            // At least a second, so "Retry-After: 0" cannot turn into a tight loop.
            return asked.max(Duration::from_secs(1)).min(self.max);
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

    #[test]
    fn first_retry_is_about_initial() {
        for _ in 0..100 {
            let delay = policy().delay(1, None);
            assert!(
                delay >= Duration::from_millis(7_500) && delay <= Duration::from_millis(12_500),
                "{delay:?}"
            );
        }
    }

    #[test]
    fn grows_exponentially_up_to_max() {
        let p = policy();
        let third = p.delay(3, None);
        assert!(
            third >= Duration::from_secs(30) && third <= Duration::from_secs(50),
            "{third:?}"
        );
        for failed in [20, 40, 1000] {
            assert!(p.delay(failed, None) <= p.max);
            assert!(p.delay(failed, None) >= p.max.mul_f64(0.75));
        }
    }

    #[test]
    fn retry_after_is_honoured_within_max() {
        let p = policy();
        assert_eq!(
            p.delay(1, Some(Duration::from_secs(120))),
            Duration::from_secs(120)
        );
        assert_eq!(p.delay(1, Some(Duration::from_secs(86_400))), p.max);
    }
}
