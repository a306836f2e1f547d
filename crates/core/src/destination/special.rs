//! The address blocks deliveries may not reach, as data, each row naming the registry entry it
//! comes from: the whole of IANA's IPv4 and IPv6 Special-Purpose Address Registries (RFC 6890,
//! as of 2025), globally reachable entries included (anycast services, AS112, AMT: no webhook
//! receiver lives there), and from the address-space registries IPv4 multicast, IPv6 multicast,
//! the deprecated site-local and IPv4-compatible blocks, and all IPv6 space outside global
//! unicast (2000::/3), which is reserved.
//!
//! An address takes the verdict of the most specific block that holds it. Three blocks carry an
//! IPv4 address in their last 32 bits and are judged as that address ([`Verdict::Embedded`]):
//! IPv4-mapped `::ffff:0:0/96`, IPv4-compatible `::/96`, and the well-known NAT64 prefix
//! `64:ff9b::/96`, which DNS64 answers with on IPv6-only networks, so a public IPv4 receiver stays
//! reachable there. The other blocks with an IPv4 address inside are refused whatever it is:
//! 6to4 `2002::/16` (deprecated by RFC 7526; the address inside is a relay's, which could be one
//! of ours), Teredo `2001::/32` (its addresses are obfuscated and it tunnels through relays), and
//! the local-use NAT64 prefix `64:ff9b:1::/48` (where its operator puts the IPv4 address varies).
//! `ALLOWED_TARGETS` opens any of them.

use std::net::{Ipv4Addr, Ipv6Addr};

/// One block of addresses.
#[derive(Debug)]
pub struct Block<A> {
    pub network: A,
    pub prefix: u8,
    /// Said in a refusal: "{addr} is a {kind} address".
    pub kind: &'static str,
    pub registry: Registry,
    /// The registry entry's name and the RFC that made it.
    pub entry: &'static str,
    pub verdict: Verdict,
}

/// Where a block comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registry {
    /// iana-ipv4-special-registry
    Ipv4Special,
    /// iana-ipv6-special-registry
    Ipv6Special,
    /// ipv4-address-space, multicast-addresses
    Ipv4Space,
    /// ipv6-address-space
    Ipv6Space,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Refuse,
    /// Judged as the IPv4 address in the last 32 bits. `as_written`: an allowed IPv6 network may
    /// also match the address as written (NAT64); otherwise only its IPv4 form counts, so that a
    /// broad IPv6 network such as `::/0` cannot open every IPv4 address in mapped form.
    Embedded {
        as_written: bool,
    },
}

use Registry::{Ipv4Space, Ipv4Special, Ipv6Space, Ipv6Special};
use Verdict::{Embedded, Refuse};

const fn v4(
    octets: [u8; 4],
    prefix: u8,
    kind: &'static str,
    registry: Registry,
    entry: &'static str,
) -> Block<Ipv4Addr> {
    let [a, b, c, d] = octets;
    Block {
        network: Ipv4Addr::new(a, b, c, d),
        prefix,
        kind,
        registry,
        entry,
        verdict: Refuse,
    }
}

const fn v6(
    s: [u16; 8],
    prefix: u8,
    kind: &'static str,
    registry: Registry,
    entry: &'static str,
    verdict: Verdict,
) -> Block<Ipv6Addr> {
    Block {
        network: Ipv6Addr::new(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]),
        prefix,
        kind,
        registry,
        entry,
        verdict,
    }
}

