//! Consent signals for the host: from request headers to [`Signals`], and the `consent decode` CLI.
//!
//! TEMPORARY: GPC only, until the core's decoders land.

use std::process::ExitCode;

use gatehouse_core::policy::Signals;

/// `[consent]` settings.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentConfig {}

/// The request's consent signals.
pub fn signals(_config: &ConsentConfig, headers: &http::HeaderMap) -> Signals {
    let gpc = headers
        .get("sec-gpc")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "1");
    Signals {
        gpc,
        ..Signals::default()
    }
}

/// Signals for `permissions explain`.
pub fn explain_signals(
    _tcf: Option<&str>,
    gpc: bool,
    _us_privacy: Option<&str>,
) -> anyhow::Result<Signals> {
    Ok(Signals {
        gpc,
        ..Signals::default()
    })
}

/// `gatehouse consent decode`.
pub fn decode_command(_input: &str, _kind: Option<&str>) -> ExitCode {
    println!("{}", serde_json::json!({"error": "not implemented"}));
    ExitCode::from(1)
}
