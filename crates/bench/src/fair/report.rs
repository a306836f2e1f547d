//! The fairness scenario's table and targets, from its rounds.

use std::fmt::Write as _;

use super::{HEALTHY_RATE, PROJECTS, ROUNDS, SLOW_ANSWER, SLOW_RATE, SLOW_WEBHOOKS};
use crate::phase::Measured;
use crate::report::{Report, int, percentile_us};

/// What a round measured: the healthy projects alone and beside the slow project, and the
/// requests the slow host got meanwhile and the most it answered at once.
pub struct Round {
    pub alone: Measured,
    pub beside: Measured,
    pub slow_requests: usize,
    pub slow_most: usize,
}

fn p_ms(m: &Measured, p: f64) -> f64 {
    percentile_us(&m.arrivals.latencies_us, p) / 1000.0
}

/// The median round's ratio of `f` beside the slow project to `f` alone.
fn median_ratio(rounds: &[Round], f: fn(&Measured) -> f64) -> f64 {
    let mut ratios: Vec<f64> = rounds
        .iter()
        .map(|r| f(&r.beside) / f(&r.alone).max(1e-9))
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The scenario's table and targets (each missed one for `--check`), and its note.
pub fn judge(rounds: &[Round], report: &mut Report) {
    let complete = rounds.iter().all(|r| r.alone.complete && r.beside.complete);
    let rate = median_ratio(rounds, Measured::delivered_rate);
    let p99 = median_ratio(rounds, |m| p_ms(m, 0.99));
    let most = rounds.iter().map(|r| r.slow_most).max().unwrap_or(0);
    let setting = |name: &str| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
    };
    let cap = setting("MAX_PER_HOST").unwrap_or(setting("MAX_IN_FLIGHT").unwrap_or(512) / 4);
    let mut t = format!(
        "Fairness (`--scenario fair`): {PROJECTS} projects' healthy webhooks at {} events/s, alone and beside a project of \
         {SLOW_WEBHOOKS} webhooks on one host answering in {} s ({} events/s to it); {ROUNDS} rounds, the median round's ratios checked.\n\n\
         | phase | deliveries | delivered/s | p50 ms | p99 ms | slow host: requests, most at once |\n|---|---:|---:|---:|---:|---|\n",
        int(HEALTHY_RATE),
        SLOW_ANSWER.as_secs(),
        int(SLOW_RATE),
    );
    for r in rounds {
        let beside = format!("{}, {}", int(r.slow_requests as f64), r.slow_most);
        for (m, slow) in [(&r.alone, "–".to_owned()), (&r.beside, beside)] {
            let incomplete = if m.complete { "" } else { " (incomplete)" };
            let _ = writeln!(
                t,
                "| {}{incomplete} | {} | {} | {:.1} | {:.1} | {slow} |",
                m.label,
                int(m.arrivals.unique as f64),
                int(m.delivered_rate()),
                p_ms(m, 0.50),
                p_ms(m, 0.99),
            );
        }
    }
    let checks = [
        (
            "fair: healthy deliveries/s, beside the slow project ÷ alone".to_owned(),
            format!("{rate:.2}"),
            "≥ 0.90".to_owned(),
            complete && rate >= 0.90,
        ),
        (
            "fair: healthy p99, beside the slow project ÷ alone".to_owned(),
            format!("{p99:.2}"),
            "≤ 1.11 (keeps 90%)".to_owned(),
            complete && p99 <= 1.0 / 0.9,
        ),
        (
            "fair: most requests at once at the slow host".to_owned(),
            int(most as f64),
            format!("≤ {} (`MAX_PER_HOST`)", int(cap as f64)),
            most <= cap,
        ),
    ];
    report.targets(&mut t, checks);
    report.table(t);
    let deferred: f64 = rounds.iter().map(|r| r.beside.stages.deferred).sum();
    report.note(format!(
        "fair: beside the slow project the sender held back {} deliveries (limits of its host, its project or its \
         endpoints, or circuits opened by slow answers).",
        int(deferred)
    ));
}
