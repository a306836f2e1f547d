//! The authenticity of hand-off messages: the dispatcher signs each one it puts on
//! `webhooks.deliveries` with a key only the two services hold (`HANDOFF_KEY`), and the sender
//! reads none it cannot verify. Whoever can publish on the vhost can then no longer make a sender
//! sign a body of their choosing with a customer's secret (a carried hand-off holds the body and
//! names the webhook).
//!
//! The signature is `v1,<base64 HMAC-SHA256>` in the header [`SIGNATURE_HEADER`], over the
//! message's `type` property (which says how the body is read), its routing key (the queue it was
//! meant for: installations sharing a vhost and a key cannot swap messages) and its body, byte for
//! byte, each of the first two preceded by its length so no field can borrow another's bytes.
//!
//! Keys rotate without a stop: the sender accepts its `HANDOFF_KEY` and `HANDOFF_KEY_PREVIOUS`,
//! the dispatcher signs with its `HANDOFF_KEY` (see [`HandoffKeys`]).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::labels::LabelValue;
use crate::secret::Secret;

/// The AMQP header that carries a hand-off's signature.
pub const SIGNATURE_HEADER: &str = "x-handoff-signature";
/// Fewest bytes of a key: 32 random bytes, or 32 hex digits (128 bits), at the least.
pub const MIN_KEY_BYTES: usize = 32;
/// Fewest different bytes in a key: refuses `aaaa…` or a short word repeated to length.
const MIN_DISTINCT_BYTES: usize = 8;
/// What every signature starts with, naming this scheme.
const VERSION: &str = "v1,";
/// Keeps these MACs apart from any other use of the same key.
const DOMAIN: &[u8] = b"webhooks.handoff.v1\0";

/// Why a key setting is refused at start-up. The text names the setting, never its value.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "{0} is not set; both services need the same one (make it with `openssl rand -hex 32`)"
    )]
    Missing(&'static str),
    #[error(
        "{0} is too short: {1} bytes, at least {MIN_KEY_BYTES} are needed (make one with `openssl rand -hex 32`)"
    )]
    Short(&'static str, usize),
    #[error(
        "{0} repeats a few characters ({1} different ones), like a placeholder (make one with `openssl rand -hex 32`)"
    )]
    Repetitive(&'static str, usize),
}

/// Why a hand-off message is refused; its text becomes the dead letter's reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("hand-off without a signature ({SIGNATURE_HEADER})")]
    Missing,
    #[error("hand-off signature is not a v1 HMAC-SHA256")]
    Malformed,
    #[error("hand-off signature matches no HANDOFF_KEY")]
    Mismatch,
}

/// The `reason` label of the sender's `handoffs_refused_total`.
impl LabelValue for Refusal {
    const ALL: &'static [Self] = &[Self::Missing, Self::Malformed, Self::Mismatch];
    fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Mismatch => "mismatch",
        }
    }
}

/// One key, checked for strength and ready to sign. `Debug` shows nothing of it.
#[derive(Clone)]
pub struct HandoffKey(Hmac<Sha256>);

impl HandoffKey {
    /// The key of the setting `name`: refused when unset, empty, short or repetitive.
    pub fn from_setting(name: &'static str, value: Option<&Secret>) -> Result<Self, KeyError> {
        let bytes = value
            .map(|v| v.expose().as_bytes())
            .filter(|b| !b.is_empty())
            .ok_or(KeyError::Missing(name))?;
        if bytes.len() < MIN_KEY_BYTES {
            return Err(KeyError::Short(name, bytes.len()));
        }
        let mut seen = [false; 256];
        for b in bytes {
            seen[usize::from(*b)] = true;
        }
        let distinct = seen.iter().filter(|s| **s).count();
        if distinct < MIN_DISTINCT_BYTES {
            return Err(KeyError::Repetitive(name, distinct));
        }
        let mac = Hmac::<Sha256>::new_from_slice(bytes).expect("HMAC takes keys of any length");
        Ok(Self(mac))
    }

    /// The signature of a message with `type` property `kind`, published with `routing_key`.
    pub fn sign(&self, kind: Option<&str>, routing_key: &str, body: &[u8]) -> String {
        let tag = self.mac(kind, routing_key, body).finalize().into_bytes();
        format!("{VERSION}{}", STANDARD.encode(tag))
    }

