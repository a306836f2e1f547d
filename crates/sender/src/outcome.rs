//! What follows from attempts, decided without I/O: the next state of a delivery and the change
//! to its webhook's health. [`crate::recorder`] writes these decisions in batches.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::delivery::DeliveryState;

use crate::attempt::Attempt;
use crate::retry::RetryPolicy;

/// The result of handling one claimed delivery.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// An attempt was made (or refused before the network); it is recorded.
    Attempted {
        delivery_id: Uuid,
        webhook_id: Uuid,
        /// Attempts made before this one.
        attempts_before: i32,
        first_attempt_at: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        attempt: Attempt,
    },
    /// Held back without an attempt; due again at `until`.
    Deferred {
        delivery_id: Uuid,
        until: DateTime<Utc>,
    },
    /// Held back by a circuit that has closed since: due now, unless it has been taken already.
    Released {
        delivery_id: Uuid,
        at: DateTime<Utc>,
    },
}

/// A delivery's state after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    Succeeded,
    Retry(DateTime<Utc>),
    GivenUp,
}

impl Next {
    pub fn state(self) -> DeliveryState {
        match self {
            Self::Succeeded => DeliveryState::Succeeded,
            Self::Retry(_) => DeliveryState::Retrying,
            Self::GivenUp => DeliveryState::Failed,
        }
    }

    pub fn next_attempt_at(self) -> Option<DateTime<Utc>> {
        match self {
            Self::Retry(at) => Some(at),
            _ => None,
        }
    }
}

/// Decides what follows an attempt made `at`.
pub fn next(
    attempt: &Attempt,
    at: DateTime<Utc>,
    first_attempt_at: Option<DateTime<Utc>>,
    attempts_before: i32,
    policy: &RetryPolicy,
    give_up_after: Duration,
) -> Next {
    if attempt.success {
        return Next::Succeeded;
    }
    let first = first_attempt_at.unwrap_or(at);
    let give_up_after = chrono::Duration::from_std(give_up_after).unwrap_or(chrono::Duration::MAX);
    if at - first >= give_up_after {
        return Next::GivenUp;
    }
    let failed = u32::try_from(attempts_before)
        .unwrap_or(0)
        .saturating_add(1);
    let delay = policy.delay(failed, attempt.retry_after, at);
    Next::Retry(at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::hours(6)))
}

/// The change to one webhook's health from a batch of its attempts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Health {
    pub webhook_id: Uuid,
    /// A success was seen: the failing window restarts from the failures after it.
    pub reset: bool,
    /// When the batch's last success ended.
    pub last_success: Option<DateTime<Utc>>,
    /// The first failure after the last success in the batch (or of the batch).
    pub first_failure: Option<DateTime<Utc>>,
    /// When the batch's last failure ended: the window that decides disabling is measured up to
    /// the failing attempt, not up to whenever it is recorded.
    pub last_failure: Option<DateTime<Utc>>,
    /// Failures to add (after the last success when `reset`).
    pub failures: i32,
    pub last_error: Option<String>,
}

/// Folds attempts into per-webhook health changes, ordered by webhook id (a stable lock order).
pub fn health(outcomes: &[Outcome]) -> Vec<Health> {
    let mut by_webhook: BTreeMap<Uuid, Vec<(DateTime<Utc>, &Attempt)>> = BTreeMap::new();
    for outcome in outcomes {
        if let Outcome::Attempted {
            webhook_id,
            at,
            attempt,
            ..
        } = outcome
        {
            by_webhook
                .entry(*webhook_id)
                .or_default()
                .push((*at + attempt_duration(attempt), attempt));
        }
    }
    by_webhook
        .into_iter()
        .map(|(webhook_id, mut attempts)| {
            attempts.sort_by_key(|(finished, _)| *finished);
            let mut change = Health {
                webhook_id,
                reset: false,
                last_success: None,
                first_failure: None,
                last_failure: None,
                failures: 0,
                last_error: None,
            };
            for (finished, attempt) in attempts {
                if attempt.success {
                    change.reset = true;
                    change.last_success = Some(finished);
                    change.first_failure = None;
                    change.last_failure = None;
                    change.failures = 0;
                } else {
                    change.first_failure.get_or_insert(finished);
                    change.last_failure = Some(finished);
                    change.failures += 1;
                    change.last_error = attempt.error.as_ref().map(ToString::to_string);
                }
            }
            change
        })
        .collect()
}

