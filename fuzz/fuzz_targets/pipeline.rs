//! The whole per-request pipeline: arbitrary Cookie header and GPC header, any jurisdiction and
//! clock, then signals, withdrawal and fingerprint.
#![no_main]

use gatehouse_core::consent::{ConsentConfig, ConsentContext, ConsentInput, JurisdictionFacts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let Ok(cookie) = std::str::from_utf8(rest) else {
        return;
    };
    let gpc = if flags & 4 != 0 { "1" } else { "0" };
    let headers = [("sec-gpc", gpc)];
    let config = ConsentConfig {
        max_consent_age_days: u32::from(flags >> 3) * 20,
        ..ConsentConfig::default()
    };
    let ctx = ConsentContext::build(
        &config,
        &ConsentInput {
            cookie_header: Some(cookie),
            headers: &headers,
            jurisdiction: JurisdictionFacts {
                gdpr_applies: flags & 1 != 0,
                us_privacy_applies: flags & 2 != 0,
            },
            now_unix_seconds: 1_700_000_000,
        },
    );
    let _ = ctx.signals();
    let _ = ctx.is_explicit_withdrawal();
    let _ = ctx.fingerprint();
    let _ = ctx.tcf();
});
