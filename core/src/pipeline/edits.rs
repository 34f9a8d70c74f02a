//! What the pipeline changes on the wire: the request forwarded to the origin and the response
//! sent back. Hosts apply these through [`EditableHeaders`], so every host edits identically.
//!
//! Invariants:
//! - A client can never pass its own `gatehouse-decision` to the origin: every incoming one is
//!   removed, on every request, before Gatehouse adds its own (page requests only).
//! - The Edge Cookie is removed from the forwarded `Cookie` header whenever `store-on-device` is
//!   not known to be held (a page request that does not hold it, and every request without a
//!   decision). Other cookies keep their bytes.
//! - The origin can never set the Edge Cookie: its `Set-Cookie` for that name is dropped.
//! - A response carrying an Edge Cookie `Set-Cookie` (minted or expired) or a provider header is
//!   made `private` for every cache: `public`, `s-maxage` and a field-qualified `private` are
//!   removed, other directives kept, and CDN-targeted cache fields (which would override
//!   `Cache-Control` for that CDN, RFC 9213) are removed.

use std::fmt::Write as _;

use super::cookie::{remove_cookie, set_cookie_name};
use crate::policy::{MatchKind, MatchedRule, PermissionSet};

/// The request header that tells the origin what Gatehouse decided (see [`decision_header`]).
pub const DECISION_HEADER: &str = "gatehouse-decision";

/// CDN-targeted cache fields (RFC 9213 and its predecessors) that would let a CDN in front of
/// Gatehouse store a response `Cache-Control` marks `private`; removed from such responses.
pub const TARGETED_CACHE_HEADERS: &[&str] = &[
    "cdn-cache-control",
    "surrogate-control",
    "cloudflare-cdn-cache-control",
];

/// Mutable access to one message's header fields, implemented by each host over its own HTTP
/// types (and for a plain `Vec<(String, Vec<u8>)>` here). Names passed in are lowercase;
/// implementations compare them case-insensitively.
pub trait EditableHeaders {
    /// Every value of `name`, in message order, as raw bytes.
    fn values(&self, name: &str) -> Vec<&[u8]>;
    /// Removes every value of `name`.
    fn remove(&mut self, name: &str);
    /// Appends one value of `name`. The core only appends values that are valid field values.
    fn append(&mut self, name: &str, value: &[u8]);
}

impl EditableHeaders for Vec<(String, Vec<u8>)> {
    fn values(&self, name: &str) -> Vec<&[u8]> {
        self.iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    fn remove(&mut self, name: &str) {
        self.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    fn append(&mut self, name: &str, value: &[u8]) {
        self.push((name.to_owned(), value.to_vec()));
    }
}

/// Edits to the request forwarded to the origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ForwardEdits {
    /// Remove the Edge Cookie from the forwarded `Cookie` header.
    pub strip_edge_cookie: bool,
    /// The `gatehouse-decision` value to add (page requests only).
    pub decision: Option<String>,
}

/// Edits to the response sent to the visitor.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseEdits {
    /// The Edge Cookie `Set-Cookie` value to add (minting or expiring it).
    pub set_cookie: Option<String>,
    /// Provider headers that passed the allowlist and the limits, lowercase names.
    pub headers: Vec<(String, String)>,
}

impl ResponseEdits {
    /// Whether the response will carry something tied to this visitor (an Edge Cookie
    /// `Set-Cookie` or a provider header), so no shared cache may store it.
    #[must_use]
    pub fn is_private(&self) -> bool {
        self.set_cookie.is_some() || !self.headers.is_empty()
    }
}

pub(crate) fn edit_request(
    edits: &ForwardEdits,
    cookie_name: &str,
    headers: &mut dyn EditableHeaders,
) {
    headers.remove(DECISION_HEADER);
    if edits.strip_edge_cookie {
        let lines: Vec<Vec<u8>> = headers
            .values("cookie")
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let mut changed = false;
        let rewritten: Vec<Vec<u8>> = lines
            .into_iter()
            .filter_map(|line| match remove_cookie(&line, cookie_name) {
                None => Some(line),
                Some(stripped) => {
                    changed = true;
                    (!stripped.is_empty()).then_some(stripped)
                }
            })
            .collect();
        if changed {
            headers.remove("cookie");
            for line in rewritten {
                headers.append("cookie", &line);
            }
        }
    }
    if let Some(decision) = &edits.decision {
        headers.append(DECISION_HEADER, decision.as_bytes());
    }
}

