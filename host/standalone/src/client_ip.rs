//! Which address is the visitor's, what the origin is told about it, and which request headers
//! are believed at all.
//!
//! The visitor's address is the connection's peer, unless the peer is a configured trusted proxy.
//! Then exactly one header is read: the one the proxy in front of Gatehouse writes
//! (`server.client_ip_header`, default `x-forwarded-for`). A list header (`X-Forwarded-For`,
//! `Forwarded`) is walked from the right through trusted hops; the first untrusted hop is the
//! client. Walking stops at the first hop that cannot be parsed: everything left of it was
//! written by someone we cannot vouch for, so the client is the last hop we could vouch for (the
//! nearest trusted proxy). A single-address header (`cf-connecting-ip`, `true-client-ip`, ...)
//! is the client when it parses. Every other forwarding header is ignored, so a visitor cannot
//! choose the address its Edge Cookie is derived from by sending a header the proxy does not
//! overwrite.
//!
//! The origin receives `X-Forwarded-For` and `Forwarded` rewritten from the trusted chain plus the
//! client address (never the client's own values), and a `Via` entry for Gatehouse.
//!
//! Headers that carry facts a CDN or proxy sets (`server.cdn_headers`: geo, client IP, original
//! host and scheme) are believed only from a trusted proxy; from anyone else they are removed
//! before providers and the origin see the request.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use http::{HeaderMap, HeaderName, HeaderValue};

/// An entry of `server.trusted_proxies` (shared with the composed hosts, so one config trusts
/// the same peers everywhere).
pub use gatehouse_component_common::http::Cidr;
use gatehouse_component_common::http::canonical_ip as canonical;

/// The header the trusted proxy in front of Gatehouse writes the client address into
/// (`server.client_ip_header`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: a comma-separated list, the proxy appends its peer.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239): `for=` of each element.
    Forwarded,
    /// A header holding the client address alone (`cf-connecting-ip`, `true-client-ip`, ...).
    Single(HeaderName),
}

impl ClientIpHeader {
    /// The header's name.
    #[must_use]
    pub fn name(&self) -> &str {
        match self {
            Self::XForwardedFor => "x-forwarded-for",
            Self::Forwarded => "forwarded",
            Self::Single(name) => name.as_str(),
        }
    }
}

impl FromStr for ClientIpHeader {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let name = s.trim().to_ascii_lowercase();
        match name.as_str() {
            "x-forwarded-for" => Ok(Self::XForwardedFor),
            "forwarded" => Ok(Self::Forwarded),
            "" => Err("must name a header".into()),
            other => HeaderName::from_bytes(other.as_bytes())
                .map(Self::Single)
                .map_err(|_| format!("`{s}` is not a valid header name")),
        }
    }
}

/// Whom to believe about the client address; built once from `[server]`.
#[derive(Clone, Debug, Default)]
pub struct ClientIpPolicy {
    /// `server.trusted_proxies`.
    pub trusted: Vec<Cidr>,
    /// `server.client_ip_header`.
    pub header: ClientIpHeader,
}

/// The resolved client address and the trusted proxies between it and Gatehouse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientChain {
    /// The visitor's address as far as trusted parties can tell.
    pub client: IpAddr,
    /// Trusted proxies the request passed, nearest the client first, ending with the peer when
    /// the peer is trusted. Empty when the client is the peer itself.
    pub proxies: Vec<IpAddr>,
}

impl ClientIpPolicy {
    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|c| c.contains(ip))
    }

    /// Whether the connection's peer is a trusted proxy.
    #[must_use]
    pub fn peer_is_trusted(&self, peer: IpAddr) -> bool {
        self.is_trusted(canonical(peer))
    }

    /// Resolves the client address for a request from `peer` with `headers`.
    #[must_use]
    pub fn resolve(&self, peer: IpAddr, headers: &HeaderMap) -> ClientChain {
        let peer = canonical(peer);
        if !self.is_trusted(peer) {
            return ClientChain {
                client: peer,
                proxies: Vec::new(),
            };
        }
        let mut proxies = vec![peer];
        // The hops the header lists, left to right; `None` for one that does not parse.
        let hops: Vec<Option<IpAddr>> = match &self.header {
            ClientIpHeader::XForwardedFor => values(headers, "x-forwarded-for")
                .flat_map(|v| v.split(','))
                .map(|h| parse_node(h.trim()))
                .collect(),
            ClientIpHeader::Forwarded => values(headers, "forwarded")
                .flat_map(|v| v.split(','))
                .map(|element| {
                    element
                        .split(';')
                        .find_map(|pair| {
                            let (k, v) = pair.split_once('=')?;
                            k.trim().eq_ignore_ascii_case("for").then(|| v.trim())
                        })
                        .and_then(parse_node)
                })
                .collect(),
            ClientIpHeader::Single(name) => {
                // One address; a repeated header is as untrustworthy as an unparseable one.
                let mut all = values(headers, name.as_str());
                match (all.next(), all.next()) {
                    (Some(v), None) => vec![parse_node(v.trim())],
                    (None, _) => Vec::new(),
                    (Some(_), Some(_)) => vec![None],
                }
            }
        };
        for hop in hops.into_iter().rev() {
            let Some(ip) = hop.map(canonical) else {
                break;
            };
            if self.is_trusted(ip) {
                proxies.push(ip);
            } else {
                proxies.reverse();
                return ClientChain {
                    client: ip,
                    proxies,
                };
            }
        }
        // Every hop we could read was a trusted proxy: the client is the farthest one.
        let client = proxies.pop().unwrap_or(peer);
        proxies.reverse();
        ClientChain { client, proxies }
    }
}

