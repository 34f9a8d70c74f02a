//! The identity store backends: one contract suite run against redb and against a real Valkey
//! (or Redis) server, plus what is specific to each backend.

mod contract;
mod lifecycle;
mod redb;
mod server;
mod valkey;
