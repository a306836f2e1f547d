//! DNS resolution that refuses forbidden destinations.
//!
//! Every connection the HTTP client opens to a named host goes through [`GuardedResolver`], which
//! resolves the name and keeps only addresses [`Destinations`] allows. The check happens on the very
//! addresses that are then connected to, so a DNS answer that changes between a check and the
//! connection cannot slip through. URLs with a literal IP skip resolvers; `attempt` checks those.
//!
//! Names are looked up by the system's resolver (`getaddrinfo`: `/etc/hosts`, `/etc/resolv.conf`,
//! nsswitch), which blocks a thread of tokio's blocking pool for as long as it takes, and a
//! thread cannot be cancelled. So a lookup is bounded twice: the attempt waits for it at most
//! [`LOOKUP_SHARE`] of its connection time, then fails as a DNS failure; and at most
//! [`MAX_LOOKUPS`] lookups run at once, a lookup keeping its slot until the system returns, even
//! after the attempt gave up on it. A resolver that stops answering then holds [`MAX_LOOKUPS`]
//! threads, not one per delivery, and the rest of the pool stays free.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use webhooks_core::destination::Destinations;

/// Most name lookups running at once in a process.
pub const MAX_LOOKUPS: usize = 64;

/// The part of the connection's time (`DELIVERY_TIMEOUT`, at most 10 s) a lookup may take, so that
/// a resolver too slow shows as a DNS failure rather than as the connection's timeout.
pub const LOOKUP_SHARE: f64 = 0.8;

/// A blocking lookup of a name's addresses (port 0).
type Lookup = Arc<dyn Fn(&str) -> std::io::Result<Vec<SocketAddr>> + Send + Sync>;

#[derive(Clone)]
pub struct GuardedResolver {
    destinations: Destinations,
    lookup: Lookup,
    slots: Arc<Semaphore>,
    timeout: Duration,
}

impl GuardedResolver {
    /// A resolver for connections that may take `connect_timeout`, through the system's resolver.
    pub fn new(destinations: Destinations, connect_timeout: Duration) -> Self {
        Self::with_lookup(
            destinations,
            Arc::new(system_lookup),
            MAX_LOOKUPS,
            connect_timeout.mul_f64(LOOKUP_SHARE),
        )
    }

    fn with_lookup(
        destinations: Destinations,
        lookup: Lookup,
        max_lookups: usize,
        timeout: Duration,
    ) -> Self {
        Self {
            destinations,
            lookup,
            slots: Arc::new(Semaphore::new(max_lookups.max(1))),
            timeout,
        }
    }

    /// The addresses of `host`, within the lookup's time, waiting for a slot included.
    async fn addresses(&self, host: &str) -> Result<Vec<SocketAddr>, LookupFailed> {
        let (lookup, slots, name) = (self.lookup.clone(), self.slots.clone(), host.to_owned());
        let work = async move {
            let slot = slots.acquire_owned().await.expect("never closed");
            // The slot moves into the blocking call: it is freed when the system returns, not
            // when the attempt stops waiting.
            tokio::task::spawn_blocking(move || {
                let _slot = slot;
                lookup(&name)
            })
            .await
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(Ok(found)) => found.map_err(LookupFailed),
            Ok(Err(panicked)) => Err(LookupFailed(std::io::Error::other(panicked))),
            // Not `ErrorKind::TimedOut`: the client would report that as the attempt's timeout.
            Err(_) => Err(LookupFailed(std::io::Error::other(format!(
                "no answer within {}",
                webhooks_core::duration::format(self.timeout)
            )))),
        }
    }
}

