//! Test guest: an Edge Cookie provider whose manifest requires `read-minds`, a permission no
//! policy defines.
//!
//! A host must refuse to load it (an unknown permission is never silently ignored). If a host
//! loads it anyway, `generate` answers with no Edge Cookie so the mistake shows up only in the
//! host's load-time checks under test, never as a cookie.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component.
use gatehouse_provider_rt as _;

use alloc::string::String;
use alloc::vec::Vec;

// Generated bindings and export glue: the only unsafe code in a guest.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "edge-cookie-provider",
        path: "../../../wit",
        generate_all,
    });
    // Exported only from the component: natively the export symbols' names (`pkg:iface@ver#fn`)
    // cannot be linked into a `cdylib`, and native builds exist only for unit tests and clippy.
    #[cfg(target_arch = "wasm32")]
    use super::UnknownPermissionGuest;
    #[cfg(target_arch = "wasm32")]
    export!(UnknownPermissionGuest with_types_in self);
}

use bindings::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput, Guest, Manifest};
use bindings::gatehouse::provider::evidence::Request;

/// The permissions this guest's manifest requires; `read-minds` is defined by no policy.
pub const REQUIRED_PERMISSIONS: [&str; 2] = ["store-on-device", "read-minds"];

struct UnknownPermissionGuest;

impl Guest for UnknownPermissionGuest {
    fn describe() -> Manifest {
        Manifest {
            id: "unknown-permission".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: REQUIRED_PERMISSIONS.iter().map(|p| (*p).into()).collect(),
        }
    }

    fn generate(_req: &Request, _current: Option<String>) -> Result<EcOutput, EcError> {
        Ok(EcOutput {
            id: None,
            headers: Vec::new(),
        })
    }
}
