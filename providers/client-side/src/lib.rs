//! The client-side Edge Cookie provider: the value is computed in the browser.
//!
//! On a page request without an Edge Cookie it answers `id: none` (it defers): the page script
//! the server serves for it ([`SCRIPT`], at `GET /_ts/ec.js`) draws 32 random bytes and six
//! random characters with `crypto.getRandomValues` and posts
//! `<64 lowercase hex>.<6 [A-Za-z0-9]>`, the format the HMAC provider mints, to
//! `POST /_ts/api/v1/ec/resolve`. The host calls `generate` with `current = some(posted value)`
//! after the same permission checks as a page request, and this provider answers that value
//! when it verifies, `none` when it does not. A request that already carries a valid value keeps
//! it (the same call, with the cookie as `current`).
//!
//! What it verifies, server-side, without a secret the browser could not hold: the exact format,
//! and that the 64 hex digits are not degenerate ([`MIN_DISTINCT_HEX_DIGITS`] distinct digits:
//! 32 random bytes have fewer with probability below 10^-20), so a hand-typed constant such as
//! `000…0` is refused. It cannot prove the value was random: a client-side identifier is as
//! trustworthy as the browser that chose it (a browser can equally send any well-formed
//! `Cookie`), which is why the host applies exactly the page request's permissions to it.
//!
//! It reads no request evidence and imports nothing beyond the provider types.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, Manifest, Settings};

/// The page script the host serves at `GET /_ts/ec.js` while this provider is selected.
pub const SCRIPT: &str = include_str!("../ec.js");

/// The fewest distinct hex digits the 64-digit part of a value must hold.
pub const MIN_DISTINCT_HEX_DIGITS: usize = 8;

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct ClientSideProvider;

impl EdgeCookieProvider for ClientSideProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Ok(Manifest {
            id: "client-side".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            // Nothing: the value comes from the browser, as `current`.
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
            id: current.filter(|value| is_valid(value)),
            headers: Vec::new(),
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(ClientSideProvider);

/// Whether `value` is `<64 lowercase hex>.<6 [A-Za-z0-9]>` with at least
/// [`MIN_DISTINCT_HEX_DIGITS`] distinct hex digits.
#[must_use]
pub fn is_valid(value: &str) -> bool {
    let Some((hex, suffix)) = value.split_once('.') else {
        return false;
    };
    if hex.len() != 64
        || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        || suffix.len() != 6
        || !suffix.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return false;
    }
    let mut seen = [false; 16];
    for b in hex.bytes() {
        let digit = if b.is_ascii_digit() {
            b - b'0'
        } else {
            b - b'a' + 10
        };
        if let Some(slot) = seen.get_mut(usize::from(digit)) {
            *slot = true;
        }
    }
    seen.iter().filter(|s| **s).count() >= MIN_DISTINCT_HEX_DIGITS
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "3f9a0c47e1b2d85c6a7f09e3b41d2c8e5a6b7f0c1d2e3f4a5b6c7d8e9f0a1b2c.aB3dE9";

    #[test]
    fn a_random_value_in_the_edge_cookie_format_is_accepted() {
        assert!(is_valid(VALID));
    }

    #[test]
    fn a_value_outside_the_format_is_refused() {
        for bad in [
            "",
            "3f9a0c47",
            &VALID.replace('.', "-"),
            &VALID.to_uppercase(),
            &VALID[..VALID.len() - 1],
            &format!("{VALID}x"),
            &VALID.replace("aB3dE9", "aB3d;9"),
            &VALID.replacen('f', "g", 1),
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
    }

    #[test]
    fn a_degenerate_hex_part_is_refused() {
        let zeros = format!("{}.aB3dE9", "0".repeat(64));
        assert!(!is_valid(&zeros));
        let seven = format!("{}.aB3dE9", "0123456".repeat(10).get(..64).unwrap_or(""));
        assert!(!is_valid(&seven), "seven distinct digits");
    }

    #[test]
    fn the_page_script_posts_to_the_resolve_route() {
        assert!(SCRIPT.contains("/_ts/api/v1/ec/resolve"));
        assert!(SCRIPT.contains("crypto.getRandomValues"));
    }
}
