//! Which network addresses a delivery may reach.
//!
//! Customers choose webhook URLs, so without care the sender would reach into our own network
//! (loopback, private ranges, cloud metadata). Every address a delivery would connect to passes
//! [`Destinations::check`]: the special-purpose blocks of [`special`] (every IANA special-purpose
//! block, IPv4 and IPv6, and the space outside global unicast) are refused unless
//! `ALLOWED_TARGETS` lists them.

pub mod special;

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr};

use special::Verdict;

/// The policy: refuse special-purpose addresses, except those inside an allowed network.
#[derive(Clone, Debug, Default)]
pub struct Destinations {
    allowed: Vec<IpNet>,
}

/// Why an address was refused, for the attempt's error and the API's 422.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{addr} is a {kind} address, which deliveries may not reach")]
pub struct Refused {
    pub addr: IpAddr,
    pub kind: &'static str,
}

impl Destinations {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        // An IPv4-mapped network (::ffff:a.b.c.d/96+n) also allows its IPv4 form a.b.c.d/n.
        let mapped = allowed.iter().filter_map(|net| match net {
            IpNet::V6(v6) if v6.prefix_len() >= 96 => {
                let v4 = v6.network().to_ipv4_mapped()?;
                ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                    .ok()
                    .map(IpNet::V4)
            }
            _ => None,
        });
        let allowed = allowed.iter().copied().chain(mapped).collect();
        Self { allowed }
    }

    /// Ok when a delivery may connect to `addr`.
    pub fn check(&self, addr: IpAddr) -> Result<(), Refused> {
        let Some(special) = judge(addr) else {
            return Ok(());
        };
        // An allowed network matches the address as judged (an IPv4-mapped or -compatible form
        // as the IPv4 address it carries, never as written: an IPv6 network that merely covers
        // ::ffff:0:0/96, such as ::/0, must not open every IPv4 address in that form while the
        // same address written as IPv4 stays refused; a mapped network allows its IPv4 form,
        // see `new`), or a NAT64 form as written too.
        let allowed = special
            .forms
            .into_iter()
            .flatten()
            .any(|form| self.allowed.iter().any(|net| net.contains(&form)));
        if allowed {
            Ok(())
        } else {
            Err(Refused {
                addr: special.shown,
                kind: special.kind,
            })
        }
    }
}

/// An address in a special-purpose block.
struct Special {
    /// The address a refusal names.
    shown: IpAddr,
    kind: &'static str,
    /// The forms an allowed network may match.
    forms: [Option<IpAddr>; 2],
}

/// The special-purpose block `addr` is in, if any (see [`special`]).
fn judge(addr: IpAddr) -> Option<Special> {
    let v6 = match addr {
        IpAddr::V4(v4) => {
            let block = special::ipv4_block(v4)?;
            return Some(Special {
                shown: addr,
                kind: block.kind,
                forms: [Some(addr), None],
            });
        }
        IpAddr::V6(v6) => v6,
    };
    let block = special::ipv6_block(v6)?;
    match block.verdict {
        Verdict::Refuse => Some(Special {
            shown: addr,
            kind: block.kind,
            forms: [Some(addr), None],
        }),
        Verdict::Embedded { as_written } => {
            let [.., a, b, c, d] = v6.octets();
            let inside = IpAddr::V4(Ipv4Addr::new(a, b, c, d));
            let verdict = judge(inside)?;
            Some(if as_written {
                Special {
                    shown: addr,
                    kind: verdict.kind,
                    forms: [Some(inside), Some(addr)],
                }
            } else {
                verdict
            })
        }
    }
}

