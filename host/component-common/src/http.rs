//! HTTP glue every composed host shares, independent of its HTTP types: the client address from
//! the header the platform in front writes, Gatehouse's own routes, problem documents, the demo
//! page and the hop-by-hop header list.

use std::net::IpAddr;

use gatehouse_core::pipeline::{PagePipeline, RequestOutcome, ResponseEdits};

/// The reserved prefix of Gatehouse's own routes.
pub const OWN_ROUTE_PREFIX: &str = "/_ts/";

/// Whether `path` is one of Gatehouse's own routes (`/_ts` or under `/_ts/`).
#[must_use]
pub fn is_own_route(path: &str) -> bool {
    path == "/_ts" || path.starts_with(OWN_ROUTE_PREFIX)
}

/// Hop-by-hop headers a proxy never forwards (RFC 9110 §7.6.1), plus `proxy-connection`.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// An IP network in CIDR notation (a bare address is a /32 or /128): an entry of
/// `server.trusted_proxies`, shared by every host so the same config trusts the same peers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
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
        let ip = canonical_ip(ip);
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

/// `ip` with an IPv4-mapped IPv6 address written as the IPv4 address it maps.
#[must_use]
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The client address of a composed host's request, by the standalone host's rule
/// (`host/standalone/src/client_ip.rs`), so one config means the same on every host:
///
/// - `peer` is the address the platform saw (Fastly's client address), `None` where the platform
///   reports none (`wasi:http`): then the platform itself is the trusted proxy in front.
/// - A peer outside `trusted` is the client. Otherwise the header the proxy writes
///   (`server.client_ip_header`; `values` are its values in order) is walked from the right
///   through trusted hops: `x-forwarded-for` entries, the `for=` of `forwarded` elements, or a
///   single-address header (repeated, it is not believed). The first untrusted hop is the client;
///   a hop that does not parse stops the walk, and the client is then the farthest hop that could
///   be vouched for (the peer, when there is none).
#[must_use]
pub fn client_ip_behind(
    peer: Option<IpAddr>,
    trusted: &[Cidr],
    header: &str,
    values: &[&str],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    let peer = peer.map(canonical_ip);
    if let Some(peer) = peer
        && !is_trusted(peer)
    {
        return Some(peer);
    }
    let hops: Vec<Option<IpAddr>> = match header {
        "x-forwarded-for" => values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|hop| parse_node(hop.trim()))
            .collect(),
        "forwarded" => values
            .iter()
            .flat_map(|v| v.split(','))
            .map(|element| {
                element
                    .split(';')
                    .find_map(|pair| {
                        let (k, v) = pair.trim().split_once('=')?;
                        k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
                    })
                    .and_then(|v| parse_node(v.trim_matches('"')))
            })
            .collect(),
        _ => match values {
            [] => Vec::new(),
            [one] => vec![parse_node(one.trim())],
            _ => vec![None],
        },
    };
    let mut farthest = peer;
    for hop in hops.into_iter().rev() {
        let Some(ip) = hop.map(canonical_ip) else {
            break;
        };
        if !is_trusted(ip) {
            return Some(ip);
        }
        farthest = Some(ip);
    }
    farthest
}

/// An address as proxies write it: `192.0.2.1`, `192.0.2.1:443`, `[2001:db8::1]:443` or
/// `2001:db8::1`.
fn parse_node(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Some(rest) = text.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = text.rsplit_once(':')?;
    port.bytes().all(|b| b.is_ascii_digit()).then_some(())?;
    host.parse().ok()
}

/// Every error a composed host answers itself, with its status and stable `type` slug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Problem {
    /// A `/_ts/` path that does not exist.
    NotFound,
    /// A `/_ts/` route called with the wrong method, or `CONNECT`/`TRACE`.
    MethodNotAllowed,
    /// The origin could not be reached or failed mid-response.
    OriginUnavailable,
    /// The origin did not answer in time.
    OriginTimeout,
    /// The composed app's deployment document is unusable (composed with another version).
    DeploymentInvalid,
}

impl Problem {
    /// `(status, type slug, title)`: one exhaustive mapping.
    #[must_use]
    pub fn parts(self) -> (u16, &'static str, &'static str) {
        match self {
            Self::NotFound => (404, "not-found", "No such Gatehouse route"),
            Self::MethodNotAllowed => (
                405,
                "method-not-allowed",
                "Method not allowed on this Gatehouse route",
            ),
            Self::OriginUnavailable => (
                502,
                "origin-unavailable",
                "The publisher origin could not be reached",
            ),
            Self::OriginTimeout => (
                504,
                "origin-timeout",
                "The publisher origin did not answer in time",
            ),
            Self::DeploymentInvalid => (
                500,
                "deployment-invalid",
                "The composed app's deployment cannot be used",
            ),
        }
    }

