//! Standard Webhooks signatures: `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`.
//!
//! The key is the base64-decoded remainder of a `whsec_` secret, otherwise the secret's UTF-8 bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::secret::Secret;

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
}
