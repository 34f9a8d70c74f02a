//! The User-Agent device provider.
//!
//! Classifies the client behind a request as bot, mobile, tablet, desktop or unknown from its
//! `User-Agent` header alone, the one read its manifest declares (see [`classify`] for the rules and why they are hand-written). It
//! requires no permission: the browser sends the User-Agent on every request, and classifying it
//! reads nothing else, stores nothing and derives no identifier. It must never report a request
//! without a User-Agent as a bot, because bots are refused an Edge Cookie.

#![cfg_attr(target_arch = "wasm32", no_std)]

extern crate alloc;

pub mod classify;

use alloc::string::String;
use alloc::vec::Vec;
use classify::{DeviceClass, classify_user_agent};
use gatehouse_provider::device::{
    Classification, DeviceClass as WitDeviceClass, DeviceError, DeviceProvider,
};
use gatehouse_provider::{Evidence, Manifest, Read, Settings};

/// The provider, exported as this component's interface (public so native builds, where the
/// export macro expands to nothing, still type-check it).
pub struct UaDeviceProvider;

impl DeviceProvider for UaDeviceProvider {
    fn describe(_settings: &Settings) -> Result<Manifest, String> {
        Ok(Manifest {
            id: "ua-device".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            // The User-Agent is sent by the browser on every request; classifying it stores nothing.
            required_permissions: Vec::new(),
            reads: alloc::vec![Read::UserAgent],
            call_budget_ms: None,
        })
    }

    fn classify(_settings: &Settings, evidence: Evidence) -> Result<Classification, DeviceError> {
        let verdict = classify_user_agent(evidence.user_agent.as_deref());
        Ok(Classification {
            class: to_wit(verdict.class),
            bot_name: verdict.bot_name,
        })
    }
}

gatehouse_provider::export_device_provider!(UaDeviceProvider);

fn to_wit(class: DeviceClass) -> WitDeviceClass {
    match class {
        DeviceClass::Bot => WitDeviceClass::Bot,
        DeviceClass::Mobile => WitDeviceClass::Mobile,
        DeviceClass::Tablet => WitDeviceClass::Tablet,
        DeviceClass::Desktop => WitDeviceClass::Desktop,
        DeviceClass::Unknown => WitDeviceClass::Unknown,
    }
}
