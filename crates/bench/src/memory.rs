//! The memory scenario (`--scenario memory`, not in the default run): memory must be bounded by
//! the settings whatever the events' size and fan-out. Three phases, each in a world of its own:
//!
//! - 2,000 events of 1 MiB (exactly `MAX_EVENT_BYTES`) wait in the broker while neither service
//!   runs; both then start and deliver them to one webhook;
//! - the same with 2,000 events of 1 KiB;
//! - with both services running, a burst of 200 small events to one project with 1,000 webhooks
//!   (200,000 deliveries, the webhooks spread over 10 receiver ports).
//!
//! Each service's peak resident set (the larger of `VmHWM` and the 250 ms samples) is checked
//! against the bound docs/operations.md documents ([`webhooks_core::memory`], from the settings the
//! services ran with), against 128 MiB (the deployment manifests' limit) in the backlogs and
//! against 64 MiB in the burst.

use std::fmt::Write as _;

use webhooks_core::memory;

use crate::backlog::drain_broker;
use crate::ctx::{Ctx, Scene};
use crate::phase::{self, Measured, Spec};
use crate::report::{Kind, Report, Row, int};

/// Events of each backlog, and their sizes.
const BACKLOG_EVENTS: u64 = 2_000;
const LARGE: usize = 1 << 20;
const SMALL: usize = 1 << 10;
/// The burst: events, webhooks, and the receiver ports they share.
const BURST_EVENTS: u64 = 200;
const BURST_WEBHOOKS: usize = 1_000;
const BURST_PORTS: usize = 10;
/// The deployment manifests' memory limit, and the target of the burst.
const LIMIT_MIB: f64 = 128.0;
const BURST_MIB: f64 = 64.0;

/// One phase's peaks against its targets.
struct Checked {
    label: String,
    delivered_rate: f64,
    complete: bool,
    /// Dispatcher, sender: peak MiB.
    peaks: [Option<f64>; 2],
    /// The documented bound of each, MiB.
    bounds: [f64; 2],
    /// The fixed target of the phase, MiB.
    target: f64,
}

pub async fn run(ctx: &Ctx, report: &mut Report) -> anyhow::Result<()> {
    let bounds = documented_bounds();
    let mut checked = Vec::new();
    for (kind, bytes) in [(Kind::MemoryLarge, LARGE), (Kind::MemorySmall, SMALL)] {
        report.settle(kind.label().to_owned()).await;
        let events = ctx.args.scaled(BACKLOG_EVENTS);
        let drained = async |scene: &mut Scene| drain_broker(ctx, scene, events, bytes, kind).await;
        let (m, started_ns) = ctx.scene(1, None, drained).await?;
        let row = Row::backlog(kind, &m, m.delivered_since(started_ns));
        checked.push(check(&row, bounds, LIMIT_MIB));
        report.add_row(row);
        report.add_stages(&m);
    }
    report.settle(Kind::MemoryWide.label().to_owned()).await;
    let m = burst(ctx).await?;
    let row = Row::from_measured(Kind::MemoryWide, &m);
    checked.push(check(&row, bounds, BURST_MIB));
    report.add_row(row);
    report.add_stages(&m);
    let (table, missed) = judge(&checked, bounds);
    report.table(table);
    for missed in missed {
        report.missed(missed);
    }
    Ok(())
}

/// 1,000 webhooks of one project, then 200 events at full speed.
async fn burst(ctx: &Ctx) -> anyhow::Result<Measured> {
    ctx.scene(BURST_PORTS, None, async |scene| {
        scene.start_services().await?;
        scene.healthy_webhooks(0, BURST_WEBHOOKS).await?;
        let spec = Spec {
            label: Kind::MemoryWide.label().to_owned(),
            phase: 1,
            events: ctx.args.scaled(BURST_EVENTS),
            rate: None,
            healthy: BURST_WEBHOOKS,
        };
        phase::run(scene, &ctx.connection, spec).await
    })
    .await
}

fn check(row: &Row, bounds: [f64; 2], target: f64) -> Checked {
    Checked {
        label: row.label.clone(),
        delivered_rate: row.delivered_rate,
        complete: row.complete,
        peaks: row.peak_rss_mib,
        bounds,
        target,
    }
}

/// A setting the services read from the environment (the benchmark passes it through), else its
/// default.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The documented bounds for the settings the services run with, in MiB: dispatcher, sender.
fn documented_bounds() -> [f64; 2] {
    let events = setting(
        "EVENTS_IN_FLIGHT_BYTES",
        memory::EVENTS_IN_FLIGHT_BYTES as u64,
    );
    let bodies = setting(
        "BODIES_IN_FLIGHT_BYTES",
        memory::BODIES_IN_FLIGHT_BYTES as u64,
    );
    let prefetch = setting("PREFETCH", 8);
    let mib = |bytes: u64| bytes as f64 / f64::from(1 << 20);
    [
        mib(memory::dispatcher_bound(events)),
        mib(memory::sender_bound(bodies, prefetch)),
    ]
}

/// The memory table, and every `no` in it for `--check`.
fn judge(checked: &[Checked], bounds: [f64; 2]) -> (String, Vec<String>) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Memory (`--scenario memory`): peak RSS against the documented bound (dispatcher {:.0} MiB, sender {:.0} MiB with these settings) and the phase's target.\n",
        bounds[0], bounds[1]
    );
    let _ = writeln!(
        out,
        "| phase | delivered/s | service | peak RSS MiB | documented bound MiB | within the bound | target MiB | met |\n|---|---:|---|---:|---:|---|---:|---|"
    );
    let mut missed = Vec::new();
    for c in checked {
        let label = if c.complete {
            c.label.clone()
        } else {
            format!("{} (incomplete)", c.label)
        };
        for (i, service) in ["dispatcher", "sender"].into_iter().enumerate() {
            let peak = c.peaks[i].filter(|_| c.complete);
            let shown = peak.map_or("unmeasured".to_owned(), |p| format!("{p:.1} MiB"));
            let mut judged = |limit: f64, what: &str| {
                let ok = peak.is_some_and(|p| p <= limit);
                if !ok {
                    let limit = format!("{what} {limit:.0} MiB");
                    missed.push(format!("memory {} {service}: {shown} ({limit})", c.label));
                }
                if ok { "yes" } else { "**no**" }
            };
            let within = judged(c.bounds[i], "documented bound");
            let met = judged(c.target, "target");
            let _ = writeln!(
                out,
                "| {label} | {} | {service} | {} | {:.0} | {within} | {:.0} | {met} |",
                int(c.delivered_rate),
                c.peaks[i].map_or("–".to_owned(), |p| format!("{p:.1}")),
                c.bounds[i],
                c.target,
            );
        }
    }
    (out, missed)
}
