//! What the publisher writes into each event's payload so that the tracking receiver can match a
//! delivery to its publish: the phase of the run, the event's sequence number and its publish
//! time, on the one clock both share.

use serde::Deserialize;

/// Nanoseconds since the Unix epoch: the one clock publisher and receiver share.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The marks of one event.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
pub struct Marks {
    pub phase: u32,
    pub seq: u64,
    /// When it was published, by [`now_ns`].
    pub sent_ns: u64,
}

#[derive(Deserialize)]
struct Body {
    payload: Marks,
}

impl Marks {
    /// The marks in an event's or a delivery's body (both carry them in `payload`).
    pub fn read(body: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Body>(body).ok().map(|b| b.payload)
    }

    /// The JSON fields of the marks, to open a payload with.
    pub fn fields(&self) -> String {
        format!(
            r#""phase":{},"seq":{},"sent_ns":{}"#,
            self.phase, self.seq, self.sent_ns
        )
    }
}

/// Microseconds from an event's publish to `arrived_ns`; `None` for a body without the marks.
pub fn latency_us(body: &[u8], arrived_ns: u64) -> Option<u32> {
    let marks = Marks::read(body)?;
    Some(u32::try_from(arrived_ns.saturating_sub(marks.sent_ns) / 1_000).unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_is_read_from_the_publish_mark() {
        let sent_ns = now_ns();
        let marks = Marks {
            phase: 1,
            seq: 0,
            sent_ns,
        };
        let body = format!(
            r#"{{"event_name":"run.started","payload":{{{}}}}}"#,
            marks.fields()
        );
        assert_eq!(Marks::read(body.as_bytes()), Some(marks));
        assert_eq!(
            latency_us(body.as_bytes(), sent_ns + 2_500_000),
            Some(2_500)
        );
        assert_eq!(latency_us(b"not json", sent_ns), None);
    }
}
