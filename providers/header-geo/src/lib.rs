//! The CDN-header geo provider.
//!
//! Reads the visitor's country and region from headers a CDN sets at its edge (for example
//! Cloudflare's `cf-ipcountry` and `cf-region-code`). The header names come from
//! `wasi:config/store`: `country_header` (default `x-geo-country`) and `region_header` (default
//! `x-geo-region`). Values are validated by [`location`]; anything malformed or a
//! "country unknown" placeholder becomes `none`, so the host falls back to its `default_country`.
//!
//! It requires no permission: it reads a country-level location that the CDN already sends with
//! every request, and stores nothing. It must only be configured for headers the CDN overwrites on
//! every request; a header a client could set itself would let the client choose its own country.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component.
use gatehouse_provider_rt as _;

pub mod location;

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

// Generated bindings and export glue: the only unsafe code in a provider.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "geo-provider",
        path: "../../wit",
        generate_all,
    });
    // Exported only from the component: natively the export symbols' names (`pkg:iface@ver#fn`)
    // cannot be linked into a `cdylib`, and native builds exist only for unit tests and clippy.
    #[cfg(target_arch = "wasm32")]
    use super::HeaderGeoProvider;
    #[cfg(target_arch = "wasm32")]
    export!(HeaderGeoProvider with_types_in self);
}

use bindings::exports::gatehouse::provider::geo::{GeoError, Guest, Location, Manifest};
use bindings::gatehouse::provider::evidence::Request;
use bindings::wasi;

/// The config key naming the country header, and its default.
pub const COUNTRY_HEADER: (&str, &str) = ("country_header", "x-geo-country");
/// The config key naming the region header, and its default.
pub const REGION_HEADER: (&str, &str) = ("region_header", "x-geo-region");

struct HeaderGeoProvider;

impl Guest for HeaderGeoProvider {
    fn describe() -> Manifest {
        Manifest {
            id: "header-geo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // A country-level location from a header the CDN already sends; nothing is stored.
            required_permissions: Vec::new(),
        }
    }

    fn locate(req: &Request) -> Result<Location, GeoError> {
        let country_header = configured_header(COUNTRY_HEADER)?;
        let region_header = configured_header(REGION_HEADER)?;
        let found = location::from_headers(
            req.header(&country_header).as_deref(),
            req.header(&region_header).as_deref(),
        );
        Ok(Location {
            country: found.country,
            region: found.region,
        })
    }
}

/// Reads the header name configured under `key`, or `default` when the key is unset.
fn configured_header((key, default): (&str, &str)) -> Result<String, GeoError> {
    let value = wasi::config::store::get(key)
        .map_err(|_| GeoError::Config(format!("`{key}`: config store unavailable")))?;
    location::header_name_or_default(key, value, default).map_err(GeoError::Config)
}
