//! HTTP receivers on ports of 127.0.0.1 the kernel chooses: the tests' [`Receiver`], which keeps
//! every request and answers as scripted, and the benchmark's [`tracking::Tracking`], which keeps
//! none and matches arrivals to their publishes.
//!
//! # Layout
//! - [`listen`]: serving a router on fresh ports until dropped, counting connections.
//! - [`scripted`]: the tests' receiver.
//! - [`tracking`]: the benchmark's and the soak's receiver; [`tracker`]: what it counts.

pub mod listen;
pub mod scripted;
pub mod tracker;
pub mod tracking;

pub use scripted::{Behaviour, Received, Receiver};
