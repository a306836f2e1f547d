//! Publishing with publisher confirms: every message is known to be taken (or refused) by the
//! broker before its sender moves on.

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel, Confirmation, Connection, PublisherConfirm};

use super::QueueError;

/// A channel in confirm mode: every publish returns only once the broker has taken the message.
#[derive(Clone)]
pub struct ConfirmedPublisher {
    channel: Channel,
}

/// One message to publish.
pub struct Outgoing<'a> {
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub body: &'a [u8],
    pub properties: BasicProperties,
}

impl ConfirmedPublisher {
    pub async fn open(connection: &Connection) -> Result<Self, QueueError> {
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(Self { channel })
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Publishes all messages, then waits for every confirm; fails if any is nacked or unroutable.
    pub async fn publish_all(&self, messages: Vec<Outgoing<'_>>) -> Result<(), QueueError> {
        self.send_all(messages).await?.confirmed().await
    }

    /// Publishes all messages without waiting for their confirms: the broker routes each message
    /// as it arrives, and [`Confirms::confirmed`] says later whether it took them all.
    pub async fn send_all(&self, messages: Vec<Outgoing<'_>>) -> Result<Confirms, QueueError> {
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let confirm = self
                .channel
                .basic_publish(
                    message.exchange.into(),
                    message.routing_key.into(),
                    // mandatory: a message no queue takes comes back instead of vanishing.
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    message.body,
                    message.properties,
                )
                .await?;
            pending.push((confirm, message.routing_key.to_owned()));
        }
        Ok(Confirms { pending })
    }
}

/// The broker's answers still to come for messages sent by [`ConfirmedPublisher::send_all`].
#[must_use = "a message is only known to be taken once its confirm has arrived"]
pub struct Confirms {
    pending: Vec<(PublisherConfirm, String)>,
}

impl Confirms {
    /// Waits for every confirm; fails if any message was nacked or unroutable.
    pub async fn confirmed(self) -> Result<(), QueueError> {
        for (confirm, routing_key) in self.pending {
            match confirm.await? {
                Confirmation::Ack(None) | Confirmation::NotRequested => {}
                Confirmation::Ack(Some(_)) => return Err(QueueError::Unroutable(routing_key)),
                Confirmation::Nack(_) => return Err(QueueError::Nacked),
            }
        }
        Ok(())
    }
}
