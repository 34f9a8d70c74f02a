//! The standalone host's integration tests: the real `gatehouse` binary on loopback, with real
//! provider components and a loopback origin. One test binary, one module per area.

mod cli;
mod cli_consent;
mod components;
mod consent_e2e;
mod hostile;
mod serve;
mod startup;
mod support;
