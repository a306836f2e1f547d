//! Tokens scoped to one project, with an expiry, that any dispatcher checks without a lookup.
//!
//! A token is `whp_<project>.<expires>.<signature>`: the project's code (base64url), the Unix
//! second it expires at, and an HMAC-SHA256 of `v1.<project>.<expires>` (base64url). The key is
//! derived from `ADMIN_TOKEN` (an HMAC of it over a fixed label), so no setting is added, every
//! dispatcher given the same `ADMIN_TOKEN` accepts the same tokens, and rotating `ADMIN_TOKEN`
//! revokes every project token at once. There is no other way to revoke one before it expires:
//! keep their lifetimes short.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use webhooks_core::event::ProjectCode;
use webhooks_core::secret::Secret;

/// What every project token starts with.
pub const PREFIX: &str = "whp_";
/// What the key is derived for: another use of `ADMIN_TOKEN` as a key gets another key.
const LABEL: &[u8] = b"webhooks project token v1";

/// The key project tokens are signed and checked with.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(***)")
    }
}

/// Why a presented token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not a project token, or not one signed with this key.
    Forged,
    Expired,
}

impl TokenKey {
    /// The key of the dispatchers whose `ADMIN_TOKEN` is `admin_token`.
    pub fn derive(admin_token: &Secret) -> Self {
        let mut mac = mac(admin_token.expose().as_bytes());
        mac.update(LABEL);
        Self(mac.finalize().into_bytes().into())
    }

    /// A token for `project` that expires at `expires_at` (to the second).
    pub fn mint(&self, project: &ProjectCode, expires_at: DateTime<Utc>) -> String {
        let signed = signed_part(
            &URL_SAFE_NO_PAD.encode(project.as_str()),
            expires_at.timestamp(),
        );
        let signature = URL_SAFE_NO_PAD.encode(self.sign(&signed));
        format!("{PREFIX}{signed}.{signature}")
    }

    /// The project `token` is scoped to, if this key signed it and it has not expired at `now`.
    pub fn check(&self, token: &[u8], now: DateTime<Utc>) -> Result<ProjectCode, Refused> {
        let text = std::str::from_utf8(token).map_err(|_| Refused::Forged)?;
        let rest = text.strip_prefix(PREFIX).ok_or(Refused::Forged)?;
        let (signed, signature) = rest.rsplit_once('.').ok_or(Refused::Forged)?;
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| Refused::Forged)?;
        let mut mac = mac(&self.0);
        mac.update(b"v1.");
        mac.update(signed.as_bytes());
        // Constant time: a forger learns nothing from how long a wrong signature took.
        mac.verify_slice(&signature).map_err(|_| Refused::Forged)?;
        // Signed by this key, so made by `mint`: well-formed from here on.
        let (project, expires) = signed.split_once('.').ok_or(Refused::Forged)?;
        let expires: i64 = expires.parse().map_err(|_| Refused::Forged)?;
        let project = URL_SAFE_NO_PAD
            .decode(project)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|code| ProjectCode::parse(code).ok())
            .ok_or(Refused::Forged)?;
        if now.timestamp() >= expires {
            return Err(Refused::Expired);
        }
        Ok(project)
    }

    fn sign(&self, signed: &str) -> Vec<u8> {
        let mut mac = mac(&self.0);
        mac.update(b"v1.");
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

fn mac(key: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

fn signed_part(project: &str, expires: i64) -> String {
    format!("{project}.{expires}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(admin: &str) -> TokenKey {
        TokenKey::derive(&Secret::new(admin))
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).expect("time")
    }

    #[test]
    fn a_token_names_its_project_until_it_expires() {
        let key = key("an-admin-token-of-thirty-two-chars!!");
        let project = ProjectCode::parse("DE.MO ü").expect("code");
        let token = key.mint(&project, at(1_000));
        assert!(token.starts_with(PREFIX), "{token}");
        assert_eq!(key.check(token.as_bytes(), at(999)), Ok(project));
        assert_eq!(
            key.check(token.as_bytes(), at(1_000)),
            Err(Refused::Expired)
        );
    }

    #[test]
    fn another_admin_token_or_any_change_is_refused_as_forged() {
        let key_a = key("an-admin-token-of-thirty-two-chars!!");
        let token = key_a.mint(&ProjectCode::parse("DEMO").expect("code"), at(1_000));
        let rotated = key("another-admin-token-of-32-characters");
        assert_eq!(
            rotated.check(token.as_bytes(), at(0)),
            Err(Refused::Forged),
            "rotating ADMIN_TOKEN revokes every project token"
        );
        let other = key_a.mint(&ProjectCode::parse("OTHER").expect("code"), at(1_000));
        let (_, other_signature) = other.rsplit_once('.').expect("signature");
        let (signed, _) = token.rsplit_once('.').expect("signature");
        let later = token.replace(".1000.", ".9999.");
        for forged in [
            later.as_str(),
            &format!("{signed}.{other_signature}"),
            &format!("{signed}."),
            signed,
            "whp_",
            "",
            "Bearer whp_x.1.y",
            "\u{ff}",
        ] {
            assert_eq!(
                key_a.check(forged.as_bytes(), at(0)),
                Err(Refused::Forged),
                "{forged:?}"
            );
        }
    }
}
