//! Test guest: an Edge Cookie provider written with the `gatehouse-provider` SDK (`no_std`, `rt`),
//! importing exactly its world (`wasi:random/random`, `wasi:clocks/wall-clock`), for the
//! composition test.
//!
//! `generate` mints `<prefix>-<unix seconds>-<16 random hex>` (`prefix` from its settings), or
//! keeps `current` when it starts with `<prefix>-`, and reports which in an `x-compose-ec` header.
//! It really calls both imports, so a composition that loses either one fails visibly.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::wasi::{random, wall_clock};
use gatehouse_provider::{Evidence, Header, Manifest, Settings};

/// The provider.
pub struct ComposeEc;

impl EdgeCookieProvider for ComposeEc {
    fn describe(settings: &Settings) -> Result<Manifest, String> {
        settings.require("prefix")?;
        Ok(Manifest {
            id: "compose-ec".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            required_permissions: alloc::vec!["store-on-device".into()],
            reads: Vec::new(),
            call_budget_ms: None,
        })
    }

    fn generate(
        settings: &Settings,
        _evidence: Evidence,
        current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        let prefix = settings.require("prefix").map_err(EcError::Config)?;
        let (id, report) = match current {
            Some(c) if c.starts_with(prefix) && c[prefix.len()..].starts_with('-') => (c, "kept"),
            _ => {
                let now = wall_clock::now().seconds;
                let random = random::get_random_u64();
                (format!("{prefix}-{now}-{random:016x}"), "minted")
            }
        };
        Ok(EcOutput {
            id: Some(id),
            headers: alloc::vec![Header {
                name: "x-compose-ec".into(),
                value: report.into(),
            }],
        })
    }
}

gatehouse_provider::export_edge_cookie_provider!(ComposeEc);
