//! The `[auction]` configuration table and its `[[auction.bidders]]`. Unknown keys are errors;
//! every error names the key (`auction.bidders[1].url`).

use serde::Deserialize;

use crate::pipeline::{is_cookie_domain, is_cookie_name};

/// Default `auction.tmax_ms`.
pub const DEFAULT_TMAX_MS: u64 = 1000;
/// Highest `auction.tmax_ms` (and bidder `timeout_ms`) accepted.
pub const MAX_TMAX_MS: u64 = 10_000;
/// The most bidders per auction.
pub const MAX_BIDDERS: usize = 32;

/// `[auction]`.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AuctionConfig {
    /// `currency` (default `USD`): the ISO 4217 code bids must be in (`cur`, `bidfloorcur`).
    pub currency: String,
    /// `tmax_ms` (default 1000): the whole auction's budget; sent as `tmax`.
    pub tmax_ms: u64,
    /// `edge_cookie_eid_source` (default: the page's host): `user.eids[].source` of the Edge
    /// Cookie.
    pub edge_cookie_eid_source: Option<String>,
    /// `allowed_eid_sources` (default none): client EIDs whose `source` is not listed here are
    /// never forwarded.
    pub allowed_eid_sources: Vec<String>,
    /// `[[auction.bidders]]`.
    pub bidders: Vec<BidderConfig>,
}

impl Default for AuctionConfig {
    fn default() -> Self {
        Self {
            currency: "USD".to_owned(),
            tmax_ms: DEFAULT_TMAX_MS,
            edge_cookie_eid_source: None,
            allowed_eid_sources: Vec::new(),
            bidders: Vec::new(),
        }
    }
}

/// One `[[auction.bidders]]` entry: an OpenRTB endpoint and the partner's flags.
///
/// A bidder that names a `[[partners]]` entry (`partner = "<id>"`) takes that partner's
/// `bidstream_enabled` and `consent_forwarding` ([`super::Auction::with_partners`]); setting
/// either flag inline as well is a config error, so the two can never disagree.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(try_from = "RawBidderConfig")]
pub struct BidderConfig {
    /// `name`: the partner id, unique; reported to the page as the winning bidder.
    pub name: String,
    /// `url`: the OpenRTB endpoint (`https://`, or `http://` for loopback tests).
    pub url: String,
    /// `timeout_ms` (default: `auction.tmax_ms`): this bidder's budget, at most `tmax_ms`.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// `publisher_id` (optional): the publisher's account at this partner (`site.publisher.id`).
    #[serde(default)]
    pub publisher_id: Option<String>,
    /// `bidstream_enabled` (default false): whether identifiers (Edge Cookie, client EIDs) may be
    /// sent to this partner at all.
    #[serde(default)]
    pub bidstream_enabled: bool,
    /// `consent_forwarding` (default `both`): where the consent strings travel.
    #[serde(default)]
    pub consent_forwarding: ConsentForwarding,
    /// `forward_cookies` (default none): other first-party cookies this partner receives in its
    /// `Cookie` header. Never the Edge Cookie or a consent cookie (those follow
    /// `consent_forwarding`).
    #[serde(default)]
    pub forward_cookies: Vec<String>,
    /// `partner` (optional): the `[[partners]]` id whose auction flags apply to this bidder.
    #[serde(default)]
    pub partner: Option<String>,
}

/// `[[auction.bidders]]` as written: the flags are optional so that naming a partner and
/// setting a flag inline can be told apart.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBidderConfig {
    name: String,
    url: String,
    #[serde(default)]
    timeout_ms: Option<u64>,
    #[serde(default)]
    publisher_id: Option<String>,
    #[serde(default)]
    bidstream_enabled: Option<bool>,
    #[serde(default)]
    consent_forwarding: Option<ConsentForwarding>,
    #[serde(default)]
    forward_cookies: Vec<String>,
    #[serde(default)]
    partner: Option<String>,
}

impl TryFrom<RawBidderConfig> for BidderConfig {
    type Error = String;

    fn try_from(raw: RawBidderConfig) -> Result<Self, Self::Error> {
        if let Some(partner) = &raw.partner {
            let inline = [
                raw.bidstream_enabled.map(|_| "bidstream_enabled"),
                raw.consent_forwarding.map(|_| "consent_forwarding"),
            ];
            if let Some(field) = inline.into_iter().flatten().next() {
                return Err(format!(
                    "bidder `{}` names partner `{}`, whose `{field}` applies: remove \
                     `auction.bidders[].{field}` or the `partner` key",
                    escaped(&raw.name),
                    escaped(partner)
                ));
            }
        }
        Ok(Self {
            name: raw.name,
            url: raw.url,
            timeout_ms: raw.timeout_ms,
            publisher_id: raw.publisher_id,
            bidstream_enabled: raw.bidstream_enabled.unwrap_or(false),
            consent_forwarding: raw.consent_forwarding.unwrap_or_default(),
            forward_cookies: raw.forward_cookies,
            partner: raw.partner,
        })
    }
}

