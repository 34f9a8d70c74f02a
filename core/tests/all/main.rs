//! The core's integration tests: one binary, one module per area.

mod consent;
mod pipeline;
mod policy;
mod provider_manifest;
