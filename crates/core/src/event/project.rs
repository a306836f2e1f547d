//! A project's code, checked once ([`ProjectCode::parse`]) for the events and for the API.

use std::fmt;

/// Longest project code accepted, in characters.
pub const MAX_PROJECT_CODE: usize = 64;

/// A project's code, as events carry it and as the API's paths name it: 1 to
/// [`MAX_PROJECT_CODE`] characters, none of them control characters (storage cannot hold a NUL,
/// and a code is shown and compared as written). [`ProjectCode::parse`] is the one check.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProjectCode(String);

/// Why a text is not a [`ProjectCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("must be 1 to {MAX_PROJECT_CODE} characters, none of them control characters")]
pub struct InvalidProjectCode;

impl ProjectCode {
    pub fn parse(code: impl Into<String>) -> Result<Self, InvalidProjectCode> {
        let code = code.into();
        if code.is_empty()
            || code.chars().count() > MAX_PROJECT_CODE
            || code.chars().any(char::is_control)
        {
            return Err(InvalidProjectCode);
        }
        Ok(Self(code))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl AsRef<str> for ProjectCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
