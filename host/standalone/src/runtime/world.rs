//! One trait per provider world, so one generic loader and one generic call path serve all three
//! kinds: the world's kind, its pre-instantiated template type, `describe`, and its call.

use std::net::IpAddr;

use gatehouse_core::provider::manifest::Manifest;
use gatehouse_core::provider::{
    Classification, DeviceClass, EcOutput, Evidence, Location, ProviderKind, Read,
};
use wasmtime::Store;
use wasmtime::component::InstancePre;

use super::bindings::{self, types};
use super::state::CallState;

/// What a provider's own error variant said, for [`gatehouse_core::provider::ProviderFailure::Provider`].
pub type ProviderMessage = String;

/// A provider world: how to instantiate it, describe it and call it.
pub trait World: Sized + 'static {
    /// The provider kind.
    const KIND: ProviderKind;
    /// The pre-instantiated template (linked once at load).
    type Pre: Send + Sync;
    /// One live instance.
    type Instance;
    /// The call's input besides settings and evidence.
    type Extra<'a>: Copy;
    /// The call's answer.
    type Output: Clone;

    /// The extra input as part of an answer-cache key.
    fn extra_key(extra: Self::Extra<'_>) -> Option<String>;

    /// Wraps a linked template.
    ///
    /// # Errors
    /// When the component does not have the world's exports.
    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre>;

    /// Instantiates the template in `store`.
    ///
    /// # Errors
    /// Instantiation failures (traps in start functions, limits).
    fn instantiate(
        store: &mut Store<CallState>,
        pre: &Self::Pre,
    ) -> wasmtime::Result<Self::Instance>;

    /// Calls `describe`.
    ///
    /// # Errors
    /// Traps; the inner `Err` is the provider refusing its settings.
    fn describe(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>>;

    /// Calls the kind's function.
    ///
    /// # Errors
    /// Traps; the inner `Err` is the provider's own error variant, formatted.
    fn call(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        extra: Self::Extra<'_>,
    ) -> wasmtime::Result<Result<Self::Output, ProviderMessage>>;
}

/// The Edge Cookie world.
pub struct EdgeCookieWorld;

impl World for EdgeCookieWorld {
    const KIND: ProviderKind = ProviderKind::EdgeCookie;
    type Pre = bindings::ec::EdgeCookieProviderPre<CallState>;
    type Instance = bindings::ec::EdgeCookieProvider;
    /// The request's current Edge Cookie.
    type Extra<'a> = Option<&'a str>;
    type Output = EcOutput;

    fn extra_key(current: Option<&str>) -> Option<String> {
        current.map(ToOwned::to_owned)
    }

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }

    fn instantiate(
        store: &mut Store<CallState>,
        pre: &Self::Pre,
    ) -> wasmtime::Result<Self::Instance> {
        pre.instantiate(store)
    }

    fn describe(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        instance
            .gatehouse_provider_edge_cookie()
            .call_describe(store, settings)
    }

    fn call(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        current: Option<&str>,
    ) -> wasmtime::Result<Result<EcOutput, ProviderMessage>> {
        use bindings::ec::exports::gatehouse::provider::edge_cookie::EcError;
        let answer = instance
            .gatehouse_provider_edge_cookie()
            .call_generate(store, settings, evidence, current)?;
        Ok(answer
            .map(|o| EcOutput {
                id: o.id,
                headers: o.headers.into_iter().map(|h| (h.name, h.value)).collect(),
            })
            .map_err(|e| match e {
                EcError::Config(m) => format!("config: {m}"),
                EcError::MissingEvidence(m) => format!("missing evidence: {m}"),
                EcError::Internal(m) => format!("internal: {m}"),
            }))
    }
}

/// The device world.
pub struct DeviceWorld;

impl World for DeviceWorld {
    const KIND: ProviderKind = ProviderKind::Device;
    type Pre = bindings::device::DeviceProviderPre<CallState>;
    type Instance = bindings::device::DeviceProvider;
    type Extra<'a> = ();
    type Output = Classification;

