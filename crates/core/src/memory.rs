//! What bounds each service's memory, as a formula of its settings: docs/operations.md
//! states it, the services size their buffers by it and the benchmark checks their peak resident
//! set against it.
//!
//! Memory is bounded in bytes, not only in messages. The dispatcher's events in flight are
//! bounded by `EVENTS_IN_FLIGHT_BYTES`: it sets the prefetch from the largest event seen (at first
//! as if every event were `MAX_EVENT_BYTES`), and its batches are recorded and handed off in parts
//! of at most [`RECORD_DELIVERIES_MOST`] deliveries. The sender's bodies are bounded by
//! `BODIES_IN_FLIGHT_BYTES` (every job holds its body's bytes until its attempt is over; a body
//! over [`INLINE_BODY_MOST`] is read apart, once there is room for it), and its hand-off messages
//! by `PREFETCH` × [`HANDOFF_BYTES_MOST`].

/// Resident memory of either service at rest with its pools and connections open, plus the
/// fixed-size work of a full-speed run of small events (measured about 16-24 MiB at full speed
/// with the defaults); the bounds below add what grows with the settings.
pub const BASE_BYTES: u64 = 40 << 20;

/// Default `EVENTS_IN_FLIGHT_BYTES`: bytes of domain events the dispatcher lets the broker push
/// ahead (4,000 events of 4 KiB, 16 of 1 MiB).
pub const EVENTS_IN_FLIGHT_BYTES: usize = 16 << 20;

/// Default `BODIES_IN_FLIGHT_BYTES`: bytes of delivery bodies the sender's jobs hold at once.
pub const BODIES_IN_FLIGHT_BYTES: usize = 16 << 20;

/// Most deliveries the dispatcher records and hands off in one statement: a batch whose events
/// match more is recorded in several (an event with more deliveries than this alone).
pub const RECORD_DELIVERIES_MOST: usize = 10_000;

/// Bytes of events the dispatcher records in one statement: a part of a batch ends once its
/// events reach this (an event larger than this alone).
pub const RECORD_BYTES_MOST: usize = 2 << 20;

/// Largest body a claim returns with its delivery; a larger one is read apart (see
/// [`BASE_BYTES`]'s module).
pub const INLINE_BODY_MOST: usize = 16 << 10;

/// Largest hand-off message: its bodies (at most 1 MiB past its first event, each at most
/// 64 KiB) and up to 2,000 delivery and webhook ids.
pub const HANDOFF_BYTES_MOST: u64 = (1 << 20) + (64 << 10) + 2_000 * 80;

/// The dispatcher's bound: a copy of each event in flight as received, one as its delivery body,
/// one in the record's parameters while it is written; the record's deliveries and hand-offs are
/// bounded by [`RECORD_DELIVERIES_MOST`] and counted in [`BASE_BYTES`].
pub fn dispatcher_bound(events_in_flight_bytes: u64) -> u64 {
    BASE_BYTES + 3 * events_in_flight_bytes
}

/// The sender's bound: its bodies in flight, one claim's inline bodies (as read and as kept),
/// and `prefetch` hand-off messages twice (as received, and their bodies as kept for their jobs).
pub fn sender_bound(bodies_in_flight_bytes: u64, prefetch: u64) -> u64 {
    BASE_BYTES
        + bodies_in_flight_bytes
        + 2 * 500 * INLINE_BODY_MOST as u64
        + 2 * prefetch * HANDOFF_BYTES_MOST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_stay_under_128_mib() {
        let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
        assert!(mib(dispatcher_bound(EVENTS_IN_FLIGHT_BYTES as u64)) <= 128.0);
        assert!(mib(sender_bound(BODIES_IN_FLIGHT_BYTES as u64, 8)) <= 128.0);
    }
}
