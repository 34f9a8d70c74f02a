//! Gatehouse as a Fastly Compute program.
//!
//! Built with the `fastly` crate for `wasm32-wasip1` and made into a component at build time with
//! the adapter Viceroy ships (`host/standalone/build.rs`, the same transformation as `viceroy
//! adapt`). The component imports the three provider interfaces
//! (`gatehouse:provider/{geo,device,edge-cookie}@0.2.0`) and `gatehouse:host/deployment`, besides
//! Fastly's own `fastly:compute/*` and WASI; `gatehouse compose --target fastly` plugs the chosen
//! provider components and a generated deployment component into it. The result is deployed with
//! `fastly compute deploy` and served locally by Viceroy.
//!
//! Per request it runs the core's [`PagePipeline`](gatehouse_core::pipeline::PagePipeline), the
//! same decision and edits as the standalone and wasi:http hosts: the core gates every provider
//! call on the permissions, so a provider whose required permissions are not held is never
//! called. The client address is Fastly's (`get_client_ip_addr`), or from a trusted proxy's
//! header by the standalone rule, and `geo.provider = "fastly"` makes Fastly's geolocation the
//! geo provider (`geo`). Settings given as
//! `{ env = "VAR" }` are read from the Fastly secret store `gatehouse`, the origin is the
//! Fastly backend named `origin` (or the built-in demo page for `origin.url = "builtin:demo"`),
//! and with an Edge Cookie provider the identity store is the Fastly KV store the deployment
//! names (`store.fastly_kv_store`, default `gatehouse-identity`; `kv`), so the page pipeline runs
//! the whole Edge Cookie lifecycle (records, withdrawal tombstones, the stored-consent fallback).
//!
//! What a composed host cannot isolate: the providers are instances inside this component, so a
//! provider that traps (panic, `unreachable`, out-of-bounds) aborts the whole program, and so this
//! request. Nothing has been sent by then (the pipeline runs before the response is started and
//! before the origin is contacted): the visitor gets the platform's error (Viceroy and Fastly
//! answer 500) with no cookie and no provider header, and the origin never sees the request.
//! Every request runs in a fresh instance, so the next one is unaffected. See `docs/fastly.md`.
//!
//! This program must never decide policy: decisions are the core's.

mod geo;
#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod kv;

#[cfg(target_arch = "wasm32")]
fn main() {
    handler::serve_client();
}

/// Natively there is no Fastly ABI to link against: the binary only says what it is.
#[cfg(not(target_arch = "wasm32"))]
fn main() -> std::process::ExitCode {
    eprintln!(
        "gatehouse-host-fastly is a Fastly Compute program: it is built for wasm32-wasip1 by \
         `cargo build -p gatehouse` and composed with `gatehouse compose --target fastly`"
    );
    std::process::ExitCode::from(2)
}