    fn extra_key((): ()) -> Option<String> {
        None
    }

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }

    fn instantiate(
        store: &mut Store<CallState>,
        pre: &Self::Pre,
    ) -> wasmtime::Result<Self::Instance> {
        pre.instantiate(store)
    }

    fn describe(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        instance
            .gatehouse_provider_device()
            .call_describe(store, settings)
    }

    fn call(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        (): (),
    ) -> wasmtime::Result<Result<Classification, ProviderMessage>> {
        use bindings::device::exports::gatehouse::provider::device::{
            DeviceClass as Wit, DeviceError,
        };
        let answer = instance
            .gatehouse_provider_device()
            .call_classify(store, settings, evidence)?;
        Ok(answer
            .map(|c| Classification {
                class: match c.class {
                    Wit::Bot => DeviceClass::Bot,
                    Wit::Mobile => DeviceClass::Mobile,
                    Wit::Tablet => DeviceClass::Tablet,
                    Wit::Desktop => DeviceClass::Desktop,
                    Wit::Unknown => DeviceClass::Unknown,
                },
                bot_name: c.bot_name,
            })
            .map_err(|e| match e {
                DeviceError::Config(m) => format!("config: {m}"),
                DeviceError::Internal(m) => format!("internal: {m}"),
            }))
    }
}

/// The geo world.
pub struct GeoWorld;

impl World for GeoWorld {
    const KIND: ProviderKind = ProviderKind::Geo;
    type Pre = bindings::geo::GeoProviderPre<CallState>;
    type Instance = bindings::geo::GeoProvider;
    type Extra<'a> = ();
    type Output = Location;

    fn extra_key((): ()) -> Option<String> {
        None
    }

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }

    fn instantiate(
        store: &mut Store<CallState>,
        pre: &Self::Pre,
    ) -> wasmtime::Result<Self::Instance> {
        pre.instantiate(store)
    }

    fn describe(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        instance
            .gatehouse_provider_geo()
            .call_describe(store, settings)
    }

    fn call(
        store: &mut Store<CallState>,
        instance: &Self::Instance,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        (): (),
    ) -> wasmtime::Result<Result<Location, ProviderMessage>> {
        use bindings::geo::exports::gatehouse::provider::geo::GeoError;
        let answer = instance
            .gatehouse_provider_geo()
            .call_locate(store, settings, evidence)?;
        Ok(answer
            .map(|l| Location {
                country: l.country,
                region: l.region,
            })
            .map_err(|e| match e {
                GeoError::Config(m) => format!("config: {m}"),
                GeoError::Internal(m) => format!("internal: {m}"),
            }))
    }
}

/// The core's evidence as the WIT record.
#[must_use]
pub fn evidence_to_wit(evidence: &Evidence) -> types::Evidence {
    types::Evidence {
        client_ip: evidence.client_ip.map(|ip| match ip {
            IpAddr::V4(v4) => {
                let [a, b, c, d] = v4.octets();
                types::IpAddress::Ipv4((a, b, c, d))
            }
            IpAddr::V6(v6) => {
                let [a, b, c, d, e, f, g, h] = v6.segments();
                types::IpAddress::Ipv6((a, b, c, d, e, f, g, h))
            }
        }),
        user_agent: evidence.user_agent.clone(),
        headers: evidence
            .headers
            .iter()
            .map(|(name, value)| types::Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        path: evidence.path.clone(),
        query: evidence.query.clone(),
        ja4: evidence.ja4.clone(),
        http2_fingerprint: evidence.http2_fingerprint.clone(),
    }
}

/// The WIT manifest as the core's, for validation.
#[must_use]
pub fn manifest_from_wit(manifest: types::Manifest) -> Manifest {
    Manifest {
        id: manifest.id,
        version: manifest.version,
        required_permissions: manifest.required_permissions,
        reads: manifest
            .reads
            .into_iter()
            .map(|read| match read {
                types::Read::ClientIp => Read::ClientIp,
                types::Read::UserAgent => Read::UserAgent,
                types::Read::Header(name) => Read::Header(name),
                types::Read::Path => Read::Path,
                types::Read::Query => Read::Query,
                types::Read::Ja4 => Read::Ja4,
                types::Read::Http2Fingerprint => Read::Http2Fingerprint,
            })
            .collect(),
        call_budget_ms: manifest.call_budget_ms,
    }
}
