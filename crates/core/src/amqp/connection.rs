//! Connecting to the broker (over TLS for `amqps://`), closing without hanging, and the loop every
//! broker session runs in.

use lapin::options::BasicCancelOptions;
use lapin::tcp::OwnedTLSConfig;
use lapin::types::ShortString;
use lapin::uri::{AMQPScheme, AMQPUri};
use lapin::{Channel, Connection, ConnectionProperties};
use std::path::Path;
use std::time::Duration;

use super::{QueueError, Topology};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker named by `AMQP_URL`. For `amqps://` the broker's certificate must be issued for the
/// URL's host by an authority the system trusts or one in `AMQP_CA_FILE`.
#[derive(Clone, Debug)]
pub struct Broker {
    uri: AMQPUri,
    /// The PEM text of `AMQP_CA_FILE`, read once at start-up.
    ca: Option<String>,
}

impl Broker {
    /// Reads the settings (and the CA file); connects to nothing.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<Self, QueueError> {
        let uri = broker_uri(url)?;
        let ca = match ca_file {
            None => None,
            Some(_) if uri.scheme != AMQPScheme::AMQPS => {
                return Err(QueueError::Tls(
                    "AMQP_CA_FILE is set but AMQP_URL is not amqps://".into(),
                ));
            }
            Some(path) => {
                // Read and checked here, so that a wrong file stops the start rather than every
                // connection attempt.
                crate::tls::read_ca_file(path).map_err(|e| {
                    QueueError::Tls(crate::reconnect::causes(&anyhow::Error::new(e)))
                })?;
                Some(std::fs::read_to_string(path).map_err(|e| {
                    QueueError::Tls(format!("reading the CA file {}: {e}", path.display()))
                })?)
            }
        };
        Ok(Self { uri, ca })
    }

    /// Opens a connection named after the service and the installation's prefix (the name shows
    /// in the broker's management tools, and lets an operator close just this installation's
    /// connections).
    pub async fn connect(&self, name: &str, topology: &Topology) -> Result<Connection, QueueError> {
        let name = if topology.prefix().is_empty() {
            name.to_owned()
        } else {
            format!("{name} {}", topology.prefix())
        };
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let tls = OwnedTLSConfig {
            identity: None,
            cert_chain: self.ca.clone(),
        };
        let connecting = async {
            let runtime = lapin::runtime::default_runtime()?;
            Connection::connect_uri_with_config(self.uri.clone(), properties, tls, runtime).await
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .map_err(|_| QueueError::Timeout(CONNECT_TIMEOUT))?
            .map_err(QueueError::from)
    }
}

/// [`Broker::connect`] to `url` without a CA file of its own.
pub async fn connect(url: &str, name: &str, topology: &Topology) -> Result<Connection, QueueError> {
    Broker::new(url, None)?.connect(name, topology).await
}

/// The largest frame the services ask the broker for, unless `AMQP_URL` names one (`frame_max`).
///
/// The client keeps 32 frames of buffer each way per connection, so the broker's default of
/// 128 KiB costs 8 MiB of memory per connection; at 32 KiB it is 2 MiB. Events are far smaller
/// than a frame, and a larger message (a big event, a hand-off of many deliveries) is carried in
/// several frames.
pub const FRAME_MAX: u32 = 32 * 1024;

/// Parses the broker URL and asks for frames of at most [`FRAME_MAX`] unless it says otherwise.
pub fn broker_uri(url: &str) -> Result<lapin::uri::AMQPUri, QueueError> {
    let mut uri: lapin::uri::AMQPUri = url.parse().map_err(QueueError::Url)?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Ok(uri)
}

/// How long a graceful close may take before the connection is simply dropped.
const CLOSE_WITHIN: Duration = Duration::from_secs(2);

