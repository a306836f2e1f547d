//! The scenarios: fan-out 1 and 10 at full speed, a steady rate for latency, and hanging
//! endpoints beside healthy ones. Each runs in a world of its own (fresh database, broker names,
//! service processes and receiver) so that no scenario inherits another's tables, queues or memory.
//! The backlog scenario lives in [`crate::backlog`].

use std::sync::Arc;

use crate::args::{Args, STEADY_RATE, Scenario};
use crate::phase::{self, Spec};
use crate::procfs::RssSampler;
use crate::receiver::Receiver;
use crate::report::{Kind, Report, int};
use crate::services::{Janitor, Service, Settings, World};

/// `DELIVERY_TIMEOUT` of the hanging scenario, so hanging attempts end (and the run finishes) quickly.
pub const HANGING_TIMEOUT: &str = "2s";
/// Webhooks of the hanging scenario: healthy ones, then hanging ones.
const HEALTHY: usize = 8;
const HANGING: usize = 2;

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

/// 8 healthy webhooks alone, then the same 8 with 2 hanging ones added, same events each time.
async fn hanging(ctx: &Ctx, report: &mut Report, events: u64) -> anyhow::Result<()> {
    let receiver = Receiver::start(ctx.ports(HEALTHY + HANGING)).await?;
    let sampler = RssSampler::start();
    let mut world = ctx.world(Some(HANGING_TIMEOUT))?;
    let outcome = async {
        start_services(&mut world, &sampler).await?;
        healthy_webhooks(&world, &receiver, 0, HEALTHY).await?;
        let alone = Spec {
            label: Kind::HangingAlone.label().to_owned(),
            phase: 1,
            events,
            rate: None,
            healthy: HEALTHY,
        };
        let alone = phase::run(&world, &receiver, &sampler, &ctx.connection, alone).await?;
        for k in HEALTHY..HEALTHY + HANGING {
            world
                .create_webhook(&format!("bench hanging {k}"), &receiver.url(k, true))
                .await?;
        }
        let with = Spec {
            label: Kind::HangingWith.label().to_owned(),
            phase: 2,
            events,
            rate: None,
            healthy: HEALTHY,
        };
        let with = phase::run(&world, &receiver, &sampler, &ctx.connection, with).await?;
        Ok::<_, anyhow::Error>((alone, with))
    }
    .await;
    world.finish().await;
    let (alone, with) = outcome?;
    report.note(format!(
        "hanging: the sender ran with DELIVERY_TIMEOUT={HANGING_TIMEOUT} (instead of 15s) so hanging attempts end quickly; \
         while the healthy deliveries of the second phase were made, {} requests reached the hanging endpoints, \
         {} attempts failed and {} deliveries were held back (deferred) by the sender's endpoint limits.",
        int(with.arrivals.hang_arrivals as f64),
        int(with.stages.failed_attempts),
        int(with.stages.deferred)
    ));
    report.add(Kind::HangingAlone, &alone);
    report.add(Kind::HangingWith, &with);
    Ok(())
}
