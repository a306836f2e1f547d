//! The headers of one attempt (the contract's §3), built in one place: the sender sends them, and
//! the API shows them for a delivery, with the secret masked.

use crate::secret::Secret;
use crate::signing::{PreviousSecret, signatures};

/// The header that carries the webhook's secret itself.
pub const SECRET: &str = "x-qase-secret";

/// What one attempt of a delivery is stamped and signed with.
pub struct Stamp<'a> {
    pub delivery_id: &'a str,
    pub event_name: &'a str,
    /// The attempt's time, in Unix seconds.
    pub timestamp: i64,
    pub secret: Option<&'a Secret>,
    pub previous: Option<&'a PreviousSecret>,
    pub body: &'a [u8],
}

/// The headers of the attempt `stamp` describes, in the order they are sent (lowercase names):
/// the content type, `x-qase-event`, `x-qase-delivery`, the Standard Webhooks `webhook-id` and
/// `webhook-timestamp`, and with a secret, [`SECRET`] and `webhook-signature`.
pub fn attempt(stamp: &Stamp<'_>) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        ("content-type", "application/json".to_owned()),
        ("x-qase-event", stamp.event_name.to_owned()),
        ("x-qase-delivery", stamp.delivery_id.to_owned()),
        ("webhook-id", stamp.delivery_id.to_owned()),
        ("webhook-timestamp", stamp.timestamp.to_string()),
    ];
    if let Some(secret) = stamp.secret {
        headers.push((SECRET, secret.expose().to_owned()));
        let signature = signatures(
            secret,
            stamp.previous,
            stamp.delivery_id,
            stamp.timestamp,
            stamp.body,
        );
        headers.push(("webhook-signature", signature));
    }
    headers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::SigningKey;

    #[test]
    fn a_secret_adds_itself_and_the_signature() {
        let secret = Secret::new("s3cr3t");
        let mut stamp = Stamp {
            delivery_id: "d1",
            event_name: "run.started",
            timestamp: 1_650_540_069,
            secret: None,
            previous: None,
            body: b"{}",
        };
        let names: Vec<&str> = attempt(&stamp).iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "content-type",
                "x-qase-event",
                "x-qase-delivery",
                "webhook-id",
                "webhook-timestamp"
            ]
        );
        stamp.secret = Some(&secret);
        let headers = attempt(&stamp);
        assert_eq!(headers[5], (SECRET, "s3cr3t".to_owned()));
        let signed = SigningKey::from_secret(&secret).sign("d1", 1_650_540_069, b"{}");
        assert_eq!(headers[6], ("webhook-signature", signed));
    }
}
