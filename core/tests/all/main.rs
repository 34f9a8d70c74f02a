//! The core's integration tests: one binary, one module per area.

mod auction;
mod consent;
mod pipeline;
mod policy;
