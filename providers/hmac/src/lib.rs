//! The first-party HMAC Edge Cookie provider.
//!
//! Value: `<64 lowercase hex HMAC-SHA256(passphrase, normalized client IP)>.<6 random [A-Za-z0-9]>`.
//! IPv4 is normalized to dotted decimal; IPv6 to its /64 prefix written as 16 lowercase hex digits.
//! Reads its passphrase from its setting `passphrase` (refused at load when missing); never logs or
//! echoes it. Declares exactly one read: `client-ip`.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::wasi::random::get_random_u64;
use gatehouse_provider::{Evidence, IpAddress, Manifest, Read, Settings};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The setting holding the HMAC key.
pub const PASSPHRASE: &str = "passphrase";

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct HmacProvider;

impl EdgeCookieProvider for HmacProvider {
    fn describe(settings: &Settings) -> Result<Manifest, String> {
        // Refuse at load time rather than failing every request.
        settings.require(PASSPHRASE)?;
        Ok(Manifest {
            id: "hmac".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            // The client address only: the cookie is keyed on it, nothing else is read.
            reads: alloc::vec![Read::ClientIp],
            call_budget_ms: None,
        })
    }

    fn generate(
        settings: &Settings,
        evidence: Evidence,
        current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let key = settings.require(PASSPHRASE).map_err(EcError::Config)?;
        let ip = evidence
            .client_ip
            .ok_or_else(|| EcError::MissingEvidence("client ip".into()))?;
        let hash = hmac_hex(key.as_bytes(), &normalize_ip(&ip));
        if let Some(current) = current.filter(|c| is_current_for(c, &hash)) {
            return Ok(EcOutput {
                id: Some(current),
                headers: Vec::new(),
            });
        }
        let mut id = hash;
        id.push('.');
        id.push_str(&random_suffix());
        Ok(EcOutput {
            id: Some(id),
            headers: Vec::new(),
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(HmacProvider);

/// Whether `current` is an Edge Cookie this provider minted for the client whose hash is `hash`:
/// `<hash>.<6 [A-Za-z0-9]>`. A cookie minted for another address is replaced.
pub fn is_current_for(current: &str, hash: &str) -> bool {
    match current.split_once('.') {
        Some((h, suffix)) => {
            h == hash && suffix.len() == 6 && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
        }
        None => false,
    }
}

/// Normalizes a client address for hashing (see the module docs).
pub fn normalize_ip(ip: &IpAddress) -> String {
    match *ip {
        IpAddress::Ipv4((a, b, c, d)) => format!("{a}.{b}.{c}.{d}"),
        IpAddress::Ipv6((a, b, c, d, ..)) => format!("{a:04x}{b:04x}{c:04x}{d:04x}"),
    }
}

/// Lowercase hex HMAC-SHA256 of `msg` under `key`.
pub fn hmac_hex(key: &[u8], msg: &str) -> String {
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(msg.as_bytes());
    let out = mac.finalize().into_bytes();
    let mut s = String::with_capacity(64);
    for b in out {
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn random_suffix() -> String {
    const ALPHABET: &[u8; 62] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(6);
    // Two `get-random-u64` calls rather than one `get-random-bytes`: an import returning a list
    // needs the canonical ABI's `realloc`, which makes the component instantiate two extra core
    // instances (a shim and its fixup) on every call; a `u64` result needs none.
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&get_random_u64().to_le_bytes());
    bytes[8..].copy_from_slice(&get_random_u64().to_le_bytes());
    // Rejection sampling over 248 = 4 * 62 keeps the alphabet uniform.
    for b in bytes {
        if b < 248 {
            out.push(char::from(ALPHABET[usize::from(b % 62)]));
            if out.len() == 6 {
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_is_dotted_decimal() {
        assert_eq!(normalize_ip(&IpAddress::Ipv4((192, 0, 2, 7))), "192.0.2.7");
    }

    #[test]
    fn ipv6_is_its_64_prefix_in_16_hex_digits() {
        // 2001:db8:85a3:0:8a2e:370:7334:1234 -> 20010db885a30000 (the example).
        let ip = IpAddress::Ipv6((0x2001, 0x0db8, 0x85a3, 0, 0x8a2e, 0x0370, 0x7334, 0x1234));
        assert_eq!(normalize_ip(&ip), "20010db885a30000");
    }

    #[test]
    fn hmac_matches_rfc_4231_test_case_2() {
        assert_eq!(
            hmac_hex(b"Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn current_cookie_is_kept_only_for_the_same_client() {
        let hash = hmac_hex(b"k", "192.0.2.7");
        assert!(is_current_for(&format!("{hash}.aB3dE9"), &hash));
        assert!(
            !is_current_for(&format!("{hash}.aB3dE"), &hash),
            "short suffix"
        );
        assert!(
            !is_current_for(&format!("{hash}.aB3d;9"), &hash),
            "bad alphabet"
        );
        let other = hmac_hex(b"k", "192.0.2.8");
        assert!(
            !is_current_for(&format!("{other}.aB3dE9"), &hash),
            "another client"
        );
    }
}
