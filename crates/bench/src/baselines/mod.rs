//! The baselines measured in the same run, so that the scenarios' figures can be read as
//! ratios that hold on a noisy machine:
//! - [`http`]: `http-ceiling`, the sender's own HTTP client code posting straight to the
//!   receiver: no broker, no database. No delivery pipeline can beat it.
//! - [`hop`]: `broker-hop`, RabbitMQ alone, one hop as the events take it. At full speed it is the
//!   bound of fan-out 1's rate; paced at the steady scenario's rate, its publish→consume latency
//!   is the broker's own share of the steady scenario's.

pub mod hop;
pub mod http;

use webhooks_harness::receiver::tracker::Arrivals;

/// A baseline's rate and (where it has one) its latency.
#[derive(Clone, Debug)]
pub struct Baseline {
    pub label: &'static str,
    pub count: u64,
    /// Messages (or requests) per second, first send → last receive.
    pub rate: f64,
    /// Receiver ports (endpoints) the HTTP ceiling spread its requests over.
    pub ports: usize,
    pub arrivals: Option<Arrivals>,
    /// Measurements this figure stands for (see [`Baseline::combined`]).
    pub rounds: usize,
    /// CPU seconds of the broker's processes while it ran (broker-hop only).
    pub rabbitmq_cpu_s: Option<f64>,
}

impl Baseline {
    /// One figure for several measurements of the same baseline: their count over their summed
    /// time, and the latencies of all of them together. `None` for none.
    pub fn combined(rounds: &[Baseline]) -> Option<Baseline> {
        let first = rounds.first()?;
        let count: u64 = rounds.iter().map(|b| b.count).sum();
        let seconds: f64 = rounds
            .iter()
            .map(|b| b.count as f64 / b.rate.max(1e-9))
            .sum();
        let arrivals = first.arrivals.as_ref().map(|first| {
            let mut latencies_us: Vec<u32> = rounds
                .iter()
                .filter_map(|b| b.arrivals.as_ref())
                .flat_map(|a| a.latencies_us.iter().copied())
                .collect();
            latencies_us.sort_unstable();
            Arrivals {
                unique: count,
                latencies_us,
                ..first.clone()
            }
        });
        Some(Baseline {
            label: first.label,
            count,
            rate: count as f64 / seconds.max(1e-9),
            ports: first.ports,
            arrivals,
            rounds: rounds.iter().map(|b| b.rounds).sum(),
            rabbitmq_cpu_s: rounds.iter().map(|b| b.rabbitmq_cpu_s).sum(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_baselines_sum_their_counts_and_time_and_pool_their_latencies() {
        let round = |count: u64, seconds: f64, latencies_us: Vec<u32>, cpu_s: f64| Baseline {
            label: "http-ceiling",
            count,
            rate: count as f64 / seconds,
            ports: 10,
            arrivals: Some(Arrivals {
                unique: count,
                latencies_us,
                ..Arrivals::default()
            }),
            rounds: 1,
            rabbitmq_cpu_s: Some(cpu_s),
        };
        // 1,000 in 1 s and 3,000 in 3 s: 4,000 in 4 s.
        let b = Baseline::combined(&[
            round(1_000, 1.0, vec![1, 5], 0.5),
            round(3_000, 3.0, vec![2, 3], 1.5),
        ])
        .unwrap();
        assert_eq!(b.count, 4_000);
        assert!((b.rate - 1_000.0).abs() < 1e-6, "{}", b.rate);
        assert_eq!(b.rounds, 2);
        assert_eq!(b.rabbitmq_cpu_s, Some(2.0));
        let arrivals = b.arrivals.unwrap();
        assert_eq!(arrivals.latencies_us, vec![1, 2, 3, 5]);
        assert_eq!(arrivals.unique, 4_000);
        assert!(Baseline::combined(&[]).is_none());
    }
}
