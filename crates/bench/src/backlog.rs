//! The backlog scenarios. In `backlog`, events are published while no sender runs, the dispatcher
//! records every delivery, then a sender starts and drains them. In `broker-backlog`, the events
//! wait in the broker while neither service runs, then both start and work through them. Both
//! measure the drain rate and sample the services' resident sets every 250 ms to show whether
//! memory stays flat while they work.

use std::time::Duration;

use webhooks_harness::marks::now_ns;
use webhooks_harness::metrics::Scrape;
use webhooks_harness::publishing::{Plan, Publishing};
use webhooks_harness::service::Service;

use crate::ctx::{Ctx, Scene};
use crate::phase::{self, Measured, Probe};
use crate::procfs::SAMPLE_EVERY;
use crate::report::{Kind, Report, Row, int};

/// What the drain measured beyond a phase's usual figures.
struct Drained {
    measured: Measured,
    /// When the dispatcher had recorded every delivery.
    recorded_ns: u64,
    sender_spawn_ns: u64,
    sender_ready_ns: u64,
    /// Sender `VmRSS` samples (seconds since the sampler started, KiB) from its start on.
    rss: Vec<(f64, u64)>,
}

pub async fn run(ctx: &Ctx, report: &mut Report, events: u64) -> anyhow::Result<()> {
    let drained = ctx
        .scene(1, None, async |scene| drain(ctx, scene, events).await)
        .await?;
    let m = &drained.measured;
    let first_arrival = m.arrivals.first_ns.unwrap_or(m.arrivals.last_ns);
    let drain_rate = m.delivered_since(drained.sender_spawn_ns);
    report.add_row(Row::backlog(Kind::Backlog, m, drain_rate));
    report.add_stages(m);
    report.note(format!(
        "backlog: {} events published at {}/s with no sender running; the dispatcher had recorded them all {:.1} s after the first publish. \
         The sender was ready {:.0} ms after it was spawned; drain {} deliveries/s from spawn to last arrival ({}/s first to last arrival). \
         Sender VmRSS while draining, every {} ms: {}.",
        int(m.events as f64),
        int(m.published_rate),
        drained.recorded_ns.saturating_sub(m.first_publish_ns) as f64 / 1e9,
        drained.sender_ready_ns.saturating_sub(drained.sender_spawn_ns) as f64 / 1e6,
        int(drain_rate),
        int(m.delivered_since(first_arrival)),
        SAMPLE_EVERY.as_millis(),
        memory(&drained.rss),
    ));
    Ok(())
}

/// `events` events wait in the broker while neither service runs; then both start.
pub async fn run_in_broker(ctx: &Ctx, report: &mut Report, events: u64) -> anyhow::Result<()> {
    let kind = Kind::BrokerBacklog;
    let (m, started_ns, services) = ctx
        .scene(1, None, async |scene| {
            let (m, started_ns) = drain_broker(ctx, scene, events, 0, kind).await?;
            let services: Vec<String> = Service::BOTH
                .into_iter()
                .map(|service| {
                    let series = scene.sampler.samples(service.name()).series;
                    format!("{} VmRSS {}", service.name(), memory(&series))
                })
                .collect();
            Ok((m, started_ns, services))
        })
        .await?;
    let drain_rate = m.delivered_since(started_ns);
    report.add_row(Row::backlog(kind, &m, drain_rate));
    report.add_stages(&m);
    report.note(format!(
        "broker backlog: {} events published at {}/s into the broker while neither service ran; \
         both then started and delivered them at {} deliveries/s (from their start to the last arrival). {}.",
        int(m.events as f64),
        int(m.published_rate),
        int(drain_rate),
        services.join("; "),
    ));
    Ok(())
}

