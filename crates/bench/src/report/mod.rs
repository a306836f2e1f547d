//! The results: one row per scenario phase and baseline, the ratios and targets, the per-stage
//! figures from the services' metrics, and notes; printed as markdown that can go into
//! BENCHMARKS.md.
//!
//! What is collected and in what order it prints is here; [`main_table`] prints the main table
//! and [`row`] makes its lines, [`targets`] compares figures with the goals, [`breakdown`] shows
//! where the time goes inside the services, [`api_table`] the API scenario's own table.

pub mod api_table;
mod breakdown;
mod main_table;
mod row;
mod targets;

use breakdown::StageRow;
use row::median;
pub use row::{Row, percentile_us};

use std::fmt::Write as _;

use crate::baselines::Baseline;
use crate::phase::Measured;
use crate::procfs::{self, Settled};

/// Which figure a row is, for the ratios.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Fanout1,
    Fanout10,
    Steady,
    HangingNone,
    HangingTwo,
    Backlog,
    BrokerBacklog,
    /// The memory scenario's phases, held to targets of their own (see the memory scenario).
    MemoryLarge,
    MemorySmall,
    MemoryWide,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Fanout1 => "fanout1",
            Kind::Fanout10 => "fanout10",
            Kind::Steady => "steady 1,000 ev/s",
            Kind::HangingNone => "hanging: 8 healthy beside 2 healthy",
            Kind::HangingTwo => "hanging: 8 healthy beside 2 hanging",
            Kind::Backlog => "backlog drain",
            Kind::BrokerBacklog => "broker backlog: both services start",
            Kind::MemoryLarge => "memory: 2,000 events of 1 MiB wait in the broker, both start",
            Kind::MemorySmall => "memory: 2,000 events of 1 KiB wait in the broker, both start",
            Kind::MemoryWide => "memory: burst of 200 events to 1,000 webhooks of one project",
        }
    }

    /// Whether the row is one of the memory scenario's, whose peaks have targets of their own.
    pub fn is_memory(self) -> bool {
        matches!(
            self,
            Kind::MemoryLarge | Kind::MemorySmall | Kind::MemoryWide
        )
    }
}

/// One round of a full-speed scenario beside the baseline measured right before it.
#[derive(Clone, Copy, Debug)]
pub struct Pair {
    pub kind: Kind,
    pub baseline: &'static str,
    pub rate: f64,
    pub baseline_rate: f64,
}

impl Pair {
    pub fn ratio(&self) -> f64 {
        self.rate / self.baseline_rate.max(1e-9)
    }
}

#[derive(Default)]
pub struct Report {
    command: String,
    /// The API scenario's rows, one per concurrency.
    api: Vec<api_table::ApiRow>,
    rows: Vec<Row>,
    stages: Vec<StageRow>,
    baselines: Vec<Baseline>,
    pairs: Vec<Pair>,
    /// Each wait for a quiet machine, named by the measurement it came before (`None`: the
    /// machine's CPU could not be read).
    waits: Vec<(String, Option<Settled>)>,
    notes: Vec<String>,
    /// Tables of a scenario's own, printed after the targets.
    tables: Vec<String>,
    /// Scenarios and measurements that failed to run (their targets are then unmeasured).
    failures: Vec<String>,
    /// Targets missed in a scenario's own table (the memory scenario's).
    missed: Vec<String>,
}

impl Report {
    pub fn new(command: String) -> Self {
        Self {
            command,
            ..Self::default()
        }
    }

    /// Adds a markdown table of a scenario's own (with its heading line).
    pub fn table(&mut self, markdown: String) {
        self.tables.push(markdown);
    }

    /// Records a target missed in a scenario's own table, for `--check`.
    pub fn missed(&mut self, what: String) {
        self.missed.push(what);
    }

    /// Records that `what` failed to run.
    pub fn failure(&mut self, what: &str) {
        self.failures.push(what.to_owned());
    }

    pub fn failures(&self) -> &[String] {
        &self.failures
    }

    pub fn add(&mut self, kind: Kind, m: &Measured) {
        self.add_row(Row::from_measured(kind, m));
        self.add_stages(m);
    }

    pub fn add_api(&mut self, row: api_table::ApiRow) {
        self.api.push(row);
    }

    pub fn add_row(&mut self, row: Row) {
        self.rows.push(row);
    }

    pub fn add_stages(&mut self, m: &Measured) {
        if m.arrivals.duplicates > 0 || m.arrivals.strays > 0 {
            self.note(format!(
                "{}: {} duplicate arrivals (at-least-once), {} arrivals from other phases.",
                m.label, m.arrivals.duplicates, m.arrivals.strays
            ));
        }
        self.stages.push(StageRow::of(m));
    }

    pub fn baseline(&mut self, baseline: Baseline) {
        if let Some(cpu_s) = baseline.rabbitmq_cpu_s {
            self.note(format!(
                "{}: RabbitMQ used {:.3} CPU s per 1,000 messages (its cost per delivery in a scenario is in the stages table).",
                baseline.label,
                cpu_s * 1000.0 / baseline.count.max(1) as f64
            ));
        }
        self.baselines.push(baseline);
    }

