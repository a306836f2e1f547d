//! The SSRF guard: `parse_net` on `ALLOWED_TARGETS` text and `Destinations::check` on any address.
//!
//! Input layout: 16 bytes of an IPv6 address, then `ALLOWED_TARGETS` text (comma-separated, as the
//! configuration reads it; entries that do not parse are left out, as start-up would refuse them).
//! The IPv4 address is the IPv6 address's last 4 bytes. Property: the IPv4-mapped form
//! `::ffff:a.b.c.d` gets the same verdict, for the same reason, as `a.b.c.d` itself, whatever the
//! allowed networks, so a mapped literal or DNS answer can never slip past the guard.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use webhooks_core::destination::{Destinations, parse_net};

fuzz_target!(|data: &[u8]| {
    let Some((addr, text)) = data.split_first_chunk::<16>() else {
        return;
    };
    let allowed = String::from_utf8_lossy(text)
        .split(',')
        .filter_map(|entry| parse_net(entry).ok())
        .collect();
    let policy = Destinations::new(allowed);

    let v6 = Ipv6Addr::from(*addr);
    let _ = policy.check(IpAddr::V6(v6));

    let [.., a, b, c, d] = *addr;
    let v4 = Ipv4Addr::new(a, b, c, d);
    let plain = policy.check(IpAddr::V4(v4));
    let mapped = policy.check(IpAddr::V6(v4.to_ipv6_mapped()));
    match (&plain, &mapped) {
        (Ok(()), Ok(())) => {}
        (Err(p), Err(m)) => assert_eq!(p.kind, m.kind, "{v4}: refused for different reasons"),
        _ => panic!("{v4}: {plain:?}, but its mapped form: {mapped:?}"),
    }
});
