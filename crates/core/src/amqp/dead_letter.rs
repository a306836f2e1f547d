//! The dead-letter queue (`webhooks.dead-letter`): messages a service will not process (events
//! the dispatcher rejects, hand-offs the sender refuses), kept whole with their properties, the
//! reason in the header [`REASON_HEADER`] and where they were first published. Nothing is
//! dropped unseen: an operator reads them there.

use lapin::message::Delivery;

use super::{Outgoing, with_header};

/// The header saying why a message was dead-lettered (contract §1).
pub const REASON_HEADER: &str = "x-rejection-reason";

/// The dead letter of `delivery` for `reason`, to publish on `queue` (the dead-letter queue's
/// name) through the default exchange, which routes straight to the queue of that name.
pub fn letter<'a>(queue: &'a str, delivery: &'a Delivery, reason: &str) -> Outgoing<'a> {
    let properties = with_header(delivery.properties.clone(), REASON_HEADER, reason);
    let properties = with_header(
        properties,
        "x-original-exchange",
        delivery.exchange.as_str(),
    );
    let properties = with_header(
        properties,
        "x-original-routing-key",
        delivery.routing_key.as_str(),
    );
    Outgoing {
        exchange: "",
        routing_key: queue,
        body: &delivery.data,
        properties,
    }
}