/// Publishes `events` events of `bytes` bytes each (0: the plain body) into the broker with both
/// services stopped, then starts them and waits for the deliveries; returns the measurement and
/// when the services were started.
pub(crate) async fn drain_broker(
    ctx: &Ctx,
    scene: &mut Scene,
    events: u64,
    bytes: usize,
    kind: Kind,
) -> anyhow::Result<(Measured, u64)> {
    // The dispatcher declares the queues and creates the webhook, then stops.
    scene.world.start(Service::Dispatcher).await?;
    scene.healthy_webhooks(0, 1).await?;
    if let Some(mut dispatcher) = scene.world.take(Service::Dispatcher) {
        dispatcher.terminate_within(Duration::from_secs(10)).await?;
    }
    scene.receiver.tracker().begin(1, 1, events);
    let plan = Plan {
        bytes,
        ..Plan::new(&scene.world.names.exchange, 1, events)
    };
    let mut publishing = Publishing::start(&ctx.connection, plan).await?;
    let label = "broker backlog: publish, no services";
    phase::follow_count(label, &mut publishing, "delivered", 0, || async { Ok(0) }).await?;

    let probe = Probe::start(scene).await?;
    let started_ns = now_ns();
    scene.start_services().await?;
    let measured = drained(kind, scene, probe, &mut publishing).await?;
    Ok((measured, started_ns))
}

/// Waits until every published event has arrived (or arrivals stall), then measures the phase.
async fn drained(
    kind: Kind,
    scene: &Scene,
    probe: Probe,
    publishing: &mut Publishing,
) -> anyhow::Result<Measured> {
    let (events, receiver) = (publishing.published.count(), &scene.receiver);
    let label = format!("{}: drain", kind.label());
    let complete = phase::follow(&label, receiver, publishing, events).await?;
    let published = &publishing.published;
    let mut measured =
        Measured::arrived(kind.label(), events, events, published, receiver, complete);
    probe.finish(scene, &mut measured).await?;
    Ok(measured)
}

/// Min, max and last of a resident-set series, and one sample a second, in MiB.
fn memory(series: &[(f64, u64)]) -> String {
    let mib: Vec<f64> = series.iter().map(|(_, kib)| *kib as f64 / 1024.0).collect();
    let (min, max) = mib
        .iter()
        .fold((f64::MAX, 0.0_f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
    format!(
        "min {:.1}, max {:.1}, end {:.1} MiB; per second: {}",
        if mib.is_empty() { 0.0 } else { min },
        max,
        mib.last().copied().unwrap_or(0.0),
        per_second(series),
    )
}

/// One sample a second, in MiB, for the note.
fn per_second(series: &[(f64, u64)]) -> String {
    let step = (1000 / SAMPLE_EVERY.as_millis().max(1)) as usize;
    series
        .iter()
        .step_by(step.max(1))
        .map(|(_, kib)| format!("{:.0}", *kib as f64 / 1024.0))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn drain(ctx: &Ctx, scene: &mut Scene, events: u64) -> anyhow::Result<Drained> {
    scene.start(Service::Dispatcher).await?;
    scene.healthy_webhooks(0, 1).await?;
    scene.receiver.tracker().begin(1, 1, events);
    let probe = Probe::start(scene).await?;
    let plan = Plan::new(&scene.world.names.exchange, 1, events);
    let mut publishing = Publishing::start(&ctx.connection, plan).await?;
    let world = &scene.world;
    let recorded = || async {
        let scrape = Scrape::parse(&world.metrics(Service::Dispatcher).await?);
        Ok(scrape.sum("webhooks_dispatcher_deliveries_created_total") as u64)
    };
    let label = "backlog: publish, no sender";
    let all = phase::follow_count(label, &mut publishing, "recorded", events, recorded).await?;
    anyhow::ensure!(
        all,
        "the dispatcher stopped before recording all {events} deliveries"
    );
    let recorded_ns = now_ns();

    let sender_spawn_ns = now_ns();
    scene.start(Service::Sender).await?;
    let sender_ready_ns = now_ns();
    let measured = drained(Kind::Backlog, scene, probe, &mut publishing).await?;
    Ok(Drained {
        measured,
        recorded_ns,
        sender_spawn_ns,
        sender_ready_ns,
        rss: scene.sampler.samples(Service::Sender.name()).series,
    })
}
