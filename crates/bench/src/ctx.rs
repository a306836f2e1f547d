//! What every scenario needs: the run's settings and broker connection, and the steps each
//! scenario's world starts with.

use std::sync::Arc;
use webhooks_harness::names::Janitor;
use webhooks_harness::publisher::{EVENT_NAME, PROJECT};
use webhooks_harness::receiver::tracking::Tracking;
use webhooks_harness::service::Service;
use webhooks_harness::services::Services;

use crate::args::Args;
use crate::baselines::{self, Baseline};
use crate::procfs::{self, RssSampler};
use crate::report::Report;

/// What every scenario needs.
pub struct Ctx {
    pub args: Args,
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

    /// A world of service processes with fresh names (nothing runs yet); the sender's
    /// `DELIVERY_TIMEOUT` is `delivery_timeout` when given.
    pub fn world(&self, delivery_timeout: Option<&str>) -> anyhow::Result<Services> {
        let mut world = Services::new(self.janitor.clone(), "bench")?;
        if let Some(timeout) = delivery_timeout {
            world.set_env(Service::Sender, "DELIVERY_TIMEOUT", timeout);
        }
        Ok(world)
    }
}

/// Starts `service` and samples its memory.
pub async fn start(
    world: &mut Services,
    service: Service,
    sampler: &RssSampler,
) -> anyhow::Result<()> {
    world.start(service).await?;
    if let Some(pid) = world.process(service).and_then(|p| p.pid()) {
        sampler.watch(service.name(), pid);
    }
    Ok(())
}

/// Starts both services and samples their memory.
pub async fn start_services(world: &mut Services, sampler: &RssSampler) -> anyhow::Result<()> {
    for service in Service::BOTH {
        start(world, service, sampler).await?;
    }
    Ok(())
}

/// Creates a webhook of the benchmark project for its event, pointing at `url`; returns its id.
pub async fn create_webhook(world: &Services, title: &str, url: &str) -> anyhow::Result<String> {
    let api = world.api()?;
    api.create_webhook(PROJECT, title, url, &[EVENT_NAME]).await
}

/// Creates healthy webhooks `from..to` on the receiver.
pub async fn healthy_webhooks(
    world: &Services,
    receiver: &Tracking,
    from: usize,
    to: usize,
) -> anyhow::Result<()> {
    for k in from..to {
        create_webhook(world, &format!("bench {k}"), &receiver.url(k, false)).await?;
    }
    Ok(())
}

/// Waits for a quiet machine before the measurement `before`, and keeps the wait for the notes.
pub async fn settle(report: &mut Report, before: String) {
    let settled = procfs::settle().await;
    if let Err(e) = &settled {
        eprintln!("could not watch the machine's CPU: {e:#}");
    }
    report.waited(before, settled.ok());
}

/// Reports that `what` failed to run.
pub fn failed(report: &mut Report, what: &str, error: &anyhow::Error) {
    eprintln!("{what} failed: {error:#}");
    report.note(format!("{what} failed: {error:#}"));
    report.failure(what);
}
