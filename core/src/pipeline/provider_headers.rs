//! Response headers an Edge Cookie provider asks for: the publisher's allowlist, per-provider
//! bounds, and an account of what was dropped.
//!
//! Invariants:
//! - A header name in [`NEVER_ALLOWLISTED`] can never be allowlisted (refused at startup), so a
//!   provider can never set a cookie, change the message framing or a hop-by-hop header, or undo
//!   the cache protection of a response carrying an identifier.
//! - Output over [`ProviderHeaderLimits`] (count or total bytes, counted before filtering) fails
//!   the provider closed: no header and no Edge Cookie from it on this request.
//! - Every header that does not pass is counted in [`DroppedHeader`]s, with its name only when
//!   the name is a clean token, so a hostile name never reaches a log.

use super::cookie::is_token;
use crate::provider::ProviderFailure;

/// Response headers no deployment may allowlist for providers (`ec.allowed_headers`): cookies
/// (Gatehouse owns the Edge Cookie and a provider may not set others), message framing and
/// content coding (a wrong value breaks or truncates the body), hop-by-hop headers, and the
/// cache directives Gatehouse rewrites so a response carrying an identifier is never stored by a
/// shared cache, and the headers that say what the response is or where it goes (a provider could
/// turn a page into a redirect, or wipe the visitor's site data).
pub const NEVER_ALLOWLISTED: &[&str] = &[
    // cookies
    "set-cookie",
    "set-cookie2",
    "cookie",
    // framing and content coding
    "content-length",
    "transfer-encoding",
    "content-encoding",
    "content-range",
    "trailer",
    // hop-by-hop (RFC 9110 §7.6.1)
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "upgrade",
    // caching: rewritten by `PagePipeline::edit_response`
    "cache-control",
    "cdn-cache-control",
    "surrogate-control",
    "expires",
    "pragma",
    "age",
    "vary",
    // what the response is and where it goes: the origin's, never a provider's
    "content-type",
    "location",
    "host",
    "clear-site-data",
];

/// Per-provider bounds on the headers one answer may carry (`ec.max_headers`,
/// `ec.max_header_bytes`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProviderHeaderLimits {
    /// Most headers one answer may return (`ec.max_headers`, default 8).
    pub max_count: usize,
    /// Most bytes of names plus values one answer may return (`ec.max_header_bytes`, default
    /// 4096).
    pub max_bytes: usize,
}

impl Default for ProviderHeaderLimits {
    fn default() -> Self {
        Self {
            max_count: 8,
            max_bytes: 4096,
        }
    }
}

/// Why a provider header was not added to the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// The name is not in `ec.allowed_headers`.
    NotAllowlisted,
    /// The name is not an RFC 9110 token (spaces, `:`, control bytes, non-ASCII, empty).
    InvalidName,
    /// The value holds CR, LF, another control byte or non-ASCII.
    InvalidValue,
}

impl DropReason {
    /// A short stable label for metrics and logs.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::NotAllowlisted => "not-allowlisted",
            Self::InvalidName => "invalid-name",
            Self::InvalidValue => "invalid-value",
        }
    }
}

/// A provider header that was dropped, for the host to count and log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedHeader {
    /// Why.
    pub reason: DropReason,
    /// The lowercase name when it is a token (safe to log); `None` otherwise.
    pub name: Option<String>,
}

/// The kept headers and the dropped ones.
pub(crate) type Filtered = (Vec<(String, String)>, Vec<DroppedHeader>);

/// Checks one provider answer's headers against the limits, then keeps the allowlisted ones with
/// clean values (names lowercased). `set-cookie` fails the provider outright: the contract forbids
/// it whatever the allowlist says.
pub(crate) fn filter(
    headers: Vec<(String, String)>,
    allowed: &[String],
    limits: ProviderHeaderLimits,
) -> Result<Filtered, ProviderFailure> {
    if headers.len() > limits.max_count {
        return Err(ProviderFailure::InvalidOutput(format!(
            "returned {} headers, more than the limit of {} (`ec.max_headers`)",
            headers.len(),
            limits.max_count
        )));
    }
    let bytes: usize = headers
        .iter()
        .map(|(name, value)| name.len().saturating_add(value.len()))
        .fold(0, usize::saturating_add);
    if bytes > limits.max_bytes {
        return Err(ProviderFailure::InvalidOutput(format!(
            "returned {bytes} bytes of headers, more than the limit of {} (`ec.max_header_bytes`)",
            limits.max_bytes
        )));
    }
    if headers
        .iter()
        .any(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
    {
        return Err(ProviderFailure::InvalidOutput(
            "provider tried to set `set-cookie`".into(),
        ));
    }
    let mut kept = Vec::with_capacity(headers.len());
    let mut dropped = Vec::new();
    for (name, value) in headers {
        if !is_token(&name) {
            dropped.push(DroppedHeader {
                reason: DropReason::InvalidName,
                name: None,
            });
            continue;
        }
        let name = name.to_ascii_lowercase();
        let reason = if !allowed.contains(&name) {
            Some(DropReason::NotAllowlisted)
        } else if !is_field_value(&value) {
            Some(DropReason::InvalidValue)
        } else {
            None
        };
        match reason {
            Some(reason) => dropped.push(DroppedHeader {
                reason,
                name: Some(name),
            }),
            None => kept.push((name, value)),
        }
    }
    Ok((kept, dropped))
}

/// Visible ASCII, space and tab only (no CR/LF, other controls, DEL or non-ASCII).
fn is_field_value(value: &str) -> bool {
    value
        .bytes()
        .all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
}
