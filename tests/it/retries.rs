//! Retry tests.
