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

/// The client address from the values of the header the platform writes it into
/// (`server.client_ip_header`): for `x-forwarded-for` the rightmost entry (the one the nearest
/// proxy appended), for `forwarded` the `for=` of the last element, otherwise the header's last
/// value as a single address. `None` when that entry does not parse.
#[must_use]
pub fn client_ip_from_header(header: &str, values: &[&str]) -> Option<IpAddr> {
    let last = values.last()?;
    match header {
        "forwarded" => {
            let element = last.rsplit(',').next()?;
            let for_value = element.split(';').find_map(|pair| {
                let (k, v) = pair.trim().split_once('=')?;
                k.trim().eq_ignore_ascii_case("for").then_some(v.trim())
            })?;
            parse_node(for_value.trim_matches('"'))
        }
        "x-forwarded-for" => parse_node(last.rsplit(',').next()?.trim()),
        _ => parse_node(last.trim()),
    }
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

    #[test]
    fn the_rightmost_forwarded_for_entry_is_the_client() {
        let ip = client_ip_from_header("x-forwarded-for", &["198.51.100.9, 203.0.113.7"]);
        assert_eq!(ip, Some("203.0.113.7".parse().expect("ip")));
        let ip = client_ip_from_header(
            "forwarded",
            &["for=198.51.100.9, for=\"[2001:db8::1]:443\""],
        );
        assert_eq!(ip, Some("2001:db8::1".parse().expect("ip")));
        let ip = client_ip_from_header("spin-client-addr", &["192.0.2.1:52100"]);
        assert_eq!(ip, Some("192.0.2.1".parse().expect("ip")));
        assert_eq!(client_ip_from_header("x-forwarded-for", &["unknown"]), None);
        assert_eq!(client_ip_from_header("x-forwarded-for", &[]), None);
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
