//! The management API's bearer token (`ADMIN_TOKEN`): the one configured must be strong enough
//! to guard every project, or the dispatcher refuses to start; none configured, one is generated.
//!
//! "Strong" is judged on what can be told without knowing how the token was made: at least
//! [`MIN_CHARS`] visible ASCII characters, not a handful of characters repeated, and not made of
//! the words placeholders and examples are made of (`change-me`, `admin`, `secret`, …). A token
//! from `openssl rand -hex 32` (or the generator here) always passes.

use webhooks_core::secret::Secret;

/// Fewest characters of a configured token: 32 hex digits are 128 random bits.
pub const MIN_CHARS: usize = 32;

/// Fewest different characters: 32 random hex digits have fewer than 8 different ones about
/// once in 26 million draws; "aaaa…", "abab…" or a word repeated have far fewer.
const MIN_DISTINCT: usize = 8;

/// Words that placeholders, examples and test tokens are made of. A token made only of these
/// (in any case, between any separators or digits) is refused whatever its length.
const PLACEHOLDER_WORDS: &[&str] = &[
    "admin",
    "administrator",
    "api",
    "bearer",
    "bench",
    "change",
    "changeme",
    "default",
    "demo",
    "dev",
    "development",
    "example",
    "fixme",
    "for",
    "here",
    "insert",
    "key",
    "letmein",
    "local",
    "me",
    "my",
    "password",
    "passwd",
    "placeholder",
    "prod",
    "production",
    "put",
    "qwerty",
    "replace",
    "root",
    "sample",
    "secret",
    "staging",
    "test",
    "testing",
    "todo",
    "token",
    "webhook",
    "webhooks",
    "with",
    "your",
];

/// Why a configured token is refused. The text names the setting but never shows the token.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum WeakToken {
    #[error("ADMIN_TOKEN is too short: {0} characters, at least {MIN_CHARS} are needed{HOW}")]
    Short(usize),
    #[error(
        "ADMIN_TOKEN has a character a bearer token cannot carry (only visible ASCII, no spaces){HOW}"
    )]
    NotVisibleAscii,
    #[error("ADMIN_TOKEN repeats a few characters ({0} different ones), like a placeholder{HOW}")]
    Repetitive(usize),
    #[error(
        "ADMIN_TOKEN is a placeholder, made of words like \"change-me\", \"admin\" or \"secret\"{HOW}"
    )]
    Placeholder,
}

/// The remedy, at the end of every refusal.
const HOW: &str = "; make one with `openssl rand -hex 32`, or leave ADMIN_TOKEN unset to have \
                   one generated and logged at start-up";

/// The token the API is guarded by: the configured one if it is strong enough, or a generated one
/// when none (or an empty one) is configured. `Ok((token, generated))`.
pub fn choose(configured: Option<&Secret>) -> Result<(Secret, bool), WeakToken> {
    match configured {
        Some(token) if !token.expose().is_empty() => {
            check(token.expose())?;
            Ok((token.clone(), false))
        }
        _ => Ok((generate(), true)),
    }
}

/// Refuses a token an attacker could guess.
pub fn check(token: &str) -> Result<(), WeakToken> {
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(WeakToken::NotVisibleAscii);
    }
    if token.len() < MIN_CHARS {
        return Err(WeakToken::Short(token.len()));
    }
    let mut seen = [false; 128];
    for b in token.bytes() {
        seen[usize::from(b)] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < MIN_DISTINCT {
        return Err(WeakToken::Repetitive(distinct));
    }
    if made_of_placeholder_words(token) {
        return Err(WeakToken::Placeholder);
    }
    Ok(())
}

/// Whether the token's letters, lower-cased and with everything else dropped, split into
/// [`PLACEHOLDER_WORDS`] (e.g. `Change-Me-Change-Me-…`, `my-test-admin-token-for-development`).
fn made_of_placeholder_words(token: &str) -> bool {
    let letters: Vec<u8> = token
        .bytes()
        .filter(u8::is_ascii_alphabetic)
        .map(|b| b.to_ascii_lowercase())
        .collect();
    if letters.is_empty() {
        return false;
    }
    // splits[i]: the first i letters split into words.
    let mut splits = vec![false; letters.len() + 1];
    splits[0] = true;
    for end in 1..=letters.len() {
        splits[end] = PLACEHOLDER_WORDS.iter().any(|word| {
            end >= word.len()
                && splits[end - word.len()]
                && &letters[end - word.len()..end] == word.as_bytes()
        });
    }
    splits[letters.len()]
}