    /// The status code.
    #[must_use]
    pub fn status(self) -> u16 {
        self.parts().0
    }

    /// The `application/problem+json` document, with `detail` when given.
    #[must_use]
    pub fn document(self, detail: Option<&str>) -> String {
        let (status, slug, title) = self.parts();
        let mut doc = serde_json::json!({
            "type": format!("/_ts/problems/{slug}"),
            "title": title,
            "status": status,
        });
        if let Some(detail) = detail {
            doc["detail"] = detail.into();
        }
        doc.to_string()
    }
}

/// The content type of problem documents.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The built-in demo origin's page for `path` (`origin.url = "builtin:demo"`), the same page the
/// standalone host serves.
#[must_use]
pub fn demo_page(path: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Gatehouse demo origin</title></head>\
         <body><h1>Gatehouse demo origin</h1><p>You asked for <code>{}</code>. Gatehouse decided what \
         it may do with your data before this page was served; look at the response's \
         <code>Set-Cookie</code> header.</p></body></html>\n",
        html_escape(path)
    )
}

/// The built-in demo origin's answer (`origin.url = "builtin:demo"`) to a proxied request: an
/// HTML content type with the pipeline's response `edits` applied, and [`demo_page`] as the body
/// (empty for `HEAD`).
#[must_use]
pub fn demo_response(
    pipeline: &PagePipeline<'_>,
    edits: &ResponseEdits,
    method: &str,
    path: &str,
) -> (HeaderList, Vec<u8>) {
    let mut headers = HeaderList(vec![(
        "content-type".into(),
        b"text/html; charset=utf-8".to_vec(),
    )]);
    pipeline.edit_response(edits, &mut headers);
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        demo_page(path).into_bytes()
    };
    (headers, body)
}

/// Writes each provider failure of `outcome` to standard error (the platform's log), the
/// provider-controlled text escaped so it cannot forge log lines.
pub fn log_provider_failures(outcome: &RequestOutcome<'_>) {
    if let Some(decision) = &outcome.decision {
        for (kind, failure) in &decision.failures {
            eprintln!(
                "gatehouse: {} provider failed: {}; continuing fail-closed",
                kind.section(),
                failure.to_string().escape_debug()
            );
        }
    }
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A header list as the composed hosts hold it between the platform's types and the core's
/// edits: lowercase names, in order, values as bytes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HeaderList(pub Vec<(String, Vec<u8>)>);

impl HeaderList {
    /// Removes the hop-by-hop headers and the ones `connection` lists.
    pub fn strip_hop_by_hop(&mut self) {
        let listed: Vec<String> = self
            .0
            .iter()
            .filter(|(n, _)| n == "connection")
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(',').map(|s| s.trim().to_ascii_lowercase()))
            .collect();
        self.0.retain(|(name, _)| {
            !HOP_BY_HOP.contains(&name.as_str()) && !listed.iter().any(|l| l == name)
        });
    }

    /// Removes the headers that carry facts only a trusted proxy may state (`server.cdn_headers`,
    /// lowercase: geo, client address, original host and scheme), and a single-address
    /// `client_ip_header`, from a request whose peer is not a trusted proxy, as the standalone
    /// host does: providers and the origin never see a visitor's own claim of them. Returns how
    /// many lines went.
    pub fn strip_untrusted_facts(
        &mut self,
        cdn_headers: &[String],
        client_ip_header: &str,
    ) -> usize {
        let before = self.0.len();
        let single = !matches!(client_ip_header, "x-forwarded-for" | "forwarded");
        self.0.retain(|(name, _)| {
            !(cdn_headers.iter().any(|h| h == name) || (single && name == client_ip_header))
        });
        before - self.0.len()
    }
}

