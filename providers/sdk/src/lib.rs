//! Write a Gatehouse provider component: implement one trait, call one export macro.
//!
//! A provider is a WebAssembly component exporting one interface of the contract
//! `gatehouse:provider@0.2.0` (the `wit/` directory shipped with this crate): an Edge Cookie, device
//! or geo provider. Everything a provider learns arrives as values in each call: its settings (the
//! publisher's config table for it, secrets included) and the request [`Evidence`], which holds
//! only what its [`Manifest`] declared in `reads`.
//!
//! ```ignore
//! use gatehouse_provider::device::{Classification, DeviceClass, DeviceError, DeviceProvider};
//! use gatehouse_provider::{Evidence, Manifest, Read, Settings};
//!
//! struct MyDevice;
//!
//! impl DeviceProvider for MyDevice {
//!     fn describe(_settings: &Settings) -> Result<Manifest, String> {
//!         Ok(Manifest {
//!             id: "my-device".into(),
//!             version: env!("CARGO_PKG_VERSION").into(),
//!             required_permissions: Vec::new(),
//!             reads: vec![Read::UserAgent],
//!             call_budget_ms: None,
//!         })
//!     }
//!     fn classify(_settings: &Settings, evidence: Evidence) -> Result<Classification, DeviceError> {
//!         let class = match evidence.user_agent.as_deref() {
//!             Some(ua) if ua.contains("Mobile") => DeviceClass::Mobile,
//!             _ => DeviceClass::Unknown,
//!         };
//!         Ok(Classification { class, bot_name: None })
//!     }
//! }
//!
//! gatehouse_provider::export_device_provider!(MyDevice);
//! ```
//!
//! Build with `cargo build --target wasm32-wasip2 --release` (crate type `cdylib`).
//!
//! **std or `no_std`.** With `std` nothing more is needed: the component then also imports the
//! parts of WASI 0.2 that `std` uses (`wasi:cli/*`, `wasi:io/*`, ...), which the standalone host
//! links with a locked-down context. A `no_std` component that imports nothing beyond its world
//! enables the `rt` feature, which supplies what `std` otherwise would: a global allocator (a bump
//! arena in the initial memory in front of dlmalloc, so a call never grows memory), a panic
//! handler that traps, the canonical ABI's `cabi_realloc`, and `memcpy`/`memcmp` from wasi-libc.
//! Enable `rt` only in the final `no_std` component crate, never together with `std`.
//!
//! The export macros expand to nothing on targets other than `wasm32`, so a provider crate also
//! builds natively for its unit tests.
#![no_std]

extern crate alloc;

#[cfg(any(test, all(feature = "rt", target_arch = "wasm32")))]
mod arena;
#[cfg(all(feature = "rt", target_arch = "wasm32"))]
mod rt;

use alloc::string::String;
use alloc::vec::Vec;

/// The generated bindings of the three provider worlds. Not a stable API: use the re-exports.
#[doc(hidden)]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod __bindings {
    /// The Edge Cookie world; also generates the shared `types` and WASI imports.
    pub mod ec {
        wit_bindgen::generate!({
            world: "edge-cookie-provider",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export_ec",
            default_bindings_module: "gatehouse_provider::__bindings::ec",
            generate_all,
        });
    }

    /// The device world, sharing the Edge Cookie world's imports.
    pub mod device {
        wit_bindgen::generate!({
            world: "device-provider",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export_device",
            default_bindings_module: "gatehouse_provider::__bindings::device",
            generate_all,
            with: {
                "gatehouse:provider/types@0.2.0": super::ec::gatehouse::provider::types,
                "wasi:random/random@0.2.6": super::ec::wasi::random::random,
                "wasi:clocks/wall-clock@0.2.6": super::ec::wasi::clocks::wall_clock,
            },
        });
    }

    /// The geo world, sharing the Edge Cookie world's imports.
    pub mod geo {
        wit_bindgen::generate!({
            world: "geo-provider",
            path: "wit",
            pub_export_macro: true,
            export_macro_name: "export_geo",
            default_bindings_module: "gatehouse_provider::__bindings::geo",
            generate_all,
            with: {
                "gatehouse:provider/types@0.2.0": super::ec::gatehouse::provider::types,
                "wasi:random/random@0.2.6": super::ec::wasi::random::random,
                "wasi:clocks/wall-clock@0.2.6": super::ec::wasi::clocks::wall_clock,
            },
        });
    }
}

