//! Where the time goes: per phase, the services' own stage metrics next to the CPU of the database
//! and the broker.

use std::fmt::Write as _;

use super::{Report, int};

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
