//! The provider sandbox: one wasmtime [`Engine`], one pre-linked instance template per configured
//! provider, and a fresh [`Store`] + instance for every provider call.
//!
//! - Providers get no ambient capabilities: the linker offers only the imports in [`OFFERED`]. A
//!   component importing anything else (filesystem, sockets, transport fingerprints, ...) fails to
//!   load with an error naming the provider and the import.
//! - Every call runs under an epoch deadline (instantiation included) and a linear-memory cap; a
//!   provider that traps, loops or exhausts memory is cut off and reported as a
//!   [`ProviderFailure`], never a crash.
//! - A fresh instance per call means a provider can keep no state across visitors.
//! - Compiled components are cached on disk keyed by (component sha256, engine compatibility hash).

mod bindings;
mod cache;
mod state;

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gatehouse_core::edge::{
    Classification, DeviceClass, EcOutput, Location, ProviderFailure, ProviderHost, ProviderKind,
};
use gatehouse_core::policy::{PermissionSet, Policy};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, Resource};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::config::{ComponentSource, SelectedProvider};
pub use state::Evidence;
use state::{CallState, MemoryLimiter};

/// The interfaces the standalone host offers providers, at the versions it implements.
pub const OFFERED: &[&str] = &[
    "gatehouse:provider/types@0.1.0",
    "gatehouse:provider/evidence@0.1.0",
    "wasi:config/store@0.2.0-rc.1",
    "wasi:random/random@0.2.6",
    "wasi:clocks/wall-clock@0.2.6",
];

/// The provider interface version this host implements.
const PROVIDER_INTERFACE_VERSION: &str = "0.1.0";

/// The first-party providers compiled into this binary, per kind.
pub const BUNDLED: &[(ProviderKind, &str, &[u8])] = &[
    (
        ProviderKind::EdgeCookie,
        "hmac",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HMAC")),
    ),
    (
        ProviderKind::Device,
        "ua-device",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_UA_DEVICE")),
    ),
    (
        ProviderKind::Geo,
        "header-geo",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HEADER_GEO")),
    ),
];

/// The bundled provider names for `kind`.
#[must_use]
pub fn bundled_names(kind: ProviderKind) -> Vec<&'static str> {
    BUNDLED
        .iter()
        .filter(|(k, ..)| *k == kind)
        .map(|(_, name, _)| *name)
        .collect()
}

/// Sandbox limits, from `[runtime]`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Deadline for one provider call, instantiation included.
    pub call_timeout: Duration,
    /// Linear-memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Instances alive at once.
    pub max_instances: u32,
    /// Where compiled components are cached, if anywhere.
    pub cache_dir: Option<std::path::PathBuf>,
}

/// Why a provider could not be loaded. Always names the provider and its config key.
#[derive(Debug, thiserror::Error)]
#[error("provider `{provider}` (`{key}`): {reason}")]
pub struct LoadError {
    /// The provider's config name.
    pub provider: String,
    /// Its config table key, e.g. `ec.providers.hmac`.
    pub key: String,
    /// What went wrong.
    pub reason: String,
}

/// The epoch tick; deadlines are measured in ticks of this length.
const TICK: Duration = Duration::from_millis(1);

/// Deadline for `describe` at load time: the first instantiation of a component is slower than
/// warm per-request calls (lazy initialisation, page faults), and startup must not fail on a
/// briefly loaded machine. It still bounds a provider that loops in `describe`.
const DESCRIBE_DEADLINE_TICKS: u64 = 2_000;

/// A loaded provider: its manifest and its pre-linked instance template.
struct Loaded<P> {
    name: String,
    required: PermissionSet,
    settings: Arc<Vec<(String, String)>>,
    pre: P,
}

/// Summary of a loaded provider, for startup logs and `/_ts/health`.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ProviderInfo {
    /// `geo`, `device` or `ec`.
    pub kind: &'static str,
    /// The config name.
    pub name: String,
    /// The manifest id.
    pub id: String,
    /// The manifest version.
    pub version: String,
    /// The required permissions, by name.
    pub required_permissions: Vec<String>,
}

