//! The table against a copy of IANA's two special-purpose registries, written out here as they
//! stand (iana-ipv4-special-registry, iana-ipv6-special-registry; address block, name, RFC).
//! A block added to a registry is added to both lists; the test then says which row is missing.

use super::*;
use crate::destination::Destinations;
use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use std::collections::BTreeSet;
use std::net::IpAddr;

const IANA_IPV4_SPECIAL: &str = "
0.0.0.0/8          | \"This network\"                            | RFC 791
0.0.0.0/32         | \"This host on this network\"               | RFC 1122
10.0.0.0/8         | Private-Use                                 | RFC 1918
100.64.0.0/10      | Shared Address Space                        | RFC 6598
127.0.0.0/8        | Loopback                                    | RFC 1122
169.254.0.0/16     | Link Local                                  | RFC 3927
172.16.0.0/12      | Private-Use                                 | RFC 1918
192.0.0.0/24       | IETF Protocol Assignments                   | RFC 6890
192.0.0.0/29       | IPv4 Service Continuity Prefix              | RFC 7335
192.0.0.8/32       | IPv4 dummy address                          | RFC 7600
192.0.0.9/32       | Port Control Protocol Anycast               | RFC 7723
192.0.0.10/32      | Traversal Using Relays around NAT Anycast   | RFC 8155
192.0.0.170/32     | NAT64/DNS64 Discovery                       | RFC 8880
192.0.0.171/32     | NAT64/DNS64 Discovery                       | RFC 8880
192.0.2.0/24       | Documentation (TEST-NET-1)                  | RFC 5737
192.31.196.0/24    | AS112-v4                                    | RFC 7535
192.52.193.0/24    | AMT                                         | RFC 7450
192.88.99.0/24     | Deprecated (6to4 Relay Anycast)             | RFC 7526
192.168.0.0/16     | Private-Use                                 | RFC 1918
192.175.48.0/24    | Direct Delegation AS112 Service             | RFC 7534
198.18.0.0/15      | Benchmarking                                | RFC 2544
198.51.100.0/24    | Documentation (TEST-NET-2)                  | RFC 5737
203.0.113.0/24     | Documentation (TEST-NET-3)                  | RFC 5737
240.0.0.0/4        | Reserved                                    | RFC 1112
255.255.255.255/32 | Limited Broadcast                           | RFC 8190
";

const IANA_IPV6_SPECIAL: &str = "
::1/128            | Loopback Address                            | RFC 4291
::/128             | Unspecified Address                         | RFC 4291
::ffff:0:0/96      | IPv4-mapped Address                         | RFC 4291
64:ff9b::/96       | IPv4-IPv6 Translat.                         | RFC 6052
64:ff9b:1::/48     | IPv4-IPv6 Translat.                         | RFC 8215
100::/64           | Discard-Only Address Block                  | RFC 6666
100:0:0:1::/64     | Dummy IPv6 Prefix                           | RFC 9780
2001::/23          | IETF Protocol Assignments                   | RFC 2928
2001::/32          | TEREDO                                      | RFC 4380
2001:1::1/128      | Port Control Protocol Anycast               | RFC 7723
2001:1::2/128      | Traversal Using Relays around NAT Anycast   | RFC 8155
2001:1::3/128      | DNS-SD Service Registration Protocol Anycast | RFC 9665
2001:2::/48        | Benchmarking                                | RFC 5180
2001:3::/32        | AMT                                         | RFC 7450
2001:4:112::/48    | AS112-v6                                    | RFC 7535
2001:10::/28       | Deprecated (previously ORCHID)              | RFC 4843
2001:20::/28       | ORCHIDv2                                    | RFC 7343
2001:30::/28       | Drone Remote ID Protocol Entity Tags (DETs) Prefix | RFC 9374
2001:db8::/32      | Documentation                               | RFC 3849
2002::/16          | 6to4                                        | RFC 3056
2620:4f:8000::/48  | Direct Delegation AS112 Service             | RFC 7534
3fff::/20          | Documentation                               | RFC 9637
5f00::/16          | Segment Routing (SRv6) SIDs                 | RFC 9602
fc00::/7           | Unique-Local                                | RFC 4193
fe80::/10          | Link-Local Unicast                          | RFC 4291
";

/// (block, name, RFC) of each line of a registry copy.
fn registry(copy: &str) -> Vec<(IpNet, &str, &str)> {
    copy.lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('|').map(str::trim).collect();
            let net = fields[0].parse().unwrap_or_else(|_| panic!("{line}"));
            (net, fields[1], fields[2])
        })
        .collect()
}

