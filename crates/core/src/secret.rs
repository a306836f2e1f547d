//! Secrets that never print, so they cannot reach logs, spans, `--help` or error messages by
//! accident: a webhook secret or the admin token ([`Secret`]), and the password in a connection
//! URL ([`ConnectionUrl`]).

use std::fmt;

/// A customer's webhook secret or the admin token. `Debug` and `Display` show `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that must send or compare it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares with `candidate` in time that does not depend on where they differ.
    pub fn constant_time_eq(&self, candidate: &[u8]) -> bool {
        use subtle::ConstantTimeEq;
        let ours = self.0.as_bytes();
        // Length is not secret (tokens have a fixed length); content is.
        ours.len() == candidate.len() && bool::from(ours.ct_eq(candidate))
    }
}

/// From a flag or environment variable (clap reads it through `From<String>`).
impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A broker or database URL, which may hold a password (`scheme://user:password@host/...`, or a
/// `password=` parameter). `Debug` and `Display` show it with the password as `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionUrl(String);

impl ConnectionUrl {
    /// The URL itself, for the one place that connects with it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with its password, if any, replaced by `***`.
    pub fn redacted(&self) -> String {
        let mut text = self.0.clone();
        // The userinfo of `scheme://user:password@host`, up to the last `@` before any query or
        // fragment: a password may hold a `/` its writer forgot to encode (a vhost or database
        // name with an `@` is then shown hidden, which is the safer mistake).
        if let Some(start) = text.find("://").map(|i| i + 3) {
            let end = text[start..]
                .find(['?', '#'])
                .map_or(text.len(), |i| start + i);
            if let Some(at) = text[start..end].rfind('@').map(|i| start + i)
                && let Some(colon) = text[start..at].find(':').map(|i| start + i)
            {
                text.replace_range(colon + 1..at, "***");
            }
        }
        // A `password=` parameter, in a query (`?password=...&`) or a key-value connection
        // string (`host=... password=...`).
        let mut from = 0;
        while let Some(found) = text[from..].find("password=") {
            let value = from + found + "password=".len();
            let end = text[value..]
                .find(['&', ' ', '#'])
                .map_or(text.len(), |i| value + i);
            text.replace_range(value..end, "***");
            from = value + 3;
        }
        text
    }
}

/// From a flag or environment variable (clap reads it through `From<String>`).
impl From<String> for ConnectionUrl {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for ConnectionUrl {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl fmt::Debug for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.redacted())
    }
}

impl fmt::Display for ConnectionUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_prints() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "*** ***");
        assert!(!format!("{:?}", Some(&secret)).contains("hunter2"));
    }

    #[test]
    fn compares_whole_value() {
        let secret = Secret::new("abc");
        assert!(secret.constant_time_eq(b"abc"));
        assert!(!secret.constant_time_eq(b"abd"));
        assert!(!secret.constant_time_eq(b"ab"));
        assert!(!secret.constant_time_eq(b"abcd"));
    }

    #[test]
    fn a_connection_url_prints_without_its_password() {
        let cases = [
            (
                "amqp://guest:hunter2@127.0.0.1:5672/%2f",
                "amqp://guest:***@127.0.0.1:5672/%2f",
            ),
            (
                "postgres://app:p%40ss:w@db.internal/webhooks?sslmode=require",
                "postgres://app:***@db.internal/webhooks?sslmode=require",
            ),
            ("amqps://:hunter2@broker", "amqps://:***@broker"),
            ("amqp://u:hun/ter2@h/v", "amqp://u:***@h/v"),
            (
                "postgres://app@db/webhooks?password=hunter2&sslmode=disable",
                "postgres://app@db/webhooks?password=***&sslmode=disable",
            ),
            (
                "host=db user=app password=hunter2 dbname=webhooks",
                "host=db user=app password=*** dbname=webhooks",
            ),
            // Nothing to hide.
            (
                "postgres://postgres@127.0.0.1:5432/webhooks",
                "postgres://postgres@127.0.0.1:5432/webhooks",
            ),
            ("amqp://broker/vhost?x=a@b:c", "amqp://broker/vhost?x=a@b:c"),
        ];
        for (url, shown) in cases {
            let url = ConnectionUrl::from(url);
            assert_eq!(url.to_string(), shown);
            assert_eq!(format!("{url:?}"), format!("{shown:?}"));
        }
        assert_eq!(
            ConnectionUrl::from("amqp://u:hunter2@h/").expose(),
            "amqp://u:hunter2@h/"
        );
    }
}
