//! The retention scenario's table and its targets: size after the first window, and the last
//! window's bursts, p99 and database work against the first's.

use std::fmt::Write as _;

use webhooks_core::retention::Dropped;

use super::measures::Sizes;
use super::{BURST, BURST_EVERY, BURSTS, RATE, STRETCH, TICK, WINDOWS, Window};
use crate::report::{Report, int};

/// Writes the table and records the targets missed: `sizes` are (simulated day, sizes) every six
/// simulated hours, `latencies` (seq, µs) of every steady delivery received.
pub(super) fn judge(
    report: &mut Report,
    windows: &[Window],
    sizes: &[(f64, Sizes)],
    drops: &[Dropped],
    latencies: &[(u64, u64)],
) {
    let first = &windows[0];
    let last = windows.last().expect("windows");
    let p99 = |w: &Window| p99_ms(latencies, w.first_seq, w.end_seq);
    let (first_p99, last_p99) = (p99(first), p99(last));
    let (first_typical, last_typical) = (
        typical_p99_ms(latencies, first),
        typical_p99_ms(latencies, last),
    );
    let plateau = sizes
        .iter()
        .filter(|(day, _)| *day > 2.0 && *day <= 4.0)
        .map(|(_, s)| s.tables)
        .fold(0, u64::max);
    let latest = sizes
        .iter()
        .filter(|(day, _)| *day > 8.0)
        .map(|(_, s)| s.tables)
        .fold(0, u64::max);
    let mut table = String::new();
    let _ = writeln!(
        table,
        "Retention: {} events/s to 1 webhook for {WINDOWS} windows of RETENTION=2d (DISABLE_AFTER=3h12m), one simulated hour every {} ms; \
         {BURSTS} bursts of {} events at full speed around the middle of the first and last window, {BURST_EVERY} simulated hours apart.\n",
        int(RATE),
        TICK.as_millis(),
        int(BURST as f64)
    );
    let _ = writeln!(
        table,
        "| | first window | last window | last / first |\n|---|---|---|---|"
    );
    let (first_rate, last_rate) = (first.burst_rate(), last.burst_rate());
    let _ = writeln!(
        table,
        "| burst throughput (deliveries/s, median of {BURSTS}) | {} | {} | {:.2} |",
        int(first_rate),
        int(last_rate),
        last_rate / first_rate
    );
    let _ = writeln!(
        table,
        "| each burst (deliveries/s) | {} | {} | |",
        each(&first.burst_rates, int),
        each(&last.burst_rates, int)
    );
    let postgres = |w: &Window| -> Vec<f64> { w.burst_cpu.iter().map(|cpu| cpu[1]).collect() };
    let seconds = |s: f64| format!("{s:.2}");
    let _ = writeln!(
        table,
        "| PostgreSQL CPU in each burst (s) | {} | {} | |",
        each(&postgres(first), seconds),
        each(&postgres(last), seconds)
    );
    let _ = writeln!(
        table,
        "| steady p99 publish→receive, whole window (ms) | {first_p99:.1} | {last_p99:.1} | {:.2} |",
        last_p99 / first_p99
    );
    let _ = writeln!(
        table,
        "| steady p99 publish→receive, median of its stretches of {STRETCH} simulated hours (ms) | {first_typical:.1} | {last_typical:.1} | {:.2} |",
        last_typical / first_typical
    );
    let cpu_ms = |w: &Window, i: usize| {
        w.burst_cpu.iter().map(|cpu| cpu[i]).sum::<f64>() * 1000.0
            / (BURST * u64::from(BURSTS)) as f64
    };
    for (i, who) in ["the services", "PostgreSQL", "RabbitMQ"]
        .iter()
        .enumerate()
    {
        let (first, last) = (cpu_ms(first, i), cpu_ms(last, i));
        let _ = writeln!(
            table,
            "| CPU ms per delivery during the bursts, {who} | {first:.3} | {last:.3} | {:.2} |",
            last / first
        );
    }
    let (first_work, last_work) = (
        first.work.unwrap_or_default(),
        last.work.unwrap_or_default(),
    );
    for (what, first, last) in [
        (
            "database blocks touched per delivery",
            first_work.blocks,
            last_work.blocks,
        ),
        (
            "database rows read per delivery",
            first_work.rows,
            last_work.rows,
        ),
        (
            "WAL bytes per delivery",
            first_work.wal_bytes,
            last_work.wal_bytes,
        ),
    ] {
        let _ = writeln!(
            table,
            "| {what}, across the bursts | {first:.1} | {last:.1} | {:.2} |",
            last / first
        );
    }
    let _ = writeln!(
        table,
        "\n| simulated day | partitions + indexes (MiB) | event_keys (MiB) | days kept |\n|---|---|---|---|"
    );
    for (day, size) in sizes
        .iter()
        .filter(|(day, _)| (day * 4.0).round() % 2.0 == 0.0)
    {
        let _ = writeln!(
            table,
            "| {day:.1} | {:.1} | {:.1} | {} |",
            mib(size.tables),
            mib(size.keys),
            size.days
        );
    }
    let took: Vec<f64> = drops
        .iter()
        .map(|d| d.took.as_secs_f64() * 1000.0)
        .collect();
    let _ = writeln!(
        table,
        "\n{} days dropped; the tables were locked {:.1} ms on average per drop, {:.1} ms at most. \
         Largest size in days 2–4: {:.1} MiB; in days 8–10: {:.1} MiB.",
        drops.len(),
        took.iter().sum::<f64>() / took.len().max(1) as f64,
        took.iter().copied().fold(0.0, f64::max),
        mib(plateau),
        mib(latest)
    );
    report.table(table);
    if latest as f64 > plateau as f64 * 1.1 {
        report.missed("retention: the tables grew after the first window".into());
    }
    if last_rate < first_rate * 0.9 {
        report.missed("retention: last-window throughput under 90% of the first".into());
    }
    if last_typical > first_typical * 1.1 {
        report.missed(
            "retention: last-window p99 (median of its stretches) over 110% of the first".into(),
        );
    }
    if first.work.is_none() || last.work.is_none() || last_work.blocks > first_work.blocks * 1.1 {
        report.missed(
            "retention: last-window database blocks per delivery over 110% of the first".into(),
        );
    }
}

