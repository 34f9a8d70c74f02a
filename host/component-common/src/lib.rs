//! What the composed Gatehouse hosts (`host/wasi-http`, `host/fastly`) share with
//! `gatehouse compose`: the [`Deployment`] document compose embeds, how a host turns it into the
//! core's pipeline settings and provider specs, and the HTTP glue that is not policy (the client
//! address from a header, the demo page, problem documents).
//!
//! A composed host cannot read a config file or run `describe` at startup the way the standalone
//! host does: everything it knows about the deployment was decided by `gatehouse compose` and
//! arrives as one [`Deployment`] value from the `gatehouse:host/deployment` import, which compose
//! satisfies with a generated data-only component. Settings written as `{ env = "VAR" }` are never
//! in it: the document names the `wasi:config` key the host reads at run time instead.
//!
//! With the `composed-host` feature it also holds what both composed hosts import the same way:
//! the provider interfaces (as the core's `ProviderHost`, [`providers::ComposedProviders`]) and
//! the deployment document ([`deployment_document`]).
//!
//! [`store`] holds the identity-store logic both composed hosts run over their platform's
//! key-value store (Fastly KV, `wasi:keyvalue`), behind one small trait each.
//!
//! This crate must never perform I/O other than those imports: it builds for
//! `wasm32-wasip1`/`wasm32-wasip2` and natively.

pub mod deployment;
pub mod http;
#[cfg(feature = "composed-host")]
pub mod providers;
pub mod store;

// Generated bindings for the `composed-host` world (the provider interfaces and the deployment
// document): the only unsafe code.
#[cfg(feature = "composed-host")]
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        path: ["../../wit", "wit"],
        world: "gatehouse:host/composed-host",
        generate_all,
    });
}

/// The deployment document compose embedded, from the `gatehouse:host/deployment` import.
#[cfg(feature = "composed-host")]
#[must_use]
pub fn deployment_document() -> String {
    bindings::gatehouse::host::deployment::get()
}

pub use deployment::{
    DEPLOYMENT_FORMAT, DEPLOYMENT_INTERFACE, Deployment, DeploymentError, ManifestDoc, OriginDoc,
    ProviderDoc, SettingDoc, StoreDoc, config_key_for_env,
};
