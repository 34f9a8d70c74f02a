//! What the composed Gatehouse hosts (`host/wasi-http`, and `host/fastly` next) share with
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
//! This crate must never perform I/O: it builds for `wasm32-wasip1`/`wasm32-wasip2` and natively.

pub mod deployment;
pub mod http;

pub use deployment::{
    DEPLOYMENT_FORMAT, DEPLOYMENT_INTERFACE, Deployment, DeploymentError, ManifestDoc, OriginDoc,
    ProviderDoc, SettingDoc, config_key_for_env,
};
