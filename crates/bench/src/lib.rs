//! The benchmark of the webhook pipeline: it starts the real `webhooks-dispatcher` and
//! `webhooks-sender` binaries against the real RabbitMQ and PostgreSQL, delivers to a receiver of
//! its own, and prints a markdown table of rates, publish→receive latencies, CPU per 1,000
//! deliveries and peak memory per service, next to baselines measured in the same run. On
//! request (`--scenario soak`) it runs instead a long soak with faults injected at random.
//!
//! Each scenario's world (a fresh database and broker names, the service processes, the
//! receiver, the publisher, the faults) comes from `webhooks-harness`; this crate measures it.
//!
//! # Layout
//! - [`args`]: the command line and each scenario's default size.
//! - [`procfs`]: CPU and memory from `/proc`; [`stages`]: the services' own metrics, per phase.
//! - [`ctx`]: what every scenario needs, and the steps each scenario's world starts with.
//! - [`phase`]: one measured phase: publish, follow progress, measure CPU, memory and stages.
//! - [`baselines`]: the plain-HTTP ceiling and the broker's one-hop rate.
//! - [`report`]: the markdown tables, ratios and targets.
//! - [`scenarios`]: fan-out 1 and 10, steady rate, hanging endpoints; [`backlog`]: the drain.
//! - [`api`]: the management API's creates/s and latency at 4, 16 and 64 concurrent clients.
//! - [`memory`]: peak memory with large events, small events and a wide fan-out, against the bound.
//! - [`fair`]: healthy projects alone and beside a project whose many webhooks share one slow host.
//! - [`retention`]: a steady load while the services' clock moves through retention windows.
//! - [`listing`]: the API's delivery lists at a small history and at millions of rows.
//! - [`replay`]: a steady load alone, then beside a bulk replay of 100,000 deliveries.
//! - [`soak`]: the soak: a steady stream for minutes while faults are injected on a seeded
//!   schedule, then a check that every delivery arrived.

pub mod api;
pub mod args;
pub mod backlog;
pub mod baselines;
pub mod ctx;
pub mod fair;
pub mod listing;
pub mod memory;
pub mod phase;
pub mod procfs;
pub mod replay;
pub mod report;
pub mod retention;
pub mod scenarios;
pub mod soak;
pub mod stages;

use clap::CommandFactory;
use std::sync::Arc;
use webhooks_harness::names::Janitor;
use webhooks_harness::process;
use webhooks_harness::publisher;
use webhooks_harness::service::{self, Service};

use crate::args::Args;
use crate::ctx::Ctx;
use crate::report::Report;

/// Runs the selected scenarios (the full-speed fan-outs in rounds, each round beside a fresh
/// measurement of its baseline), then prints the report to stdout; or, when asked for, the soak
/// alone.
pub async fn run(args: Args, janitor: Arc<Janitor>) -> anyhow::Result<()> {
    for service in Service::BOTH {
        let binary = process::locate(service.binary())?;
        eprintln!("{} from {}", service.name(), binary.display());
    }
    let connection = publisher::connect(&args.amqp_url, "webhooks-bench").await?;
    let ctx = Ctx {
        args,
        janitor,
        connection,
    };
    let outcome = if ctx.args.soak() {
        soak::run(&ctx).await
    } else {
        measure(&ctx).await
    };
    webhooks_core::amqp::close_connection(&ctx.connection, "done").await;
    outcome
}

/// Runs the selected scenarios and prints the report.
async fn measure(ctx: &Ctx) -> anyhow::Result<()> {
    let mut report = Report::new(command_line());
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        report.note(format!(
            "Load average (1, 5, 15 min) when the run started: {}; other work on the machine shows in every figure.",
            load.join(", ")
        ));
    }
    for scenario in ctx.args.selected() {
        eprintln!("== {} ==", scenario.name());
        if let Err(e) = scenarios::run(ctx, scenario, &mut report).await {
            report.failed(scenario.name(), &e);
        }
    }
    report.note_waits();
    general_notes(&mut report);
    println!("\n{}", report.markdown());
    if ctx.args.check {
        report.verdict()?;
    }
    Ok(())
}

/// How this run was invoked, for BENCHMARKS.md.
fn command_line() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        "webhooks-bench".into()
    } else {
        format!("webhooks-bench {}", args.join(" "))
    }
}

fn general_notes(report: &mut Report) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    report.note(format!(
        "Each scenario runs in a world of its own: a fresh database, fresh broker names, one dispatcher and one sender process \
         (release binaries), all on this {cpus}-CPU machine with the broker, the database, the receiver and the publisher; \
         the receiver answers 200 at once, one receiver port per webhook (each webhook its own endpoint, as separate subscribers are)."
    ));
    report.note(
        "Latency is publish (just before basic.publish) → arrival at the receiver, on one clock; delivered/s counts distinct \
         deliveries from the first publish to the last arrival. Events are published with confirms, up to 4,000 unconfirmed."
            .into(),
    );
    report.note(
        "CPU s/1k: utime+stime from /proc/<pid>/stat (100 ticks/s) during the phase, per 1,000 deliveries. Peak RSS: the larger \
         of VmHWM and VmRSS sampled every 250 ms (processes are fresh per scenario, so a hanging row's peak covers all of its rounds)."
            .into(),
    );
    report.note(
        "Baselines: http-ceiling runs the sender's own attempt code (webhooks_sender::attempt::Sender: same client settings, \
         headers and body size) straight against this benchmark's receiver; broker-hop publishes persistent messages with \
         confirms into a durable queue that one consumer acks in batches (multiple); broker-hop at the steady rate does so at \
         1,000 messages/s right before the steady scenario, and times each message from publish to consume: the broker's own share of \
         the steady latency."
            .into(),
    );
    report.note(
        "Database and broker CPU count every postgres and beam.smp process on the machine, so other users of the same \
         servers inflate them."
            .into(),
    );
    let tuned = tuned();
    if !tuned.is_empty() {
        report.note(format!(
            "Service settings taken from the environment: {}.",
            tuned.join(", ")
        ));
    }
}

/// `NAME=value` of each setting of the services a user set in our environment, which the
/// services inherit: every variable their configurations read, but those the world sets itself.
fn tuned() -> Vec<String> {
    let mut names: Vec<String> = [
        webhooks_dispatcher::Config::command(),
        webhooks_sender::Config::command(),
    ]
    .iter()
    .flat_map(|command| command.get_arguments())
    .filter_map(|argument| argument.get_env()?.to_str().map(str::to_owned))
    .filter(|name| !service::WORLD_VARIABLES.contains(&name.as_str()))
    .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|name| Some(format!("{name}={}", std::env::var(&name).ok()?)))
        .collect()
}
