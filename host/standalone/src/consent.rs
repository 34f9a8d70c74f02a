//! Consent signals for the host: from the request's cookies and headers to the core's
//! [`Signals`], and the `gatehouse consent decode` command.
//!
//! All decoding is the core's ([`gatehouse_core::consent`]); this module only adapts `http` types
//! and logs the signals the core ignored as malformed (never their values: consent strings are
//! personal data).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_core::consent::{
    ConsentContext, ConsentInput, HeaderLookup, JurisdictionFacts, RawSignals, SignalKind,
};
use gatehouse_core::policy::Signals;

pub use gatehouse_core::consent::ConsentConfig;

/// [`HeaderLookup`] over an `http::HeaderMap`.
struct Headers<'a>(&'a http::HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }
}

fn now_unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Builds the request's consent context. `jurisdiction` only affects what is forwarded
/// downstream (the synthesized US Privacy string, `gdpr_applies`), not the permission signals.
#[must_use]
pub fn context(
    config: &ConsentConfig,
    headers: &http::HeaderMap,
    jurisdiction: JurisdictionFacts,
) -> ConsentContext {
    let cookies: Vec<&str> = headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let joined;
    let cookie_header = match cookies.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => {
            joined = many.join("; ");
            Some(joined.as_str())
        }
    };
    let ctx = ConsentContext::build(
        config,
        &ConsentInput {
            cookie_header,
            headers: &Headers(headers),
            jurisdiction,
            now_unix_seconds: now_unix_seconds(),
        },
    );
    for warning in ctx.warnings() {
        tracing::debug!(signal = %warning.source_signal, "consent signal ignored: {}", warning.error);
    }
    ctx
}

/// The request's consent signals for permission resolution.
#[must_use]
pub fn signals(config: &ConsentConfig, headers: &http::HeaderMap) -> Signals {
    context(config, headers, JurisdictionFacts::default()).signals()
}

/// Signals for `permissions explain`, built exactly as a live request's would be (so an expired
/// TC string is ignored, with a note on stderr).
///
/// # Errors
/// When `--tcf` or `--us-privacy` does not decode: the audit tool refuses rather than ignores.
pub fn explain_signals(
    config: &ConsentConfig,
    tcf: Option<&str>,
    gpc: bool,
    us_privacy: Option<&str>,
) -> anyhow::Result<Signals> {
    if let Some(tcf) = tcf {
        gatehouse_core::consent::decode_to_json(tcf, Some(SignalKind::Tcf))
            .map_err(|e| anyhow::anyhow!("`--tcf`: {e}"))?;
    }
    if let Some(usp) = us_privacy {
        gatehouse_core::consent::decode_to_json(usp, Some(SignalKind::Usp))
            .map_err(|e| anyhow::anyhow!("`--us-privacy`: {e}"))?;
    }
    let raw = RawSignals {
        tc_string: tcf.map(str::to_owned),
        us_privacy: us_privacy.map(str::to_owned),
        gpc,
        ..RawSignals::default()
    };
    let ctx = ConsentContext::from_raw(
        config,
        raw,
        JurisdictionFacts::default(),
        now_unix_seconds(),
    );
    if ctx.is_expired() {
        eprintln!(
            "note: the TC string is older than {} days (`consent.max_consent_age_days`); a live \
             request would ignore it, and so does this explanation",
            config.max_consent_age_days
        );
    }
    Ok(ctx.signals())
}

/// `gatehouse consent decode STRING [--kind K]`: one JSON object on stdout; exit 0, or
/// `{"error": "..."}` and exit 1.
#[must_use]
pub fn decode_command(input: &str, kind: Option<&str>) -> ExitCode {
    let result = kind
        .map(str::parse::<SignalKind>)
        .transpose()
        .and_then(|kind| gatehouse_core::consent::decode_to_json(input, kind));
    match result {
        Ok(doc) => {
            println!("{doc}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
            ExitCode::from(1)
        }
    }
}
