//! DNS resolution that refuses forbidden destinations.
//!
//! Every connection the HTTP client opens to a named host goes through [`GuardedResolver`], which
//! resolves the name and keeps only addresses [`Destinations`] allows. The check happens on the very
//! addresses that are then connected to, so a DNS answer that changes between a check and the
//! connection cannot slip through. URLs with a literal IP skip resolvers; `attempt` checks those.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use webhooks_core::destination::Destinations;

#[derive(Clone)]
pub struct GuardedResolver {
    destinations: Destinations,
}

impl GuardedResolver {
    pub fn new(destinations: Destinations) -> Self {
        Self { destinations }
    }
}

/// Every address of a name was refused; the message says why.
#[derive(Debug, thiserror::Error)]
#[error("destination refused: {0}")]
pub struct DestinationRefused(pub String);

/// The name did not resolve. Its own type so that an attempt's failure is known to be DNS's
/// without reading the system resolver's words (std reports them as an uncategorised I/O error).
#[derive(Debug, thiserror::Error)]
#[error("could not resolve the host name")]
pub struct LookupFailed(#[source] pub std::io::Error);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let destinations = self.destinations.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            // Port 0: the client replaces it with the URL's port.
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await
                .map_err(LookupFailed)?
                .collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match destinations.check(addr.ip()) {
                    Ok(()) => true,
                    Err(refused) => {
                        refusal.get_or_insert(refused);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = match refusal {
                    Some(refused) => format!("{host} resolves to {refused}"),
                    None => format!("{host} has no address"),
                };
                return Err(
                    Box::new(DestinationRefused(why)) as Box<dyn std::error::Error + Send + Sync>
                );
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}