/// Failure counters, by (kind, provider, reason).
type FailureCounts = BTreeMap<(&'static str, String, &'static str), u64>;

/// The loaded providers and the engine that runs them.
pub struct ProviderRuntime {
    engine: Engine,
    deadline_ticks: u64,
    limits: Limits,
    geo: Option<Loaded<bindings::geo::GeoProviderPre<CallState>>>,
    device: Option<Loaded<bindings::device::DeviceProviderPre<CallState>>>,
    ec: Option<Loaded<bindings::ec::EdgeCookieProviderPre<CallState>>>,
    failures: Mutex<FailureCounts>,
    info: Vec<ProviderInfo>,
}

/// Bytes of each linear memory restored in place (not madvised) when an instance is freed. With
/// PAGEMAP_SCAN only dirtied pages count against it; without, this many low bytes are memset, which
/// covers the stack, data and allocation arena of a small provider (ours: a 64 KiB stack and a
/// 128 KiB arena, see `providers/rt`).
const KEEP_RESIDENT: usize = 512 << 10;

/// Bytes of each table restored in place likewise.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Builds the engine: pooling allocator, epoch interruption, no async, no fuel.
fn build_engine(limits: &Limits) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(limits.max_instances.saturating_mul(8))
        .max_core_instances_per_component(8)
        .total_memories(limits.max_instances)
        .max_memories_per_component(1)
        .total_tables(limits.max_instances.saturating_mul(2))
        .max_tables_per_component(2)
        .max_memory_size(limits.memory_bytes)
        // Instances are short-lived; keep a modest number of warm slots.
        .max_unused_warm_slots(64)
        // Reset memories and tables in place instead of with madvise: on Linux >= 6.7 the
        // PAGEMAP_SCAN ioctl finds the pages an instance dirtied and only those are restored, so a
        // freed slot costs no madvise (whose TLB-shootdown IPIs dominated the per-request profile)
        // and the next instance takes no page faults. Elsewhere the first KEEP_RESIDENT bytes are
        // memset. Measured in benches/providers.rs; see BENCHMARKS.md.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT)
        .table_keep_resident(TABLE_KEEP_RESIDENT);
    let mut config = wasmtime::Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .max_wasm_stack(512 * 1024)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    Engine::new(&config)
}

/// Increments the engine's epoch every [`TICK`] until the engine is dropped.
fn start_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("gatehouse-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(TICK);
            }
        })
        .map(drop)
        .unwrap_or_else(|e| tracing::error!("cannot start epoch ticker thread: {e}"));
}

/// Lowercase hex sha256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A `Hasher` over sha256, for the engine's compatibility hash.
struct ShaHasher(Sha256);

impl std::hash::Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or_default())
    }
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn engine_hash(engine: &Engine) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..16])
}