pub use __bindings::ec::gatehouse::provider::types::{
    Evidence, Header, IpAddress, Manifest, Read, Setting,
};

/// `wasi:random/random` and `wasi:clocks/wall-clock`, the imports every Gatehouse host offers.
///
/// Prefer `random::get_random_u64` to `random::get_random_bytes`: an import that returns a list
/// makes the component carry two extra core modules (for `realloc`), instantiated on every call.
pub mod wasi {
    pub use crate::__bindings::ec::wasi::clocks::wall_clock;
    pub use crate::__bindings::ec::wasi::random::random;
}

/// A provider's settings: its table in the publisher's config, as `key = value` strings.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    entries: Vec<Setting>,
}

impl Settings {
    /// Wraps the list the host passed.
    #[must_use]
    pub fn new(entries: Vec<Setting>) -> Self {
        Self { entries }
    }

    /// The value of `key`, if set.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|s| s.key == key)
            .map(|s| s.value.as_str())
    }

    /// The value of `key`.
    ///
    /// # Errors
    /// ``"`KEY`: missing"`` when the key is not set, for a provider's `config` error variant.
    pub fn require(&self, key: &str) -> Result<&str, String> {
        self.get(key)
            .ok_or_else(|| alloc::format!("`{key}`: missing"))
    }

    /// Every entry, in config order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|s| (s.key.as_str(), s.value.as_str()))
    }
}

impl Evidence {
    /// The value of declared request header `name` (compared case-insensitively), if the request
    /// carried it.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }
}

/// Edge Cookie providers (`gatehouse:provider/edge-cookie`).
pub mod edge_cookie {
    use core::marker::PhantomData;

    use alloc::string::String;
    use alloc::vec::Vec;

    use crate::__bindings::ec::exports::gatehouse::provider::edge_cookie::Guest;
    pub use crate::__bindings::ec::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput};
    use crate::{Evidence, Manifest, Setting, Settings};

    /// An Edge Cookie provider. Export it with [`crate::export_edge_cookie_provider!`].
    pub trait EdgeCookieProvider {
        /// Describes the provider, given its settings; called once at load time. An error refuses
        /// the provider with that message.
        ///
        /// # Errors
        /// When the settings are unusable.
        fn describe(settings: &Settings) -> Result<Manifest, String>;

        /// Produces the Edge Cookie for one request. `current` is the Edge Cookie the request
        /// carried, if any: return it unchanged to keep it.
        ///
        /// # Errors
        /// Any [`EcError`]; the host then sets no Edge Cookie.
        fn generate(
            settings: &Settings,
            evidence: Evidence,
            current: Option<String>,
        ) -> Result<EcOutput, EcError>;
    }

    /// Adapts an [`EdgeCookieProvider`] to the generated export glue.
    #[doc(hidden)]
    pub struct Export<T>(PhantomData<T>);

    impl<T: EdgeCookieProvider> Guest for Export<T> {
        fn describe(settings: Vec<Setting>) -> Result<Manifest, String> {
            T::describe(&Settings::new(settings))
        }

        fn generate(
            settings: Vec<Setting>,
            evidence: Evidence,
            current: Option<String>,
        ) -> Result<EcOutput, EcError> {
            T::generate(&Settings::new(settings), evidence, current)
        }
    }
}

/// Device classification providers (`gatehouse:provider/device`).
pub mod device {
    use core::marker::PhantomData;

    use alloc::string::String;
    use alloc::vec::Vec;

    use crate::__bindings::device::exports::gatehouse::provider::device::Guest;
    pub use crate::__bindings::device::exports::gatehouse::provider::device::{
        Classification, DeviceClass, DeviceError,
    };
    use crate::{Evidence, Manifest, Setting, Settings};

