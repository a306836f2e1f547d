//! The API scenario's rows and their table.

use super::{int, percentile_us};

/// One concurrency's figures.
#[derive(Clone, Debug)]
pub struct ApiRow {
    pub concurrency: usize,
    pub creates: usize,
    /// Answers other than 201, by status (0: no answer at all).
    pub failures: Vec<(u16, usize)>,
    pub wall_s: f64,
    /// Each create's latency, sorted.
    pub latencies_us: Vec<u32>,
}

impl ApiRow {
    pub fn rate(&self) -> f64 {
        self.creates as f64 / self.wall_s.max(1e-9)
    }

    fn failed(&self) -> usize {
        self.failures.iter().map(|(_, n)| n).sum()
    }

    /// The table's line.
    pub fn markdown(&self) -> String {
        let ms = |p| percentile_us(&self.latencies_us, p) / 1000.0;
        let failures = if self.failures.is_empty() {
            "0".to_owned()
        } else {
            let each: Vec<String> = self
                .failures
                .iter()
                .map(|(status, n)| format!("{n}× {status}"))
                .collect();
            format!("**{}** ({})", self.failed(), each.join(", "))
        };
        format!(
            "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |",
            self.concurrency,
            int(self.creates as f64),
            failures,
            int(self.rate()),
            ms(0.50),
            ms(0.95),
            ms(0.99),
            ms(1.0),
        )
    }
}

/// The table of every concurrency measured.
pub fn table(rows: &[ApiRow]) -> String {
    let pool = std::env::var("DATABASE_POOL_SIZE").unwrap_or_else(|_| "16 (default)".into());
    let mut out = format!(
        "API: webhooks created back to back by concurrent clients (dispatcher alone, DATABASE_POOL_SIZE {pool})\n\n\
         | clients | creates | not 201 | creates/s | p50 ms | p95 ms | p99 ms | max ms |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for row in rows {
        out.push_str(&row.markdown());
        out.push('\n');
    }
    out
}
