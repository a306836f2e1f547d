//! One endpoint's open circuit: when its probe may go, which deliveries it holds back, and when it
//! was first opened. Pure state, driven by the limiter with the service clock's time.

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

/// Deliveries an open circuit remembers holding back, to make them due when it closes; the rest
/// come back at the time they were given, no later than the next probe.
const HELD_REMEMBERED: usize = 10_000;

/// An open (or half-open, while its probe is out) circuit.
#[derive(Debug)]
pub struct Circuit {
    /// When it first opened: a webhook changed since then starts from a closed circuit.
    opened_at: DateTime<Utc>,
    /// When the next probe may go.
    probe_at: DateTime<Utc>,
    probing: bool,
    /// Deliveries held back meanwhile, made due again when the circuit closes.
    held: Vec<Uuid>,
}

/// What an open circuit does with a delivery.
#[derive(Debug, PartialEq, Eq)]
pub enum Pass {
    /// Held back until then.
    Held(DateTime<Utc>),
    /// Sent as the circuit's one probe.
    Probe,
}

impl Circuit {
    /// Opened at `now`; the probe may go after `pause`.
    pub fn open(now: DateTime<Utc>, pause: Duration) -> Self {
        Self {
            opened_at: now,
            probe_at: now + pause,
            probing: false,
            held: Vec::new(),
        }
    }

    /// Open again after a failed probe (or failures in flight since it opened).
    pub fn reopen(&mut self, now: DateTime<Utc>, pause: Duration) {
        self.probe_at = now + pause;
    }

    /// Whether it opened before `since` (when a delivery's webhook changed, or a manual retry).
    pub fn is_older_than(&self, since: DateTime<Utc>) -> bool {
        self.opened_at < since
    }

    /// Holds `delivery` back, or lets it through as the probe once the pause is over and no
    /// probe is out. While the probe is out, its outcome releases the held deliveries; until then
    /// they wait no longer than a pause.
    pub fn pass(&mut self, delivery: Uuid, now: DateTime<Utc>, pause: Duration) -> Pass {
        if now < self.probe_at || self.probing {
            if self.held.len() < HELD_REMEMBERED {
                self.held.push(delivery);
            }
            return Pass::Held(if self.probing {
                now + pause
            } else {
                self.probe_at
            });
        }
        self.probing = true;
        Pass::Probe
    }

    /// The probe has ended (whatever its outcome), or was not sent after all.
    pub fn probe_ended(&mut self) {
        self.probing = false;
    }

    /// Deliveries released but not sent after all: held with the rest.
    pub fn hold_again(&mut self, deliveries: Vec<Uuid>) {
        let room = HELD_REMEMBERED.saturating_sub(self.held.len());
        self.held.extend(deliveries.into_iter().take(room));
    }

    /// Closes it: the deliveries it held back, to be made due now.
    pub fn release(self) -> Vec<Uuid> {
        self.held
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAUSE: Duration = Duration::seconds(10);

    #[test]
    fn holds_until_the_probe_time_then_lets_one_probe_through() {
        let now = Utc::now();
        let mut circuit = Circuit::open(now, PAUSE);
        let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(circuit.pass(a, now, PAUSE), Pass::Held(now + PAUSE));
        let later = now + PAUSE;
        assert_eq!(circuit.pass(b, later, PAUSE), Pass::Probe);
        assert_eq!(
            circuit.pass(c, later, PAUSE),
            Pass::Held(later + PAUSE),
            "one probe at a time, the rest held no longer than a pause"
        );
        assert_eq!(circuit.release(), vec![a, c]);
    }

    #[test]
    fn a_failed_probe_reopens_for_a_pause() {
        let now = Utc::now();
        let mut circuit = Circuit::open(now, PAUSE);
        assert_eq!(
            circuit.pass(Uuid::new_v4(), now + PAUSE, PAUSE),
            Pass::Probe
        );
        circuit.probe_ended();
        let failed = now + PAUSE + Duration::seconds(1);
        circuit.reopen(failed, PAUSE);
        assert_eq!(
            circuit.pass(Uuid::new_v4(), failed, PAUSE),
            Pass::Held(failed + PAUSE)
        );
    }

    #[test]
    fn knows_whether_a_change_came_after_it_opened() {
        let now = Utc::now();
        let circuit = Circuit::open(now, PAUSE);
        assert!(circuit.is_older_than(now + Duration::milliseconds(1)));
        assert!(!circuit.is_older_than(now));
    }

    #[test]
    fn remembers_a_bounded_number_of_held_deliveries() {
        let now = Utc::now();
        let mut circuit = Circuit::open(now, PAUSE);
        for _ in 0..HELD_REMEMBERED + 5 {
            let _ = circuit.pass(Uuid::new_v4(), now, PAUSE);
        }
        circuit.hold_again(vec![Uuid::new_v4()]);
        assert_eq!(circuit.release().len(), HELD_REMEMBERED);
    }
}
