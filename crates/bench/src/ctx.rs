//! What every scenario needs: the run's settings and broker connection, and the steps each
//! scenario's world starts with.

use std::sync::Arc;

use crate::args::Args;
use crate::baselines::{self, Baseline};
use crate::procfs::RssSampler;
use crate::receiver::Receiver;
use crate::services::{Janitor, Service, Settings, World};

/// What every scenario needs.
pub struct Ctx {
    pub args: Args,
    pub settings: Arc<Settings>,
    pub janitor: Arc<Janitor>,
    /// The benchmark's own broker connection, for publishing.
    pub connection: lapin::Connection,
}

impl Ctx {
    /// Broker-hop with `messages` messages, in names of its own, at full speed or `paced` at a
    /// rate.
    pub async fn broker_hop(&self, messages: u64, paced: Option<f64>) -> anyhow::Result<Baseline> {
        baselines::broker_hop(
            &self.connection,
            &self.args.amqp_url,
            &self.janitor,
            messages,
            paced,
        )
        .await
    }

    pub fn world(&self, delivery_timeout: Option<&'static str>) -> anyhow::Result<World> {
        World::new(
            self.settings.clone(),
            self.janitor.clone(),
            delivery_timeout,
        )
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
