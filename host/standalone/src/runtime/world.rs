//! One trait per provider world, so one generic loader and one generic call path serve all three
//! kinds: the world's kind, its pre-instantiated template type, `describe`, and its call.
//!
//! A call instantiates the template ([`Template`]) as a plain component instance and calls the
//! kind's export through an index resolved once at load. The generated bindings would resolve and
//! type-check both exports on every instantiation (`GuestIndices::load`); that check is done once,
//! at load, when the generated wrapper is built to call `describe` (it checks every export of the
//! interface, the kind's function included), so the per-request path does not repeat it. A
//! [`Template`] leaves `Sandbox::describe` only after that check passed.

use std::net::IpAddr;

use gatehouse_core::provider::manifest::Manifest;
use gatehouse_core::provider::{
    Classification, DeviceClass, EcOutput, Evidence, Location, ProviderKind, Read,
};
use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, Instance, InstancePre, TypedFunc};

use super::bindings::{self, types};
use super::state::CallState;

/// What a provider's own error variant said, for [`gatehouse_core::provider::ProviderFailure::Provider`].
pub type ProviderMessage = String;

/// A provider world: how to instantiate it, describe it and call it.
pub trait World: Sized + 'static {
    /// The provider kind.
    const KIND: ProviderKind;
    /// The generated pre-instantiated template.
    type Pre: Send + Sync;
    /// The call's input besides settings and evidence.
    type Extra<'a>: Copy;
    /// The call's answer.
    type Output: Clone;

    /// The extra input as part of an answer-cache key.
    fn extra_key(extra: Self::Extra<'_>) -> Option<String>;

    /// The world's exported interface, as the generated bindings name it.
    const INTERFACE: &'static str;
    /// The kind's function in that interface (`generate`, `classify`, `locate`).
    const FUNCTION: &'static str;

    /// Wraps a linked template in the generated bindings (resolving the exports by name).
    ///
    /// # Errors
    /// When the component does not have the world's exports.
    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre>;

    /// The linked template inside the generated one.
    fn instance_pre(pre: &Self::Pre) -> &InstancePre<CallState>;

    /// Calls `describe` through the generated bindings (once, at load).
    ///
    /// # Errors
    /// Traps; the inner `Err` is the provider refusing its settings.
    fn describe(
        store: &mut Store<CallState>,
        instance: &Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>>;

    /// Calls the kind's function, `func` being [`World::FUNCTION`] of an instance of a
    /// [`Template`] of this world.
    ///
    /// # Errors
    /// Traps; the inner `Err` is the provider's own error variant, formatted.
    fn call(
        store: &mut Store<CallState>,
        func: wasmtime::component::Func,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        extra: Self::Extra<'_>,
    ) -> wasmtime::Result<Result<Self::Output, ProviderMessage>>;
}

/// A provider linked for world `W`: the generated template and the index of the kind's function.
/// Call [`Template::call`] only once [`Template::describe`] has succeeded on an instance of it:
/// that is what type-checks the function.
pub struct Template<W: World> {
    pre: W::Pre,
    func: ComponentExportIndex,
}

impl<W: World> Template<W> {
    /// Type-checks `pre` against `W` and resolves the kind's function.
    ///
    /// # Errors
    /// When the component does not have the world's exports.
    pub fn new(pre: InstancePre<CallState>) -> wasmtime::Result<Self> {
        let pre = W::pre(pre)?;
        let component = W::instance_pre(&pre).component();
        let func = component
            .get_export_index(None, W::INTERFACE)
            .and_then(|interface| component.get_export_index(Some(&interface), W::FUNCTION))
            .ok_or_else(|| {
                wasmtime::format_err!("no export `{}` in `{}`", W::FUNCTION, W::INTERFACE)
            })?;
        Ok(Self { pre, func })
    }

    /// A fresh instance in `store`.
    ///
    /// # Errors
    /// Instantiation failures (traps in start functions, limits).
    pub fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Instance> {
        W::instance_pre(&self.pre).instantiate(store)
    }

    /// Calls `describe` on `instance`.
    ///
    /// # Errors
    /// Traps; the inner `Err` is the provider refusing its settings.
    pub fn describe(
        store: &mut Store<CallState>,
        instance: &Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        W::describe(store, instance, settings)
    }

    /// Calls the kind's function on `instance`, an instance of this template.
    ///
    /// # Errors
    /// Traps; the inner `Err` is the provider's own error variant, formatted.
    pub fn call(
        &self,
        store: &mut Store<CallState>,
        instance: &Instance,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        extra: W::Extra<'_>,
    ) -> wasmtime::Result<Result<W::Output, ProviderMessage>> {
        let func = instance
            .get_func(&mut *store, self.func)
            .ok_or_else(|| wasmtime::format_err!("no function `{}`", W::FUNCTION))?;
        W::call(store, func, settings, evidence, extra)
    }
}

/// The Edge Cookie world.
pub struct EdgeCookieWorld;

impl World for EdgeCookieWorld {
    const KIND: ProviderKind = ProviderKind::EdgeCookie;
    type Pre = bindings::ec::EdgeCookieProviderPre<CallState>;
    /// The request's current Edge Cookie.
    type Extra<'a> = Option<&'a str>;
    type Output = EcOutput;

    fn extra_key(current: Option<&str>) -> Option<String> {
        current.map(ToOwned::to_owned)
    }

    const INTERFACE: &'static str = "gatehouse:provider/edge-cookie@0.2.0";
    const FUNCTION: &'static str = "generate";

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }

    fn instance_pre(pre: &Self::Pre) -> &InstancePre<CallState> {
        pre.instance_pre()
    }

    fn describe(
        store: &mut Store<CallState>,
        instance: &Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        bindings::ec::EdgeCookieProvider::new(&mut *store, instance)?
            .gatehouse_provider_edge_cookie()
            .call_describe(store, settings)
    }

    fn call(
        store: &mut Store<CallState>,
        func: wasmtime::component::Func,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        current: Option<&str>,
    ) -> wasmtime::Result<Result<EcOutput, ProviderMessage>> {
        use bindings::ec::exports::gatehouse::provider::edge_cookie::{EcError, EcOutput as Wit};
        type Generate<'a> = TypedFunc<
            (&'a [types::Setting], &'a types::Evidence, Option<&'a str>),
            (Result<Wit, EcError>,),
        >;
        // SAFETY: `func` is `generate` of an instance of a template on which `describe` ran at
        // load; building the generated wrapper for it type-checked `generate` against these
        // very types (the bindings' own), and the component has not changed since.
        #[allow(unsafe_code)]
        let typed: Generate<'_> = unsafe { TypedFunc::new_unchecked(func) };
        let (answer,) = typed.call(store, (settings, evidence, current))?;
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
    type Extra<'a> = ();
    type Output = Classification;

    fn extra_key((): ()) -> Option<String> {
        None
    }

    const INTERFACE: &'static str = "gatehouse:provider/device@0.2.0";
    const FUNCTION: &'static str = "classify";

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }

    fn instance_pre(pre: &Self::Pre) -> &InstancePre<CallState> {
        pre.instance_pre()
    }

    fn describe(
        store: &mut Store<CallState>,
        instance: &Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        bindings::device::DeviceProvider::new(&mut *store, instance)?
            .gatehouse_provider_device()
            .call_describe(store, settings)
    }

    fn call(
        store: &mut Store<CallState>,
        func: wasmtime::component::Func,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        (): (),
    ) -> wasmtime::Result<Result<Classification, ProviderMessage>> {
        use bindings::device::exports::gatehouse::provider::device::{
            Classification as WitClassification, DeviceClass as Wit, DeviceError,
        };
        type Classify<'a> = TypedFunc<
            (&'a [types::Setting], &'a types::Evidence),
            (Result<WitClassification, DeviceError>,),
        >;
        // SAFETY: as for the Edge Cookie world's `generate`.
        #[allow(unsafe_code)]
        let typed: Classify<'_> = unsafe { TypedFunc::new_unchecked(func) };
        let (answer,) = typed.call(store, (settings, evidence))?;
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
    type Extra<'a> = ();
    type Output = Location;

    fn extra_key((): ()) -> Option<String> {
        None
    }

    const INTERFACE: &'static str = "gatehouse:provider/geo@0.2.0";
    const FUNCTION: &'static str = "locate";

    fn pre(pre: InstancePre<CallState>) -> wasmtime::Result<Self::Pre> {
        Self::Pre::new(pre)
    }

    fn instance_pre(pre: &Self::Pre) -> &InstancePre<CallState> {
        pre.instance_pre()
    }

    fn describe(
        store: &mut Store<CallState>,
        instance: &Instance,
        settings: &[types::Setting],
    ) -> wasmtime::Result<Result<types::Manifest, String>> {
        bindings::geo::GeoProvider::new(&mut *store, instance)?
            .gatehouse_provider_geo()
            .call_describe(store, settings)
    }

    fn call(
        store: &mut Store<CallState>,
        func: wasmtime::component::Func,
        settings: &[types::Setting],
        evidence: &types::Evidence,
        (): (),
    ) -> wasmtime::Result<Result<Location, ProviderMessage>> {
        use bindings::geo::exports::gatehouse::provider::geo::{GeoError, Location as Wit};
        type Locate<'a> =
            TypedFunc<(&'a [types::Setting], &'a types::Evidence), (Result<Wit, GeoError>,)>;
        // SAFETY: as for the Edge Cookie world's `generate`.
        #[allow(unsafe_code)]
        let typed: Locate<'_> = unsafe { TypedFunc::new_unchecked(func) };
        let (answer,) = typed.call(store, (settings, evidence))?;
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
