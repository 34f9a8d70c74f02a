//! The CDN-header geo provider.
//!
//! Reads the visitor's country and region from headers a CDN sets at its edge (for example
//! Cloudflare's `cf-ipcountry` and `cf-region-code`). The header names come from its
//! settings: `country_header` (default `x-geo-country`) and `region_header` (default
//! `x-geo-region`). Values are validated by [`location`]; anything malformed or a
//! "country unknown" placeholder becomes `none`, so the host falls back to its `default_country`.
//!
//! It requires no permission: it reads a country-level location that the CDN already sends with
//! every request, and stores nothing. Its manifest declares exactly the two configured headers as its reads. It must only be configured for headers the CDN overwrites on
//! every request; a header a client could set itself would let the client choose its own country.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod location;

use alloc::string::String;
use gatehouse_provider::geo::{GeoError, GeoProvider, Location};
use gatehouse_provider::{Evidence, Manifest, Read, Settings};

/// The setting naming the country header, and its default.
pub const COUNTRY_HEADER: (&str, &str) = ("country_header", "x-geo-country");
/// The setting naming the region header, and its default.
pub const REGION_HEADER: (&str, &str) = ("region_header", "x-geo-region");

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct HeaderGeoProvider;

impl GeoProvider for HeaderGeoProvider {
    fn describe(settings: &Settings) -> Result<Manifest, String> {
        let country = configured_header(settings, COUNTRY_HEADER)?;
        let region = configured_header(settings, REGION_HEADER)?;
        Ok(Manifest {
            id: "header-geo".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // A country-level location from a header the CDN already sends; nothing is stored.
            required_permissions: alloc::vec::Vec::new(),
            // Exactly the two configured headers, nothing else of the request.
            reads: alloc::vec![Read::Header(country), Read::Header(region)],
            call_budget_ms: None,
        })
    }

    fn locate(settings: &Settings, evidence: Evidence) -> Result<Location, GeoError> {
        let country_header =
            configured_header(settings, COUNTRY_HEADER).map_err(GeoError::Config)?;
        let region_header = configured_header(settings, REGION_HEADER).map_err(GeoError::Config)?;
        let found = location::from_headers(
            evidence.header(&country_header),
            evidence.header(&region_header),
        );
        Ok(Location {
            country: found.country,
            region: found.region,
        })
    }
}

gatehouse_provider::export_geo_provider!(HeaderGeoProvider);

/// The lowercase header name configured under `key`, or `default` when the key is unset.
fn configured_header(settings: &Settings, (key, default): (&str, &str)) -> Result<String, String> {
    location::header_name_or_default(key, settings.get(key).map(str::to_ascii_lowercase), default)
}