impl ProviderRuntime {
    /// Loads and validates the selected providers.
    ///
    /// # Errors
    /// A [`LoadError`] naming the provider when its file cannot be read, its digest does not match,
    /// it does not compile, imports an interface this host does not offer, exports an
    /// incompatible interface version, or its manifest names a permission the policy lacks.
    pub fn load(
        limits: Limits,
        policy: &Policy,
        geo: Option<&SelectedProvider>,
        device: Option<&SelectedProvider>,
        ec: Option<&SelectedProvider>,
    ) -> Result<Self, LoadError> {
        let engine = build_engine(&limits).map_err(|e| LoadError {
            provider: "-".into(),
            key: "runtime".into(),
            reason: format!("cannot create the wasm engine: {e:#}"),
        })?;
        start_ticker(&engine);
        let deadline_ticks = u64::try_from(limits.call_timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
            .saturating_add(1);
        let mut linker = Linker::<CallState>::new(&engine);
        add_offered_imports(&mut linker).map_err(|e| LoadError {
            provider: "-".into(),
            key: "runtime".into(),
            reason: format!("cannot link host imports: {e:#}"),
        })?;
        let mut rt = Self {
            engine,
            deadline_ticks,
            limits,
            geo: None,
            device: None,
            ec: None,
            failures: Mutex::new(BTreeMap::new()),
            info: Vec::new(),
        };
        if let Some(sel) = geo {
            let component = rt.compile(ProviderKind::Geo, sel)?;
            let pre = instance_pre(&linker, &component, sel)?;
            let pre = bindings::geo::GeoProviderPre::new(pre).map_err(|e| load_err(sel, e))?;
            let manifest = rt.describe(sel, |store| {
                let b = pre.instantiate(&mut *store)?;
                b.gatehouse_provider_geo().call_describe(&mut *store)
            })?;
            rt.geo = Some(rt.finish(ProviderKind::Geo, sel, manifest, policy, pre)?);
        }
        if let Some(sel) = device {
            let component = rt.compile(ProviderKind::Device, sel)?;
            let pre = instance_pre(&linker, &component, sel)?;
            let pre =
                bindings::device::DeviceProviderPre::new(pre).map_err(|e| load_err(sel, e))?;
            let manifest = rt.describe(sel, |store| {
                let b = pre.instantiate(&mut *store)?;
                b.gatehouse_provider_device().call_describe(&mut *store)
            })?;
            rt.device = Some(rt.finish(ProviderKind::Device, sel, manifest, policy, pre)?);
        }
        if let Some(sel) = ec {
            let component = rt.compile(ProviderKind::EdgeCookie, sel)?;
            let pre = instance_pre(&linker, &component, sel)?;
            let pre =
                bindings::ec::EdgeCookieProviderPre::new(pre).map_err(|e| load_err(sel, e))?;
            let manifest = rt.describe(sel, |store| {
                let b = pre.instantiate(&mut *store)?;
                b.gatehouse_provider_edge_cookie()
                    .call_describe(&mut *store)
            })?;
            rt.ec = Some(rt.finish(ProviderKind::EdgeCookie, sel, manifest, policy, pre)?);
        }
        Ok(rt)
    }

    /// The loaded providers.
    #[must_use]
    pub fn providers(&self) -> &[ProviderInfo] {
        &self.info
    }

    /// Failure counts by (kind, provider, reason), for `/_ts/metrics`.
    #[must_use]
    pub fn failure_counts(&self) -> FailureCounts {
        self.failures.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The providers for one request, reading `evidence`.
    #[must_use]
    pub fn for_request(&self, evidence: Arc<Evidence>) -> RequestProviders<'_> {
        RequestProviders { rt: self, evidence }
    }

    fn compile(&self, kind: ProviderKind, sel: &SelectedProvider) -> Result<Component, LoadError> {
        let bytes: std::borrow::Cow<'static, [u8]> = match &sel.source {
            ComponentSource::Bundled(name) => BUNDLED
                .iter()
                .find(|(k, n, _)| *k == kind && n == name)
                .map(|(.., bytes)| std::borrow::Cow::Borrowed(*bytes))
                .ok_or_else(|| LoadError {
                    provider: sel.name.clone(),
                    key: sel.key.clone(),
                    reason: "no such bundled provider".into(),
                })?,
            ComponentSource::External { path, sha256 } => {
                let bytes = std::fs::read(path).map_err(|e| LoadError {
                    provider: sel.name.clone(),
                    key: format!("{}.path", sel.key),
                    reason: format!("cannot read `{}`: {e}", path.display()),
                })?;
                let actual = sha256_hex(&bytes);
                if &actual != sha256 {
                    return Err(LoadError {
                        provider: sel.name.clone(),
                        key: format!("{}.sha256", sel.key),
                        reason: format!(
                            "digest mismatch for `{}`: config pins sha256 {sha256}, file has {actual}",
                            path.display()
                        ),
                    });
                }
                std::borrow::Cow::Owned(bytes)
            }
        };
        let digest = sha256_hex(&bytes);
        let component = cache::load_or_compile(
            &self.engine,
            &bytes,
            &digest,
            &engine_hash(&self.engine),
            self.limits.cache_dir.as_deref(),
        )
        .map_err(|e| LoadError {
            provider: sel.name.clone(),
            key: sel.key.clone(),
            reason: format!("not a valid component: {e:#}"),
        })?;
        check_interfaces(&self.engine, &component, kind).map_err(|reason| LoadError {
            provider: sel.name.clone(),
            key: sel.key.clone(),
            reason,
        })?;
        Ok(component)
    }