fn rows_v4(from: Registry) -> BTreeSet<IpNet> {
    IPV4.iter()
        .filter(|b| b.registry == from)
        .map(|b| IpNet::V4(Ipv4Net::new(b.network, b.prefix).expect("prefix")))
        .collect()
}

fn rows_v6(from: Registry) -> BTreeSet<IpNet> {
    IPV6.iter()
        .filter(|b| b.registry == from)
        .map(|b| IpNet::V6(Ipv6Net::new(b.network, b.prefix).expect("prefix")))
        .collect()
}

#[test]
fn the_table_holds_every_special_purpose_block_and_names_its_entry() {
    for (copy, rows) in [
        (IANA_IPV4_SPECIAL, rows_v4(Ipv4Special)),
        (IANA_IPV6_SPECIAL, rows_v6(Ipv6Special)),
    ] {
        let registry = registry(copy);
        let listed: BTreeSet<IpNet> = registry.iter().map(|(net, ..)| *net).collect();
        assert_eq!(listed.len(), registry.len(), "a block twice in the copy");
        let missing: Vec<_> = listed.difference(&rows).collect();
        let extra: Vec<_> = rows.difference(&listed).collect();
        assert!(
            missing.is_empty(),
            "registry blocks not in the table: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "table rows not in the registry: {extra:?}"
        );
        // Each row names the entry it copies: its name and its RFC.
        for (net, name, rfc) in &registry {
            let entry = match net {
                IpNet::V4(n) => IPV4
                    .iter()
                    .find(|b| b.network == n.network() && b.prefix == n.prefix_len())
                    .map(|b| b.entry),
                IpNet::V6(n) => IPV6
                    .iter()
                    .find(|b| b.network == n.network() && b.prefix == n.prefix_len())
                    .map(|b| b.entry),
            }
            .expect("present");
            assert!(
                entry.starts_with(name) && entry.contains(rfc),
                "{net}: {entry:?} is not {name:?}, {rfc}"
            );
        }
    }
}

#[test]
fn every_row_is_a_network_address_and_none_is_listed_twice() {
    let mut seen = BTreeSet::new();
    for b in IPV4 {
        let net = Ipv4Net::new(b.network, b.prefix).expect("prefix");
        assert_eq!(net.network(), b.network, "{net}: host bits set");
        assert!(seen.insert(IpNet::V4(net)), "{net} twice");
    }
    for b in IPV6 {
        let net = Ipv6Net::new(b.network, b.prefix).expect("prefix");
        assert_eq!(net.network(), b.network, "{net}: host bits set");
        assert!(seen.insert(IpNet::V6(net)), "{net} twice");
    }
}

/// Every address of every registry block is refused by default: its first and last address, and
/// one in the middle. The blocks judged by the IPv4 address they carry follow that address.
#[test]
fn every_special_purpose_block_is_refused_by_default() {
    let policy = Destinations::default();
    for (net, name, _) in registry(IANA_IPV4_SPECIAL)
        .into_iter()
        .chain(registry(IANA_IPV6_SPECIAL))
    {
        let embedded = matches!(
            net,
            IpNet::V6(n) if ipv6_block(n.network()).is_some_and(|b| b.prefix == n.prefix_len()
                && matches!(b.verdict, Verdict::Embedded { .. }))
        );
        let middle = match net {
            IpNet::V4(n) => {
                IpAddr::V4((u32::from(n.network()) / 2 + u32::from(n.broadcast()) / 2).into())
            }
            IpNet::V6(n) => {
                IpAddr::V6((u128::from(n.network()) / 2 + u128::from(n.broadcast()) / 2).into())
            }
        };
        for addr in [net.network(), middle, net.broadcast()] {
            let verdict = policy.check(addr);
            if embedded {
                let IpAddr::V6(v6) = addr else { unreachable!() };
                let [.., a, b, c, d] = v6.octets();
                let inside = IpAddr::V4(std::net::Ipv4Addr::new(a, b, c, d));
                assert_eq!(
                    verdict.is_ok(),
                    policy.check(inside).is_ok(),
                    "{addr} ({name}) judged otherwise than {inside}"
                );
            } else {
                assert!(verdict.is_err(), "{addr} ({net}, {name}) is let through");
            }
        }
    }
}
