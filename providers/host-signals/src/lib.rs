//! The host-signals Edge Cookie provider: an identifier derived from transport fingerprints.
//!
//! Value: 64 lowercase hex HMAC-SHA256(passphrase, `ja4` + `\n` + `http2` + `\n` + normalized
//! client IP), where a missing fingerprint is the empty string. Deterministic: the same browser
//! stack on the same network gets the same value, so concurrent first requests converge on one
//! identity record. Declares three reads: `client-ip`, `ja4`, `http2-fingerprint`; a host that
//! cannot supply the fingerprints refuses to load it (the standalone host supplies them only from
//! the trusted CDN headers `server.fingerprint_headers` names). Without either fingerprint on a
//! request it sets no cookie: an IP alone is the HMAC provider's job. Reads its key from the
//! setting `passphrase` (refused at load when missing) and never echoes it.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, IpAddress, Manifest, Read, Settings};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The setting holding the HMAC key.
pub const PASSPHRASE: &str = "passphrase";

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct HostSignalsProvider;

impl EdgeCookieProvider for HostSignalsProvider {
    fn describe(settings: &Settings) -> Result<Manifest, String> {
        settings.require(PASSPHRASE)?;
        Ok(Manifest {
            id: "host-signals".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            reads: alloc::vec![Read::ClientIp, Read::Ja4, Read::Http2Fingerprint],
            call_budget_ms: None,
        })
    }

    fn generate(
        settings: &Settings,
        evidence: Evidence,
        _current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let key = settings.require(PASSPHRASE).map_err(EcError::Config)?;
        let id = derive(
            key.as_bytes(),
            evidence.ja4.as_deref(),
            evidence.http2_fingerprint.as_deref(),
            evidence.client_ip.as_ref(),
        );
        Ok(EcOutput {
            id,
            headers: Vec::new(),
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(HostSignalsProvider);

/// The identifier for these signals, or `None` without any fingerprint.
pub fn derive(
    key: &[u8],
    ja4: Option<&str>,
    http2: Option<&str>,
    ip: Option<&IpAddress>,
) -> Option<String> {
    if ja4.is_none() && http2.is_none() {
        return None;
    }
    let mut message = String::new();
    message.push_str(ja4.unwrap_or(""));
    message.push('\n');
    message.push_str(http2.unwrap_or(""));
    message.push('\n');
    if let Some(ip) = ip {
        message.push_str(&normalize_ip(ip));
    }
    #[allow(clippy::expect_used)]
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(message.as_bytes());
    let mut out = String::with_capacity(64);
    for b in mac.finalize().into_bytes() {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    Some(out)
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// IPv4 as dotted decimal, IPv6 as its /64 prefix in 16 hex digits (as the HMAC provider).
fn normalize_ip(ip: &IpAddress) -> String {
    match *ip {
        IpAddress::Ipv4((a, b, c, d)) => alloc::format!("{a}.{b}.{c}.{d}"),
        IpAddress::Ipv6((a, b, c, d, ..)) => alloc::format!("{a:04x}{b:04x}{c:04x}{d:04x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IP: IpAddress = IpAddress::Ipv4((192, 0, 2, 7));

    #[test]
    fn no_fingerprint_means_no_identifier() {
        assert_eq!(derive(b"k", None, None, Some(&IP)), None);
    }

    #[test]
    fn the_identifier_is_deterministic_and_depends_on_every_signal() {
        let a = derive(
            b"k",
            Some("t13d1516h2_8daaf6152771_e5627efa2ab1"),
            None,
            Some(&IP),
        );
        assert_eq!(
            a,
            derive(
                b"k",
                Some("t13d1516h2_8daaf6152771_e5627efa2ab1"),
                None,
                Some(&IP)
            )
        );
        assert_eq!(a.as_deref().map(str::len), Some(64));
        assert_ne!(
            a,
            derive(
                b"k",
                Some("t13d1516h2_8daaf6152771_000000000000"),
                None,
                Some(&IP)
            )
        );
        assert_ne!(
            a,
            derive(
                b"other",
                Some("t13d1516h2_8daaf6152771_e5627efa2ab1"),
                None,
                Some(&IP)
            )
        );
        let other_ip = IpAddress::Ipv4((192, 0, 2, 8));
        assert_ne!(
            a,
            derive(
                b"k",
                Some("t13d1516h2_8daaf6152771_e5627efa2ab1"),
                None,
                Some(&other_ip)
            )
        );
        // A fingerprint moved from one field to the other is another identity.
        assert_ne!(
            a,
            derive(
                b"k",
                None,
                Some("t13d1516h2_8daaf6152771_e5627efa2ab1"),
                Some(&IP)
            )
        );
    }
}
