//! Test guest: an Edge Cookie provider that declares the `ja4` read (a TLS fingerprint).
//!
//! A host that cannot supply JA4 (the standalone host) must refuse to load it, naming the read; a
//! host that can sees the fingerprint echoed back in an `x-ja4` header and no Edge Cookie.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, Header, Manifest, Read, Settings};

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct TransportGuest;

impl EdgeCookieProvider for TransportGuest {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Ok(Manifest {
            id: "transport".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            reads: alloc::vec![Read::Ja4],
            call_budget_ms: None,
        })
    }

    fn generate(
        _settings: &Settings,
        evidence: Evidence,
        _current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let headers = evidence
            .ja4
            .map(|fingerprint| Header {
                name: "x-ja4".into(),
                value: fingerprint,
            })
            .into_iter()
            .collect::<Vec<_>>();
        Ok(EcOutput { id: None, headers })
    }
}

gatehouse_provider::export_edge_cookie_provider!(TransportGuest);
