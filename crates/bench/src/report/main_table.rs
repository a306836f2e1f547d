//! The main table: one line per baseline and per scenario row, with rates, latencies, CPU and
//! peak memory.

use std::fmt::Write as _;

use super::{Report, int, percentile_us};
use crate::baselines;

impl Report {
    pub(super) fn main_table(&self, out: &mut String) {
        let _ = writeln!(
            out,
            "| scenario | events | deliveries | published events/s | delivered/s end to end | p50 ms | p95 ms | p99 ms | dispatcher CPU s/1k | sender CPU s/1k | dispatcher peak RSS MiB | sender peak RSS MiB |"
        );
        let _ = writeln!(
            out,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for b in &self.baselines {
            let label = match b.label {
                "http-ceiling" => format!(
                    "baseline http-ceiling ({} concurrent over {} ports, no broker or database)",
                    baselines::http::CONCURRENCY,
                    b.ports
                ),
                baselines::hop::BROKER_HOP_STEADY => "baseline broker-hop at the steady rate (its events' publisher → a consumer acking at once; publish→consume latency)".to_owned(),
                _ => format!(
                    "baseline broker-hop (persistent + confirms → acks, prefetch {})",
                    baselines::hop::PREFETCH
                ),
            };
            let latency = b.arrivals.as_ref().map(|arrivals| {
                [0.50, 0.95, 0.99].map(|p| percentile_us(&arrivals.latencies_us, p) / 1000.0)
            });
            let label = if b.rounds > 1 {
                format!("{label}, {} rounds", b.rounds)
            } else {
                label
            };
            let _ = writeln!(
                out,
                "| {label} | – | {} | – | {} | {} | – | – | – | – |",
                int(b.count as f64),
                int(b.rate),
                latencies(latency),
            );
        }
        for r in &self.rows {
            let label = if r.complete {
                r.label.clone()
            } else {
                format!(
                    "{} (incomplete: {} of {})",
                    r.label,
                    int(r.deliveries as f64),
                    int(r.expected as f64)
                )
            };
            let _ = writeln!(
                out,
                "| {label} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                int(r.events as f64),
                int(r.deliveries as f64),
                int(r.published_rate),
                int(r.delivered_rate),
                latencies(r.latency_ms),
                opt(r.cpu_per_1k[0], 3),
                opt(r.cpu_per_1k[1], 3),
                opt(r.peak_rss_mib[0], 1),
                opt(r.peak_rss_mib[1], 1),
            );
        }
        out.push('\n');
    }
}

fn latencies(l: Option<[f64; 3]>) -> String {
    match l {
        Some([p50, p95, p99]) => format!("{p50:.1} | {p95:.1} | {p99:.1}"),
        None => "– | – | –".into(),
    }
}

fn opt(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baselines::Baseline;
    use webhooks_harness::receiver::tracker::Arrivals;

    #[test]
    fn the_steady_hop_is_labelled_as_the_steady_rate_and_shows_its_latency() {
        let mut report = Report::new("webhooks-bench".into());
        report.baseline(Baseline {
            label: baselines::hop::BROKER_HOP_STEADY,
            count: 4,
            rate: 999.6,
            ports: 0,
            arrivals: Some(Arrivals {
                unique: 4,
                latencies_us: vec![400, 500, 1_500, 42_900],
                ..Arrivals::default()
            }),
            rounds: 1,
            rabbitmq_cpu_s: Some(0.4),
        });
        let table = report.markdown();
        let row = table
            .lines()
            .find(|l| l.starts_with("| baseline broker-hop at the steady rate ("))
            .unwrap_or_else(|| panic!("{table}"));
        let p99 = percentile_us(&[400, 500, 1_500, 42_900], 0.99) / 1000.0;
        assert!(row.contains(&format!("| {p99:.1} |")), "{row}");
        assert!(!row.contains("| – | – | – | – | – | – | – | – |"), "{row}");
    }
}