/// Stops consuming and closes the connection, politely if the broker answers within
/// [`CLOSE_WITHIN`]; otherwise the connection is dropped (the broker then requeues whatever was
/// unacked, as on any lost connection). Shutdown must not wait on a broker session that has gone
/// wrong.
pub async fn close(connection: &Connection, channel: &Channel, consumer_tag: ShortString) {
    let polite = async {
        let _ = channel
            .basic_cancel(consumer_tag, BasicCancelOptions::default())
            .await;
        let _ = connection.close(200, "shutting down".into()).await;
    };
    if tokio::time::timeout(CLOSE_WITHIN, polite).await.is_err() {
        tracing::warn!("the broker did not confirm the close in time; dropping the connection");
    }
}

/// Closes a connection that consumes nothing, waiting at most as long as [`close`] does.
pub async fn close_connection(connection: &Connection, reason: &str) {
    if tokio::time::timeout(CLOSE_WITHIN, connection.close(200, reason.into()))
        .await
        .is_err()
    {
        tracing::warn!("the broker did not confirm the close in time; dropping the connection");
    }
}

/// Runs `session` (connect, declare, consume) again and again until `shutdown` is cancelled.
///
/// A session returns when its connection fails; the loop then waits (100 ms doubling to 5 s, each
/// wait drawn from the upper half of that at random; back to 100 ms after a session that lived a
/// minute) and starts a new one. Each failure is logged once, at warn, with its causes. lapin's own recovery is not used: a
/// fresh connection, fresh channels and fresh consumers are the one path that always works after a
/// broker restart, and unacked messages are redelivered by the broker meanwhile.
pub async fn reconnect_loop<F, Fut>(
    what: &'static str,
    readiness: crate::server::Readiness,
    shutdown: tokio_util::sync::CancellationToken,
    mut session: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut backoff = crate::reconnect::start_up();
    while !shutdown.is_cancelled() {
        let started = std::time::Instant::now();
        let outcome = session().await;
        readiness.set_broker_up(false);
        if shutdown.is_cancelled() {
            break;
        }
        match outcome {
            Ok(()) => tracing::warn!(what, "broker session ended; reconnecting"),
            Err(e) => tracing::warn!(
                what,
                error = crate::reconnect::causes(&e),
                "broker session failed; reconnecting"
            ),
        }
        if started.elapsed() > Duration::from_secs(60) {
            backoff.reset();
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff.next_wait()) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_capped_unless_the_url_names_a_size() {
        let default = broker_uri("amqp://guest:guest@127.0.0.1:5672/%2f").expect("a broker URL");
        assert_eq!(default.query.frame_max, Some(FRAME_MAX));
        let named =
            broker_uri("amqp://127.0.0.1:5672/%2f?frame_max=131072&heartbeat=10").expect("a URL");
        assert_eq!(named.query.frame_max, Some(131_072));
        assert_eq!(named.query.heartbeat, Some(10));
        let error = broker_uri("127.0.0.1:5672").expect_err("no scheme");
        assert!(
            error
                .to_string()
                .starts_with("AMQP_URL is not a broker URL")
        );
    }

    #[test]
    fn a_ca_file_needs_amqps_and_a_certificate() {
        let plain = Broker::new(
            "amqp://127.0.0.1:5672/%2f",
            Some(Path::new("/etc/hostname")),
        )
        .expect_err("a CA file for a plain URL");
        assert!(plain.to_string().contains("not amqps://"), "{plain}");
        let empty = Broker::new(
            "amqps://127.0.0.1:5671/%2f",
            Some(Path::new("/etc/hostname")),
        )
        .expect_err("no certificate in the file");
        assert!(empty.to_string().contains("no PEM certificate"), "{empty}");
        let missing = Broker::new(
            "amqps://127.0.0.1:5671/%2f",
            Some(Path::new("/nonexistent")),
        )
        .expect_err("no file");
        assert!(missing.to_string().contains("/nonexistent"), "{missing}");
        Broker::new("amqps://127.0.0.1:5671/%2f", None).expect("amqps without a CA file");
    }
}
