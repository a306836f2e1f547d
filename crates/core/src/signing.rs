//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
//!
//! The key is the base64-decoded remainder of a `whsec_` secret, otherwise the secret's UTF-8 bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

/// A secret replaced by a rotation, that still signs deliveries until `until`.
#[derive(Clone, Debug)]
pub struct PreviousSecret {
    pub secret: Secret,
    pub until: DateTime<Utc>,
}

/// The `webhook-signature` header value for one attempt at `timestamp` (Unix seconds): the
/// signature with `secret`, then, while a rotation's grace runs at that time, the one with the
/// secret it replaced, space-separated as Standard Webhooks lists several signatures.
pub fn signatures(
    secret: &Secret,
    previous: Option<&PreviousSecret>,
    delivery_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mut value = SigningKey::from_secret(secret).sign(delivery_id, timestamp, body);
    if let Some(previous) = previous.filter(|p| p.until.timestamp() > timestamp) {
        value.push(' ');
        value.push_str(&SigningKey::from_secret(&previous.secret).sign(
            delivery_id,
            timestamp,
            body,
        ));
    }
    value
}

/// The HMAC key derived once from a webhook secret.
#[derive(Clone)]
pub struct SigningKey(Vec<u8>);

impl SigningKey {
    pub fn from_secret(secret: &Secret) -> Self {
        let text = secret.expose();
        let key = text
            .strip_prefix("whsec_")
            .and_then(|rest| STANDARD.decode(rest).ok())
            .unwrap_or_else(|| text.as_bytes().to_vec());
        Self(key)
    }

    /// The `webhook-signature` header value for one attempt.
    pub fn sign(&self, delivery_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(delivery_id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.to_string().as_bytes());
        mac.update(b".");
        mac.update(body);
        format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_standard_webhooks_test_vector() {
        let key = SigningKey::from_secret(&Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        let signature = key.sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1_614_265_330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn plain_secret_uses_its_bytes() {
        let plain = SigningKey::from_secret(&Secret::new("my secret"));
        let explicit = SigningKey(b"my secret".to_vec());
        assert_eq!(plain.sign("id", 1, b"{}"), explicit.sign("id", 1, b"{}"));
        assert_ne!(plain.sign("id", 1, b"{}"), plain.sign("id", 2, b"{}"));
    }

    #[test]
    fn a_rotated_secret_signs_beside_the_new_one_until_its_grace_ends() {
        let new = Secret::new("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");
        let previous = PreviousSecret {
            secret: Secret::new("old secret"),
            until: DateTime::from_timestamp(1_000, 0).expect("time"),
        };
        let one = |at| SigningKey::from_secret(&new).sign("id", at, b"{}");
        let old = |at| SigningKey::from_secret(&previous.secret).sign("id", at, b"{}");
        assert_eq!(
            signatures(&new, Some(&previous), "id", 999, b"{}"),
            format!("{} {}", one(999), old(999))
        );
        assert_eq!(
            signatures(&new, Some(&previous), "id", 1_000, b"{}"),
            one(1_000)
        );
        assert_eq!(signatures(&new, None, "id", 5, b"{}"), one(5));
    }
}
