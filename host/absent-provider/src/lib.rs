//! The placeholder provider `gatehouse compose` plugs into a composed host's import of a provider
//! kind the deployment does not configure (a component cannot leave an import open and still run
//! under `wasmtime serve`). It exports all three provider interfaces.
//!
//! It is never called: the deployment document says the kind has no provider, so the core never
//! asks for it. Should anything call it anyway, `describe` refuses and every call fails, so the
//! core fails closed; it reads no evidence and imports nothing but its world.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

use alloc::string::String;
use gatehouse_provider::device::{Classification, DeviceError, DeviceProvider};
use gatehouse_provider::edge_cookie::{EcError, EcOutput, EdgeCookieProvider};
use gatehouse_provider::geo::{GeoError, GeoProvider, Location};
use gatehouse_provider::{Evidence, Manifest, Settings};

/// What every function answers.
const ABSENT: &str = "no provider of this kind is configured";

/// The placeholder for all three kinds.
pub struct AbsentProvider;

impl EdgeCookieProvider for AbsentProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Err(ABSENT.into())
    }
    fn generate(
        _settings: &Settings,
        _evidence: Evidence,
        _current: Option<String>,
    ) -> Result<EcOutput, EcError> {
        Err(EcError::Internal(ABSENT.into()))
    }
}

impl DeviceProvider for AbsentProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Err(ABSENT.into())
    }
    fn classify(_settings: &Settings, _evidence: Evidence) -> Result<Classification, DeviceError> {
        Err(DeviceError::Internal(ABSENT.into()))
    }
}

impl GeoProvider for AbsentProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Err(ABSENT.into())
    }
    fn locate(_settings: &Settings, _evidence: Evidence) -> Result<Location, GeoError> {
        Err(GeoError::Internal(ABSENT.into()))
    }
}

gatehouse_provider::export_edge_cookie_provider!(AbsentProvider);
gatehouse_provider::export_device_provider!(AbsentProvider);
gatehouse_provider::export_geo_provider!(AbsentProvider);