/// Each of `values` as `show` writes it, in order, between slashes.
fn each(values: &[f64], show: impl Fn(f64) -> String) -> String {
    let shown: Vec<String> = values.iter().map(|v| show(*v)).collect();
    shown.join(" / ")
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// p99 in milliseconds of the steady deliveries with seq in `from..to`.
fn p99_ms(latencies: &[(u64, u64)], from: u64, to: u64) -> f64 {
    let mut window: Vec<u64> = latencies
        .iter()
        .filter(|(seq, _)| (from..to).contains(seq))
        .map(|(_, us)| *us)
        .collect();
    window.sort_unstable();
    let index = ((window.len() as f64 * 0.99).ceil() as usize).saturating_sub(1);
    window.get(index).map_or(f64::NAN, |us| *us as f64 / 1000.0)
}

/// The median of the p99s of `window`'s stretches.
fn typical_p99_ms(latencies: &[(u64, u64)], window: &Window) -> f64 {
    let ends = window
        .stretch_starts
        .iter()
        .skip(1)
        .copied()
        .chain([window.end_seq]);
    let mut p99s: Vec<f64> = window
        .stretch_starts
        .iter()
        .zip(ends)
        .map(|(from, to)| p99_ms(latencies, *from, to))
        .filter(|p99| p99.is_finite())
        .collect();
    p99s.sort_by(f64::total_cmp);
    p99s.get(p99s.len() / 2).copied().unwrap_or(f64::NAN)
}
