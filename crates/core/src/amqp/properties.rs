//! Message properties: persistent or transient JSON, and string headers.

use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};

/// Persistent JSON message properties.
pub fn persistent_json() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // 2 = persistent: the message survives a broker restart.
        .with_delivery_mode(2)
}

/// A message that need not outlive a broker restart: the dispatcher's hand-off names deliveries
/// already committed to the database, and should it be lost the senders' scheduler finds them
/// after `HANDOFF_GRACE`. Writing it to disk would cost the broker a disk write per batch and buy
/// nothing. It is still published with confirms, so a broker that refuses it is noticed.
pub fn transient_json() -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        // 1 = transient: kept in memory.
        .with_delivery_mode(1)
}

/// Adds one string header to `properties`.
pub fn with_header(properties: BasicProperties, name: &str, value: &str) -> BasicProperties {
    let mut headers = properties.headers().clone().unwrap_or_default();
    headers.insert(name.into(), AMQPValue::LongString(value.into()));
    properties.with_headers(headers)
}

/// Reads a string-ish header from a delivery's properties.
pub fn header_string(properties: &BasicProperties, name: &str) -> Option<String> {
    let headers = properties.headers().as_ref()?;
    match headers.inner().get(&ShortString::from(name))? {
        AMQPValue::LongString(value) => {
            Some(String::from_utf8_lossy(value.as_bytes()).into_owned())
        }
        AMQPValue::ShortString(value) => Some(value.as_str().to_owned()),
        _ => None,
    }
}
