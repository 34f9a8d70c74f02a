//! Gatehouse core: what may be done with a visitor's data, decided without doing any I/O.
//!
//! - [`policy`] turns `permissions.yaml` plus a request's jurisdiction and consent [`policy::Signals`]
//!   into a [`policy::PermissionSet`].
//! - [`provider`] is the provider contract as the core sees it: declared reads, the evidence value,
//!   and the [`provider::ProviderHost`] trait hosts implement.
//! - [`pipeline`] is the per-request page flow every host runs: request view in, decision and
//!   edits to the forwarded request and the response out.
//! - [`consent`] decodes the consent signals themselves (TCF v2, GPP, US Privacy, GPC, Google AC)
//!   and builds the per-request consent context.
//! - [`auction`] builds one OpenRTB 2.6 bid request per bidder from the page's ad units and the
//!   request's consent and permissions, and chooses the winners from the answers ([`openrtb`]
//!   holds the wire types).
//! - [`sync`] holds the `[[partners]]` registry and applies partners' batch syncs to the
//!   identity store.
//! - [`task`] runs the pipeline's futures to completion for hosts without an async runtime.
//!
//! This crate must never perform I/O, spawn threads or depend on an async runtime or wasmtime: it
//! builds for `wasm32-wasip1`/`wasm32-wasip2` so every host (standalone, Fastly, Spin) runs the
//! same decisions. I/O the core needs is expressed as traits that hosts implement.

pub mod auction;
pub mod consent;
pub mod identity;
pub mod openrtb;
pub mod pipeline;
pub mod policy;
pub mod provider;
pub mod sync;
pub mod task;