    /// Rounds of `kind`, each beside the `baseline` measured right before it; the ratio checked
    /// is the median round's.
    pub fn pairs(&mut self, pairs: &[Pair]) {
        let Some(first) = pairs.first() else { return };
        let rounds: Vec<String> = pairs
            .iter()
            .map(|p| {
                format!(
                    "{} / {} = {:.2}",
                    int(p.rate),
                    int(p.baseline_rate),
                    p.ratio()
                )
            })
            .collect();
        self.note(format!(
            "{} ÷ {}, round by round (deliveries/s over the baseline's rate measured right before): {}; the median is checked.",
            first.kind.label(),
            first.baseline,
            rounds.join(", ")
        ));
        self.pairs.extend_from_slice(pairs);
    }

    /// Waits for a quiet machine before the measurement `before`, and keeps the wait for the
    /// notes.
    pub async fn settle(&mut self, before: String) {
        let settled = procfs::settle().await;
        if let Err(e) = &settled {
            eprintln!("could not watch the machine's CPU: {e:#}");
        }
        self.waits.push((before, settled.ok()));
    }

    /// Records that `what` failed to run, and why.
    pub fn failed(&mut self, what: &str, error: &anyhow::Error) {
        eprintln!("{what} failed: {error:#}");
        self.note(format!("{what} failed: {error:#}"));
        self.failure(what);
    }

    /// Notes the waits for a quiet machine so far.
    pub fn note_waits(&mut self) {
        let waits: Vec<String> = self
            .waits
            .iter()
            .map(|(name, settled)| match settled {
                Some(s) if s.quiet() => format!("{name} {:.1} s", s.waited.as_secs_f64()),
                Some(s) => format!(
                    "{name} {:.1} s, **still {:.0}% busy**",
                    s.waited.as_secs_f64(),
                    s.busy * 100.0
                ),
                None => format!("{name} not watched"),
            })
            .collect();
        if waits.is_empty() {
            return;
        }
        self.note(format!(
            "Before each measurement the run waited for the machine to be quiet (under 25% busy over half a second, at most 20 s): {}.",
            waits.join("; ")
        ));
    }

    pub fn note(&mut self, text: String) {
        self.notes.push(text);
    }

    fn row(&self, kind: Kind) -> Option<&Row> {
        self.rows.iter().find(|r| r.kind == kind)
    }

    fn baseline_rate(&self, label: &str) -> Option<f64> {
        self.baselines
            .iter()
            .find(|b| b.label == label)
            .map(|b| b.rate)
    }

    /// `kind`'s rate over `baseline`'s: the median of its rounds' ratios where it ran in rounds
    /// beside that baseline, else the ratio of the two rows.
    fn ratio(&self, kind: Kind, baseline: &str) -> Option<f64> {
        let rounds: Vec<f64> = self
            .pairs
            .iter()
            .filter(|p| p.kind == kind && p.baseline == baseline)
            .map(Pair::ratio)
            .collect();
        if !rounds.is_empty() {
            return Some(median(rounds));
        }
        let rate = self.row(kind)?.delivered_rate;
        Some(rate / self.baseline_rate(baseline)?)
    }

    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "Command: `{}`\n", self.command);
        // A run of scenarios with tables of their own alone (api, retention, listing) has
        // nothing for the main table.
        let own_tables_only = !self.api.is_empty() || !self.tables.is_empty();
        if !self.rows.is_empty() || !self.baselines.is_empty() || !own_tables_only {
            self.main_table(&mut out);
        }
        if !self.api.is_empty() {
            let _ = writeln!(out, "{}", api_table::table(&self.api));
        }
        self.targets_table(&mut out);
        for table in &self.tables {
            let _ = writeln!(out, "{table}");
        }
        self.stages_table(&mut out);
        if !self.notes.is_empty() {
            let _ = writeln!(out, "Notes:");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// A whole number with thousands separators.
pub fn int(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_against_rounds_is_the_median_rounds_not_the_ratio_of_the_totals() {
        let mut report = Report::new("webhooks-bench".into());
        let pair = |rate, baseline_rate| Pair {
            kind: Kind::Fanout1,
            baseline: "broker-hop",
            rate,
            baseline_rate,
        };
        // One round's baseline ran while the machine was busy elsewhere (0.95); the totals would
        // give 27,000 / 39,000 = 0.69.
        report.pairs(&[
            pair(9_000.0, 15_000.0),
            pair(8_000.0, 8_421.0),
            pair(10_000.0, 15_625.0),
        ]);
        report.add_row(Row {
            delivered_rate: 9_000.0,
            ..Row::combined(Kind::Fanout1, &[])
        });
        let ratio = report.ratio(Kind::Fanout1, "broker-hop").unwrap();
        assert!((ratio - 0.64).abs() < 1e-9, "{ratio}");
        assert!(report.notes[0].contains("9,000 / 15,000 = 0.60"));
        // Without rounds beside it, a baseline is read against the scenario's row.
        report.baseline(Baseline {
            label: "http-ceiling",
            count: 100,
            rate: 30_000.0,
            ports: 10,
            arrivals: None,
            rounds: 1,
            rabbitmq_cpu_s: None,
        });
        report.add_row(Row {
            delivered_rate: 15_000.0,
            ..Row::combined(Kind::Fanout10, &[])
        });
        assert_eq!(report.ratio(Kind::Fanout10, "http-ceiling"), Some(0.5));
        assert_eq!(report.ratio(Kind::Fanout10, "broker-hop"), None);
    }

    #[test]
    fn integers_get_separators() {
        assert_eq!(int(1234567.4), "1,234,567");
        assert_eq!(int(999.0), "999");
    }
}
