//! Where the kernel may send HTTP requests of its own (webhooks from rules and automatic
//! steps): the answer to server-side request forgery.
//!
//! A webhook's URL is written by an analyst, so it must not become a way into the network
//! the server sits in. Targets are checked **at delivery, after DNS**: an address that is
//! loopback, private (RFC 1918, unique-local), link-local (cloud metadata at
//! 169.254.169.254), carrier-grade NAT, unspecified, multicast, broadcast or documentation
//! space is refused unless an operator allowed it (`--webhook-allow 10.1.0.0/16`, each entry
//! an address or a CIDR block). The resolver hands the HTTP client only the addresses that
//! passed, so a name that resolves to a public address when checked and a private one when
//! connecting (DNS rebinding) cannot slip through. Redirects are never followed (see the
//! outbox's client). This module never opens a connection itself.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, RwLock};

/// One allowed block of addresses: a network address and its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    net: IpAddr,
    prefix: u8,
}

impl Block {
    /// Parses `10.1.0.0/16`, `127.0.0.1` or `::1/128`.
    pub fn parse(text: &str) -> Result<Block, String> {
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("'{text}' is not an IP address or CIDR block"))?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix must be 0 to {max}"))?,
        };
        Ok(Block { net, prefix })
    }

    /// Whether `ip` lies in this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn bits(ip: IpAddr) -> (u128, u32) {
            match ip {
                IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        }
        let ip = match (self.net, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => return false,
            },
            (_, ip) => ip,
        };
        let ((net, width), (addr, width2)) = (bits(self.net), bits(ip));
        if width != width2 {
            return false;
        }
        let shift = width - u32::from(self.prefix);
        shift >= width || (net >> shift) == (addr >> shift)
    }
}

/// Why an address is not a public one, or None when it is.
pub fn special(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => special_v4(v4),
            None => special_v6(v6),
        },
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if ip.is_unspecified() || o[0] == 0 {
        Some("an unspecified address")
    } else if o[0] == 100 && (o[1] & 0xc0) == 64 {
        Some("a carrier-grade NAT address")
    } else if ip.is_multicast() || ip.is_broadcast() || o[0] >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else if ip.is_documentation() || (o[0] == 198 && (o[1] & 0xfe) == 18) {
        Some("a documentation or benchmarking address")
    } else {
        None
    }
}

fn special_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified address")
    } else if (first & 0xfe00) == 0xfc00 {
        Some("a unique-local (private) address")
    } else if (first & 0xffc0) == 0xfe80 {
        Some("a link-local address")
    } else if ip.is_multicast() {
        Some("a multicast address")
    } else if first == 0x2001 && ip.segments()[1] == 0x0db8 {
        Some("a documentation address")
    } else {
        None
    }
}

/// The kernel's egress policy: the blocks an operator allowed beyond public addresses.
#[derive(Debug, Default)]
pub struct Egress {
    allowed: RwLock<Vec<Block>>,
}

impl Egress {
    /// Allows these blocks too (replacing any allowed before).
    pub fn allow(&self, blocks: Vec<Block>) {
        if let Ok(mut a) = self.allowed.write() {
            *a = blocks;
        }
    }

    /// Whether a request may go to `ip`; the refusal says why.
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some(why) = special(ip) else {
            return Ok(());
        };
        let allowed = self
            .allowed
            .read()
            .map(|a| a.iter().any(|b| b.contains(ip)))
            .unwrap_or(false);
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "{ip} is {why}; webhooks only go to public addresses unless the operator allows it (--webhook-allow)"
            ))
        }
    }
}

/// The HTTP client's resolver: the system's, keeping only addresses the policy allows.
pub struct Resolver(pub Arc<Egress>);

impl reqwest::dns::Resolve for Resolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let kept: Vec<SocketAddr> = found
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused = Some(e);
                        false
                    }
                })
                .collect();
            if kept.is_empty() {
                let why = refused.unwrap_or_else(|| format!("'{host}' has no address"));
                return Err(format!("target refused: '{host}' resolves to {why}").into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_targets_are_refused_unless_allowed() {
        let e = Egress::default();
        for bad in [
            "127.0.0.1",
            "10.2.3.4",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(e.check(bad.parse().unwrap()).is_err(), "{bad}");
        }
        for good in ["93.184.216.34", "2606:4700::1111", "8.8.8.8"] {
            assert!(e.check(good.parse().unwrap()).is_ok(), "{good}");
        }
        e.allow(vec![Block::parse("127.0.0.0/8").unwrap()]);
        assert!(e.check("127.0.0.1".parse().unwrap()).is_ok());
        assert!(e.check("::ffff:127.0.0.1".parse().unwrap()).is_ok());
        assert!(e.check("10.0.0.1".parse().unwrap()).is_err());
        assert!(Block::parse("10.0.0.0/33").is_err());
        assert!(Block::parse("intranet").is_err());
        assert!(
            Block::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
    }
}
