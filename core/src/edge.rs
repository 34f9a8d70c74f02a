//! The per-request decision flow: geo → permissions → device → Edge Cookie.
//!
//! This module decides *whether* each provider may run and what its answer means; a host decides
//! *how* a provider runs (wasmtime instance, composed component, ...) by implementing
//! [`ProviderHost`]. A provider whose required permissions are not all held is never called, so a
//! host that instantiates lazily inside the trait methods never instantiates it either.
//!
//! Geo runs before the visitor's country is known, so the geo provider is gated against the
//! `default_country` baseline plus the request's consent signals. Every provider failure is
//! fail-closed: unknown geo falls back to `default_country`, the device is `unknown` (not a bot) and
//! no Edge Cookie is set.
//!
//! This module must never perform I/O or read a clock: everything it needs arrives as arguments.

use crate::policy::{DefaultCountry, MatchedRule, PermissionId, PermissionSet, Policy, Signals};

pub use crate::provider::{
    Classification, DeviceClass, EcOutput, Evidence, Location, ProviderFailure, ProviderHost,
    ProviderKind, RequestView,
};

/// Deployment settings the Edge Cookie decision needs; built once at startup.
#[derive(Clone, Debug)]
pub struct EdgeCookieRules {
    /// The `store-on-device` permission; the Edge Cookie is never set without it.
    pub store_on_device: PermissionId,
    /// Lowercase header names a provider may set. `set-cookie` is refused even if listed.
    pub allowed_headers: Vec<String>,
}

impl EdgeCookieRules {
    /// Builds the rules, resolving `store-on-device` in `policy`.
    ///
    /// # Errors
    /// When the policy does not define `store-on-device`.
    pub fn new(policy: &Policy, allowed_headers: &[String]) -> Result<Self, String> {
        let store_on_device = policy
            .permission_id("store-on-device")
            .ok_or_else(|| "the policy does not define `store-on-device`".to_owned())?;
        Ok(Self {
            store_on_device,
            allowed_headers: allowed_headers
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .filter(|h| h != "set-cookie")
                .collect(),
        })
    }
}

/// What happened to the Edge Cookie on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EdgeCookieDecision {
    /// No Edge Cookie provider is configured.
    NotConfigured,
    /// `store-on-device` or the provider's own requirements are not held; the provider was not run.
    NotPermitted,
    /// The device provider classified the client as a bot; the provider was not run.
    Bot,
    /// The request's existing cookie is valid and kept unchanged.
    Keep(String),
    /// A new value is to be set.
    Set(String),
    /// The provider chose to set nothing.
    NoneFromProvider,
    /// The provider failed; nothing is set.
    Failed,
}

/// Everything decided for one request.
#[derive(Debug)]
pub struct Decision<'p> {
    /// The location used for the policy lookup (the provider's, or empty when unknown).
    pub location: Location,
    /// The policy rule that matched.
    pub rule: MatchedRule<'p>,
    /// The permissions held for this request.
    pub permissions: PermissionSet,
    /// The device classification (neutral when no provider ran).
    pub device: Classification,
    /// The Edge Cookie outcome.
    pub edge_cookie: EdgeCookieDecision,
    /// Provider response headers that passed the allowlist.
    pub headers: Vec<(String, String)>,
    /// Providers that were configured but not run because permissions were missing.
    pub gated: Vec<ProviderKind>,
    /// Providers that failed, with the reason. The host logs and counts these.
    pub failures: Vec<(ProviderKind, ProviderFailure)>,
}

