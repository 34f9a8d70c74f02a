//! The first-party HMAC Edge Cookie provider.
//!
//! Value: `<64 lowercase hex HMAC-SHA256(passphrase, normalized client IP)>.<6 random [A-Za-z0-9]>`.
//! IPv4 is normalized to dotted decimal; IPv6 to its /64 prefix written as 16 lowercase hex digits.
//! Reads its passphrase from `wasi:config/store` key `passphrase`; never logs or echoes it.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component.
use gatehouse_provider_rt as _;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use hmac::{Hmac, Mac};
use sha2::Sha256;

// Generated bindings and export glue: the only unsafe code in a provider.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "edge-cookie-provider",
        path: "../../wit",
        generate_all,
    });
    // Exported only on wasm32: the export names contain `:`, which native linkers reject.
    #[cfg(target_arch = "wasm32")]
    use super::HmacProvider;
    #[cfg(target_arch = "wasm32")]
    export!(HmacProvider with_types_in self);
}

use bindings::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput, Guest, Manifest};
use bindings::gatehouse::provider::evidence::Request;
use bindings::gatehouse::provider::types::IpAddress;
use bindings::wasi;

struct HmacProvider;

impl Guest for HmacProvider {
    fn describe() -> Manifest {
        Manifest {
            id: "hmac".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
        }
    }

    fn generate(req: &Request, current: Option<String>) -> Result<EcOutput, EcError> {
        let key = wasi::config::store::get("passphrase")
            .map_err(|_| EcError::Config("`passphrase`: config store unavailable".into()))?
            .ok_or_else(|| EcError::Config("`passphrase`: missing".into()))?;
        let ip = req
            .client_ip()
            .ok_or_else(|| EcError::MissingEvidence("client ip".into()))?;
        let hash = hmac_hex(key.as_bytes(), &normalize_ip(&ip));
        if let Some(current) = current {
            if current.len() == 64 + 1 + 6 && current.starts_with(hash.as_str()) {
                let (_, suffix) = current.split_at(65);
                if current.as_bytes()[64] == b'.'
                    && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
                {
                    return Ok(EcOutput {
                        id: Some(current),
                        headers: Vec::new(),
                    });
                }
            }
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
    let bytes = wasi::random::random::get_random_bytes(12);
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