#[rustfmt::skip]
pub const IPV4: &[Block<Ipv4Addr>] = &[
    v4([0, 0, 0, 0], 8, "\"this network\"", Ipv4Special, "\"This network\", RFC 791 §3.2"),
    v4([0, 0, 0, 0], 32, "unspecified", Ipv4Special, "\"This host on this network\", RFC 1122 §3.2.1.3"),
    v4([10, 0, 0, 0], 8, "private", Ipv4Special, "Private-Use, RFC 1918"),
    v4([100, 64, 0, 0], 10, "shared (CGNAT)", Ipv4Special, "Shared Address Space, RFC 6598"),
    v4([127, 0, 0, 0], 8, "loopback", Ipv4Special, "Loopback, RFC 1122 §3.2.1.3"),
    v4([169, 254, 0, 0], 16, "link-local", Ipv4Special, "Link Local, RFC 3927"),
    v4([172, 16, 0, 0], 12, "private", Ipv4Special, "Private-Use, RFC 1918"),
    v4([192, 0, 0, 0], 24, "IETF protocol", Ipv4Special, "IETF Protocol Assignments, RFC 6890 §2.1"),
    v4([192, 0, 0, 0], 29, "IPv4 service continuity", Ipv4Special, "IPv4 Service Continuity Prefix, RFC 7335"),
    v4([192, 0, 0, 8], 32, "IPv4 dummy", Ipv4Special, "IPv4 dummy address, RFC 7600"),
    v4([192, 0, 0, 9], 32, "PCP anycast", Ipv4Special, "Port Control Protocol Anycast, RFC 7723"),
    v4([192, 0, 0, 10], 32, "TURN anycast", Ipv4Special, "Traversal Using Relays around NAT Anycast, RFC 8155"),
    v4([192, 0, 0, 170], 32, "NAT64/DNS64 discovery", Ipv4Special, "NAT64/DNS64 Discovery, RFC 8880, RFC 7050 §2.2"),
    v4([192, 0, 0, 171], 32, "NAT64/DNS64 discovery", Ipv4Special, "NAT64/DNS64 Discovery, RFC 8880, RFC 7050 §2.2"),
    v4([192, 0, 2, 0], 24, "documentation", Ipv4Special, "Documentation (TEST-NET-1), RFC 5737"),
    v4([192, 31, 196, 0], 24, "AS112", Ipv4Special, "AS112-v4, RFC 7535"),
    v4([192, 52, 193, 0], 24, "AMT", Ipv4Special, "AMT, RFC 7450"),
    v4([192, 88, 99, 0], 24, "6to4 relay anycast (deprecated)", Ipv4Special, "Deprecated (6to4 Relay Anycast), RFC 7526"),
    v4([192, 168, 0, 0], 16, "private", Ipv4Special, "Private-Use, RFC 1918"),
    v4([192, 175, 48, 0], 24, "AS112", Ipv4Special, "Direct Delegation AS112 Service, RFC 7534"),
    v4([198, 18, 0, 0], 15, "benchmarking", Ipv4Special, "Benchmarking, RFC 2544"),
    v4([198, 51, 100, 0], 24, "documentation", Ipv4Special, "Documentation (TEST-NET-2), RFC 5737"),
    v4([203, 0, 113, 0], 24, "documentation", Ipv4Special, "Documentation (TEST-NET-3), RFC 5737"),
    v4([240, 0, 0, 0], 4, "reserved", Ipv4Special, "Reserved, RFC 1112 §4"),
    v4([255, 255, 255, 255], 32, "broadcast", Ipv4Special, "Limited Broadcast, RFC 8190, RFC 919 §7"),
    v4([224, 0, 0, 0], 4, "multicast", Ipv4Space, "Multicast, RFC 5771"),
];

