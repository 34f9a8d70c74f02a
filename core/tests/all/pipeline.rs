//! The page pipeline, in process: a mock `ProviderHost` that records every call and the evidence
//! it received, a fixed clock, and plain header lists for the edits.

mod config;
mod edits;
mod flow;
mod geo_failure;
mod jurisdiction;
mod provider_headers;
mod robustness;
mod support;