/// Every value of header `name` that is valid text.
fn values<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
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

/// Headers that carry facts a proxy or CDN sets, removed from requests of untrusted peers
/// (`server.cdn_headers` default).
pub const DEFAULT_CDN_HEADERS: &[&str] = &[
    "x-geo-country",
    "x-geo-region",
    "cf-ipcountry",
    "cf-connecting-ip",
    "true-client-ip",
    "fastly-client-ip",
    "x-real-ip",
    "x-client-ip",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
];

/// Removes `cdn_headers` (and the client-IP header itself) from a request whose peer is not a
/// trusted proxy. Returns how many header lines were removed.
pub fn strip_untrusted_facts(
    headers: &mut HeaderMap,
    cdn_headers: &[HeaderName],
    client_ip_header: &ClientIpHeader,
) -> usize {
    let mut removed = 0;
    for name in cdn_headers {
        if let http::header::Entry::Occupied(entry) = headers.entry(name) {
            removed += entry.remove_entry_mult().1.count();
        }
    }
    if let ClientIpHeader::Single(name) = client_ip_header
        && let http::header::Entry::Occupied(entry) = headers.entry(name)
    {
        removed += entry.remove_entry_mult().1.count();
    }
    removed
}

/// Rewrites `X-Forwarded-For` and `Forwarded` for the origin from `chain` (the client's own values
/// are dropped) and appends Gatehouse to `Via` (`protocol` is `1.1`, `2`, ...).
pub fn rewrite_forwarding_headers(headers: &mut HeaderMap, chain: &ClientChain, protocol: &str) {
    let mut xff = chain.client.to_string();
    let mut forwarded = forwarded_node(chain.client);
    for hop in &chain.proxies {
        let _ = write!(xff, ", {hop}");
        forwarded.push_str(", ");
        forwarded.push_str(&forwarded_node(*hop));
    }
    headers.remove("x-forwarded-for");
    headers.remove(http::header::FORWARDED);
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    if let Ok(v) = HeaderValue::from_str(&forwarded) {
        headers.insert(http::header::FORWARDED, v);
    }
    let via = match values(headers, "via").collect::<Vec<_>>().join(", ") {
        prior if prior.is_empty() => format!("{protocol} gatehouse"),
        prior => format!("{prior}, {protocol} gatehouse"),
    };
    headers.remove(http::header::VIA);
    if let Ok(v) = HeaderValue::from_str(&via) {
        headers.insert(http::header::VIA, v);
    }
}

