//! What every scenario needs: the run's settings and broker connection, the scene each scenario
//! runs in (a world of service processes, its receiver and the sampler of its memory), and the
//! steps a scene starts with.

use std::sync::Arc;
use webhooks_harness::names::Janitor;
use webhooks_harness::publisher::{EVENT_NAME, PROJECT};
use webhooks_harness::receiver::tracking::Tracking;
use webhooks_harness::service::Service;
use webhooks_harness::services::Services;

use crate::args::Args;
use crate::procfs::RssSampler;

/// What every scenario needs.
pub struct Ctx {
    pub args: Args,
    pub janitor: Arc<Janitor>,
    /// The benchmark's own broker connection, for publishing.
    pub connection: lapin::Connection,
}

/// What a scenario's phases run against.
pub struct Scene {
    pub world: Services,
    /// The receiver the webhooks point at, one port per webhook.
    pub receiver: Tracking,
    pub sampler: RssSampler,
}

impl Ctx {
    /// Runs `body` in a scene of its own with `ports` receiver ports and nothing started yet (the
    /// sender's `DELIVERY_TIMEOUT` is `delivery_timeout` when given), then kills the services and
    /// removes the world, whatever `body` returned.
    pub async fn scene<T>(
        &self,
        ports: usize,
        delivery_timeout: Option<&str>,
        body: impl AsyncFnOnce(&mut Scene) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let mut world = Services::new(self.janitor.clone(), "bench")?;
        if let Some(timeout) = delivery_timeout {
            world.set_env(Service::Sender, "DELIVERY_TIMEOUT", timeout);
        }
        let mut scene = Scene {
            world,
            receiver: Tracking::start(ports).await?,
            sampler: RssSampler::start(),
        };
        let outcome = body(&mut scene).await;
        scene.world.finish().await;
        outcome
    }
}

impl Scene {
    /// Starts `service` and samples its memory.
    pub async fn start(&mut self, service: Service) -> anyhow::Result<()> {
        self.world.start(service).await?;
        self.watch(service);
        Ok(())
    }

    /// Samples the memory of `service`'s current process (from now on, in place of any earlier).
    pub fn watch(&self, service: Service) {
        if let Some(pid) = self.world.process(service).and_then(|p| p.pid()) {
            self.sampler.watch(service.name(), pid);
        }
    }

    /// Starts both services and samples their memory.
    pub async fn start_services(&mut self) -> anyhow::Result<()> {
        for service in Service::BOTH {
            self.start(service).await?;
        }
        Ok(())
    }

    /// Creates a webhook of the benchmark project for its event, pointing at `url`; returns its
    /// id.
    pub async fn create_webhook(&self, title: &str, url: &str) -> anyhow::Result<String> {
        let api = self.world.api()?;
        api.create_webhook(PROJECT, title, url, &[EVENT_NAME]).await
    }

    /// Creates healthy webhooks `from..to` on the receiver.
    pub async fn healthy_webhooks(&self, from: usize, to: usize) -> anyhow::Result<()> {
        for k in from..to {
            let url = self.receiver.url(k, false);
            self.create_webhook(&format!("bench {k}"), &url).await?;
        }
        Ok(())
    }
}