pub(crate) fn edit_response(
    edits: &ResponseEdits,
    cookie_name: &str,
    headers: &mut dyn EditableHeaders,
) {
    // Gatehouse owns the Edge Cookie name: the origin's own `Set-Cookie` for it never passes.
    let set_cookies: Vec<Vec<u8>> = headers
        .values("set-cookie")
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect();
    if set_cookies
        .iter()
        .any(|value| set_cookie_name(value) == Some(cookie_name.as_bytes()))
    {
        headers.remove("set-cookie");
        for value in set_cookies
            .iter()
            .filter(|value| set_cookie_name(value) != Some(cookie_name.as_bytes()))
        {
            headers.append("set-cookie", value);
        }
    }
    if let Some(cookie) = &edits.set_cookie {
        headers.append("set-cookie", cookie.as_bytes());
    }
    for (name, value) in &edits.headers {
        headers.append(name, value.as_bytes());
    }
    if edits.is_private() {
        let current: Vec<Vec<u8>> = headers
            .values("cache-control")
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
        let private = private_cache_control(&current);
        headers.remove("cache-control");
        headers.append("cache-control", private.as_bytes());
        for name in TARGETED_CACHE_HEADERS {
            headers.remove(name);
        }
    }
}

/// The `Cache-Control` value for a response no shared cache may store, from the origin's
/// `Cache-Control` lines: every directive kept as written except `public`, `s-maxage` and any
/// `private` (a field-qualified `private="..."` lets shared caches store the rest of the
/// response), then an unqualified `private`. `no-store` is kept: it is stronger still. An absent
/// header (heuristically cacheable) becomes `private`. Bytes that are not UTF-8 or not visible
/// ASCII cannot be trusted to mean anything, so such a line is dropped.
#[must_use]
pub fn private_cache_control(lines: &[Vec<u8>]) -> String {
    let mut kept: Vec<&str> = Vec::new();
    for line in lines {
        let Ok(line) = std::str::from_utf8(line) else {
            continue;
        };
        if !line
            .bytes()
            .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
        {
            continue;
        }
        for directive in split_directives(line) {
            let directive = directive.trim();
            if directive.is_empty() {
                continue;
            }
            let name = directive
                .split_once('=')
                .map_or(directive, |(name, _)| name)
                .trim();
            let drop = ["public", "s-maxage", "private"]
                .iter()
                .any(|d| name.eq_ignore_ascii_case(d));
            if !drop {
                kept.push(directive);
            }
        }
    }
    kept.push("private");
    kept.join(", ")
}

/// Splits a `Cache-Control` line at commas outside quoted strings (`no-cache="a, b"` is one
/// directive).
fn split_directives(line: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (index, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                out.push(&line[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    out.push(&line[start..]);
    out
}

/// The `gatehouse-decision` value: an RFC 8941 structured-field dictionary, for example
///
/// ```text
/// rule="US/CA", group="us-opt-out", geo=region, permissions=(select-basic-ads measure-ad-performance)
/// ```
///
/// - `rule`: the matched rule's key as written in the policy (`geo-failed` when geo failed);
/// - `group`: its group;
/// - `geo`: how the rule was found: `region`, `country`, `default` (`geo.default_country`: no
///   geo provider, geo not permitted, or no rule for the answer) or `failed` (fail-closed);
/// - `permissions`: the held permissions as tokens, in vocabulary order (`()` when none).
#[must_use]
pub fn decision_header(rule: &MatchedRule<'_>, permissions: PermissionSet) -> String {
    let geo = match rule.match_kind() {
        MatchKind::Region => "region",
        MatchKind::Country => "country",
        MatchKind::Default => "default",
        MatchKind::GeoFailed => "failed",
    };
    let mut out = String::with_capacity(64 + 24 * permissions.len());
    out.push_str("rule=");
    push_sf_string(&mut out, rule.rule_key());
    out.push_str(", group=");
    push_sf_string(&mut out, rule.group_name());
    let _ = write!(out, ", geo={geo}, permissions=(");
    for (index, name) in rule.policy().names(permissions).enumerate() {
        if index > 0 {
            out.push(' ');
        }
        out.push_str(name);
    }
    out.push(')');
    out
}

/// An RFC 8941 sf-string: printable ASCII in quotes, `"` and `\` escaped, anything else dropped
/// (policy names are ASCII already; this only guarantees a valid field).
fn push_sf_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            _ => {}
        }
    }
    out.push('"');
}