#[rustfmt::skip]
pub const IPV6: &[Block<Ipv6Addr>] = &[
    v6([0, 0, 0, 0, 0, 0, 0, 1], 128, "loopback", Ipv6Special, "Loopback Address, RFC 4291", Refuse),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 128, "unspecified", Ipv6Special, "Unspecified Address, RFC 4291", Refuse),
    v6([0, 0, 0, 0, 0, 0xffff, 0, 0], 96, "IPv4-mapped", Ipv6Special, "IPv4-mapped Address, RFC 4291", Embedded { as_written: false }),
    v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96, "NAT64", Ipv6Special, "IPv4-IPv6 Translat., RFC 6052", Embedded { as_written: true }),
    v6([0x64, 0xff9b, 1, 0, 0, 0, 0, 0], 48, "local-use NAT64", Ipv6Special, "IPv4-IPv6 Translat., RFC 8215", Refuse),
    v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64, "discard-only", Ipv6Special, "Discard-Only Address Block, RFC 6666", Refuse),
    v6([0x100, 0, 0, 1, 0, 0, 0, 0], 64, "dummy", Ipv6Special, "Dummy IPv6 Prefix, RFC 9780", Refuse),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 23, "IETF protocol", Ipv6Special, "IETF Protocol Assignments, RFC 2928", Refuse),
    v6([0x2001, 0, 0, 0, 0, 0, 0, 0], 32, "Teredo", Ipv6Special, "TEREDO, RFC 4380, RFC 8190", Refuse),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 1], 128, "PCP anycast", Ipv6Special, "Port Control Protocol Anycast, RFC 7723", Refuse),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 2], 128, "TURN anycast", Ipv6Special, "Traversal Using Relays around NAT Anycast, RFC 8155", Refuse),
    v6([0x2001, 1, 0, 0, 0, 0, 0, 3], 128, "DNS-SD SRP anycast", Ipv6Special, "DNS-SD Service Registration Protocol Anycast, RFC 9665", Refuse),
    v6([0x2001, 2, 0, 0, 0, 0, 0, 0], 48, "benchmarking", Ipv6Special, "Benchmarking, RFC 5180", Refuse),
    v6([0x2001, 3, 0, 0, 0, 0, 0, 0], 32, "AMT", Ipv6Special, "AMT, RFC 7450", Refuse),
    v6([0x2001, 4, 0x112, 0, 0, 0, 0, 0], 48, "AS112", Ipv6Special, "AS112-v6, RFC 7535", Refuse),
    v6([0x2001, 0x10, 0, 0, 0, 0, 0, 0], 28, "ORCHID (deprecated)", Ipv6Special, "Deprecated (previously ORCHID), RFC 4843", Refuse),
    v6([0x2001, 0x20, 0, 0, 0, 0, 0, 0], 28, "ORCHIDv2", Ipv6Special, "ORCHIDv2, RFC 7343", Refuse),
    v6([0x2001, 0x30, 0, 0, 0, 0, 0, 0], 28, "drone remote ID", Ipv6Special, "Drone Remote ID Protocol Entity Tags (DETs) Prefix, RFC 9374", Refuse),
    v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32, "documentation", Ipv6Special, "Documentation, RFC 3849", Refuse),
    v6([0x2002, 0, 0, 0, 0, 0, 0, 0], 16, "6to4", Ipv6Special, "6to4, RFC 3056", Refuse),
    v6([0x2620, 0x4f, 0x8000, 0, 0, 0, 0, 0], 48, "AS112", Ipv6Special, "Direct Delegation AS112 Service, RFC 7534", Refuse),
    v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20, "documentation", Ipv6Special, "Documentation, RFC 9637", Refuse),
    v6([0x5f00, 0, 0, 0, 0, 0, 0, 0], 16, "SRv6 SID", Ipv6Special, "Segment Routing (SRv6) SIDs, RFC 9602", Refuse),
    v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7, "private (unique local)", Ipv6Special, "Unique-Local, RFC 4193, RFC 8190", Refuse),
    v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10, "link-local", Ipv6Special, "Link-Local Unicast, RFC 4291", Refuse),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 96, "IPv4-compatible", Ipv6Space, "IPv4-Compatible IPv6 Address (deprecated), RFC 4291 §2.5.5.1", Embedded { as_written: false }),
    v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10, "site-local", Ipv6Space, "Site-local (deprecated), RFC 3879", Refuse),
    v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8, "multicast", Ipv6Space, "Multicast, RFC 4291", Refuse),
    v6([0, 0, 0, 0, 0, 0, 0, 0], 3, "reserved", Ipv6Space, "Reserved by IETF (outside Global Unicast 2000::/3), RFC 4291", Refuse),
    v6([0x4000, 0, 0, 0, 0, 0, 0, 0], 2, "reserved", Ipv6Space, "Reserved by IETF (outside Global Unicast 2000::/3), RFC 4291", Refuse),
    v6([0x8000, 0, 0, 0, 0, 0, 0, 0], 1, "reserved", Ipv6Space, "Reserved by IETF (outside Global Unicast 2000::/3), RFC 4291", Refuse),
];

/// The most specific IPv4 block holding `ip`.
pub fn ipv4_block(ip: Ipv4Addr) -> Option<&'static Block<Ipv4Addr>> {
    let bits = u32::from(ip);
    IPV4.iter()
        .filter(|block| {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(block.prefix))
                .unwrap_or(0);
            bits & mask == u32::from(block.network) & mask
        })
        .max_by_key(|block| block.prefix)
}

/// The most specific IPv6 block holding `ip`.
pub fn ipv6_block(ip: Ipv6Addr) -> Option<&'static Block<Ipv6Addr>> {
    let bits = u128::from(ip);
    IPV6.iter()
        .filter(|block| {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(block.prefix))
                .unwrap_or(0);
            bits & mask == u128::from(block.network) & mask
        })
        .max_by_key(|block| block.prefix)
}

#[cfg(test)]
mod tests;