/// Where a partner receives the consent strings.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ConsentForwarding {
    /// In the OpenRTB body only; consent cookies are stripped from the `Cookie` header.
    OpenrtbOnly,
    /// In the `Cookie` header only (the consent cookies as the visitor sent them); the body keeps
    /// `regs.gdpr` (a fact of jurisdiction, which no cookie carries) but no consent string.
    CookiesOnly,
    /// Both.
    #[default]
    Both,
}

impl ConsentForwarding {
    /// Whether consent strings go in the OpenRTB body.
    #[must_use]
    pub fn in_body(self) -> bool {
        matches!(self, Self::OpenrtbOnly | Self::Both)
    }

    /// Whether consent cookies go in the `Cookie` header.
    #[must_use]
    pub fn in_cookies(self) -> bool {
        matches!(self, Self::CookiesOnly | Self::Both)
    }
}

/// Why `[auction]` was refused. Each message names the config key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AuctionConfigError {
    /// No bidder, or too many.
    #[error(
        "config key `auction.bidders`: {count} bidders configured, expected 1 to {MAX_BIDDERS}"
    )]
    BidderCount {
        /// How many were configured.
        count: usize,
    },
    /// `currency` is not three uppercase letters.
    #[error("config key `auction.currency`: `{value}` is not an iso 4217 code")]
    InvalidCurrency {
        /// The value, escaped.
        value: String,
    },
    /// `tmax_ms` or a `timeout_ms` out of range.
    #[error("config key `{key}`: `{value}` is out of range (1 to {max})")]
    InvalidTimeout {
        /// The key.
        key: String,
        /// The value.
        value: u64,
        /// The upper bound.
        max: u64,
    },
    /// An empty or non-token bidder name.
    #[error(
        "config key `{key}`: `{value}` is not a bidder name (1 to 64 of a-z, 0-9, `-`, `_`, `.`)"
    )]
    InvalidBidderName {
        /// The key.
        key: String,
        /// The value, escaped.
        value: String,
    },
    /// Two bidders with the same name.
    #[error("config key `{key}`: bidder `{name}` is configured twice")]
    DuplicateBidder {
        /// The key of the second one.
        key: String,
        /// The name.
        name: String,
    },
    /// A url that is not `http(s)://host...`.
    #[error("config key `{key}`: `{value}` is not an absolute http or https url")]
    InvalidUrl {
        /// The key.
        key: String,
        /// The value, escaped.
        value: String,
    },
    /// A cookie name that is not a token, or one that may never be forwarded.
    #[error("config key `{key}`: cookie `{name}` {reason}")]
    ForwardCookie {
        /// The key.
        key: String,
        /// The cookie name, escaped.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// An EID source that is not a domain.
    #[error("config key `{key}`: `{value}` is not a domain")]
    InvalidEidSource {
        /// The key.
        key: String,
        /// The value, escaped.
        value: String,
    },
    /// `partner` names no `[[partners]]` entry.
    #[error("config key `{key}`: no partner has the id `{id}`")]
    UnknownPartner {
        /// The key.
        key: String,
        /// The id, escaped.
        id: String,
    },
    /// The policy lacks a permission the auction gates identity on.
    #[error(
        "policy `{policy}` does not define the permission `{permission}`, which gates identifiers in bid requests"
    )]
    MissingPermission {
        /// The policy source name.
        policy: String,
        /// The permission.
        permission: &'static str,
    },
}

pub(crate) fn escaped(text: &str) -> String {
    text.chars()
        .take(256)
        .collect::<String>()
        .escape_default()
        .to_string()
}

pub(crate) fn is_bidder_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

/// Whether `url` is `http://` or `https://` followed by a non-empty authority, all printable.
pub(crate) fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    rest.is_some_and(|r| {
        let authority = r.split(['/', '?', '#']).next().unwrap_or_default();
        !authority.is_empty() && !authority.contains('@')
    }) && url.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

pub(crate) fn check_cookie_name(
    key: &str,
    name: &str,
    edge_cookie: &str,
    consent_cookies: &[&str],
) -> Result<(), AuctionConfigError> {
    let reason = if !is_cookie_name(name) {
        Some("is not a cookie name")
    } else if name == edge_cookie {
        Some("is the edge cookie, which reaches bidders only as a permitted eid")
    } else if consent_cookies.contains(&name) {
        Some("is a consent cookie, forwarded according to `consent_forwarding`")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AuctionConfigError::ForwardCookie {
            key: key.to_owned(),
            name: escaped(name),
            reason,
        }),
        None => Ok(()),
    }
}

pub(crate) fn check_domain(key: &str, value: &str) -> Result<(), AuctionConfigError> {
    if is_cookie_domain(value) && !value.starts_with('.') {
        Ok(())
    } else {
        Err(AuctionConfigError::InvalidEidSource {
            key: key.to_owned(),
            value: escaped(value),
        })
    }
}
