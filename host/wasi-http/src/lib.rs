//! Gatehouse as a `wasi:http/proxy` component.
//!
//! It exports `wasi:http/incoming-handler` and imports the three provider interfaces
//! (`gatehouse:provider/{geo,device,edge-cookie}@0.2.0`), `wasi:http/outgoing-handler` (the
//! origin), `wasi:config/store` (settings given as `{ env = "VAR" }`) and
//! `wasi:keyvalue/{store,atomics}@0.2.0-draft` (the identity store) and
//! `gatehouse:host/deployment` (everything else, decided at compose time). `gatehouse compose
//! --target wasi-http` plugs the chosen provider components and a generated deployment component
//! into it; the result runs under `wasmtime serve -Scli -Sconfig -Skeyvalue` or any wasi:http
//! platform offering those interfaces.
//!
//! Per request it runs the core's [`PagePipeline`], the same decision and edits as the standalone
//! host: the core gates every provider call on the permissions, so a provider whose required
//! permissions are not held is never called. With an Edge Cookie provider it runs the identity
//! lifecycle over the `wasi:keyvalue` bucket the deployment names (`keyvalue`): that draft has no
//! compare-and-swap, so conditional writes are a read then a write, and under `wasmtime serve`
//! the bucket lives for one request (see `docs/wasi-http.md`).
//!
//! What a composed host cannot isolate: the providers are instances inside this component, so a
//! provider that traps (panic, `unreachable`, out-of-bounds) aborts the whole component instance,
//! and so this request; there is no way for a component to catch a trap. Nothing has been sent by
//! then (the pipeline runs before the response is started and before the origin is contacted), so
//! the visitor receives the platform's error (a 500 from `wasmtime serve`) with no cookie and no
//! provider header, and the origin never sees the request: fail-closed, but not served. Every
//! request gets a fresh instance on wasi:http platforms, so the next request is unaffected, and a
//! provider that is gated off for a request cannot trap it. Per-call deadlines and memory caps are
//! likewise the platform's per-request limits, not per provider. See `docs/wasi-http.md`.
//!
//! This module must never decide policy: decisions are the core's.

#[cfg(target_arch = "wasm32")]
mod handler;
#[cfg(target_arch = "wasm32")]
mod keyvalue;

// Generated bindings for `wasi:config/store` and `wasi:keyvalue/{store,atomics}` (wasip2
// supplies the rest of WASI, and `gatehouse-component-common` the provider and deployment
// imports): with `keyvalue`'s `Send`/`Sync` assertion, the only unsafe code.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: ["wit/config", "wit/keyvalue", "wit/host"],
        world: "gatehouse:wasi-http-host/host",
        generate_all,
    });
}

pub use gatehouse_component_common::providers::ComposedProviders;

/// The component's `wasi:http/incoming-handler` implementation.
pub struct WasiHttpHost;

#[cfg(target_arch = "wasm32")]
wasip2::http::proxy::export!(WasiHttpHost);
