//! The scenarios: fan-out 1 and 10 at full speed, a steady rate for latency, and hanging
//! endpoints beside healthy ones. Each runs in a world of its own (fresh database, broker names,
//! service processes and receiver) so that no scenario inherits another's tables, queues or memory.
//! The backlog scenario lives in [`crate::backlog`].

use std::sync::Arc;

use crate::args::{Args, STEADY_RATE, Scenario};
use crate::phase::{self, Measured, Spec};
use crate::procfs::RssSampler;
use crate::receiver::Receiver;
use crate::report::{Kind, Report, Row, int};
use crate::services::{Janitor, Service, Settings, World};

/// `DELIVERY_TIMEOUT` of the hanging scenario, so hanging attempts end (and the run finishes) quickly.
pub const HANGING_TIMEOUT: &str = "2s";
/// Webhooks of the hanging scenario: healthy ones, then hanging ones.
const HEALTHY: usize = 8;
const HANGING: usize = 2;
/// Pairs of phases (alone, then with hanging webhooks) of the hanging scenario.
const ROUNDS: usize = 3;

/// What every scenario needs.
pub struct Ctx {
    pub args: Args,
    pub settings: Arc<Settings>,
    pub janitor: Arc<Janitor>,
    /// The benchmark's own broker connection, for publishing.
    pub connection: lapin::Connection,
}

impl Ctx {
    /// Receiver ports for `webhooks` webhooks: one each, or one for all with `--shared-endpoint`.
    pub fn ports(&self, webhooks: usize) -> usize {
        if self.args.shared_endpoint {
            1
        } else {
            webhooks
        }
    }

    pub fn world(&self, delivery_timeout: Option<&'static str>) -> anyhow::Result<World> {
        World::new(
            self.settings.clone(),
            self.janitor.clone(),
            delivery_timeout,
        )
    }
}

/// Runs `scenario` and adds its rows to `report`.
pub async fn run(ctx: &Ctx, scenario: Scenario, report: &mut Report) -> anyhow::Result<()> {
    let events = ctx.args.events(scenario);
    match scenario {
        Scenario::Fanout1 => fanout(ctx, report, Kind::Fanout1, 1, events, None).await,
        Scenario::Fanout10 => fanout(ctx, report, Kind::Fanout10, 10, events, None).await,
        Scenario::Steady => fanout(ctx, report, Kind::Steady, 1, events, Some(STEADY_RATE)).await,
        Scenario::Hanging => hanging(ctx, report, events).await,
        Scenario::Backlog => crate::backlog::run(ctx, report, events).await,
        Scenario::BrokerBacklog => crate::backlog::run_in_broker(ctx, report, events).await,
        Scenario::Soak => anyhow::bail!("the soak runs on its own, not as a measured scenario"),
    }
}

/// Starts both services and samples their memory.
pub async fn start_services(world: &mut World, sampler: &RssSampler) -> anyhow::Result<()> {
    for service in [Service::Dispatcher, Service::Sender] {
        world.start(service).await?;
        if let Some(process) = world.process(service) {
            sampler.watch(service.name(), process.pid);
        }
    }
    Ok(())
}

/// Creates healthy webhooks `from..to` on the receiver.
pub async fn healthy_webhooks(
    world: &World,
    receiver: &Receiver,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    for k in from..to {
        world
            .create_webhook(&format!("bench {k}"), &receiver.url(k, false))
            .await?;
    }
    Ok(())
}

async fn fanout(
    ctx: &Ctx,
    report: &mut Report,
    kind: Kind,
    webhooks: usize,
    events: u64,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    let receiver = Receiver::start(ctx.ports(webhooks)).await?;
    let sampler = RssSampler::start();
    let mut world = ctx.world(None)?;
    let outcome = async {
        start_services(&mut world, &sampler).await?;
        healthy_webhooks(&world, &receiver, 0, webhooks).await?;
        let spec = Spec {
            label: kind.label().to_owned(),
            phase: 1,
            events,
            rate,
            healthy: webhooks,
        };
        phase::run(&world, &receiver, &sampler, &ctx.connection, spec).await
    }
    .await;
    world.finish().await;
    report.add(kind, &outcome?);
    Ok(())
}

/// 8 healthy webhooks alone, then the same 8 with 2 hanging ones beside them, [`ROUNDS`] times
/// over. Each round's hanging webhooks are new (endpoints the sender has not seen yet) and are
/// deleted when their phase ends; alone and with are compared over all rounds together, so that
/// one short phase disturbed by the machine cannot decide the comparison.
async fn hanging(ctx: &Ctx, report: &mut Report, events: u64) -> anyhow::Result<()> {
    let receiver = Receiver::start(ctx.ports(HEALTHY + HANGING * ROUNDS)).await?;
    let sampler = RssSampler::start();
    let mut world = ctx.world(Some(HANGING_TIMEOUT))?;
    let outcome = async {
        start_services(&mut world, &sampler).await?;
        healthy_webhooks(&world, &receiver, 0, HEALTHY).await?;
        let (mut alone, mut with) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            let spec = |kind: Kind, phase: usize| Spec {
                label: format!("{} ({}/{ROUNDS})", kind.label(), round + 1),
                phase: u32::try_from(phase).unwrap_or(u32::MAX),
                events,
                rate: None,
                healthy: HEALTHY,
            };
            let measured = spec(Kind::HangingAlone, 2 * round + 1);
            alone.push(phase::run(&world, &receiver, &sampler, &ctx.connection, measured).await?);
            let mut hanging = Vec::new();
            for k in HEALTHY + HANGING * round..HEALTHY + HANGING * (round + 1) {
                let url = receiver.url(k, true);
                hanging.push(
                    world
                        .create_webhook(&format!("bench hanging {k}"), &url)
                        .await?,
                );
            }
            let measured = spec(Kind::HangingWith, 2 * round + 2);
            with.push(phase::run(&world, &receiver, &sampler, &ctx.connection, measured).await?);
            for id in &hanging {
                world.delete_webhook(id).await?;
            }
        }
        Ok::<_, anyhow::Error>((alone, with))
    }
    .await;
    world.finish().await;
    let (alone, with) = outcome?;
    let sum = |f: fn(&Measured) -> f64| with.iter().map(f).sum::<f64>();
    report.note(format!(
        "hanging: the sender ran with DELIVERY_TIMEOUT={HANGING_TIMEOUT} (instead of 15s) so hanging attempts end quickly; \
         {ROUNDS} rounds of {} events alone then {} events with 2 new hanging webhooks, each row over all rounds; \
         while the healthy deliveries of the phases with hanging webhooks were made, {} requests reached the hanging endpoints, \
         {} attempts failed and {} deliveries were held back (deferred) by the sender's endpoint limits.",
        int(events as f64),
        int(events as f64),
        int(sum(|m| m.arrivals.hang_arrivals as f64)),
        int(sum(|m| m.stages.failed_attempts)),
        int(sum(|m| m.stages.deferred))
    ));
    report.add_row(Row::combined(Kind::HangingAlone, &alone));
    report.add_row(Row::combined(Kind::HangingWith, &with));
    for m in alone.iter().zip(&with).flat_map(|(a, w)| [a, w]) {
        report.add_stages(m);
    }
    Ok(())
}
