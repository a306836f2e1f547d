//! Waiting between attempts to reach the database or the broker: exponential backoff with jitter,
//! so that many instances started together (or cut off together) do not knock in step, and the
//! cause of each failed attempt logged once.

use rand::Rng;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Waits that double from `first` up to `max`, each one drawn at random from its upper half.
#[derive(Clone, Debug)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next attempt: between half and all of the current bound, which then
    /// doubles (up to `max`).
    pub fn next_wait(&mut self) -> Duration {
        let bound = self.next;
        self.next = (self.next * 2).min(self.max);
        bound.mul_f64(rand::rng().random_range(0.5..=1.0))
    }

    /// Back to the first, shortest bound (after a success that lasted).
    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// The bounds of start-up attempts: quick at first, then every 5 s at most.
pub fn start_up() -> Backoff {
    Backoff::new(Duration::from_millis(100), Duration::from_secs(5))
}

/// An error with its causes, each once: `a: b: c`. A cause whose text its parent already shows
/// (several libraries print their source inside their own message) is not repeated.
pub fn causes(error: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.ends_with(&text) || out.contains(&format!("{text}: ")) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Runs `attempt` until it succeeds, waiting with [`start_up`]'s backoff between attempts and
/// logging each failure once, at warn, with its causes. `None` when `shutdown` came first.
pub async fn until_ok<T, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut attempt: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<T>>,
{
    let mut backoff = start_up();
    let mut attempts: u32 = 0;
    loop {
        let outcome = tokio::select! {
            _ = shutdown.cancelled() => return None,
            outcome = attempt() => outcome,
        };
        attempts += 1;
        match outcome {
            Ok(value) => {
                if attempts > 1 {
                    tracing::info!(attempts, "{what}: done");
                }
                return Some(value);
            }
            Err(e) => {
                let wait = backoff.next_wait();
                tracing::warn!(
                    attempt = attempts,
                    retry_in = ?wait,
                    error = causes(&e),
                    "{what} failed; trying again"
                );
                tokio::select! {
                    _ = shutdown.cancelled() => return None,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn waits_double_within_jitter_up_to_the_bound() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let bounds = [100, 200, 400, 800, 800, 800];
        for bound in bounds {
            let wait = backoff.next_wait();
            let bound = Duration::from_millis(bound);
            assert!(
                wait >= bound / 2 && wait <= bound,
                "{wait:?} outside {bound:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_wait() <= Duration::from_millis(100));
    }

    #[test]
    fn waits_are_spread() {
        let waits: std::collections::HashSet<Duration> =
            (0..20).map(|_| start_up().next_wait()).collect();
        assert!(waits.len() > 1, "no jitter: {waits:?}");
    }

    #[test]
    fn causes_show_once_each() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = anyhow::Error::new(io)
            .context("IO error: refused")
            .context("connecting");
        assert_eq!(causes(&error), "connecting: IO error: refused");
        let plain = Err::<(), _>(std::io::Error::other("reset"))
            .context("database")
            .expect_err("an error");
        assert_eq!(causes(&plain), "database: reset");
    }

    #[tokio::test]
    async fn retries_until_success_and_stops_on_shutdown() {
        let shutdown = CancellationToken::new();
        let mut left = 2;
        let value = until_ok("test", &shutdown, || {
            left -= 1;
            let ok = left < 0;
            async move { if ok { Ok(7) } else { anyhow::bail!("not yet") } }
        })
        .await;
        assert_eq!(value, Some(7));
        shutdown.cancel();
        let never: Option<()> =
            until_ok("test", &shutdown, || async { anyhow::bail!("down") }).await;
        assert_eq!(never, None);
    }
}
