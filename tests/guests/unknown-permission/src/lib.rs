//! Test guest: an Edge Cookie provider whose manifest requires `read-minds`, a permission no
//! policy defines.
//!
//! A host must refuse to load it (an unknown permission is never silently ignored). If a host
//! loads it anyway, `generate` answers with no Edge Cookie so the mistake shows up only in the
//! host's load-time checks under test, never as a cookie.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::{Evidence, Manifest, Settings};

/// The permissions this guest's manifest requires; `read-minds` is defined by no policy.
pub const REQUIRED_PERMISSIONS: [&str; 2] = ["store-on-device", "read-minds"];

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct UnknownPermissionGuest;

impl EdgeCookieProvider for UnknownPermissionGuest {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Ok(Manifest {
            id: "unknown-permission".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: REQUIRED_PERMISSIONS.iter().map(|p| (*p).into()).collect(),
            reads: Vec::new(),
            call_budget_ms: None,
        })
    }

    fn generate(
        _settings: &Settings,
        _evidence: Evidence,
        _current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        Ok(EcOutput {
            id: None,
            headers: Vec::new(),
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(UnknownPermissionGuest);
