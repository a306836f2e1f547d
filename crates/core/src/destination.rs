//! Which network addresses a delivery may reach.
//!
//! Customers choose webhook URLs, so without care the sender would reach into our own network
//! (loopback, private ranges, cloud metadata). Every address a delivery would connect to passes
//! [`Destinations::check`]: special-purpose ranges are refused unless `ALLOWED_TARGETS` lists them.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
        let judged = canonical(addr);
        let Some(kind) = special_kind(judged) else {
            return Ok(());
        };
        // An allowed network matches the address as judged (an IPv4-mapped or -compatible form
        // as the IPv4 address it carries, never as written: an IPv6 network that merely covers
        // ::ffff:0:0/96, such as ::/0, must not open every IPv4 address in that form while the
        // same address written as IPv4 stays refused; a mapped network allows its IPv4 form,
        // see `new`), or the IPv4 address a NAT64 form carries.
        let forms = [Some(judged), nat64_v4(addr).map(IpAddr::V4)];
        let allowed = forms
            .into_iter()
            .flatten()
            .any(|form| self.allowed.iter().any(|net| net.contains(&form)));
        if allowed {
            Ok(())
        } else {
            Err(Refused { addr: judged, kind })
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

/// IPv4-mapped and IPv4-compatible IPv6 forms are judged as the IPv4 address they carry.
fn canonical(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                // ::a.b.c.d (deprecated IPv4-compatible), but not :: or ::1 themselves.
                if s[..6] == [0; 6] && !(s[6] == 0 && s[7] <= 1) {
                    IpAddr::V4(Ipv4Addr::new(
                        (s[6] >> 8) as u8,
                        s[6] as u8,
                        (s[7] >> 8) as u8,
                        s[7] as u8,
                    ))
                } else {
                    IpAddr::V6(v6)
                }
            }
        },
        v4 => v4,
    }
}

/// The IPv4 address inside a NAT64 (64:ff9b::/96) address.
fn nat64_v4(addr: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = addr else { return None };
    let s = v6.segments();
    (s[0] == 0x0064 && s[1] == 0xff9b && s[2..6] == [0; 4])
        .then(|| Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8))
}

fn special_kind(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        (0, ..) => "\"this network\"",
        (127, ..) => "loopback",
        (10, ..) | (192, 168, _) => "private",
        (172, 16..=31, _) => "private",
        (169, 254, _) => "link-local",
        (100, 64..=127, _) => "shared (CGNAT)",
        (192, 0, 0) => "IETF protocol",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved",
        _ => return None,
    })
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let s = ip.segments();
    Some(match s[0] {
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_loopback() => "loopback",
        0xfc00..=0xfdff => "private (unique local)",
        0xfe80..=0xfebf => "link-local",
        0xfec0..=0xfeff => "site-local",
        0xff00..=0xffff => "multicast",
        0x2001 if s[1] == 0x0db8 => "documentation",
        // NAT64 (64:ff9b::/96) embeds an IPv4 address: judge it as that address.
        0x0064 if nat64_v4(IpAddr::V6(ip)).is_some() => {
            return nat64_v4(IpAddr::V6(ip)).and_then(special_v4);
        }
        _ => return None,
    })
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
