//! A world's services as processes of their own (for crash and signal tests), configured like
//! the in-process ones but on the system clock; and readiness.

use std::net::SocketAddr;
use std::time::Duration;
use webhooks_core::duration::format;

use super::World;
use super::options::TOKEN;
use crate::process::Process;
use crate::service;

impl World {
    /// Starts the `webhooks-sender` binary as a process of its own, configured like the in-process
    /// senders (but on the system clock), and waits until it is ready.
    pub async fn sender_process(&self) -> Process {
        self.sender_process_with(&[]).await
    }

    /// [`World::sender_process`] with more variables (or others in place of its own).
    pub async fn sender_process_with(&self, extra: &[(&str, String)]) -> Process {
        let c = &self.sender_config;
        let env = vec![
            ("DELIVERY_TIMEOUT", format(c.delivery_timeout)),
            ("RETRY_INITIAL", format(c.retry_initial)),
            ("RETRY_MAX", format(c.retry_max)),
            ("DISABLE_AFTER", format(c.disable_after)),
            ("SCHEDULER_INTERVAL", format(c.scheduler_interval)),
            ("BREAKER_FAILURES", c.breaker_failures.to_string()),
        ];
        let env = [env.as_slice(), extra].concat();
        let process = Process::spawn("webhooks-sender", &self.common_env(), &env);
        self.wait_ready(process.addr).await;
        process
    }

    /// Starts the `webhooks-dispatcher` binary as a process of its own and waits until it is ready.
    pub async fn dispatcher_process(&self) -> Process {
        self.dispatcher_process_with(&[]).await
    }

    /// [`World::dispatcher_process`] with more variables (or others in place of its own).
    pub async fn dispatcher_process_with(&self, extra: &[(&str, String)]) -> Process {
        let process = self.spawn_dispatcher_process(extra, &[]);
        self.wait_ready(process.addr).await;
        process
    }

    /// Starts the `webhooks-dispatcher` binary with `extra` variables and without those in
    /// `unset`, and returns at once (it may never become ready).
    pub fn spawn_dispatcher_process(&self, extra: &[(&str, String)], unset: &[&str]) -> Process {
        let grace = format(self.dispatcher_config.handoff_grace);
        let env = [&[("HANDOFF_GRACE", grace)], extra].concat();
        Process::spawn_without("webhooks-dispatcher", &self.common_env(), &env, unset)
    }

    /// The variables of both: the world's names, servers and token, and a small pool (many
    /// worlds share one PostgreSQL).
    fn common_env(&self) -> Vec<(&'static str, String)> {
        let amqp_url = self.dispatcher_config.common.amqp_url.expose();
        let mut env = service::env(&self.names, amqp_url, &self.pg_server, TOKEN);
        env.push(("DATABASE_POOL_SIZE", "4".to_owned()));
        env
    }

    /// Waits until a service's /readyz says 200 (its queues are declared and consumed).
    pub async fn wait_ready(&self, addr: SocketAddr) {
        let within = Duration::from_secs(20);
        service::wait_ready(&self.http, addr, None, within)
            .await
            .unwrap_or_else(|e| panic!("{e:#}"));
    }

    /// The status /readyz answers (0 when nothing answers within 30 s).
    pub async fn readyz(&self, addr: SocketAddr) -> u16 {
        service::readyz(&self.http, addr, Duration::from_secs(30)).await
    }

    /// The dispatcher's address (API, /metrics, /readyz).
    pub fn dispatcher_addr(&self) -> SocketAddr {
        self.api_base
            .trim_start_matches("http://")
            .trim_end_matches("/api/v1")
            .parse()
            .expect("dispatcher address")
    }
}
