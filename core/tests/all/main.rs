//! The core's integration tests: one binary, one module per area.

mod auction;
mod consent;
mod identity;
mod pipeline;
mod policy;
mod provider_manifest;
mod sync;
