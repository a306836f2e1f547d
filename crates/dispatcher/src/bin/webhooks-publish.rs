//! Publishes one domain event, the way other services do, so a delivery can be seen end to end
//! without writing any AMQP code:
//!
//! `webhooks-publish --project DEMO --event run.started --payload '{"id":1,"title":"Nightly"}'`

use anyhow::Context;
use clap::Parser;
use lapin::ExchangeKind;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use webhooks_core::amqp::{Broker, Topology};
use webhooks_core::event::{Event, EventName};
use webhooks_core::secret::ConnectionUrl;

/// Publishes one domain event to the events exchange.
#[derive(Parser)]
#[command(name = "webhooks-publish", version)]
struct Args {
    /// RabbitMQ URL (by default amqp://guest:***@127.0.0.1:5672/%2f).
    // Neither its value nor its default shows in `--help`: both may hold a password.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = "amqp://guest:guest@127.0.0.1:5672/%2f",
        hide_env_values = true,
        hide_default_value = true
    )]
    amqp_url: ConnectionUrl,
    /// PEM file of authorities the broker's certificate may come from, besides the system's
    /// (AMQP_URL `amqps://`).
    #[arg(long, env = "AMQP_CA_FILE")]
    amqp_ca_file: Option<std::path::PathBuf>,
    /// Topic exchange of domain events.
    #[arg(long, env = "EVENTS_EXCHANGE", default_value = "domain.events")]
    exchange: String,
    /// Project code.
    #[arg(long, default_value = "DEMO")]
    project: String,
    /// Event name from the catalogue, e.g. run.started.
    #[arg(long, default_value = "run.started")]
    event: String,
    /// Payload: a JSON object.
    #[arg(long, default_value = r#"{"id":1,"title":"Test run"}"#)]
    payload: String,
    /// Team member id (omit for null).
    #[arg(long)]
    team_member_id: Option<i64>,
    /// Event id (a UUID; a random one by default). Publish the same id twice to see de-duplication.
    #[arg(long)]
    id: Option<uuid::Uuid>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name: EventName = args.event.parse()?;
    let id = args.id.unwrap_or_else(uuid::Uuid::new_v4);
    let body = format!(
        r#"{{"id":"{id}","event_name":"{name}","timestamp":{},"project_code":{},"team_member_id":{},"payload":{}}}"#,
        chrono::Utc::now().timestamp(),
        serde_json::to_string(&args.project)?,
        args.team_member_id
            .map_or("null".to_owned(), |n| n.to_string()),
        args.payload,
    );
    // Check it the way the dispatcher will, so a typo is reported here and not dead-lettered there.
    Event::parse(body.as_bytes(), None, usize::MAX)
        .map_err(|e| anyhow::anyhow!("not a valid event: {e}"))?;

    let connection = Broker::new(args.amqp_url.expose(), args.amqp_ca_file.as_deref())?
        .connect("webhooks-publish", &Topology::new("", &args.exchange))
        .await
        .context("connecting to RabbitMQ")?;
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            args.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let confirm = channel
        .basic_publish(
            args.exchange.as_str().into(),
            name.as_str().into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            webhooks_core::amqp::persistent_json(),
        )
        .await?
        .await?;
    anyhow::ensure!(confirm.is_ack(), "the broker refused the event");
    let _ = connection.close(200, "done".into()).await;
    println!("published {name} {id} for project {}", args.project);
    Ok(())
}
