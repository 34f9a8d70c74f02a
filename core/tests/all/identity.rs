//! The identity store contract as the core uses it, the record encoding, and the Edge Cookie
//! lifecycle applied by `PagePipeline::run_with_identity`, against an in-memory store with
//! injectable failures and simulated concurrent writers.

mod lifecycle;
pub(crate) mod memory;
mod record;
mod resolve;
mod retry;