/// `for=` node syntax (RFC 7239 §6): IPv6 quoted and bracketed.
fn forwarded_node(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("for={v4}"),
        IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
    }
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

    fn policy(trusted: &[&str], header: &str) -> ClientIpPolicy {
        ClientIpPolicy {
            trusted: trusted.iter().map(|c| c.parse().expect("cidr")).collect(),
            header: header.parse().expect("header"),
        }
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        let chain = policy(&[], "x-forwarded-for").resolve(ip("198.51.100.1"), &h);
        assert_eq!(chain.client, ip("198.51.100.1"));
        assert!(chain.proxies.is_empty());
    }

    #[test]
    fn trusted_peer_xff_walks_from_the_right() {
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.1.2.3")]);
        let chain = policy(&["10.0.0.0/8"], "x-forwarded-for").resolve(ip("10.0.0.1"), &h);
        assert_eq!(chain.client, ip("203.0.113.9"));
        assert_eq!(chain.proxies, vec![ip("10.1.2.3"), ip("10.0.0.1")]);
    }

    #[test]
    fn client_sent_forwarded_is_ignored_when_the_proxy_writes_xff() {
        // The proxy appends to X-Forwarded-For only; a `Forwarded` header passes through from the
        // client untouched and must not pick the address.
        let h = headers(&[
            ("forwarded", "for=192.0.2.66"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let chain = policy(&["127.0.0.1"], "x-forwarded-for").resolve(ip("127.0.0.1"), &h);
        assert_eq!(chain.client, ip("203.0.113.9"));
    }

    #[test]
    fn walking_stops_at_the_first_unparseable_hop() {
        // `garbage` was written by someone no trusted party vouches for: nothing left of it counts,
        // and unparseable hops are not skipped.
        let h = headers(&[("x-forwarded-for", "192.0.2.66, garbage, 10.1.2.3")]);
        let chain = policy(&["10.0.0.0/8"], "x-forwarded-for").resolve(ip("10.0.0.1"), &h);
        assert_eq!(chain.client, ip("10.1.2.3"));
        assert_eq!(chain.proxies, vec![ip("10.0.0.1")]);
        let h = headers(&[("x-forwarded-for", "192.0.2.66, unknown")]);
        let chain = policy(&["10.0.0.0/8"], "x-forwarded-for").resolve(ip("10.0.0.1"), &h);
        assert_eq!(chain.client, ip("10.0.0.1"));
    }

    #[test]
    fn forwarded_is_read_when_configured_and_handles_ipv6_with_port() {
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8:85a3:0:8a2e:370:7334:1234]:443\";proto=https",
            ),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        let chain = policy(&["127.0.0.1"], "forwarded").resolve(ip("127.0.0.1"), &h);
        assert_eq!(chain.client, ip("2001:db8:85a3:0:8a2e:370:7334:1234"));
    }

    #[test]
    fn single_address_header_is_the_client_only_once_and_parseable() {
        let p = policy(&["127.0.0.1"], "cf-connecting-ip");
        let h = headers(&[("cf-connecting-ip", "203.0.113.9")]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h).client, ip("203.0.113.9"));
        let h = headers(&[
            ("cf-connecting-ip", "203.0.113.9"),
            ("cf-connecting-ip", "192.0.2.66"),
        ]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h).client, ip("127.0.0.1"));
        let h = headers(&[("x-forwarded-for", "192.0.2.66")]);
        assert_eq!(p.resolve(ip("127.0.0.1"), &h).client, ip("127.0.0.1"));
    }

    #[test]
    fn mapped_ipv4_peer_matches_ipv4_network() {
        let h = headers(&[("x-forwarded-for", "192.0.2.7")]);
        let chain = policy(&["127.0.0.0/8"], "x-forwarded-for").resolve(ip("::ffff:127.0.0.1"), &h);
        assert_eq!(chain.client, ip("192.0.2.7"));
    }

    #[test]
    fn origin_gets_forwarding_headers_from_the_trusted_chain_only() {
        let mut h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("forwarded", "for=6.6.6.6"),
            ("via", "1.1 cdn"),
        ]);
        let chain = policy(&["127.0.0.1"], "x-forwarded-for").resolve(ip("127.0.0.1"), &h);
        rewrite_forwarding_headers(&mut h, &chain, "1.1");
        assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
        assert_eq!(h["forwarded"], "for=203.0.113.9, for=127.0.0.1");
        assert_eq!(h["via"], "1.1 cdn, 1.1 gatehouse");

        let mut h = headers(&[("x-forwarded-for", "6.6.6.6"), ("forwarded", "for=6.6.6.6")]);
        let chain = policy(&[], "x-forwarded-for").resolve(ip("2001:db8::1"), &h);
        rewrite_forwarding_headers(&mut h, &chain, "1.1");
        assert_eq!(h["x-forwarded-for"], "2001:db8::1");
        assert_eq!(h["forwarded"], "for=\"[2001:db8::1]\"");
        assert_eq!(h["via"], "1.1 gatehouse");
    }

    #[test]
    fn cdn_facts_are_stripped_from_untrusted_requests() {
        let mut h = headers(&[
            ("x-geo-country", "US"),
            ("x-geo-country", "DE"),
            ("cf-connecting-ip", "1.2.3.4"),
            ("accept", "text/html"),
        ]);
        let cdn = [HeaderName::from_static("x-geo-country")];
        let removed = strip_untrusted_facts(
            &mut h,
            &cdn,
            &ClientIpHeader::Single(HeaderName::from_static("cf-connecting-ip")),
        );
        assert_eq!(removed, 3);
        assert_eq!(h.len(), 1);
    }

    #[test]
    fn bad_cidr_and_header_names_are_errors() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert!("".parse::<ClientIpHeader>().is_err());
        assert!("a b".parse::<ClientIpHeader>().is_err());
    }
}
