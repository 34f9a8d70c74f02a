//! Test guest: an Edge Cookie provider that imports `gatehouse:provider/transport`.
//!
//! `generate` really calls `transport::ja4`, so the component imports the transport interface. A
//! host that cannot compute transport fingerprints (the standalone host) must refuse to load it;
//! a host that can sees the fingerprint echoed back in an `x-ja4` header and no Edge Cookie.

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
    use super::TransportGuest;
    #[cfg(target_arch = "wasm32")]
    export!(TransportGuest with_types_in self);
}

use bindings::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput, Guest, Manifest};
use bindings::gatehouse::provider::evidence::Request;
use bindings::gatehouse::provider::transport;
use bindings::gatehouse::provider::types::ResponseHeader;

struct TransportGuest;

impl Guest for TransportGuest {
    fn describe() -> Manifest {
        Manifest {
            id: "transport".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
        }
    }

    fn generate(req: &Request, _current: Option<String>) -> Result<EcOutput, EcError> {
        let headers = transport::ja4(req)
            .map(|fingerprint| ResponseHeader {
                name: "x-ja4".into(),
                value: fingerprint,
            })
            .into_iter()
            .collect::<Vec<_>>();
        Ok(EcOutput { id: None, headers })
    }
}
