//! A line of the main table: one phase, or several phases of one kind combined, with the
//! percentile and median arithmetic they use.

use super::Kind;
use crate::phase::{Cost, Measured};

/// One line of the main table.
#[derive(Clone, Debug)]
pub struct Row {
    pub kind: Kind,
    pub label: String,
    pub events: u64,
    pub deliveries: u64,
    pub expected: u64,
    pub published_rate: f64,
    pub delivered_rate: f64,
    /// p50, p95, p99 publish→receive in ms (none where it means nothing, as in the backlog).
    pub latency_ms: Option<[f64; 3]>,
    /// CPU seconds per 1,000 deliveries: dispatcher, sender.
    pub cpu_per_1k: [Option<f64>; 2],
    /// Peak resident set in MiB: dispatcher, sender.
    pub peak_rss_mib: [Option<f64>; 2],
    pub complete: bool,
}

impl Row {
    /// One phase's row, under the phase's own label.
    pub fn from_measured(kind: Kind, m: &Measured) -> Self {
        Self {
            label: m.label.clone(),
            ..Self::combined(kind, std::slice::from_ref(m))
        }
    }

    /// One row for several phases of one kind: their deliveries over their summed time (first
    /// publish to last arrival of each), each percentile the median of the phases' (so that one
    /// phase hit by a stall of the machine does not decide it), CPU over all of their deliveries,
    /// and the highest peak.
    pub fn combined(kind: Kind, phases: &[Measured]) -> Self {
        let deliveries: u64 = phases.iter().map(|m| m.arrivals.unique).sum();
        let events: u64 = phases.iter().map(|m| m.events).sum();
        let wall_s: f64 = phases.iter().map(Measured::wall_s).sum();
        let publishing_s: f64 = phases
            .iter()
            .map(|m| m.events as f64 / m.published_rate.max(1e-9))
            .sum();
        let percentiles: Vec<[f64; 3]> = phases
            .iter()
            .map(|m| &m.arrivals.latencies_us)
            .filter(|l| !l.is_empty())
            .map(|l| [0.50, 0.95, 0.99].map(|p| percentile_us(l, p) / 1000.0))
            .collect();
        // A service's cost over all phases: CPU summed, the highest peak; none if a phase lacks it.
        let total = |pick: fn(&Measured) -> Option<Cost>| {
            phases.iter().map(pick).try_fold(Cost::default(), |sum, c| {
                c.map(|c| Cost {
                    cpu_s: sum.cpu_s + c.cpu_s,
                    peak_rss_kib: sum.peak_rss_kib.max(c.peak_rss_kib),
                })
            })
        };
        let costs = [total(|m| m.dispatcher), total(|m| m.sender)]
            .map(|c| c.filter(|_| !phases.is_empty()));
        Self {
            kind,
            label: kind.label().to_owned(),
            events,
            deliveries,
            expected: phases.iter().map(|m| m.expected).sum(),
            published_rate: if publishing_s > 0.0 {
                events as f64 / publishing_s
            } else {
                0.0
            },
            delivered_rate: if wall_s > 0.0 {
                deliveries as f64 / wall_s
            } else {
                0.0
            },
            latency_ms: (!percentiles.is_empty())
                .then(|| [0, 1, 2].map(|i| median(percentiles.iter().map(|p| p[i]).collect()))),
            cpu_per_1k: costs.map(|c| cpu_per_1k(c, deliveries)),
            peak_rss_mib: costs.map(peak_rss_mib),
            complete: phases.iter().all(|m| m.complete),
        }
    }

    /// A backlog's row: the drain rate, and no latency (it includes the services' absence).
    pub fn backlog(kind: Kind, m: &Measured, drain_rate: f64) -> Self {
        Self {
            delivered_rate: drain_rate,
            latency_ms: None,
            ..Self::from_measured(kind, m)
        }
    }
}

/// CPU seconds per 1,000 deliveries, if both are known.
fn cpu_per_1k(cost: Option<Cost>, deliveries: u64) -> Option<f64> {
    cost.filter(|_| deliveries > 0)
        .map(|c| c.cpu_s * 1000.0 / deliveries as f64)
}

fn peak_rss_mib(cost: Option<Cost>) -> Option<f64> {
    cost.map(|c| c.peak_rss_kib as f64 / 1024.0)
}

/// The middle value (the mean of the two middle ones for an even count); 0 for none.
pub(super) fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// Nearest-rank percentile of sorted microseconds.
pub fn percentile_us(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile_us(&sorted, 0.50), 50.0);
        assert_eq!(percentile_us(&sorted, 0.99), 99.0);
        assert_eq!(percentile_us(&[7], 0.99), 7.0);
    }

    #[test]
    fn combined_phases_sum_their_deliveries_and_time_and_take_the_median_percentile() {
        let phase = |unique: u64, seconds: u64, latency_us: u32, cpu_s: f64, rss_kib: u64| {
            let mut m = Measured {
                events: unique,
                expected: unique,
                published_rate: unique as f64,
                complete: true,
                sender: Some(Cost {
                    cpu_s,
                    peak_rss_kib: rss_kib,
                }),
                ..Measured::default()
            };
            m.arrivals.unique = unique;
            m.arrivals.latencies_us = vec![latency_us; usize::try_from(unique).unwrap()];
            m.arrivals.last_ns = seconds * 1_000_000_000;
            m
        };
        // 1,000 deliveries in 1 s, 3,000 in 2 s and 1,000 in 1 s: 5,000 in 4 s, not the mean of
        // three rates; the phase stalled to 900 ms does not set the percentiles.
        let row = Row::combined(
            Kind::HangingNone,
            &[
                phase(1_000, 1, 5_000, 1.0, 2048),
                phase(3_000, 2, 9_000, 3.0, 1024),
                phase(1_000, 1, 900_000, 1.0, 1024),
            ],
        );
        assert_eq!(row.deliveries, 5_000);
        assert!((row.delivered_rate - 5_000.0 / 4.0).abs() < 1e-6);
        assert_eq!(row.latency_ms, Some([9.0, 9.0, 9.0]));
        assert_eq!(row.cpu_per_1k, [None, Some(1.0)]);
        assert_eq!(row.peak_rss_mib, [None, Some(2.0)]);
        assert!(row.complete);
    }

    #[test]
    fn median_is_the_middle() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(median(Vec::new()), 0.0);
    }
}
