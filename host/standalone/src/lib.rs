//! The standalone Gatehouse host: wasmtime embedding, configuration and the HTTP server.
//!
//! The `gatehouse` binary (`src/main.rs`) is a thin CLI over these modules; the library exists so
//! benchmarks and tests can drive the runtime directly.

pub mod app;
pub mod auction;
pub mod batch_sync;
pub mod body;
pub mod client_ip;
pub mod compose;
pub mod config;
pub mod consent;
pub mod ec_resolve;
pub mod edge_metrics;
pub mod identity;
pub mod listener;
pub mod log_limit;
pub mod origin;
pub mod problem;
pub mod reload;
pub mod runtime;
pub mod server;
