//! What a soak found: the faults injected and the problems they showed, each service's peak
//! memory over every process that ran as it, and what arrived; printed as a summary and judged.

use std::fmt::Write as _;
use std::time::Duration;
use webhooks_harness::injector::Fault;
use webhooks_harness::receiver::tracker::Arrivals;
use webhooks_harness::service::Service;
use webhooks_harness::services::Services;

use crate::procfs::{self, RssSampler};
use crate::report::{int, percentile_us};

/// Peak resident set of each service over every process that ran as it, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Peaks {
    pub dispatcher_kib: u64,
    pub sender_kib: u64,
}

impl Peaks {
    /// Takes in what `service`'s current process reached so far (before it is stopped).
    pub fn fold(&mut self, world: &Services, service: Service, sampler: &RssSampler) {
        let Some(pid) = world.process(service).and_then(|p| p.pid()) else {
            return;
        };
        let hwm = procfs::memory(pid).map_or(0, |m| m.hwm_kib);
        let peak = hwm.max(sampler.samples(service.name()).peak_kib);
        let slot = match service {
            Service::Dispatcher => &mut self.dispatcher_kib,
            Service::Sender => &mut self.sender_kib,
        };
        *slot = (*slot).max(peak);
    }
}

/// The faults injected, in order, and what went wrong with them.
#[derive(Default)]
pub(super) struct FaultLog {
    pub injected: Vec<Fault>,
    pub problems: Vec<String>,
}

pub(super) struct Summary {
    pub seed: u64,
    pub webhooks: usize,
    pub minutes: u64,
    pub rate: f64,
    pub published: u64,
    pub expected: u64,
    pub arrivals: Arrivals,
    pub missing: u64,
    pub first_missing: Vec<(usize, u64)>,
    pub settled: Option<Duration>,
    pub log: FaultLog,
    pub peaks: Peaks,
}

impl Summary {
    pub fn render(&self) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            let _ = writeln!(out, "  {label:<22}{value}");
        };
        line(
            "run",
            format!(
                "{} min at {} events/s to {} webhooks, seed {}",
                self.minutes, self.rate, self.webhooks, self.seed
            ),
        );
        line("events published", int(self.published as f64));
        line("deliveries expected", int(self.expected as f64));
        line("delivered (distinct)", int(self.arrivals.unique as f64));
        let listed: Vec<String> = self
            .first_missing
            .iter()
            .map(|(webhook, seq)| format!("seq {seq} at webhook {webhook}"))
            .collect();
        line(
            "missing",
            if listed.is_empty() {
                int(self.missing as f64)
            } else {
                format!(
                    "{} (first: {})",
                    int(self.missing as f64),
                    listed.join(", ")
                )
            },
        );
        line("duplicates", int(self.arrivals.duplicates as f64));
        line("stray arrivals", int(self.arrivals.strays as f64));
        line(
            "all arrived",
            self.settled.map_or("no: gave up waiting".to_owned(), |d| {
                format!("{:.1} s after publishing ended", d.as_secs_f64())
            }),
        );
        line(
            "latency p50/p99/max",
            latencies(&self.arrivals.latencies_us),
        );
        line("faults injected", self.faults());
        line(
            "fault problems",
            if self.log.problems.is_empty() {
                "none".to_owned()
            } else {
                self.log.problems.join("; ")
            },
        );
        line(
            "peak RSS",
            format!(
                "dispatcher {:.1} MiB, sender {:.1} MiB (largest of every process that ran)",
                self.peaks.dispatcher_kib as f64 / 1024.0,
                self.peaks.sender_kib as f64 / 1024.0
            ),
        );
        format!("Soak summary\n{out}")
    }

    /// `total: kind n, kind n, ...` in the order of [`Fault::ALL`].
    fn faults(&self) -> String {
        let kinds: Vec<String> = Fault::ALL
            .iter()
            .map(|kind| {
                let n = self.log.injected.iter().filter(|f| *f == kind).count();
                format!("{} {n}", kind.name())
            })
            .collect();
        format!("{} ({})", self.log.injected.len(), kinds.join(", "))
    }

    pub fn verdict(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.missing == 0,
            "{} of {} deliveries missing",
            self.missing,
            self.expected
        );
        anyhow::ensure!(
            self.log.problems.is_empty(),
            "faults showed problems: {}",
            self.log.problems.join("; ")
        );
        Ok(())
    }
}

/// p50, p99 and the maximum of sorted publish→receive latencies in microseconds.
fn latencies(sorted_us: &[u32]) -> String {
    if sorted_us.is_empty() {
        return "-".to_owned();
    }
    let show = |us: f64| {
        if us >= 1e6 {
            format!("{:.1} s", us / 1e6)
        } else {
            format!("{:.0} ms", us / 1e3)
        }
    };
    format!(
        "{} / {} / {}",
        show(percentile_us(sorted_us, 0.5)),
        show(percentile_us(sorted_us, 0.99)),
        show(percentile_us(sorted_us, 1.0))
    )
}