impl gatehouse_core::pipeline::EditableHeaders for HeaderList {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .collect()
    }
    fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| n != name);
    }
    fn append(&mut self, name: &str, value: &[u8]) {
        self.0.push((name.to_ascii_lowercase(), value.to_vec()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|c| c.parse().expect("cidr")).collect()
    }

    #[test]
    fn without_a_trusted_list_the_nearest_hop_is_the_client() {
        let xff = client_ip_behind(None, &[], "x-forwarded-for", &["198.51.100.9, 203.0.113.7"]);
        assert_eq!(xff, Some(ip("203.0.113.7")));
        let fwd = client_ip_behind(
            None,
            &[],
            "forwarded",
            &["for=198.51.100.9, for=\"[2001:db8::1]:443\""],
        );
        assert_eq!(fwd, Some(ip("2001:db8::1")));
        let single = client_ip_behind(None, &[], "spin-client-addr", &["192.0.2.1:52100"]);
        assert_eq!(single, Some(ip("192.0.2.1")));
        assert_eq!(
            client_ip_behind(None, &[], "x-forwarded-for", &["unknown"]),
            None
        );
        assert_eq!(client_ip_behind(None, &[], "x-forwarded-for", &[]), None);
        // A repeated single-address header is not believed.
        assert_eq!(
            client_ip_behind(None, &[], "true-client-ip", &["192.0.2.1", "192.0.2.2"]),
            None
        );
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_the_header_says() {
        let peer = Some(ip("192.0.2.50"));
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let got = client_ip_behind(peer, &trusted, "x-forwarded-for", &["203.0.113.7"]);
        assert_eq!(got, peer);
    }

    #[test]
    fn behind_a_trusted_peer_the_walk_skips_trusted_hops() {
        let peer = Some(ip("127.0.0.1"));
        let trusted = cidrs(&["127.0.0.1", "10.0.0.0/8"]);
        let got = client_ip_behind(
            peer,
            &trusted,
            "x-forwarded-for",
            &["198.51.100.9, 203.0.113.7, 10.1.2.3"],
        );
        assert_eq!(got, Some(ip("203.0.113.7")));
        // Every hop trusted: the farthest one.
        let got = client_ip_behind(peer, &trusted, "x-forwarded-for", &["10.9.9.9, 10.1.2.3"]);
        assert_eq!(got, Some(ip("10.9.9.9")));
        // An unparseable hop stops the walk at the last hop vouched for.
        let got = client_ip_behind(
            peer,
            &trusted,
            "x-forwarded-for",
            &["203.0.113.7, junk, 10.1.2.3"],
        );
        assert_eq!(got, Some(ip("10.1.2.3")));
        // No header: the trusted peer itself.
        assert_eq!(
            client_ip_behind(peer, &trusted, "x-forwarded-for", &[]),
            peer
        );
        // IPv4-mapped IPv6 peers match IPv4 networks.
        let mapped = Some(ip("::ffff:127.0.0.1"));
        let got = client_ip_behind(mapped, &trusted, "x-forwarded-for", &["203.0.113.7"]);
        assert_eq!(got, Some(ip("203.0.113.7")));
    }

    #[test]
    fn untrusted_facts_are_removed_and_the_rest_kept() {
        let mut headers = HeaderList(vec![
            ("x-geo-country".into(), b"US".to_vec()),
            ("accept".into(), b"text/html".to_vec()),
            ("x-geo-country".into(), b"DE".to_vec()),
            ("true-client-ip".into(), b"192.0.2.1".to_vec()),
        ]);
        let cdn = vec!["x-geo-country".to_owned()];
        assert_eq!(headers.strip_untrusted_facts(&cdn, "true-client-ip"), 3);
        assert_eq!(
            headers.0,
            vec![("accept".to_owned(), b"text/html".to_vec())]
        );
        let mut xff = HeaderList(vec![("x-forwarded-for".into(), b"192.0.2.1".to_vec())]);
        assert_eq!(xff.strip_untrusted_facts(&cdn, "x-forwarded-for"), 0);
    }

    #[test]
    fn bad_cidrs_are_errors() {
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("nope".parse::<Cidr>().is_err());
        assert!(cidrs(&["2001:db8::/32"])[0].contains(ip("2001:db8::1")));
    }

    #[test]
    fn own_routes_are_under_the_reserved_prefix() {
        assert!(is_own_route("/_ts"));
        assert!(is_own_route("/_ts/health"));
        assert!(!is_own_route("/_tsx"));
    }

    #[test]
    fn problem_documents_carry_a_stable_type() {
        let doc: serde_json::Value =
            serde_json::from_str(&Problem::NotFound.document(Some("x"))).expect("json");
        assert_eq!(doc["type"], "/_ts/problems/not-found");
        assert_eq!(doc["status"], 404);
        assert_eq!(doc["detail"], "x");
    }
}
