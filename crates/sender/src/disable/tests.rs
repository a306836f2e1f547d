use super::*;
use crate::attempt::Attempt;
use crate::failure::Failure;
use crate::outcome::{Outcome, health};

const DAY: i64 = 86_400;

/// `secs` after a fixed instant: the rule reads no clock, so tests set every time.
fn t(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("in range")
}

fn rule() -> DisableRule {
    DisableRule::new(Duration::from_secs(2 * 86_400))
}

/// An attempt of `webhook` started at `at`, lasting `took`.
fn attempted(webhook: Uuid, at: DateTime<Utc>, took: Duration, success: bool) -> Outcome {
    Outcome::Attempted {
        delivery_id: Uuid::new_v4(),
        webhook_id: webhook,
        attempts_before: 0,
        first_attempt_at: None,
        at,
        attempt: Attempt {
            success,
            status_code: Some(if success { 200 } else { 500 }),
            error: (!success).then_some(Failure::Status(500)),
            duration: took,
            response: None,
            retry_after: None,
            reached_network: true,
        },
    }
}

/// The window as `store::webhooks::record_health` writes it for a batch's `change` over the one
/// stored before (`failing_since = CASE WHEN reset THEN first_failure ELSE COALESCE(stored,
/// first_failure) END`).
fn written(stored: Option<DateTime<Utc>>, change: &Health) -> FailingWindow {
    FailingWindow {
        webhook_id: change.webhook_id,
        failing_since: if change.reset {
            change.first_failure
        } else {
            stored.or(change.first_failure)
        },
    }
}

/// Records one batch over the window `stored`: the window it leaves, and the webhooks disabled.
fn batch(
    stored: Option<DateTime<Utc>>,
    outcomes: &[Outcome],
) -> (Option<DateTime<Utc>>, Vec<Uuid>) {
    let health = health(outcomes);
    let windows: Vec<FailingWindow> = health.iter().map(|h| written(stored, h)).collect();
    let disabled = rule().to_disable(&health, &windows);
    (windows[0].failing_since, disabled)
}

#[test]
fn exactly_at_the_threshold_a_webhook_is_disabled() {
    assert!(rule().crossed(Some(t(0)), t(2 * DAY)));
    assert!(rule().crossed(Some(t(0)), t(3 * DAY)));
}

#[test]
fn just_under_the_threshold_it_is_not() {
    let just_under = t(2 * DAY) - chrono::Duration::milliseconds(1);
    assert!(!rule().crossed(Some(t(0)), just_under));
}

#[test]
fn a_webhook_without_a_window_is_never_disabled() {
    assert!(!rule().crossed(None, t(30 * DAY)));
}

#[test]
fn the_window_is_measured_to_the_end_of_the_failing_attempt() {
    let webhook = Uuid::new_v4();
    let ends_at_the_threshold = attempted(webhook, t(2 * DAY - 15), Duration::from_secs(15), false);
    assert_eq!(batch(Some(t(0)), &[ends_at_the_threshold]).1, vec![webhook]);
    let ends_before = attempted(webhook, t(2 * DAY - 15), Duration::from_secs(14), false);
    assert!(batch(Some(t(0)), &[ends_before]).1.is_empty());
}

#[test]
fn a_never_succeeded_webhook_counts_from_its_first_failure() {
    let webhook = Uuid::new_v4();
    let fail = |at| attempted(webhook, at, Duration::from_secs(1), false);
    // The first failure, 1 s long, opens the window at its end.
    let (window, disabled) = batch(None, &[fail(t(0))]);
    assert_eq!(window, Some(t(1)));
    assert!(disabled.is_empty());
    // Later failures keep it where it opened.
    let (window, disabled) = batch(window, &[fail(t(DAY)), fail(t(2 * DAY - 1))]);
    assert_eq!(window, Some(t(1)));
    assert!(
        disabled.is_empty(),
        "ended exactly 2 days after the first failure began"
    );
    assert_eq!(batch(window, &[fail(t(2 * DAY))]).1, vec![webhook]);
}

#[test]
fn a_success_resets_the_window() {
    let webhook = Uuid::new_v4();
    let at = |secs, success| attempted(webhook, t(secs), Duration::ZERO, success);
    // Failing for two days, but the batch's last attempt succeeded: the window closes.
    let (window, disabled) = batch(Some(t(0)), &[at(2 * DAY, false), at(2 * DAY + 1, true)]);
    assert_eq!(window, None);
    assert!(disabled.is_empty());
    // A failure after a success in the same batch opens a new window at that failure.
    let (window, disabled) = batch(Some(t(0)), &[at(2 * DAY, true), at(2 * DAY + 1, false)]);
    assert_eq!(window, Some(t(2 * DAY + 1)));
    assert!(disabled.is_empty());
    // And it is that window which counts from then on.
    assert!(batch(window, &[at(4 * DAY, false)]).1.is_empty());
    assert_eq!(batch(window, &[at(4 * DAY + 1, false)]).1, vec![webhook]);
}

#[test]
fn only_webhooks_the_store_wrote_are_disabled() {
    let webhook = Uuid::new_v4();
    let health = health(&[attempted(webhook, t(3 * DAY), Duration::ZERO, false)]);
    assert!(rule().to_disable(&health, &[]).is_empty());
}
