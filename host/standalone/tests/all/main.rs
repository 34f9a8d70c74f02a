//! The standalone host's integration tests: the real `gatehouse` binary on loopback, with real
//! provider components and a loopback origin. One test binary, one module per area.

mod auction;
mod audit;
mod batch_sync;
mod browser;
mod cli;
mod cli_consent;
mod components;
mod compose;
mod compose_fastly;
mod conformance;
mod consent_e2e;
mod ec_resolve;
mod hardening;
mod hostile;
mod hosts;
mod http2;
mod identity;
mod limits;
mod openapi;
mod origin_tls;
mod reload;
mod serve;
mod shutdown;
mod startup;
mod support;
mod tls_support;
mod valkey_support;
