//! Test guest: the smallest host component a static composition needs.
//!
//! It imports `gatehouse:provider/edge-cookie@0.2.0` and exports `call`, which passes the given
//! settings and the request's current cookie to the provider's `generate` and flattens the answer
//! to plain values (id, `name: value` headers). Nothing it imports is implemented by the provider
//! and nothing the provider imports is implemented by it: that is the 0.2 contract's promise that
//! a provider composes statically (wac) into a Fastly or wasi:http host component.
//! `tests/compose` plugs a provider into it with `wac-graph` and runs the result under wasmtime.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component (the SDK's `rt`).
use gatehouse_provider as _;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

// Generated bindings and export glue: the only unsafe code in a guest.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        inline: r#"
            package gatehouse-test:compose;

            world ec-caller {
                import gatehouse:provider/edge-cookie@0.2.0;

                /// Calls the plugged provider's `generate` with `settings` (key, value) and the
                /// request's `current` cookie, and no evidence. Returns the id and the provider's
                /// headers as `name: value`, or the provider's error as text.
                export call: func(settings: list<tuple<string, string>>, current: option<string>)
                    -> result<tuple<option<string>, list<string>>, string>;
            }
        "#,
        path: "../../../wit",
        world: "gatehouse-test:compose/ec-caller",
        generate_all,
    });
    #[cfg(target_arch = "wasm32")]
    use super::Caller;
    #[cfg(target_arch = "wasm32")]
    export!(Caller with_types_in self);
}

use bindings::gatehouse::provider::edge_cookie::{EcError, generate};
use bindings::gatehouse::provider::types::{Evidence, Setting};

/// The host component's implementation of `call`.
pub struct Caller;

impl bindings::Guest for Caller {
    fn call(
        settings: Vec<(String, String)>,
        current: Option<String>,
    ) -> Result<(Option<String>, Vec<String>), String> {
        let settings: Vec<Setting> = settings
            .into_iter()
            .map(|(key, value)| Setting { key, value })
            .collect();
        let evidence = Evidence {
            client_ip: None,
            user_agent: None,
            headers: Vec::new(),
            path: None,
            query: None,
            ja4: None,
            http2_fingerprint: None,
        };
        match generate(&settings, &evidence, current.as_deref()) {
            Ok(out) => Ok((
                out.id,
                out.headers
                    .into_iter()
                    .map(|h| format!("{}: {}", h.name, h.value))
                    .collect(),
            )),
            Err(EcError::Config(m)) => Err(format!("config: {m}")),
            Err(EcError::MissingEvidence(m)) => Err(format!("missing evidence: {m}")),
            Err(EcError::Internal(m)) => Err(format!("internal: {m}")),
        }
    }
}
