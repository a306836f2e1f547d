//! The prefetch from a byte budget: how many unacked events the broker may push ahead so that
//! their bytes stay within `EVENTS_IN_FLIGHT_BYTES`.
//!
//! The broker bounds what it pushes in messages only (RabbitMQ ignores `prefetch_size`), and the
//! client buffers whatever it is pushed, so the count must follow the events' size. It starts as
//! if every event were `MAX_EVENT_BYTES`, drops at once when an event larger than assumed arrives,
//! and rises once a window of events (a whole prefetch of them, and at least [`WINDOW_LEAST`])
//! were all smaller. Sizes are rounded up to a power of two, so that sizes that vary a little do
//! not change it back and forth; it never exceeds `PREFETCH`.

/// Events that must be seen, all smaller than assumed, before the prefetch rises.
pub const WINDOW_LEAST: usize = 64;
/// The smallest size an event is assumed to have.
const SIZE_LEAST: usize = 1 << 10;

/// The prefetch for a budget, following the sizes seen.
#[derive(Clone, Debug)]
pub struct Prefetch {
    budget: usize,
    most: u16,
    /// The size of event the current prefetch is set for.
    assumed: usize,
    /// The largest event (rounded) of the window so far, and how many the window has seen.
    largest: usize,
    seen: usize,
}

impl Prefetch {
    /// Starts as if every event were `max_event_bytes`.
    pub fn new(budget: usize, max_event_bytes: usize, most: u16) -> Self {
        Self {
            budget,
            most: most.max(1),
            assumed: rounded(max_event_bytes),
            largest: 0,
            seen: 0,
        }
    }

    /// The prefetch now: as many events of the assumed size as the budget holds, at least 1 and at
    /// most `PREFETCH`.
    pub fn current(&self) -> u16 {
        count(self.budget, self.assumed, self.most)
    }

    /// The size of event the prefetch is set for.
    pub fn assumed(&self) -> usize {
        self.assumed
    }

    /// Notes an event of `size` bytes; returns the new prefetch when it changes (the consumer is
    /// then started again with it).
    pub fn observe(&mut self, size: usize) -> Option<u16> {
        let before = self.current();
        let size = rounded(size);
        if size > self.assumed {
            // Larger than assumed: the budget holds fewer of them, from now on.
            self.assumed = size;
            (self.largest, self.seen) = (0, 0);
        } else {
            self.largest = self.largest.max(size);
            self.seen += 1;
            if self.seen >= usize::from(before).max(WINDOW_LEAST) {
                // A whole window smaller than assumed: the budget holds more of them.
                self.assumed = self.largest;
                (self.largest, self.seen) = (0, 0);
            }
        }
        let after = self.current();
        (after != before).then_some(after)
    }
}

/// `size` rounded up to a power of two, at least [`SIZE_LEAST`].
fn rounded(size: usize) -> usize {
    size.max(SIZE_LEAST)
        .checked_next_power_of_two()
        .unwrap_or(usize::MAX)
}

fn count(budget: usize, size: usize, most: u16) -> u16 {
    let fits = budget / size.max(1);
    u16::try_from(fits).unwrap_or(u16::MAX).clamp(1, most)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1 << 20;

    #[test]
    fn starts_as_if_every_event_were_as_large_as_allowed() {
        assert_eq!(Prefetch::new(16 * MIB, MIB, 4_000).current(), 16);
        // Rounded up: 900 KiB counts as 1 MiB.
        assert_eq!(Prefetch::new(16 * MIB, 900 << 10, 4_000).current(), 16);
        // Never below 1, never above PREFETCH.
        assert_eq!(Prefetch::new(MIB, 8 * MIB, 4_000).current(), 1);
        assert_eq!(Prefetch::new(1 << 30, MIB, 4_000).current(), 1_024);
        assert_eq!(Prefetch::new(16 * MIB, 1 << 10, 4_000).current(), 4_000);
    }

    #[test]
    fn rises_once_a_window_of_small_events_was_seen() {
        let mut prefetch = Prefetch::new(16 * MIB, MIB, 4_000);
        // The window is a whole prefetch, and at least WINDOW_LEAST events.
        for _ in 1..WINDOW_LEAST {
            assert_eq!(prefetch.observe(1_000), None);
        }
        assert_eq!(prefetch.observe(1_000), Some(4_000));
        assert_eq!(prefetch.assumed(), 1 << 10);
        // Small events keep it there.
        for _ in 0..10_000 {
            assert_eq!(prefetch.observe(900), None);
        }
    }

    #[test]
    fn a_larger_event_lowers_it_at_once() {
        let mut prefetch = Prefetch::new(16 * MIB, MIB, 4_000);
        for _ in 0..WINDOW_LEAST {
            prefetch.observe(2_000);
        }
        assert_eq!(prefetch.current(), 4_000);
        // 8 KiB: 2,048 of them fit.
        assert_eq!(prefetch.observe(5_000), Some(2_048));
        assert_eq!(prefetch.observe(MIB), Some(16));
        // Over MAX_EVENT_BYTES (it will be refused, but it was pushed): fewer still.
        assert_eq!(prefetch.observe(4 * MIB), Some(4));
        assert_eq!(prefetch.observe(MIB), None);
    }

    #[test]
    fn rises_to_the_largest_of_the_window_only() {
        let mut prefetch = Prefetch::new(16 * MIB, MIB, 4_000);
        for i in 0..WINDOW_LEAST {
            // One event of 64 KiB in the window: 256 fit.
            let size = if i == 10 { 64 << 10 } else { 1_000 };
            let changed = prefetch.observe(size);
            assert_eq!(changed, (i == WINDOW_LEAST - 1).then_some(256));
        }
        // The next window must be 256 events long.
        for _ in 1..256 {
            assert_eq!(prefetch.observe(1_000), None);
        }
        assert_eq!(prefetch.observe(1_000), Some(4_000));
    }

    #[test]
    fn sizes_that_round_alike_change_nothing() {
        let mut prefetch = Prefetch::new(16 * MIB, MIB, 4_000);
        assert_eq!(prefetch.observe(600 << 10), None);
        assert_eq!(prefetch.observe(MIB), None);
        assert_eq!(prefetch.current(), 16);
    }
}
