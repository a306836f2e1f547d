//! When a fault is injected and which one: a pause of 20-60 s before each, and the kinds dealt
//! from a shuffled deck (every kind once per round, in a random order) so that even a short run
//! sees most of them. Both come from one seeded generator, so a seed replays the same faults at
//! the same moments of the run (what the services do meanwhile is, of course, not replayed).
//!
//! The generator is SplitMix64, written out here rather than taken from a crate: its output for a
//! seed is fixed forever, whereas a library's standard generator may change between versions and
//! silently turn an old seed into a different schedule.

use std::time::Duration;

use super::Fault;

/// Shortest and longest pause before a fault.
pub const PAUSE_MIN: Duration = Duration::from_secs(20);
pub const PAUSE_MAX: Duration = Duration::from_secs(60);

/// SplitMix64 (Steele, Lea and Flood, 2014): tiny, fast and good enough to pick faults.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0); the modulo bias is negligible for the small `n` used here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// The fault schedule of one run.
pub struct Schedule {
    rng: SplitMix64,
    deck: Vec<Fault>,
}

impl Schedule {
    pub fn new(seed: u64) -> Self {
        Self {
            rng: SplitMix64::new(seed),
            deck: Vec::new(),
        }
    }

    /// The pause before the next fault: uniform between [`PAUSE_MIN`] and [`PAUSE_MAX`], to the ms.
    pub fn pause(&mut self) -> Duration {
        let span = (PAUSE_MAX - PAUSE_MIN).as_millis() as u64;
        PAUSE_MIN + Duration::from_millis(self.rng.below(span + 1))
    }

    /// The next fault: the deck is refilled with every kind and shuffled when it runs out.
    pub fn next_fault(&mut self) -> Fault {
        if self.deck.is_empty() {
            self.deck = Fault::ALL.to_vec();
            // Fisher-Yates.
            for i in (1..self.deck.len()).rev() {
                let j = self.rng.below(i as u64 + 1) as usize;
                self.deck.swap(i, j);
            }
        }
        self.deck.pop().unwrap_or(Fault::KillSender)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_matches_the_reference_output() {
        // First outputs of the reference implementation for seed 1234567.
        let mut rng = SplitMix64::new(1_234_567);
        assert_eq!(rng.next_u64(), 6_457_827_717_110_365_317);
        assert_eq!(rng.next_u64(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn a_seed_replays_the_same_schedule() {
        let (mut a, mut b) = (Schedule::new(7), Schedule::new(7));
        for _ in 0..20 {
            assert_eq!(a.pause(), b.pause());
            assert_eq!(a.next_fault(), b.next_fault());
        }
    }

    #[test]
    fn every_round_deals_each_kind_once_and_pauses_stay_in_bounds() {
        let mut schedule = Schedule::new(42);
        for _ in 0..10 {
            let mut round: Vec<Fault> = (0..Fault::ALL.len())
                .map(|_| schedule.next_fault())
                .collect();
            round.sort_by_key(|fault| fault.name());
            round.dedup();
            assert_eq!(round.len(), Fault::ALL.len());
            let pause = schedule.pause();
            assert!((PAUSE_MIN..=PAUSE_MAX).contains(&pause));
        }
    }
}
