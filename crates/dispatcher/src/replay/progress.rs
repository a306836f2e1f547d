//! Where a replay stands, and what its next step may do: pure arithmetic over its counts, kept
//! apart from the statements that carry it out ([`crate::store::replay_steps`]).

use uuid::Uuid;

/// A replay's counts. Every match is, in turn, waiting for its batch, then either `skipped` (it
/// had changed when its turn came, or the replay stopped) or `queued` (handed back to the
/// senders), and a queued one is `done` once its new attempt has been made (or it ended without
/// one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Progress {
    pub matched: i32,
    pub queued: i32,
    pub skipped: i32,
    pub done: i32,
    /// The largest delivery id taken by a batch so far: the next batch starts after it.
    pub next_after: Uuid,
    /// The smallest delivery id handed back and not done yet, or `next_after` when none is: every
    /// match before it is done or skipped.
    pub in_flight_from: Uuid,
    /// Why the replay stopped before its end (its webhook was disabled or deleted).
    pub stopped_reason: Option<String>,
}

impl Progress {
    /// Matches not taken by a batch yet.
    pub fn left(&self) -> i32 {
        (self.matched - self.queued - self.skipped).max(0)
    }

    /// Deliveries handed back whose new attempt has not been made yet.
    pub fn in_flight(&self) -> i32 {
        (self.queued - self.done).max(0)
    }

    /// Whether nothing is left to hand back and nothing handed back is still waiting.
    pub fn is_finished(&self) -> bool {
        self.left() == 0 && self.in_flight() == 0
    }

    /// How many matches the next batch may take: no more than `budget` (its share of the rate),
    /// nor than keeps at most `in_flight_most` in flight, nor than are left.
    pub fn room(&self, budget: i32, in_flight_most: i32) -> i32 {
        budget
            .min(in_flight_most - self.in_flight())
            .min(self.left())
            .max(0)
    }

    /// A batch of `taken` matches, the last of them `last`, of which `handed_back` were.
    pub fn took(&mut self, taken: i32, handed_back: i32, last: Uuid) {
        self.queued += handed_back;
        self.skipped += taken - handed_back;
        self.next_after = self.next_after.max(last);
    }

    /// `done` more of those in flight found done, `oldest` being the smallest id still in flight
    /// (`None`: none is).
    pub fn found_done(&mut self, done: i64, oldest: Option<Uuid>) {
        let done = i32::try_from(done).unwrap_or(i32::MAX);
        self.done = self.done.saturating_add(done).min(self.queued);
        self.in_flight_from = oldest.unwrap_or(self.next_after);
    }

    /// The replay stops for `reason`: the matches not taken yet are skipped.
    pub fn stop(&mut self, reason: &str) {
        self.skipped += self.left();
        self.stopped_reason = Some(reason.to_owned());
    }

    /// Matches left that no batch found any more (their rows removed by hand): skipped, or the
    /// replay would wait for them for ever.
    pub fn none_left(&mut self) {
        self.skipped += self.left();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matched(n: i32) -> Progress {
        Progress {
            matched: n,
            ..Progress::default()
        }
    }

    #[test]
    fn batches_are_bounded_by_the_budget_the_window_and_what_is_left() {
        let mut p = matched(1000);
        assert_eq!(p.room(100, 500), 100);
        p.took(100, 100, Uuid::from_u128(100));
        assert_eq!((p.queued, p.in_flight(), p.left()), (100, 100, 900));
        p.took(350, 350, Uuid::from_u128(450));
        assert_eq!(p.room(100, 500), 50, "the window has room for 50 more");
        p.done = 450;
        assert_eq!(p.room(100, 500), 100);
        let mut small = matched(30);
        assert_eq!(small.room(100, 500), 30);
        small.took(30, 30, Uuid::from_u128(30));
        assert_eq!(small.room(100, 500), 0);
    }

    #[test]
    fn finished_once_everything_is_queued_or_skipped_and_done() {
        let mut p = matched(10);
        assert!(!p.is_finished());
        p.took(10, 7, Uuid::from_u128(10));
        assert_eq!((p.queued, p.skipped), (7, 3));
        assert!(!p.is_finished(), "seven still waiting for their attempt");
        p.done = 7;
        assert!(p.is_finished());
        assert!(matched(0).is_finished(), "a replay that matched nothing");
    }

    #[test]
    fn a_stop_skips_what_is_left_and_waits_for_what_is_in_flight() {
        let mut p = matched(100);
        p.took(40, 40, Uuid::from_u128(40));
        p.stop("webhook disabled");
        assert_eq!((p.queued, p.skipped, p.left()), (40, 60, 0));
        assert_eq!(p.room(100, 500), 0);
        assert!(!p.is_finished());
        p.done = 40;
        assert!(p.is_finished());
        assert_eq!(p.stopped_reason.as_deref(), Some("webhook disabled"));
    }

    #[test]
    fn the_look_for_done_ones_starts_at_the_oldest_in_flight() {
        let mut p = matched(10);
        p.took(4, 4, Uuid::from_u128(4));
        p.found_done(2, Some(Uuid::from_u128(3)));
        assert_eq!((p.done, p.in_flight_from), (2, Uuid::from_u128(3)));
        p.found_done(2, None);
        assert_eq!((p.done, p.in_flight_from), (4, Uuid::from_u128(4)));
        p.found_done(7, None);
        assert_eq!(p.done, 4, "never more done than queued");
    }

    #[test]
    fn the_next_batch_starts_after_the_largest_id_taken() {
        let mut p = matched(10);
        p.took(2, 2, Uuid::from_u128(7));
        p.took(0, 0, Uuid::nil());
        assert_eq!(p.next_after, Uuid::from_u128(7));
    }
}
