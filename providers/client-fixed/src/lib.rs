//! **TEST-ONLY** client-side Edge Cookie provider (`client-fixed`). Never deploy it: every
//! browser it serves gets the same identifier, [`FIXED_VALUE`].
//!
//! It exists so tests can drive the client-side flow (`GET /_ts/ec.js`, then
//! `POST /_ts/api/v1/ec/resolve`) and know the value in advance. Its page script ([`SCRIPT`])
//! posts [`FIXED_VALUE`]; the provider defers on a page request without a cookie (`id: none`),
//! accepts [`FIXED_VALUE`] as `current` (posted or carried) and nothing else. Its manifest id
//! says what it is: `client-fixed-test-only`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, Manifest, Settings};

/// The one value this provider accepts (the Edge Cookie format: 64 hex, `.`, 6 alphanumerics).
pub const FIXED_VALUE: &str =
    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.TEST00";

/// The page script the host serves at `GET /_ts/ec.js` while this provider is selected.
pub const SCRIPT: &str = include_str!("../ec.js");

/// The provider, exported as this component's interface.
pub struct ClientFixedProvider;

impl EdgeCookieProvider for ClientFixedProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Ok(Manifest {
            id: "client-fixed-test-only".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            reads: Vec::new(),
            call_budget_ms: None,
        })
    }

    fn generate(
        _settings: &Settings,
        _evidence: Evidence,
        current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        Ok(EcOutput {
            id: current.filter(|value| value == FIXED_VALUE),
            headers: Vec::new(),
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(ClientFixedProvider);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_script_posts_the_fixed_value() {
        assert!(SCRIPT.contains(FIXED_VALUE));
        assert!(SCRIPT.contains("/_ts/api/v1/ec/resolve"));
    }
}
