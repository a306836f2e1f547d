use clap::Parser;
use std::process::ExitCode;
use tokio_util::sync::CancellationToken;
use webhooks_core::clock::Clock;
use webhooks_dispatcher::Config;

/// Exits 1 when the service fails to start, fails while running, or leaves work unfinished when
/// SHUTDOWN_GRACE runs out. The reason is logged like every other line (one JSON object under
/// `LOG_FORMAT=json`), not printed by the runtime.
#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    webhooks_core::telemetry::init(config.common.log_format);
    let shutdown = CancellationToken::new();
    webhooks_core::shutdown::cancel_on_signals(shutdown.clone());
    let outcome = match webhooks_dispatcher::start(config, Clock::System, shutdown).await {
        Ok(service) => service.wait().await,
        Err(e) => Err(e.context("starting")),
    };
    match outcome {
        Ok(()) => {
            tracing::info!("dispatcher stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(
                error = webhooks_core::reconnect::causes(&e),
                "dispatcher failed"
            );
            ExitCode::FAILURE
        }
    }
}
