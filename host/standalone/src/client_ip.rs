//! Which address is the visitor's.
//!
//! The connection's peer address, unless the peer is a configured trusted proxy: then the
//! `Forwarded` (RFC 7239) or, failing that, `X-Forwarded-For` chain is walked from the right,
//! skipping trusted proxies, and the first untrusted hop is the client. Headers from untrusted peers
//! are ignored, otherwise a visitor could pick its own identity.

use std::net::IpAddr;
use std::str::FromStr;

use http::HeaderMap;

/// An IP network in CIDR notation (a bare address is a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("`{s}` is not an IP address or CIDR block"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{s}` has an invalid prefix length (0..={max})"))?,
        };
        Ok(Self { addr, prefix })
    }
}

impl Cidr {
    /// Whether `ip` is inside this network. IPv4-mapped IPv6 addresses match IPv4 networks.
    #[must_use]
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Resolves the client address for a request from `peer` with `headers`.
#[must_use]
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let mut hops: Vec<IpAddr> = Vec::new();
    let forwarded: Vec<&str> = headers
        .get_all(http::header::FORWARDED)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if forwarded.is_empty() {
        for value in headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
        {
            hops.extend(value.split(',').filter_map(|h| parse_node(h.trim())));
        }
    } else {
        for value in forwarded {
            for element in value.split(',') {
                let node = element.split(';').find_map(|pair| {
                    let (k, v) = pair.split_once('=')?;
                    k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
                });
                if let Some(ip) = node.and_then(parse_node) {
                    hops.push(ip);
                }
            }
        }
    }
    hops.into_iter()
        .rev()
        .map(canonical)
        .find(|ip| !is_trusted(*ip))
        .unwrap_or(peer)
}

/// Parses a node as written in `Forwarded` (`"[2001:db8::1]:443"`, `192.0.2.1:80`) or
/// `X-Forwarded-For` (`2001:db8::1`, `192.0.2.1`).
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(client_ip(ip("198.51.100.1"), &h, &[]), ip("198.51.100.1"));
    }

    #[test]
    fn trusted_peer_xff_walks_from_the_right() {
        let trusted = ["10.0.0.0/8".parse().expect("cidr")];
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.1.2.3")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &trusted), ip("203.0.113.9"));
    }

    #[test]
    fn forwarded_wins_and_handles_ipv6_with_port() {
        let trusted = ["127.0.0.1".parse().expect("cidr")];
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8:85a3:0:8a2e:370:7334:1234]:443\";proto=https",
            ),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            client_ip(ip("127.0.0.1"), &h, &trusted),
            ip("2001:db8:85a3:0:8a2e:370:7334:1234")
        );
    }

    #[test]
    fn mapped_ipv4_peer_matches_ipv4_network() {
        let trusted = ["127.0.0.0/8".parse().expect("cidr")];
        let h = headers(&[("x-forwarded-for", "192.0.2.7")]);
        assert_eq!(
            client_ip(ip("::ffff:127.0.0.1"), &h, &trusted),
            ip("192.0.2.7")
        );
    }

    #[test]
    fn bad_cidr_is_an_error() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
    }
}
