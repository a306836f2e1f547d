use clap::Parser;
use tokio_util::sync::CancellationToken;
use webhooks_core::clock::Clock;
use webhooks_sender::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    webhooks_core::telemetry::init(config.common.log_format);
    let shutdown = CancellationToken::new();
    webhooks_core::shutdown::cancel_on_signals(shutdown.clone());
    let service = webhooks_sender::start(config, Clock::System, shutdown).await?;
    match service.wait().await {
        Ok(()) => {
            tracing::info!("sender stopped");
            Ok(())
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sender failed");
            Err(e)
        }
    }
}
