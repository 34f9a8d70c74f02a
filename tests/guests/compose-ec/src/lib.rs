//! Test guest: an Edge Cookie provider that imports exactly its world, `wasi:random/random` and
//! `wasi:clocks/wall-clock`, for the composition test.
//!
//! `generate` mints `<prefix>-<unix seconds>-<16 random hex>` (`prefix` from its settings), or
//! keeps `current` when it starts with `<prefix>-`, and reports which in an `x-compose-ec` header.
//! It really calls both imports, so a composition that loses either one fails visibly.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component.
use gatehouse_provider_rt as _;

use alloc::format;
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
    #[cfg(target_arch = "wasm32")]
    use super::ComposeEc;
    #[cfg(target_arch = "wasm32")]
    export!(ComposeEc with_types_in self);
}

use bindings::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput, Guest};
use bindings::gatehouse::provider::types::{Evidence, Header, Manifest, Setting};
use bindings::wasi;

struct ComposeEc;

fn prefix(settings: &[Setting]) -> Result<&str, String> {
    settings
        .iter()
        .find(|s| s.key == "prefix")
        .map(|s| s.value.as_str())
        .ok_or_else(|| String::from("`prefix`: missing"))
}

impl Guest for ComposeEc {
    fn describe(settings: Vec<Setting>) -> Result<Manifest, String> {
        prefix(&settings)?;
        Ok(Manifest {
            id: "compose-ec".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            reads: Vec::new(),
            call_budget_ms: None,
        })
    }

    fn generate(
        settings: Vec<Setting>,
        _evidence: Evidence,
        current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let prefix = prefix(&settings).map_err(EcError::Config)?;
        let (id, report) = match current {
            Some(c) if c.starts_with(prefix) && c[prefix.len()..].starts_with('-') => (c, "kept"),
            _ => {
                let now = wasi::clocks::wall_clock::now().seconds;
                let random = wasi::random::random::get_random_u64();
                (format!("{prefix}-{now}-{random:016x}"), "minted")
            }
        };
        Ok(EcOutput {
            id: Some(id),
            headers: alloc::vec![Header {
                name: "x-compose-ec".into(),
                value: report.into(),
            }],
        })
    }
}
