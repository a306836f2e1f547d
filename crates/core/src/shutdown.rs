//! SIGTERM and SIGINT both cancel one root token; every loop of a service watches it. A fault no
//! retry can mend ([`Fatal`]) cancels it too, and makes the service's end an error.

use std::sync::{Arc, OnceLock};
use tokio_util::sync::CancellationToken;

/// Why a service stopped of itself, when it did: set once by the task that found a fault no retry
/// can mend (a database whose schema this build must not use), read when the service ends.
#[derive(Clone, Debug, Default)]
pub struct Fatal(Arc<OnceLock<String>>);

impl Fatal {
    /// Records `reason` (the first one stays), logs it and cancels `shutdown`.
    pub fn stop(&self, reason: String, shutdown: &CancellationToken) {
        tracing::error!(error = %reason, "stopping: this cannot be retried");
        let _ = self.0.set(reason);
        shutdown.cancel();
    }

    /// An error when the service stopped of itself.
    pub fn outcome(&self) -> anyhow::Result<()> {
        match self.0.get() {
            Some(reason) => Err(anyhow::anyhow!("{reason}")),
            None => Ok(()),
        }
    }
}

/// Cancels `token` on the first SIGTERM or SIGINT.
pub fn cancel_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = ctrl_c => {}
                        _ = term.recv() => {}
                    }
                }
                Err(_) => {
                    let _ = ctrl_c.await;
                }
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown requested");
        token.cancel();
    });
}