fn attempt_duration(attempt: &Attempt) -> chrono::Duration {
    chrono::Duration::from_std(attempt.duration).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::failure::Failure;
    use crate::retry::RetryAfter;

    fn attempt(success: bool, error: Option<u16>) -> Attempt {
        Attempt {
            success,
            status_code: Some(if success { 200 } else { 500 }),
            error: error.map(Failure::Status),
            duration: Duration::from_millis(5),
            response: None,
            retry_after: None,
            reached_network: true,
        }
    }

    fn policy() -> RetryPolicy {
        RetryPolicy {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(3600),
        }
    }

    #[test]
    fn success_finishes() {
        let now = Utc::now();
        assert_eq!(
            next(
                &attempt(true, None),
                now,
                None,
                0,
                &policy(),
                Duration::from_secs(60)
            ),
            Next::Succeeded
        );
    }

    #[test]
    fn failure_retries_until_the_window_has_passed() {
        let now = Utc::now();
        let window = Duration::from_secs(2 * 86_400);
        let failed = attempt(false, Some(500));
        match next(&failed, now, None, 0, &policy(), window) {
            Next::Retry(at) => {
                let delay = at - now;
                assert!(
                    delay >= chrono::Duration::milliseconds(7_500)
                        && delay <= chrono::Duration::milliseconds(12_500)
                );
            }
            other => panic!("expected a retry, got {other:?}"),
        }
        let first = now - chrono::Duration::days(2);
        assert_eq!(
            next(&failed, now, Some(first), 40, &policy(), window),
            Next::GivenUp
        );
        let almost = now - chrono::Duration::days(2) + chrono::Duration::seconds(1);
        assert!(matches!(
            next(&failed, now, Some(almost), 40, &policy(), window),
            Next::Retry(_)
        ));
    }

    #[test]
    fn a_retry_after_is_counted_from_the_attempt_and_never_below_the_first_wait() {
        let now = Utc::now();
        let window = Duration::from_secs(2 * 86_400);
        let mut busy = attempt(false, Some(429));
        for (asked, waited) in [
            (RetryAfter::Delay(Duration::from_secs(1)), 10),
            (RetryAfter::Delay(Duration::from_secs(30)), 30),
            (RetryAfter::At(now + chrono::Duration::seconds(90)), 90),
            (RetryAfter::At(now - chrono::Duration::seconds(90)), 10),
        ] {
            busy.retry_after = Some(asked);
            assert_eq!(
                next(&busy, now, None, 0, &policy(), window),
                Next::Retry(now + chrono::Duration::seconds(waited)),
                "{asked:?}"
            );
        }
    }

    #[test]
    fn health_counts_failures_after_the_last_success() {
        let webhook = Uuid::new_v4();
        let t0 = Utc::now();
        let outcome = |secs: i64, success: bool, error: Option<u16>| Outcome::Attempted {
            delivery_id: Uuid::new_v4(),
            webhook_id: webhook,
            attempts_before: 0,
            first_attempt_at: None,
            at: t0 + chrono::Duration::seconds(secs),
            attempt: attempt(success, error),
        };
        let only_failures = health(&[outcome(0, false, Some(500)), outcome(1, false, Some(502))]);
        assert_eq!(only_failures.len(), 1);
        assert!(!only_failures[0].reset);
        assert_eq!(only_failures[0].failures, 2);
        assert_eq!(only_failures[0].last_error.as_deref(), Some("HTTP 502"));
        // The window is measured to the end of the last failed attempt (5 ms long here).
        let ended = t0 + chrono::Duration::seconds(1) + chrono::Duration::milliseconds(5);
        assert_eq!(only_failures[0].last_failure, Some(ended));
        assert_eq!(only_failures[0].last_success, None);

        let recovered = health(&[outcome(0, false, Some(500)), outcome(1, true, None)]);
        assert!(recovered[0].reset);
        assert_eq!(recovered[0].failures, 0);
        assert_eq!(recovered[0].first_failure, None);
        assert_eq!(
            recovered[0].last_failure, None,
            "nothing to disable after a success"
        );
        assert_eq!(
            recovered[0].last_success,
            Some(ended),
            "when the success ended"
        );

        let relapsed = health(&[outcome(0, true, None), outcome(1, false, Some(503))]);
        assert!(relapsed[0].reset);
        assert_eq!(relapsed[0].failures, 1);
        assert!(relapsed[0].first_failure.is_some());
        let first_ended = t0 + chrono::Duration::milliseconds(5);
        assert_eq!(relapsed[0].last_success, Some(first_ended));
    }
}