    fn mac(&self, kind: Option<&str>, routing_key: &str, body: &[u8]) -> Hmac<Sha256> {
        let mut mac = self.0.clone();
        mac.update(DOMAIN);
        for field in [kind.unwrap_or(""), routing_key] {
            mac.update(&(field.len() as u64).to_be_bytes());
            mac.update(field.as_bytes());
        }
        mac.update(body);
        mac
    }
}

impl std::fmt::Debug for HandoffKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HandoffKey(***)")
    }
}

/// The keys a sender accepts: its `HANDOFF_KEY`, and during a rotation `HANDOFF_KEY_PREVIOUS`.
///
/// A rotation, one service at a time: give the senders the new key with the old one as previous;
/// then give the dispatchers the new key; once the hand-offs signed with the old key are gone
/// (they live for `HANDOFF_GRACE` at most), drop the previous key from the senders.
#[derive(Clone, Debug)]
pub struct HandoffKeys {
    current: HandoffKey,
    previous: Option<HandoffKey>,
}

impl HandoffKeys {
    /// From the settings `HANDOFF_KEY` (required) and `HANDOFF_KEY_PREVIOUS` (unset or empty: none).
    pub fn from_settings(
        current: Option<&Secret>,
        previous: Option<&Secret>,
    ) -> Result<Self, KeyError> {
        let current = HandoffKey::from_setting("HANDOFF_KEY", current)?;
        let previous = previous
            .filter(|p| !p.expose().is_empty())
            .map(|p| HandoffKey::from_setting("HANDOFF_KEY_PREVIOUS", Some(p)))
            .transpose()?;
        Ok(Self { current, previous })
    }

