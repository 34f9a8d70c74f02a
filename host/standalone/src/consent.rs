//! Consent signals for the host: from the request's cookies and headers to the core's
//! [`Signals`], and the `gatehouse consent decode` command.
//!
//! All decoding is the core's ([`gatehouse_core::consent`]); this module only adapts `http` types
//! and logs the signals the core ignored as malformed (never their values: consent strings are
//! personal data).

use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use gatehouse_core::consent::{
    ConsentContext, ConsentInput, HeaderLookup, JurisdictionFacts, NoHeaders, RawSignals,
    SignalKind,
};
use gatehouse_core::policy::Signals;

pub use gatehouse_core::consent::ConsentConfig;

/// [`HeaderLookup`] over an `http::HeaderMap`.
struct Headers<'a>(&'a http::HeaderMap);

impl HeaderLookup for Headers<'_> {
    fn header(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(|v| v.to_str().ok())
    }

    fn header_values(&self, name: &str) -> Vec<&str> {
        self.0
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect()
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

/// The consent inputs of `permissions explain`: single signals and a whole `Cookie` header.
#[derive(Clone, Debug, Default)]
pub struct ExplainInput<'a> {
    /// `--tcf`: a TC string, as if in the TC string cookie.
    pub tcf: Option<&'a str>,
    /// `--gpp`: a GPP string, as if in the GPP cookie.
    pub gpp: Option<&'a str>,
    /// `--gpp-sid`: a `__gpp_sid` value.
    pub gpp_sid: Option<&'a str>,
    /// `--us-privacy`: a US Privacy string.
    pub us_privacy: Option<&'a str>,
    /// `--gpc`: the request carried `Sec-GPC: 1`.
    pub gpc: bool,
    /// `--cookie`: a whole `Cookie` header, parsed exactly as the server parses it.
    pub cookie: Option<&'a str>,
}

/// Signals for `permissions explain`, built exactly as a live request's would be: the same
/// extraction (for `--cookie`), decoding, expiry, applicability and fail-closed rules. Every signal
/// a live request would ignore is reported on stderr as a note.
///
/// # Errors
/// When `--tcf`, `--us-privacy`, `--gpp` or `--gpp-sid` does not decode (the audit tool refuses
/// rather than ignores a value given on its own; a failing GPP *section* is not an error, the
/// server fails closed on it and so does the explanation), or when a flag names a signal the
/// `--cookie` header already carries.
pub fn explain_signals(
    config: &ConsentConfig,
    input: &ExplainInput<'_>,
    jurisdiction: JurisdictionFacts,
) -> anyhow::Result<Signals> {
    let check = |value: Option<&str>, kind: SignalKind, flag: &str| -> anyhow::Result<()> {
        if let Some(value) = value {
            gatehouse_core::consent::decode_to_json(value, Some(kind))
                .map_err(|e| anyhow::anyhow!("`{flag}`: {e}"))?;
        }
        Ok(())
    };
    check(input.tcf, SignalKind::Tcf, "--tcf")?;
    check(input.us_privacy, SignalKind::Usp, "--us-privacy")?;
    check(input.gpp, SignalKind::Gpp, "--gpp")?;
    if let Some(sid) = input.gpp_sid {
        gatehouse_core::consent::parse_gpp_sid(sid)
            .map_err(|e| anyhow::anyhow!("`--gpp-sid`: {e}"))?;
    }
    let gpc_header = [("sec-gpc", "1")];
    let headers: &dyn HeaderLookup = if input.gpc { &gpc_header } else { &NoHeaders };
    let mut header_config = config.clone();
    header_config.header_names.gpc = "sec-gpc".into();
    let mut raw = RawSignals::extract(&header_config, input.cookie, headers);
    let flags = [
        (&mut raw.tc_string, input.tcf, "--tcf"),
        (&mut raw.gpp, input.gpp, "--gpp"),
        (&mut raw.gpp_sid, input.gpp_sid, "--gpp-sid"),
        (&mut raw.us_privacy, input.us_privacy, "--us-privacy"),
    ];
    for (slot, value, flag) in flags {
        if let Some(value) = value {
            if slot.is_some() {
                anyhow::bail!(
                    "`{flag}` and the `--cookie` header both carry this signal; give one"
                );
            }
            *slot = Some(value.trim().to_owned());
        }
    }
    let ctx = ConsentContext::from_raw(config, raw, jurisdiction, now_unix_seconds());
    for warning in ctx.warnings() {
        eprintln!("note: a live request would ignore this: {warning}");
    }
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