    /// A device provider. Export it with [`crate::export_device_provider!`].
    pub trait DeviceProvider {
        /// Describes the provider, given its settings; called once at load time.
        ///
        /// # Errors
        /// When the settings are unusable.
        fn describe(settings: &Settings) -> Result<Manifest, String>;

        /// Classifies the client behind one request.
        ///
        /// # Errors
        /// Any [`DeviceError`]; the host then treats the device as `unknown`.
        fn classify(settings: &Settings, evidence: Evidence)
        -> Result<Classification, DeviceError>;
    }

    /// Adapts a [`DeviceProvider`] to the generated export glue.
    #[doc(hidden)]
    pub struct Export<T>(PhantomData<T>);

    impl<T: DeviceProvider> Guest for Export<T> {
        fn describe(settings: Vec<Setting>) -> Result<Manifest, String> {
            T::describe(&Settings::new(settings))
        }

        fn classify(
            settings: Vec<Setting>,
            evidence: Evidence,
        ) -> Result<Classification, DeviceError> {
            T::classify(&Settings::new(settings), evidence)
        }
    }
}

/// Geolocation providers (`gatehouse:provider/geo`).
pub mod geo {
    use core::marker::PhantomData;

    use alloc::string::String;
    use alloc::vec::Vec;

    use crate::__bindings::geo::exports::gatehouse::provider::geo::Guest;
    pub use crate::__bindings::geo::exports::gatehouse::provider::geo::{GeoError, Location};
    use crate::{Evidence, Manifest, Setting, Settings};

    /// A geo provider. Export it with [`crate::export_geo_provider!`].
    pub trait GeoProvider {
        /// Describes the provider, given its settings; called once at load time.
        ///
        /// # Errors
        /// When the settings are unusable.
        fn describe(settings: &Settings) -> Result<Manifest, String>;

        /// Locates the client behind one request.
        ///
        /// # Errors
        /// Any [`GeoError`]; the host then uses its `default_country`.
        fn locate(settings: &Settings, evidence: Evidence) -> Result<Location, GeoError>;
    }

    /// Adapts a [`GeoProvider`] to the generated export glue.
    #[doc(hidden)]
    pub struct Export<T>(PhantomData<T>);

    impl<T: GeoProvider> Guest for Export<T> {
        fn describe(settings: Vec<Setting>) -> Result<Manifest, String> {
            T::describe(&Settings::new(settings))
        }

        fn locate(settings: Vec<Setting>, evidence: Evidence) -> Result<Location, GeoError> {
            T::locate(&Settings::new(settings), evidence)
        }
    }
}

/// Exports `$provider`, an [`edge_cookie::EdgeCookieProvider`], as this component's
/// `gatehouse:provider/edge-cookie`. Call it once, at the crate's top level. Expands to nothing
/// on targets other than `wasm32`.
#[macro_export]
macro_rules! export_edge_cookie_provider {
    ($provider:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __GatehouseEdgeCookieExport = $crate::edge_cookie::Export<$provider>;
            $crate::__bindings::ec::export_ec!(
                __GatehouseEdgeCookieExport with_types_in $crate::__bindings::ec
            );
        };
    };
}

/// Exports `$provider`, a [`device::DeviceProvider`], as this component's
/// `gatehouse:provider/device`. Call it once, at the crate's top level. Expands to nothing on
/// targets other than `wasm32`.
#[macro_export]
macro_rules! export_device_provider {
    ($provider:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __GatehouseDeviceExport = $crate::device::Export<$provider>;
            $crate::__bindings::device::export_device!(
                __GatehouseDeviceExport with_types_in $crate::__bindings::device
            );
        };
    };
}

/// Exports `$provider`, a [`geo::GeoProvider`], as this component's `gatehouse:provider/geo`.
/// Call it once, at the crate's top level. Expands to nothing on targets other than `wasm32`.
#[macro_export]
macro_rules! export_geo_provider {
    ($provider:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __GatehouseGeoExport = $crate::geo::Export<$provider>;
            $crate::__bindings::geo::export_geo!(
                __GatehouseGeoExport with_types_in $crate::__bindings::geo
            );
        };
    };
}