    fn new_store(
        &self,
        evidence: Arc<Evidence>,
        settings: Arc<Vec<(String, String)>>,
    ) -> Store<CallState> {
        let mut store = Store::new(
            &self.engine,
            CallState {
                evidence,
                settings,
                limits: MemoryLimiter {
                    max_memory: self.limits.memory_bytes,
                    max_table_elements: 100_000,
                    hit: false,
                },
            },
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(self.deadline_ticks);
        store.epoch_deadline_trap();
        store
    }

    fn describe(
        &self,
        sel: &SelectedProvider,
        f: impl FnOnce(&mut Store<CallState>) -> wasmtime::Result<bindings::types::Manifest>,
    ) -> Result<bindings::types::Manifest, LoadError> {
        let settings = Arc::new(sel.settings.clone());
        let mut store = self.new_store(empty_evidence(), settings);
        store.set_epoch_deadline(DESCRIBE_DEADLINE_TICKS);
        f(&mut store).map_err(|e| LoadError {
            provider: sel.name.clone(),
            key: sel.key.clone(),
            reason: format!("`describe` failed: {}", classify(&store, &e)),
        })
    }

    fn finish<P>(
        &mut self,
        kind: ProviderKind,
        sel: &SelectedProvider,
        manifest: bindings::types::Manifest,
        policy: &Policy,
        pre: P,
    ) -> Result<Loaded<P>, LoadError> {
        let required = policy
            .set_from_names(&manifest.required_permissions)
            .map_err(|e| LoadError {
                provider: sel.name.clone(),
                key: sel.key.clone(),
                reason: format!("manifest of `{}`: {e}", manifest.id),
            })?;
        self.info.push(ProviderInfo {
            kind: kind.section(),
            name: sel.name.clone(),
            id: manifest.id,
            version: manifest.version,
            required_permissions: manifest.required_permissions,
        });
        Ok(Loaded {
            name: sel.name.clone(),
            required,
            settings: Arc::new(sel.settings.clone()),
            pre,
        })
    }

    /// Logs and counts a failed provider call. The server calls this once for every failure of a
    /// request's decision, so failures found by the runtime and by the core are counted alike.
    pub fn record_failure(&self, kind: ProviderKind, failure: &ProviderFailure) {
        let provider = match kind {
            ProviderKind::Geo => self.geo.as_ref().map(|p| p.name.as_str()),
            ProviderKind::Device => self.device.as_ref().map(|p| p.name.as_str()),
            ProviderKind::EdgeCookie => self.ec.as_ref().map(|p| p.name.as_str()),
        }
        .unwrap_or("-");
        tracing::warn!(
            kind = kind.section(),
            provider,
            reason = failure.label(),
            "provider call failed: {failure}; continuing fail-closed"
        );
        if let Ok(mut counts) = self.failures.lock() {
            *counts
                .entry((kind.section(), provider.to_owned(), failure.label()))
                .or_default() += 1;
        }
    }
}

fn empty_evidence() -> Arc<Evidence> {
    Arc::new(Evidence {
        client_ip: None,
        head: http::Request::new(()).into_parts().0,
    })
}

fn load_err(sel: &SelectedProvider, e: wasmtime::Error) -> LoadError {
    LoadError {
        provider: sel.name.clone(),
        key: sel.key.clone(),
        reason: format!("{e:#}"),
    }
}

fn instance_pre(
    linker: &Linker<CallState>,
    component: &Component,
    sel: &SelectedProvider,
) -> Result<wasmtime::component::InstancePre<CallState>, LoadError> {
    linker
        .instantiate_pre(component)
        .map_err(|e| load_err(sel, e))
}

fn add_offered_imports(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    type Me = HasSelf<CallState>;
    bindings::types::add_to_linker::<CallState, Me>(linker, |s| s)?;
    bindings::evidence::add_to_linker::<CallState, Me>(linker, |s| s)?;
    bindings::config_store::add_to_linker::<CallState, Me>(linker, |s| s)?;
    bindings::random::add_to_linker::<CallState, Me>(linker, |s| s)?;
    bindings::wall_clock::add_to_linker::<CallState, Me>(linker, |s| s)?;
    Ok(())
}

/// Splits `ns:pkg/iface@1.2.3` into (`ns:pkg/iface`, `1.2.3`).
fn split_version(name: &str) -> (&str, Option<&str>) {
    match name.split_once('@') {
        Some((n, v)) => (n, Some(v)),
        None => (name, None),
    }
}

/// Whether an import or export at version `wanted` is served by `offered` (semver rules; a
/// pre-release must match exactly; for 0.x the minor version is the breaking one).
fn version_compatible(offered: &str, wanted: &str) -> bool {
    if offered.contains('-') || wanted.contains('-') {
        return offered == wanted;
    }
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let mut it = v.split('.').map(str::parse::<u64>);
        Some((it.next()?.ok()?, it.next()?.ok()?, it.next()?.ok()?))
    };
    let (Some(o), Some(w)) = (parse(offered), parse(wanted)) else {
        return false;
    };
    if o.0 != w.0 {
        return false;
    }
    if o.0 == 0 {
        o.1 == w.1 && w.2 <= o.2
    } else {
        (w.1, w.2) <= (o.1, o.2)
    }
}

