//! The benchmark of the webhook pipeline: it starts the real `webhooks-dispatcher` and
//! `webhooks-sender` binaries against the real RabbitMQ and PostgreSQL, delivers to a receiver of
//! its own, and prints a markdown table of rates, publish→receive latencies, CPU per 1,000
//! deliveries and peak memory per service, next to baselines measured in the same run. On
//! request (`--scenario soak`) it runs instead a long soak with faults injected at random.
//!
//! # Layout
//! - [`args`]: the command line and each scenario's default size.
//! - [`services`]: a world per scenario: the service processes, their API and metrics.
//! - [`janitor`]: the database and broker names a world owns, deleted afterwards.
//! - [`receiver`]: the HTTP receiver and the tracker matching arrivals to publishes.
//! - [`publisher`]: pipelined publishing with confirms of contract-shaped events.
//! - [`phase`]: one measured phase: publish, follow progress, measure CPU, memory and stages.
//! - [`scenarios`]: fan-out 1 and 10, steady rate, hanging endpoints; [`backlog`]: the drain.
//! - [`api`]: the management API's creates/s and latency at 4, 16 and 64 concurrent clients.
//! - [`memory`]: peak memory with large events, small events and a wide fan-out, against the bound.
//! - [`fair`]: healthy projects alone and beside a project whose many webhooks share one slow host.
//! - [`baselines`]: the plain-HTTP ceiling and the broker's one-hop rate.
//! - [`procfs`]: CPU and memory from `/proc`.
//! - [`stages`]: the services' own metrics, per phase.
//! - [`dbprofile`]: the database's time by statement and wait event, from `pg_stat_activity`.
//! - [`report`]: the markdown tables, ratios and targets.
//! - [`soak`]: the soak: a steady stream for minutes while [`faults`] are injected on a seeded
//!   [`schedule`], then a check that every delivery arrived.

pub mod api;
pub mod args;
pub mod backlog;
pub mod baselines;
pub mod ctx;
pub mod dbprofile;
pub mod fair;
pub mod faults;
pub mod janitor;
pub mod memory;
pub mod phase;
pub mod procfs;
pub mod publisher;
pub mod receiver;
pub mod report;
pub mod scenarios;
pub mod schedule;
pub mod services;
pub mod soak;
pub mod stages;
pub mod stalls;

use std::sync::Arc;

use crate::args::Args;
use crate::ctx::Ctx;
use crate::report::Report;
use crate::services::{Janitor, Settings, TUNING_VARIABLES};

/// Runs the selected scenarios (the full-speed fan-outs in rounds, each round beside a fresh
/// measurement of its baseline), then prints the report to stdout; or, when asked for, the soak
/// alone.
pub async fn run(args: Args, janitor: Arc<Janitor>) -> anyhow::Result<()> {
    let settings = Arc::new(Settings::locate(&args.amqp_url, &args.postgres)?);
    eprintln!("services from {}", settings.bin_dir.display());
    let connection = publisher::connect(&args.amqp_url, "webhooks-bench").await?;
    if args.soak() {
        let ctx = Ctx {
            args,
            settings,
            janitor,
            connection,
        };
        let outcome = soak::run(&ctx).await;
        webhooks_core::amqp::close_connection(&ctx.connection, "done").await;
        return outcome;
    }
    let mut report = Report::new(command_line());
    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let load: Vec<&str> = load.split_whitespace().take(3).collect();
        report.note(format!(
            "Load average (1, 5, 15 min) when the run started: {}; other work on the machine shows in every figure.",
            load.join(", ")
        ));
    }
    let ctx = Ctx {
        args,
        settings,
        janitor,
        connection,
    };
    for scenario in ctx.args.selected() {
        eprintln!("== {} ==", scenario.name());
        if let Err(e) = scenarios::run(&ctx, scenario, &mut report).await {
            failed(&mut report, scenario.name(), &e);
        }
    }
    report.note_waits();
    general_notes(&ctx, &mut report);
    webhooks_core::amqp::close_connection(&ctx.connection, "done").await;
    println!("\n{}", report.markdown());
    if ctx.args.check {
        report.verdict()?;
    }
    Ok(())
}

/// Waits for a quiet machine before the measurement `before`, and keeps the wait for the notes.
pub(crate) async fn settle(report: &mut Report, before: String) {
    let settled = procfs::settle().await;
    if let Err(e) = &settled {
        eprintln!("could not watch the machine's CPU: {e:#}");
    }
    report.waited(before, settled.ok());
}

pub(crate) fn failed(report: &mut Report, what: &str, error: &anyhow::Error) {
    eprintln!("{what} failed: {error:#}");
    report.note(format!("{what} failed: {error:#}"));
    report.failure(what);
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

fn general_notes(ctx: &Ctx, report: &mut Report) {
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let endpoints = if ctx.args.shared_endpoint {
        "every webhook on one receiver port (one endpoint)"
    } else {
        "one receiver port per webhook (each webhook its own endpoint, as separate subscribers are)"
    };
    report.note(format!(
        "Each scenario runs in a world of its own: a fresh database, fresh broker names, one dispatcher and one sender process \
         (release binaries), all on this {cpus}-CPU machine with the broker, the database, the receiver and the publisher; \
         the receiver answers 200 at once, {endpoints}."
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
         servers inflate them; the database table samples only this scenario's database."
            .into(),
    );
    let tuned: Vec<String> = TUNING_VARIABLES
        .iter()
        .filter_map(|name| std::env::var(name).ok().map(|v| format!("{name}={v}")))
        .collect();
    if !tuned.is_empty() {
        report.note(format!(
            "Service settings taken from the environment: {}.",
            tuned.join(", ")
        ));
    }
}
