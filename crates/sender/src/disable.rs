//! The disable rule, decided without I/O: a webhook whose endpoint has not succeeded for
//! `DISABLE_AFTER` is disabled; and the notification its owners then get. [`crate::recorder`]
//! applies the rule in the transaction that records the failing attempt, and
//! [`crate::store::webhooks`] carries out what it decides.
//!
//! A webhook's failing window opens at the end of its first failed attempt after its last
//! success, or of its first failed attempt ever if it has never succeeded. Each batch of outcomes
//! changes it as its [`Health`] says: a success seen restarts it at the first failure after that
//! success (closed if there is none), and otherwise the first failure opens it if it is not open
//! yet. The store keeps where it opened (`webhooks.failing_since`) and returns it as written. A
//! webhook is disabled once an attempt of it fails at least `DISABLE_AFTER` after its window
//! opened, measured to the end of that attempt rather than to when it is recorded.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::time::Duration;
use uuid::Uuid;
use webhooks_core::messages::{Notification, WebhookDisabled};

use crate::outcome::Health;
use crate::store::webhooks::{Disabled, FailingWindow};

/// No success for this long disables a webhook.
#[derive(Clone, Copy, Debug)]
pub struct DisableRule {
    after: chrono::Duration,
}

impl DisableRule {
    /// The rule for `DISABLE_AFTER` (2 days should it not fit a signed duration).
    pub fn new(after: Duration) -> Self {
        Self {
            after: chrono::Duration::from_std(after).unwrap_or(chrono::Duration::days(2)),
        }
    }

    /// Whether a webhook whose failing window opened at `failing_since` (none: it is healthy) has
    /// failed for the whole window with an attempt that failed at `failed_at`. Exactly
    /// `DISABLE_AFTER` is enough.
    pub fn crossed(&self, failing_since: Option<DateTime<Utc>>, failed_at: DateTime<Utc>) -> bool {
        failing_since.is_some_and(|since| failed_at - since >= self.after)
    }

    /// The webhooks to disable after a batch: those of `health` whose last attempt in the batch
    /// failed and crossed the threshold, by their window as the batch left it (`windows`). A
    /// webhook without a window there is not disabled: the store has not locked it.
    pub fn to_disable(&self, health: &[Health], windows: &[FailingWindow]) -> Vec<Uuid> {
        let opened: HashMap<Uuid, Option<DateTime<Utc>>> = windows
            .iter()
            .map(|w| (w.webhook_id, w.failing_since))
            .collect();
        health
            .iter()
            .filter_map(|h| {
                let failed_at = h.last_failure?;
                let since = *opened.get(&h.webhook_id)?;
                self.crossed(since, failed_at).then_some(h.webhook_id)
            })
            .collect()
    }
}

/// The notification for the owners of a webhook disabled at `at` (contract §5).
pub fn notification(disabled: &Disabled, at: DateTime<Utc>) -> Notification {
    Notification::WebhookDisabled(WebhookDisabled {
        webhook_id: disabled.webhook_id,
        project_code: disabled.project_code.clone(),
        title: disabled.title.clone(),
        url: disabled.url.clone(),
        created_by: disabled.created_by,
        failing_since: disabled.failing_since,
        disabled_at: at,
        last_error: disabled.last_error.clone(),
        failed_attempts: i64::from(disabled.failed_attempts),
    })
}

#[cfg(test)]
mod tests;