    /// Whether `signature` (the [`SIGNATURE_HEADER`], if any) is one of these keys' for the
    /// message; compared in constant time.
    pub fn verify(
        &self,
        kind: Option<&str>,
        routing_key: &str,
        body: &[u8],
        signature: Option<&str>,
    ) -> Result<(), Refusal> {
        let signature = signature.ok_or(Refusal::Missing)?;
        let tag = signature
            .strip_prefix(VERSION)
            .and_then(|b64| STANDARD.decode(b64).ok())
            .filter(|tag| tag.len() == 32)
            .ok_or(Refusal::Malformed)?;
        let matches =
            |key: &HandoffKey| key.mac(kind, routing_key, body).verify_slice(&tag).is_ok();
        if matches(&self.current) || self.previous.as_ref().is_some_and(matches) {
            Ok(())
        } else {
            Err(Refusal::Mismatch)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "5f1c9e27a0b84d36e1f7a2c90b3d5e48";
    const OTHER: &str = "c07e4a91d2b35f86a1e0d9c7b4f2a635";
    const QUEUE: &str = "webhooks.deliveries";
    const BODY: &[u8] = br#"{"type":"deliver.v2","events":[]}"#;

    fn key(value: &str) -> HandoffKey {
        HandoffKey::from_setting("HANDOFF_KEY", Some(&Secret::new(value))).expect("a good key")
    }

    fn keys(current: &str, previous: Option<&str>) -> HandoffKeys {
        HandoffKeys::from_settings(
            Some(&Secret::new(current)),
            previous.map(Secret::new).as_ref(),
        )
        .expect("good keys")
    }

    #[test]
    fn a_signed_message_verifies_as_it_was_sent() {
        let signature = key(KEY).sign(Some("deliver.v2"), QUEUE, BODY);
        assert!(signature.starts_with("v1,"), "{signature}");
        let keys = keys(KEY, None);
        assert_eq!(
            keys.verify(Some("deliver.v2"), QUEUE, BODY, Some(&signature)),
            Ok(())
        );
        // A message without a `type` (ids to claim) is signed and checked as such.
        let untyped = key(KEY).sign(None, QUEUE, BODY);
        assert_eq!(keys.verify(None, QUEUE, BODY, Some(&untyped)), Ok(()));
    }

    #[test]
    fn a_changed_body_type_or_queue_fails() {
        let signature = key(KEY).sign(Some("deliver.v2"), QUEUE, BODY);
        let keys = keys(KEY, None);
        let mut tampered = BODY.to_vec();
        tampered[2] ^= 1;
        assert_eq!(
            keys.verify(Some("deliver.v2"), QUEUE, &tampered, Some(&signature)),
            Err(Refusal::Mismatch)
        );
        for kind in [None, Some("deliver.v1"), Some("")] {
            assert_eq!(
                keys.verify(kind, QUEUE, BODY, Some(&signature)),
                Err(Refusal::Mismatch),
                "{kind:?}"
            );
        }
        assert_eq!(
            keys.verify(
                Some("deliver.v2"),
                "other.webhooks.deliveries",
                BODY,
                Some(&signature)
            ),
            Err(Refusal::Mismatch)
        );
        // Bytes moved from one field to the next make another message.
        let shifted = key(KEY).sign(Some("deliver.v"), &format!("2{QUEUE}"), BODY);
        assert_ne!(shifted, signature);
    }

    #[test]
    fn another_key_fails_and_the_previous_key_is_accepted() {
        let by_other = key(OTHER).sign(Some("deliver.v2"), QUEUE, BODY);
        assert_eq!(
            keys(KEY, None).verify(Some("deliver.v2"), QUEUE, BODY, Some(&by_other)),
            Err(Refusal::Mismatch)
        );
        // Mid-rotation: the sender holds the new key and the old one as previous.
        let rotating = keys(KEY, Some(OTHER));
        assert_eq!(
            rotating.verify(Some("deliver.v2"), QUEUE, BODY, Some(&by_other)),
            Ok(())
        );
        let by_new = key(KEY).sign(Some("deliver.v2"), QUEUE, BODY);
        assert_eq!(
            rotating.verify(Some("deliver.v2"), QUEUE, BODY, Some(&by_new)),
            Ok(())
        );
        // An empty previous key is none.
        let empty = HandoffKeys::from_settings(Some(&Secret::new(KEY)), Some(&Secret::new("")))
            .expect("keys");
        assert_eq!(
            empty.verify(Some("deliver.v2"), QUEUE, BODY, Some(&by_other)),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn a_missing_or_malformed_signature_fails() {
        let keys = keys(KEY, None);
        assert_eq!(
            keys.verify(Some("deliver.v2"), QUEUE, BODY, None),
            Err(Refusal::Missing)
        );
        let good = key(KEY).sign(Some("deliver.v2"), QUEUE, BODY);
        for bad in [
            "",
            "v1,",
            "v1,!!!",
            &good[3..],
            &good.replacen("v1,", "v2,", 1),
            &good[..good.len() - 4],
        ] {
            assert_eq!(
                keys.verify(Some("deliver.v2"), QUEUE, BODY, Some(bad)),
                Err(Refusal::Malformed),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn weak_or_missing_keys_are_refused_without_showing_them() {
        let refused = |value: Option<&str>| {
            HandoffKey::from_setting("HANDOFF_KEY", value.map(Secret::new).as_ref())
                .expect_err("refused")
        };
        assert_eq!(refused(None), KeyError::Missing("HANDOFF_KEY"));
        assert_eq!(refused(Some("")), KeyError::Missing("HANDOFF_KEY"));
        assert_eq!(
            refused(Some("short-key-hunter2")),
            KeyError::Short("HANDOFF_KEY", 17)
        );
        assert_eq!(
            refused(Some(&"ab".repeat(20))),
            KeyError::Repetitive("HANDOFF_KEY", 2)
        );
        assert!(
            !refused(Some("short-key-hunter2"))
                .to_string()
                .contains("hunter2")
        );
        let previous = HandoffKeys::from_settings(Some(&Secret::new(KEY)), Some(&Secret::new("x")))
            .expect_err("a short previous key");
        assert_eq!(previous, KeyError::Short("HANDOFF_KEY_PREVIOUS", 1));
        assert_eq!(format!("{:?}", key(KEY)), "HandoffKey(***)");
        assert!(!format!("{:?}", keys(KEY, Some(OTHER))).contains(KEY));
    }
}