/// Parses `ALLOWED_TARGETS` entries: CIDRs, or single addresses meaning a /32 or /128.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not a CIDR such as 127.0.0.0/8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &Destinations, addr: &str) -> bool {
        policy.check(addr.parse().expect("address")).is_err()
    }

    #[test]
    fn refuses_special_purpose_addresses() {
        let policy = Destinations::default();
        for addr in [
            "127.0.0.1",
            "127.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
        ] {
            assert!(refused(&policy, addr), "{addr} should be refused");
        }
    }

    #[test]
    fn lets_public_addresses_through() {
        let policy = Destinations::default();
        for addr in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(!refused(&policy, addr), "{addr} should be allowed");
        }
    }

    #[test]
    fn ipv6_blocks_that_carry_ipv4_are_refused_unless_judged_by_it() {
        let policy = Destinations::default();
        let why = |addr: &str| {
            policy
                .check(addr.parse().expect("address"))
                .map_err(|refused| refused.to_string())
        };
        // 6to4 and Teredo are refused whatever IPv4 address they carry, public ones included.
        assert_eq!(
            why("2002:808:808::1"),
            Err("2002:808:808::1 is a 6to4 address, which deliveries may not reach".into())
        );
        assert!(why("2002:7f00:1::1").is_err());
        assert_eq!(
            why("2001:0:4136:e378:8000:63bf:3fff:fdd2"),
            Err("2001:0:4136:e378:8000:63bf:3fff:fdd2 is a Teredo address, which deliveries may not reach".into())
        );
        // The local-use NAT64 prefix, wherever its operator put the IPv4 address.
        assert!(why("64:ff9b:1::808:808").is_err());
        assert!(why("64:ff9b:1:808:800::").is_err());
        // The well-known NAT64 prefix is judged by the IPv4 address it carries (DNS64 answers with
        // it for IPv4-only receivers on IPv6-only networks).
        assert_eq!(why("64:ff9b::808:808"), Ok(()));
        assert_eq!(
            why("64:ff9b::a00:1"),
            Err("64:ff9b::a00:1 is a private address, which deliveries may not reach".into())
        );
        // IPv4-mapped and -compatible forms are the IPv4 address they carry.
        assert_eq!(why("::ffff:8.8.8.8"), Ok(()));
        assert_eq!(
            why("::ffff:10.1.2.3"),
            Err("10.1.2.3 is a private address, which deliveries may not reach".into())
        );
        assert_eq!(
            why("::2"),
            Err("0.0.0.2 is a \"this network\" address, which deliveries may not reach".into())
        );
    }

    #[test]
    fn ipv6_outside_global_unicast_and_the_newer_blocks_are_refused() {
        let policy = Destinations::default();
        for addr in [
            "100::1",
            "100:0:0:1::1",
            "2001:db8::1",
            "3fff::1",
            "5f00::1",
            "2001:2::1",
            "2001:1::1",
            "2001:20::1",
            "2620:4f:8000::1",
            "4000::1",
            "8000::1",
            "1::1",
            "fec0::1",
            "::ffff:0:808:808",
        ] {
            assert!(refused(&policy, addr), "{addr} should be refused");
        }
        for addr in ["2a00:1450:4001:81c::200e", "2001:200::1", "2620:4f:8001::1"] {
            assert!(!refused(&policy, addr), "{addr} should be allowed");
        }
        // The most specific block names the refusal.
        let kind = |addr: &str| {
            policy
                .check(addr.parse().expect("address"))
                .map(|()| "")
                .unwrap_or_else(|refused| refused.kind)
        };
        assert_eq!(kind("192.0.0.9"), "PCP anycast");
        assert_eq!(kind("192.0.0.77"), "IETF protocol");
        assert_eq!(kind("0.0.0.0"), "unspecified");
        assert_eq!(kind("0.1.2.3"), "\"this network\"");
        assert_eq!(kind("2001:0:1::1"), "Teredo");
        assert_eq!(kind("2001:1ff::1"), "IETF protocol");
        assert_eq!(kind("ff02::1"), "multicast");
    }

    #[test]
    fn allowed_targets_open_a_range() {
        let policy = Destinations::new(vec![
            parse_net("127.0.0.0/8").expect("cidr"),
            parse_net("::1").expect("ip"),
        ]);
        assert!(!refused(&policy, "127.0.0.1"));
        assert!(!refused(&policy, "::ffff:127.0.0.1"));
        assert!(!refused(&policy, "::1"));
        assert!(refused(&policy, "10.0.0.1"));
        assert!(refused(&policy, "169.254.169.254"));
    }

    #[test]
    fn allowed_targets_match_every_form_of_an_address() {
        let mapped = Destinations::new(vec![parse_net("::ffff:127.0.0.1").expect("ip")]);
        assert!(!refused(&mapped, "127.0.0.1"));
        assert!(!refused(&mapped, "::ffff:127.0.0.1"));
        let link_local = Destinations::new(vec![parse_net("169.254.0.0/16").expect("cidr")]);
        assert!(!refused(&link_local, "64:ff9b::a9fe:a9fe"));
        assert!(
            refused(&link_local, "64:ff9b::a00:1"),
            "10.0.0.1 inside NAT64 stays refused"
        );
    }

    /// Found by the `destination` fuzz target (`0::/7` allowed ::ffff:0.0.99.48 while 0.0.99.48
    /// was refused): a mapped address gets its IPv4 form's verdict, whatever IPv6 network covers it.
    #[test]
    fn a_broad_ipv6_network_does_not_open_ipv4_in_its_mapped_form() {
        for net in ["0::/7", "::/0", "::ffff:0:0/95"] {
            let policy = Destinations::new(vec![parse_net(net).expect("cidr")]);
            for v4 in ["0.0.99.48", "169.254.169.254", "10.0.0.1", "127.0.0.1"] {
                assert!(refused(&policy, v4), "{net}: {v4}");
                assert!(
                    refused(&policy, &format!("::ffff:{v4}")),
                    "{net}: ::ffff:{v4}"
                );
            }
        }
    }

    #[test]
    fn refusal_says_why() {
        let error = Destinations::default()
            .check("169.254.169.254".parse().expect("ip"))
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "169.254.169.254 is a link-local address, which deliveries may not reach"
        );
    }

    #[test]
    fn parses_allowed_targets() {
        assert!(parse_net("10.0.0.0/8").is_ok());
        assert!(parse_net(" 127.0.0.1 ").is_ok());
        assert!(parse_net("nonsense").is_err());
    }
}