/// Runs the decision flow for one request.
pub fn decide<'p>(
    policy: &'p Policy,
    default_country: &DefaultCountry,
    signals: &Signals,
    ec_rules: &EdgeCookieRules,
    current_ec: Option<&str>,
    request: &dyn RequestView,
    host: &mut dyn ProviderHost,
) -> Decision<'p> {
    // Each provider's evidence holds exactly what its manifest declared.
    let gate = |host: &dyn ProviderHost, kind| {
        host.spec(kind)
            .map(|spec| (spec.required, Evidence::collect(&spec.reads, request)))
    };
    let mut gated = Vec::new();
    let mut failures = Vec::new();

    // Geo: gated against the default-country baseline plus the request's signals.
    let mut location = Location::default();
    if let Some((required, evidence)) = gate(host, ProviderKind::Geo) {
        let baseline = policy
            .match_jurisdiction(None, None, default_country)
            .resolve(signals);
        if baseline.contains_all(required) {
            match host.locate(&evidence) {
                Ok(found) => location = found,
                Err(failure) => failures.push((ProviderKind::Geo, failure)),
            }
        } else {
            gated.push(ProviderKind::Geo);
        }
    }

    let rule = policy.match_jurisdiction(
        location.country.as_deref(),
        location.region.as_deref(),
        default_country,
    );
    let permissions = rule.resolve(signals);

    let mut device = Classification::default();
    if let Some((required, evidence)) = gate(host, ProviderKind::Device) {
        if permissions.contains_all(required) {
            match host.classify(&evidence) {
                Ok(found) => device = found,
                Err(failure) => failures.push((ProviderKind::Device, failure)),
            }
        } else {
            gated.push(ProviderKind::Device);
        }
    }

    let mut headers = Vec::new();
    let edge_cookie = match gate(host, ProviderKind::EdgeCookie) {
        None => EdgeCookieDecision::NotConfigured,
        Some((required, evidence)) => {
            if !permissions.contains(ec_rules.store_on_device)
                || !permissions.contains_all(required)
            {
                gated.push(ProviderKind::EdgeCookie);
                EdgeCookieDecision::NotPermitted
            } else if device.class == DeviceClass::Bot {
                EdgeCookieDecision::Bot
            } else {
                match host
                    .generate_edge_cookie(&evidence, current_ec)
                    .and_then(|output| validate_output(output, &ec_rules.allowed_headers))
                {
                    Ok((id, allowed)) => {
                        headers = allowed;
                        match id {
                            None => EdgeCookieDecision::NoneFromProvider,
                            Some(id) if Some(id.as_str()) == current_ec => {
                                EdgeCookieDecision::Keep(id)
                            }
                            Some(id) => EdgeCookieDecision::Set(id),
                        }
                    }
                    Err(failure) => {
                        failures.push((ProviderKind::EdgeCookie, failure));
                        EdgeCookieDecision::Failed
                    }
                }
            }
        }
    };

    Decision {
        location,
        rule,
        permissions,
        device,
        edge_cookie,
        headers,
        gated,
        failures,
    }
}

/// The longest Edge Cookie value accepted from a provider.
pub const MAX_COOKIE_VALUE_LEN: usize = 256;

/// An Edge Cookie provider's output after validation: the id and the allowlisted headers.
type ValidOutput = (Option<String>, Vec<(String, String)>);

/// Refuses output that breaks the provider contract: a `set-cookie` header (a provider may not set
/// cookies of its own), or an Edge Cookie value that is not a non-empty RFC 6265 `cookie-value` of
/// bounded length (so a provider cannot inject attributes with `;`). Returns the id and the
/// allowlisted headers.
fn validate_output(
    output: EcOutput,
    allowed_headers: &[String],
) -> Result<ValidOutput, ProviderFailure> {
    if output
        .headers
        .iter()
        .any(|(name, _)| name.trim().eq_ignore_ascii_case("set-cookie"))
    {
        return Err(ProviderFailure::InvalidOutput(
            "provider tried to set `set-cookie`".into(),
        ));
    }
    if let Some(id) = output.id.as_deref() {
        if id.is_empty() || id.len() > MAX_COOKIE_VALUE_LEN {
            return Err(ProviderFailure::InvalidOutput(format!(
                "edge cookie value must be 1..={MAX_COOKIE_VALUE_LEN} bytes"
            )));
        }
        // cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
        let ok = id
            .bytes()
            .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E));
        if !ok {
            return Err(ProviderFailure::InvalidOutput(
                "edge cookie value has characters outside RFC 6265 cookie-octet".into(),
            ));
        }
    }
    Ok((output.id, filter_headers(output.headers, allowed_headers)))
}

/// Keeps only allowlisted headers with valid names and values; `set-cookie` never passes.
fn filter_headers(headers: Vec<(String, String)>, allowed: &[String]) -> Vec<(String, String)> {
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            let name = name.to_ascii_lowercase();
            let allowed = name != "set-cookie" && allowed.contains(&name);
            let value_ok = value
                .bytes()
                .all(|b| b == b'\t' || (0x20..0x7f).contains(&b));
            (allowed && value_ok).then_some((name, value))
        })
        .collect()
}

/// Formats the `Set-Cookie` header value for an Edge Cookie.
#[must_use]
pub fn set_cookie_header(
    name: &str,
    value: &str,
    domain: Option<&str>,
    max_age_secs: u64,
) -> String {
    let mut out = format!("{name}={value}");
    if let Some(domain) = domain {
        out.push_str("; Domain=");
        out.push_str(domain);
    }
    out.push_str(&format!(
        "; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age={max_age_secs}"
    ));
    out
}

/// Finds the value of cookie `name` in a `Cookie` request header value.
#[must_use]
pub fn find_cookie<'a>(cookie_header: &'a str, name: &str) -> Option<&'a str> {
    cookie_header.split(';').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == name).then(|| v.trim().trim_matches('"'))
    })
}