/// Refuses components importing anything not in [`OFFERED`] or not exporting this host's
/// interface for `kind` at a compatible version.
fn check_interfaces(
    engine: &Engine,
    component: &Component,
    kind: ProviderKind,
) -> Result<(), String> {
    let ty = component.component_type();
    for (name, _) in ty.imports(engine) {
        let (iface, version) = split_version(name);
        let served = OFFERED.iter().any(|offered| {
            let (o_iface, o_version) = split_version(offered);
            o_iface == iface
                && match (o_version, version) {
                    (Some(o), Some(w)) => version_compatible(o, w),
                    _ => false,
                }
        });
        if !served {
            return Err(format!(
                "imports `{name}`, which this host does not offer (offered: {})",
                OFFERED.join(", ")
            ));
        }
    }
    let wanted = match kind {
        ProviderKind::Geo => "gatehouse:provider/geo",
        ProviderKind::Device => "gatehouse:provider/device",
        ProviderKind::EdgeCookie => "gatehouse:provider/edge-cookie",
    };
    let mut found = None;
    for (name, _) in ty.exports(engine) {
        let (iface, version) = split_version(name);
        if iface == wanted {
            found = Some(version.unwrap_or("").to_owned());
        }
    }
    match found {
        None => Err(format!(
            "does not export `{wanted}`: is it a `{}` provider?",
            kind.section()
        )),
        Some(v) if version_compatible(PROVIDER_INTERFACE_VERSION, &v) => Ok(()),
        Some(v) => Err(format!(
            "exports `{wanted}@{v}`, not compatible with this host's {PROVIDER_INTERFACE_VERSION}"
        )),
    }
}

/// Turns a wasmtime error from a call into the failure the core reasons about.
fn classify(store: &Store<CallState>, error: &wasmtime::Error) -> ProviderFailure {
    if store.data().limits.hit {
        return ProviderFailure::MemoryLimit;
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ProviderFailure::Deadline,
        Some(trap) => ProviderFailure::Trap(trap.to_string()),
        None => ProviderFailure::Trap(format!("{error:#}")),
    }
}

/// The providers for one request. Each call gets a fresh store and instance.
pub struct RequestProviders<'a> {
    rt: &'a ProviderRuntime,
    evidence: Arc<Evidence>,
}

impl RequestProviders<'_> {
    fn run<P, R>(
        &self,
        loaded: &Loaded<P>,
        call: impl FnOnce(
            &mut Store<CallState>,
            &P,
        ) -> Result<wasmtime::Result<Result<R, String>>, ProviderFailure>,
    ) -> Result<R, ProviderFailure> {
        let mut store = self
            .rt
            .new_store(Arc::clone(&self.evidence), Arc::clone(&loaded.settings));
        match call(&mut store, &loaded.pre) {
            Err(failure) => Err(failure),
            Ok(Err(e)) => Err(classify(&store, &e)),
            Ok(Ok(Err(message))) => Err(ProviderFailure::Provider(message)),
            Ok(Ok(Ok(value))) => Ok(value),
        }
    }
}

