//! The end-to-end suite's library: the world each test runs in comes from `webhooks-harness`
//! (shared with the benchmark and the soak); its modules are re-exported here under the paths the
//! tests in `tests/it` use. [`browser`] drives a headless Chromium for the console's tests.

pub mod browser;

pub use webhooks_harness::{
    broker, postgres, process, rabbit, receiver, seed, standalone, wait, world,
};
