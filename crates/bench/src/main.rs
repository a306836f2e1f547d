//! `webhooks-bench`: parse the command line, run the benchmark, and whatever happens (an error,
//! ctrl-c or SIGTERM) kill the service processes and delete the databases, queues and exchanges
//! the run created.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use webhooks_bench::args::Args;
use webhooks_bench::baselines::hop::HOP_QUEUE;
use webhooks_harness::names::Janitor;

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    // ring is the one TLS crypto provider compiled into the workspace's HTTP client.
    let _ = rustls::crypto::ring::default_provider().install_default();
    // Broker-hop's queue is the one queue a world may hold beside the services'.
    let janitor = Arc::new(Janitor::new(&args.amqp_url, &args.postgres, &[HOP_QUEUE]));
    // Dropping the run on a signal drops its worlds, whose children are killed on drop.
    let outcome = tokio::select! {
        outcome = webhooks_bench::run(args, janitor.clone()) => outcome,
        signal = stop_signal() => Err(anyhow::anyhow!("interrupted by {signal}")),
    };
    janitor.clean_all().await;
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("webhooks-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn stop_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "ctrl-c",
            _ = term.recv() => "SIGTERM",
        },
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            "ctrl-c"
        }
    }
}