fn system_lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    use std::net::ToSocketAddrs;
    Ok((host, 0).to_socket_addrs()?.collect())
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
        let resolver = self.clone();
        Box::pin(async move {
            let destinations = &resolver.destinations;
            let host = name.as_str().to_owned();
            // Port 0: the client replaces it with the URL's port.
            let found = resolver.addresses(&host).await?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Mutex, mpsc};
    use std::time::Instant;

    fn loopback_allowed() -> Destinations {
        Destinations::new(vec!["127.0.0.0/8".parse().unwrap()])
    }

    fn localhost() -> Vec<SocketAddr> {
        vec!["127.0.0.1:0".parse().unwrap()]
    }

    /// A system resolver that does not answer until `release` is dropped, counting the threads
    /// blocked in it (now, and at most).
    struct Stuck {
        lookup: Lookup,
        release: mpsc::Sender<()>,
        answering: Arc<AtomicBool>,
        blocked: Arc<AtomicUsize>,
        most: Arc<AtomicUsize>,
    }

    fn stuck() -> Stuck {
        let (release, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let answering = Arc::new(AtomicBool::new(false));
        let blocked = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let lookup: Lookup = {
            let (answering, blocked, most) = (answering.clone(), blocked.clone(), most.clone());
            Arc::new(move |_| {
                let now = blocked.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                if !answering.load(Ordering::SeqCst) {
                    // Returns once the sender is dropped.
                    let _ = wait.lock().unwrap().recv();
                }
                blocked.fetch_sub(1, Ordering::SeqCst);
                Ok(localhost())
            })
        };
        Stuck {
            lookup,
            release,
            answering,
            blocked,
            most,
        }
    }

    #[tokio::test]
    async fn a_lookup_that_does_not_answer_in_time_is_a_dns_failure() {
        let resolver = stuck();
        let guarded = GuardedResolver::with_lookup(
            loopback_allowed(),
            resolver.lookup.clone(),
            4,
            Duration::from_millis(200),
        );
        let started = Instant::now();
        let error = guarded.addresses("slow.example").await.unwrap_err();
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
        assert_eq!(error.0.to_string(), "no answer within 200ms");
        // Reported as DNS's failure, not as the attempt's timeout (see `Failure::classify`).
        assert_ne!(error.0.kind(), std::io::ErrorKind::TimedOut);
        drop(resolver.release);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_given_up_on_hold_their_thread_within_the_cap() {
        const CAP: usize = 3;
        let resolver = stuck();
        let guarded = GuardedResolver::with_lookup(
            loopback_allowed(),
            resolver.lookup.clone(),
            CAP,
            Duration::from_millis(100),
        );
        // Many lookups against a resolver that does not answer: each fails in time...
        let tries: Vec<_> = (0..4 * CAP)
            .map(|n| {
                let guarded = guarded.clone();
                tokio::spawn(async move { guarded.addresses(&format!("h{n}.example")).await })
            })
            .collect();
        for attempt in tries {
            assert!(attempt.await.unwrap().is_err());
        }
        // ...while at most CAP threads are blocked in the resolver, and stay so after the
        // lookups were given up on.
        let deadline = Instant::now() + Duration::from_secs(5);
        while resolver.blocked.load(Ordering::SeqCst) < CAP && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(resolver.blocked.load(Ordering::SeqCst), CAP);
        assert!(
            guarded.addresses("more.example").await.is_err(),
            "no slot free"
        );
        assert_eq!(resolver.most.load(Ordering::SeqCst), CAP);

        // Once the resolver answers, the slots come back.
        resolver.answering.store(true, Ordering::SeqCst);
        drop(resolver.release);
        let deadline = Instant::now() + Duration::from_secs(5);
        let found = loop {
            match guarded.addresses("after.example").await {
                Ok(found) => break found,
                Err(e) => assert!(Instant::now() < deadline, "still failing: {e}"),
            }
        };
        assert_eq!(found, localhost());
        assert!(resolver.most.load(Ordering::SeqCst) <= CAP);
    }

    #[tokio::test]
    async fn the_system_resolver_reads_etc_hosts() {
        let guarded = GuardedResolver::new(loopback_allowed(), Duration::from_secs(5));
        let found = guarded
            .addresses("localhost")
            .await
            .expect("localhost resolves");
        assert!(found.iter().all(|a| a.ip().is_loopback()), "{found:?}");
    }
}
