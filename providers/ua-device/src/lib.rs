//! The User-Agent device provider.
//!
//! Classifies the client behind a request as bot, mobile, tablet, desktop or unknown from its
//! `User-Agent` header alone (see [`classify`] for the rules and why they are hand-written). It
//! requires no permission: the browser sends the User-Agent on every request, and classifying it
//! reads nothing else, stores nothing and derives no identifier. It must never report a request
//! without a User-Agent as a bot, because bots are refused an Edge Cookie.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;
// Allocator, panic handler and `cabi_realloc` for the no_std component.
use gatehouse_provider_rt as _;

pub mod classify;

use alloc::vec::Vec;

// Generated bindings and export glue: the only unsafe code in a provider.
#[allow(unsafe_code, missing_docs, clippy::all)]
mod bindings {
    wit_bindgen::generate!({
        world: "device-provider",
        path: "../../wit",
        generate_all,
    });
    // Exported only from the component: natively the export symbols' names (`pkg:iface@ver#fn`)
    // cannot be linked into a `cdylib`, and native builds exist only for unit tests and clippy.
    #[cfg(target_arch = "wasm32")]
    use super::UaDeviceProvider;
    #[cfg(target_arch = "wasm32")]
    export!(UaDeviceProvider with_types_in self);
}

use bindings::exports::gatehouse::provider::device::{
    Classification, DeviceClass as WitDeviceClass, DeviceError, Guest, Manifest,
};
use bindings::gatehouse::provider::evidence::Request;
use classify::{DeviceClass, classify_user_agent};

struct UaDeviceProvider;

impl Guest for UaDeviceProvider {
    fn describe() -> Manifest {
        Manifest {
            id: "ua-device".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // The User-Agent is sent by the browser on every request; classifying it stores nothing.
            required_permissions: Vec::new(),
        }
    }

    fn classify(req: &Request) -> Result<Classification, DeviceError> {
        let verdict = classify_user_agent(req.user_agent().as_deref());
        Ok(Classification {
            class: to_wit(verdict.class),
            bot_name: verdict.bot_name,
        })
    }
}

fn to_wit(class: DeviceClass) -> WitDeviceClass {
    match class {
        DeviceClass::Bot => WitDeviceClass::Bot,
        DeviceClass::Mobile => WitDeviceClass::Mobile,
        DeviceClass::Tablet => WitDeviceClass::Tablet,
        DeviceClass::Desktop => WitDeviceClass::Desktop,
        DeviceClass::Unknown => WitDeviceClass::Unknown,
    }
}