fn instantiate_failure(store: &Store<CallState>, e: &wasmtime::Error) -> ProviderFailure {
    match classify(store, e) {
        ProviderFailure::Trap(msg) => ProviderFailure::Instantiate(msg),
        other => other,
    }
}

fn request_handle() -> Resource<bindings::evidence::Request> {
    Resource::new_borrow(0)
}

impl ProviderHost for RequestProviders<'_> {
    fn requirements(&self, kind: ProviderKind) -> Option<PermissionSet> {
        match kind {
            ProviderKind::Geo => self.rt.geo.as_ref().map(|p| p.required),
            ProviderKind::Device => self.rt.device.as_ref().map(|p| p.required),
            ProviderKind::EdgeCookie => self.rt.ec.as_ref().map(|p| p.required),
        }
    }

    fn locate(&mut self) -> Result<Location, ProviderFailure> {
        let Some(loaded) = self.rt.geo.as_ref() else {
            return Ok(Location::default());
        };
        self.run(loaded, |store, pre| {
            let b = pre
                .instantiate(&mut *store)
                .map_err(|e| instantiate_failure(store, &e))?;
            Ok(b.gatehouse_provider_geo()
                .call_locate(&mut *store, request_handle())
                .map(|r| {
                    r.map(|l| Location {
                        country: l.country,
                        region: l.region,
                    })
                    .map_err(|e| format!("{e:?}"))
                }))
        })
    }

    fn classify(&mut self) -> Result<Classification, ProviderFailure> {
        use bindings::device::exports::gatehouse::provider::device::DeviceClass as Wit;
        let Some(loaded) = self.rt.device.as_ref() else {
            return Ok(Classification::default());
        };
        self.run(loaded, |store, pre| {
            let b = pre
                .instantiate(&mut *store)
                .map_err(|e| instantiate_failure(store, &e))?;
            Ok(b.gatehouse_provider_device()
                .call_classify(&mut *store, request_handle())
                .map(|r| {
                    r.map(|c| Classification {
                        class: match c.class {
                            Wit::Bot => DeviceClass::Bot,
                            Wit::Mobile => DeviceClass::Mobile,
                            Wit::Tablet => DeviceClass::Tablet,
                            Wit::Desktop => DeviceClass::Desktop,
                            Wit::Unknown => DeviceClass::Unknown,
                        },
                        bot_name: c.bot_name,
                    })
                    .map_err(|e| format!("{e:?}"))
                }))
        })
    }

    fn generate_edge_cookie(&mut self, current: Option<&str>) -> Result<EcOutput, ProviderFailure> {
        let Some(loaded) = self.rt.ec.as_ref() else {
            return Ok(EcOutput::default());
        };
        self.run(loaded, |store, pre| {
            let b = pre
                .instantiate(&mut *store)
                .map_err(|e| instantiate_failure(store, &e))?;
            Ok(b.gatehouse_provider_edge_cookie()
                .call_generate(&mut *store, request_handle(), current)
                .map(|r| {
                    r.map(|o| EcOutput {
                        id: o.id,
                        headers: o.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                    })
                    .map_err(|e| format!("{e:?}"))
                }))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::version_compatible;

    #[test]
    fn semver_compatibility() {
        assert!(version_compatible("0.1.0", "0.1.0"));
        assert!(!version_compatible("0.1.0", "0.1.1"));
        assert!(version_compatible("0.1.3", "0.1.1"));
        assert!(!version_compatible("0.1.0", "0.2.0"));
        assert!(version_compatible("0.2.6", "0.2.0"));
        assert!(version_compatible("1.4.0", "1.2.9"));
        assert!(!version_compatible("1.4.0", "2.0.0"));
        assert!(version_compatible("0.2.0-rc.1", "0.2.0-rc.1"));
        assert!(!version_compatible("0.2.0-rc.1", "0.2.0-rc.2"));
    }
}