/// 32 random bytes, URL-safe base64 (43 characters).
pub fn generate() -> Secret {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    Secret::new(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_tokens_and_known_placeholders_are_refused() {
        for short in [
            "change-me",
            "changeme",
            "admin",
            "secret",
            "token",
            "test",
            "dev-token",
            "REPLACE_ME",
        ] {
            assert_eq!(check(short), Err(WeakToken::Short(short.len())), "{short}");
        }
        assert_eq!(check(&"e".repeat(31)), Err(WeakToken::Short(31)));
    }

    #[test]
    fn long_repetitions_are_refused() {
        assert_eq!(check(&"a".repeat(64)), Err(WeakToken::Repetitive(1)));
        assert_eq!(check(&"ab".repeat(32)), Err(WeakToken::Repetitive(2)));
        assert_eq!(check(&"0123456".repeat(5)), Err(WeakToken::Repetitive(7)));
        assert_eq!(check(&"secret".repeat(6)), Err(WeakToken::Repetitive(5)));
        assert_eq!(check(&"changeme".repeat(4)), Err(WeakToken::Repetitive(7)));
    }

    #[test]
    fn long_placeholders_made_of_words_are_refused() {
        for placeholder in [
            "Change-Me-Change-Me-Change-Me-Change-Me",
            "my-secret-admin-token-for-testing",
            "test-admin-token-test-admin-token",
            "REPLACE_ME_WITH_YOUR_API_TOKEN_HERE",
            "password1234password1234password1234",
            "webhooks-dev-token-2026-webhooks-dev-token",
        ] {
            assert!(placeholder.len() >= MIN_CHARS, "{placeholder}");
            assert_eq!(
                check(placeholder),
                Err(WeakToken::Placeholder),
                "{placeholder}"
            );
        }
    }

    #[test]
    fn spaces_and_control_characters_are_refused() {
        let good = "3f9a1c0be47d25869e0f1a2b3c4d5e6f";
        assert_eq!(check(good), Ok(()));
        for bad in [
            format!("{good} "),
            format!("{good}\n"),
            format!("{good}\t"),
            format!("{good}é"),
        ] {
            assert_eq!(check(&bad), Err(WeakToken::NotVisibleAscii), "{bad:?}");
        }
    }

    #[test]
    fn random_tokens_pass() {
        // What `openssl rand -hex 32` and `openssl rand -base64 32` give.
        for good in [
            "9c4f0e2a7b13d8654e0a9f2c1b7d3e58a0c6f4b2d9e1735a8c0b4f6e2d1a9c37",
            "q3Jx0l9P+2fNw8sVtY4kz1bR6mC7eH5uAaLdGiOpQ/M=",
            "3f9a1c0be47d25869e0f1a2b3c4d5e6f",
        ] {
            assert_eq!(check(good), Ok(()), "{good}");
        }
        for _ in 0..1000 {
            let token = generate();
            assert_eq!(
                check(token.expose()),
                Ok(()),
                "a generated token is refused"
            );
        }
    }

    #[test]
    fn unset_or_empty_generates_and_set_is_checked() {
        let (generated, was) = choose(None).unwrap();
        assert!(was && generated.expose().len() >= MIN_CHARS);
        let (_, was) = choose(Some(&Secret::new(String::new()))).unwrap();
        assert!(was);
        let strong = Secret::new("9c4f0e2a7b13d8654e0a9f2c1b7d3e58");
        let (kept, was) = choose(Some(&strong)).unwrap();
        assert!(!was);
        assert_eq!(kept.expose(), strong.expose());
        let weak = Secret::new("change-me");
        assert!(choose(Some(&weak)).is_err());
    }

    #[test]
    fn a_refusal_names_the_setting_and_the_remedy_but_not_the_token() {
        for token in [
            "hunter2",
            "hunter2 hunter2 hunter2 hunter2 hunter2",
            "hunterhunterhunterhunterhunterhunter",
        ] {
            let text = check(token).unwrap_err().to_string();
            assert!(text.starts_with("ADMIN_TOKEN "), "{text}");
            assert!(text.contains("openssl rand -hex 32"), "{text}");
            assert!(!text.contains("hunter"), "{text}");
        }
    }
}
