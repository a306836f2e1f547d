//! Where the time goes: per phase, the services' own stage metrics next to the CPU of the database
//! and the broker.

use std::fmt::Write as _;

use super::{Report, int};
use crate::phase::Measured;
use crate::stages::Stages;

/// One phase's line of the stages table.
pub(super) struct StageRow {
    label: String,
    wall_s: f64,
    stages: Stages,
    machine_busy: f64,
    bench_cpu_s: f64,
    /// CPU seconds per 1,000 deliveries of the database's and the broker's processes.
    postgres_per_1k: f64,
    rabbitmq_per_1k: f64,
}

impl StageRow {
    pub(super) fn of(m: &Measured) -> Self {
        let per_1k = |cpu_s: f64| cpu_s * 1000.0 / (m.arrivals.unique.max(1) as f64);
        Self {
            label: m.label.clone(),
            wall_s: m.wall_s(),
            stages: m.stages.clone(),
            machine_busy: m.machine_busy,
            bench_cpu_s: m.bench_cpu_s,
            postgres_per_1k: per_1k(m.postgres_cpu_s),
            rabbitmq_per_1k: per_1k(m.rabbitmq_cpu_s),
        }
    }
}

impl Report {
    pub(super) fn stages_table(&self, out: &mut String) {
        if self.stages.is_empty() {
            return;
        }
        const COLUMNS: [&str; 17] = [
            "phase (from the services' /metrics)",
            "wall s",
            "dispatcher batches",
            "events/batch",
            "ms/batch",
            "dispatcher in batches",
            "attempts",
            "failed",
            "ms/attempt",
            "claimed via queue",
            "claimed by scheduler",
            "deferred",
            "retries scheduled",
            "PostgreSQL CPU s/1k",
            "RabbitMQ CPU s/1k",
            "bench CPU s",
            "machine CPU busy",
        ];
        let _ = writeln!(out, "| {} |", COLUMNS.join(" | "));
        let _ = writeln!(out, "|---{}|", "|---:".repeat(COLUMNS.len() - 1));
        for s in &self.stages {
            let t = &s.stages;
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} | {:.0} | {:.1} | {:.0}% | {} | {} | {:.1} | {} | {} | {} | {} | {:.3} | {:.3} | {:.1} | {:.0}% |",
                s.label,
                s.wall_s,
                int(t.batches),
                t.events_per_batch,
                t.ms_per_batch,
                t.dispatcher_busy * 100.0,
                int(t.attempts),
                int(t.failed_attempts),
                t.ms_per_attempt,
                int(t.claimed_queue),
                int(t.claimed_scheduler),
                int(t.deferred),
                int(t.retries),
                s.postgres_per_1k,
                s.rabbitmq_per_1k,
                s.bench_cpu_s,
                s.machine_busy * 100.0,
            );
        }
        out.push('\n');
    }
}
