//! The provider sandbox: one wasmtime [`Engine`] and [`Linker`], one pre-linked instance template
//! per configured provider, and a fresh [`Store`] + instance for every provider call.
//!
//! - Imports: the published worlds' `wasi:random/random` and `wasi:clocks/wall-clock`, plus the
//!   rest of WASI 0.2 from `wasmtime-wasi` with a locked-down context (see `state`): no files,
//!   sockets, environment or arguments, stdout/stderr captured and capped, no way to sleep. A
//!   component importing anything else is refused at load with every such import listed.
//! - Evidence and settings are values: a call receives the [`Evidence`] the core built from the
//!   provider's declared reads, and its own settings. The host holds no request state a provider
//!   could query.
//! - Manifests are validated at load ([`gatehouse_core::provider::manifest`]): a provider whose
//!   manifest declares a forbidden header, a read this host cannot supply (`ja4`,
//!   `http2-fingerprint`), an unknown permission or a malformed id never loads.
//! - Every call runs under an epoch deadline (instantiation included: the provider's
//!   `call-budget-ms`, capped by `runtime.call_timeout_ms`) and a linear-memory cap; a provider
//!   that traps, loops, exits or exhausts memory is cut off and reported as a
//!   [`ProviderFailure`], never a crash.
//! - A fresh instance per call means a provider can keep no state across visitors.
//! - One generic loader and call path ([`world::World`]) serve all three kinds.
//! - Compiled components are cached on disk keyed by (component sha256, engine compatibility hash).

mod bindings;
mod cache;
mod error;
mod imports;
mod state;
mod world;

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::Duration;

use gatehouse_core::policy::Policy;
use gatehouse_core::provider::manifest::{self, Manifest, ManifestRules, quote};
use gatehouse_core::provider::{
    Classification, EcOutput, Evidence, Location, ProviderFailure, ProviderHost, ProviderKind,
    ProviderSpec,
};
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use crate::config::{ComponentSource, SelectedProvider};
pub use error::{LoadError, LoadErrorReason, pool_limit_key};
pub use imports::{OFFERED, PROVIDER_INTERFACE_VERSION};
use state::{CallState, MemoryLimiter};
use world::{DeviceWorld, EdgeCookieWorld, GeoWorld, World};

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
    /// `call_timeout_ms`: the publisher's cap on one provider call, instantiation included.
    pub call_timeout: Duration,
    /// `memory_limit_mib`: linear-memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// `max_instances`: component instances alive at once.
    pub max_instances: u32,
    /// `max_core_instances_per_component`.
    pub max_core_instances_per_component: u32,
    /// `max_memories_per_component`.
    pub max_memories_per_component: u32,
    /// `max_tables_per_component`.
    pub max_tables_per_component: u32,
    /// `output_limit_bytes`: bytes of stdout and of stderr kept (and logged) per call.
    pub output_limit_bytes: usize,
    /// `forbidden_headers`: request headers no provider may declare, besides the built-in ones.
    pub forbidden_headers: Vec<String>,
    /// `cache_dir`: where compiled components are cached, if anywhere.
    pub cache_dir: Option<std::path::PathBuf>,
}

impl Default for Limits {
    /// The `[runtime]` defaults (see `config::RuntimeConfig`).
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_millis(5),
            memory_bytes: 128 << 20,
            max_instances: 1000,
            max_core_instances_per_component: 32,
            max_memories_per_component: 2,
            max_tables_per_component: 32,
            output_limit_bytes: 4096,
            forbidden_headers: Vec::new(),
            cache_dir: None,
        }
    }
}

/// The epoch tick; deadlines are measured in ticks of this length.
const TICK: Duration = Duration::from_millis(1);

/// Deadline for `describe` at load time: the first instantiation of a component is slower than
/// warm per-request calls (lazy initialisation, page faults), and startup must not fail on a
/// briefly loaded machine. It still bounds a provider that loops in `describe`.
const DESCRIBE_DEADLINE_TICKS: u64 = 2_000;

/// Bytes of each linear memory restored in place (not madvised) when an instance is freed. With
/// PAGEMAP_SCAN only dirtied pages count against it; without, this many low bytes are memset, which
/// covers the stack, data and allocation arena of a small provider (ours: a 64 KiB stack and a
/// 128 KiB arena, see the SDK's `rt` feature).
const KEEP_RESIDENT: usize = 512 << 10;

/// Bytes of each table restored in place likewise.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Table elements a provider may grow a table to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Builds the engine: pooling allocator, epoch interruption, no async, no fuel.
fn build_engine(limits: &Limits) -> wasmtime::Result<Engine> {
    let mut pool = PoolingAllocationConfig::new();
    pool.total_component_instances(limits.max_instances)
        .total_core_instances(
            limits
                .max_instances
                .saturating_mul(limits.max_core_instances_per_component),
        )
        .max_core_instances_per_component(limits.max_core_instances_per_component)
        .total_memories(
            limits
                .max_instances
                .saturating_mul(limits.max_memories_per_component),
        )
        .max_memories_per_component(limits.max_memories_per_component)
        .total_tables(
            limits
                .max_instances
                .saturating_mul(limits.max_tables_per_component),
        )
        .max_tables_per_component(limits.max_tables_per_component)
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

/// Links what providers may import (see the module docs and `state`).
fn build_linker(engine: &Engine) -> wasmtime::Result<Linker<CallState>> {
    type Me = HasSelf<CallState>;
    let mut linker = Linker::<CallState>::new(engine);
    wasmtime_wasi::p2::add_to_linker_sync(&mut linker)?;
    // Our own randomness and clocks replace wasmtime-wasi's: no WASI context for providers that
    // import nothing else, and clock subscriptions that never block.
    linker.allow_shadowing(true);
    wasmtime_wasi::p2::bindings::random::random::add_to_linker::<CallState, Me>(
        &mut linker,
        |s| s,
    )?;
    wasmtime_wasi::p2::bindings::clocks::wall_clock::add_to_linker::<CallState, Me>(
        &mut linker,
        |s| s,
    )?;
    wasmtime_wasi::p2::bindings::clocks::monotonic_clock::add_to_linker::<CallState, Me>(
        &mut linker,
        |s| s,
    )?;
    linker.allow_shadowing(false);
    Ok(linker)
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

/// Runs `f` where wasmtime-wasi's blocking host calls may block: on a multi-threaded tokio
/// runtime's worker, via `block_in_place` (wasmtime-wasi's sync bindings `block_on` the current
/// runtime, which a worker thread may not do directly); elsewhere, directly.
fn outside_async<R>(f: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// Whether a component imports WASI beyond what the host serves without a WASI context.
fn needs_wasi_context(imports: &[String]) -> bool {
    imports.iter().any(|name| {
        !(name.starts_with("wasi:random/random@")
            || name.starts_with("wasi:clocks/wall-clock@")
            || name.starts_with("gatehouse:provider/"))
    })
}

/// The engine, the linker and the limits: everything needed to load, describe and call providers.
pub struct Sandbox {
    engine: Engine,
    linker: Linker<CallState>,
    limits: Limits,
}

/// What `gatehouse providers inspect` reports about a component.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Inspection {
    /// The world it implements (`edge-cookie-provider`, ...).
    pub world: &'static str,
    /// The manifest id.
    pub id: String,
    /// The manifest version.
    pub version: String,
    /// The permissions it requires.
    pub required_permissions: Vec<String>,
    /// What it declares it reads (`client-ip`, `header(x-geo-country)`, ...).
    pub reads: Vec<String>,
    /// Every import, i.e. everything it may do besides computing.
    pub imports: Vec<String>,
    /// File size in bytes.
    pub size: usize,
    /// Lowercase hex sha256 of the file.
    pub sha256: String,
}

impl Sandbox {
    /// Builds the engine and linker for `limits`.
    ///
    /// # Errors
    /// When wasmtime refuses the configuration.
    pub fn new(limits: Limits) -> Result<Self, LoadError> {
        let engine_error = |e: wasmtime::Error| LoadError {
            provider: "-".into(),
            key: "runtime".into(),
            reason: LoadErrorReason::Engine {
                message: format!("{e:#}"),
            },
        };
        let engine = build_engine(&limits).map_err(engine_error)?;
        start_ticker(&engine);
        let linker = build_linker(&engine).map_err(engine_error)?;
        Ok(Self {
            engine,
            linker,
            limits,
        })
    }

    fn deadline_ticks(&self, budget_ms: Option<u32>) -> u64 {
        let cap = u64::try_from(self.limits.call_timeout.as_millis()).unwrap_or(u64::MAX);
        budget_ms
            .map_or(cap, |b| u64::from(b).min(cap))
            .max(1)
            .saturating_add(1)
    }

    fn new_store(&self, deadline_ticks: u64) -> Store<CallState> {
        let mut store = Store::new(
            &self.engine,
            CallState::new(
                MemoryLimiter {
                    max_memory: self.limits.memory_bytes,
                    max_table_elements: MAX_TABLE_ELEMENTS,
                    hit: false,
                },
                self.limits.output_limit_bytes,
            ),
        );
        store.limiter(|s| &mut s.limits);
        store.set_epoch_deadline(deadline_ticks);
        store.epoch_deadline_trap();
        store
    }

    /// Compiles `bytes`, mapping pooling-limit refusals to their `[runtime]` key.
    fn compile(&self, bytes: &[u8], provider: &str, key: &str) -> Result<Component, LoadError> {
        cache::load_or_compile(
            &self.engine,
            bytes,
            &sha256_hex(bytes),
            &engine_hash(&self.engine),
            self.limits.cache_dir.as_deref(),
        )
        .map_err(|e| {
            pool_or(provider, key, &e, |message| LoadErrorReason::Compile {
                message,
            })
        })
    }

    /// Links `component` as world `W` and runs `describe` with `settings`.
    fn describe<W: World>(
        &self,
        component: &Component,
        settings: &[bindings::types::Setting],
        provider: &str,
        key: &str,
    ) -> Result<(W::Pre, Manifest), LoadError> {
        let fail = |reason| LoadError {
            provider: provider.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let pre = self
            .linker
            .instantiate_pre(component)
            .and_then(W::pre)
            .map_err(|e| {
                pool_or(provider, key, &e, |message| LoadErrorReason::Link {
                    message,
                })
            })?;
        let mut store = self.new_store(DESCRIBE_DEADLINE_TICKS);
        let answer = outside_async(|| {
            let result = match W::instantiate(&mut store, &pre) {
                Err(e) => Err(instantiate_failure(&store, &e)),
                Ok(instance) => {
                    W::describe(&mut store, &instance, settings).map_err(|e| classify(&store, &e))
                }
            };
            log_output(provider, store.data_mut());
            result
        });
        match answer {
            Err(ProviderFailure::Instantiate(message)) => Err(pool_or(
                provider,
                key,
                &wasmtime::Error::msg(message.clone()),
                |_| LoadErrorReason::DescribeFailed(ProviderFailure::Instantiate(message)),
            )),
            Err(failure) => Err(fail(LoadErrorReason::DescribeFailed(failure))),
            Ok(Err(message)) => Err(fail(LoadErrorReason::DescribeRefused(quote(&message)))),
            Ok(Ok(manifest)) => Ok((pre, world::manifest_from_wit(manifest))),
        }
    }

    /// Inspects a component file's bytes: its world, imports, digest, and the manifest its
    /// `describe` returns for `settings` (run in this sandbox).
    ///
    /// # Errors
    /// When the bytes are not a loadable provider component.
    pub fn inspect(
        &self,
        bytes: &[u8],
        settings: &[(String, String)],
        file: &str,
    ) -> Result<Inspection, LoadError> {
        let fail = |reason| LoadError {
            provider: file.to_owned(),
            key: "-".into(),
            reason,
        };
        let component = self.compile(bytes, file, "-")?;
        let imports = imports::imports(&self.engine, &component);
        let kind = imports::exported_kind(&self.engine, &component, None).map_err(fail)?;
        imports::check_imports(&self.engine, &component).map_err(fail)?;
        let settings = wit_settings(settings);
        let manifest = match kind {
            ProviderKind::EdgeCookie => {
                self.describe::<EdgeCookieWorld>(&component, &settings, file, "-")?
                    .1
            }
            ProviderKind::Device => {
                self.describe::<DeviceWorld>(&component, &settings, file, "-")?
                    .1
            }
            ProviderKind::Geo => {
                self.describe::<GeoWorld>(&component, &settings, file, "-")?
                    .1
            }
        };
        Ok(Inspection {
            world: imports::interface_of(kind).1,
            id: manifest.id,
            version: manifest.version,
            required_permissions: manifest.required_permissions,
            reads: manifest.reads.iter().map(|r| r.wit_name()).collect(),
            imports,
            size: bytes.len(),
            sha256: sha256_hex(bytes),
        })
    }

    /// Runs the `describe` of a provider component of `kind` with `settings` in this sandbox and
    /// returns its manifest, not yet validated (`gatehouse compose` validates it against the
    /// policy and its target's rules).
    ///
    /// # Errors
    /// When the bytes are not a loadable provider component of `kind`, or `describe` fails or
    /// refuses the settings.
    pub fn describe_component(
        &self,
        kind: ProviderKind,
        bytes: &[u8],
        settings: &[(String, String)],
        provider: &str,
        key: &str,
    ) -> Result<Manifest, LoadError> {
        let fail = |reason| LoadError {
            provider: provider.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let component = self.compile(bytes, provider, key)?;
        imports::exported_kind(&self.engine, &component, Some(kind)).map_err(fail)?;
        imports::check_imports(&self.engine, &component).map_err(fail)?;
        let settings = wit_settings(settings);
        let manifest = match kind {
            ProviderKind::EdgeCookie => {
                self.describe::<EdgeCookieWorld>(&component, &settings, provider, key)?
                    .1
            }
            ProviderKind::Device => {
                self.describe::<DeviceWorld>(&component, &settings, provider, key)?
                    .1
            }
            ProviderKind::Geo => {
                self.describe::<GeoWorld>(&component, &settings, provider, key)?
                    .1
            }
        };
        Ok(manifest)
    }
}

/// A pooling-limit error as [`LoadErrorReason::PoolLimit`], anything else as `other(message)`.
fn pool_or(
    provider: &str,
    key: &str,
    error: &wasmtime::Error,
    other: impl FnOnce(String) -> LoadErrorReason,
) -> LoadError {
    let message = format!("{error:#}");
    let (key, reason) = match pool_limit_key(&message) {
        Some(limit_key) => (
            limit_key.to_owned(),
            LoadErrorReason::PoolLimit { limit_key, message },
        ),
        None => (key.to_owned(), other(message)),
    };
    LoadError {
        provider: provider.to_owned(),
        key,
        reason,
    }
}

fn wit_settings(settings: &[(String, String)]) -> Vec<bindings::types::Setting> {
    settings
        .iter()
        .map(|(key, value)| bindings::types::Setting {
            key: key.clone(),
            value: value.clone(),
        })
        .collect()
}

/// Logs what a provider wrote to stdout/stderr in one call, escaped so it cannot forge log lines.
fn log_output(provider: &str, state: &mut CallState) {
    for (stream, captured) in state.take_output() {
        let text = String::from_utf8_lossy(&captured.bytes);
        tracing::info!(
            provider,
            stream,
            dropped_bytes = captured.dropped,
            "provider output: {}",
            text.escape_debug()
        );
    }
}

/// A loaded provider: its validated manifest and its pre-linked instance template.
struct Loaded<W: World> {
    name: String,
    spec: ProviderSpec,
    settings: Vec<bindings::types::Setting>,
    deadline_ticks: u64,
    /// Calls must run where wasmtime-wasi may block (see [`outside_async`]).
    needs_wasi_context: bool,
    pre: W::Pre,
}

/// Summary of a loaded provider, for startup logs and `/_ts/health`. Every string was validated
/// free of control characters.
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
    /// The declared reads.
    pub reads: Vec<String>,
}

/// Failure counters, by (kind, provider, reason).
type FailureCounts = BTreeMap<(&'static str, String, &'static str), u64>;

/// The loaded providers and the sandbox that runs them.
pub struct ProviderRuntime {
    sandbox: Sandbox,
    geo: Option<Loaded<GeoWorld>>,
    device: Option<Loaded<DeviceWorld>>,
    ec: Option<Loaded<EdgeCookieWorld>>,
    failures: Mutex<FailureCounts>,
    info: Vec<ProviderInfo>,
}

impl ProviderRuntime {
    /// Loads and validates the selected providers.
    ///
    /// # Errors
    /// A [`LoadError`] naming the provider and the config key when its file cannot be read, its
    /// digest does not match, it does not compile or exceeds a sandbox limit, imports an interface
    /// this host does not offer, exports the wrong interface or version, its `describe` fails or
    /// refuses its settings, or its manifest is invalid.
    pub fn load(
        limits: Limits,
        policy: &Policy,
        geo: Option<&SelectedProvider>,
        device: Option<&SelectedProvider>,
        ec: Option<&SelectedProvider>,
    ) -> Result<Self, LoadError> {
        let rules = ManifestRules {
            forbidden_headers: limits.forbidden_headers.clone(),
            supplies_ja4: false,
            supplies_http2_fingerprint: false,
        };
        let mut rt = Self {
            sandbox: Sandbox::new(limits)?,
            geo: None,
            device: None,
            ec: None,
            failures: Mutex::new(BTreeMap::new()),
            info: Vec::new(),
        };
        if let Some(sel) = geo {
            rt.geo = Some(rt.load_one(sel, policy, &rules)?);
        }
        if let Some(sel) = device {
            rt.device = Some(rt.load_one(sel, policy, &rules)?);
        }
        if let Some(sel) = ec {
            rt.ec = Some(rt.load_one(sel, policy, &rules)?);
        }
        Ok(rt)
    }

    /// The one loader for every kind.
    fn load_one<W: World>(
        &mut self,
        sel: &SelectedProvider,
        policy: &Policy,
        rules: &ManifestRules,
    ) -> Result<Loaded<W>, LoadError> {
        let fail = |key: String, reason| LoadError {
            provider: sel.name.clone(),
            key,
            reason,
        };
        let bytes: std::borrow::Cow<'static, [u8]> = match &sel.source {
            ComponentSource::Bundled(name) => BUNDLED
                .iter()
                .find(|(k, n, _)| *k == W::KIND && n == name)
                .map(|(.., bytes)| std::borrow::Cow::Borrowed(*bytes))
                .ok_or_else(|| fail(sel.key.clone(), LoadErrorReason::UnknownBundled))?,
            ComponentSource::External { path, sha256 } => {
                let bytes = std::fs::read(path).map_err(|error| {
                    fail(
                        format!("{}.path", sel.key),
                        LoadErrorReason::Read {
                            path: path.clone(),
                            error,
                        },
                    )
                })?;
                let actual = sha256_hex(&bytes);
                if &actual != sha256 {
                    return Err(fail(
                        format!("{}.sha256", sel.key),
                        LoadErrorReason::Digest {
                            path: path.clone(),
                            expected: sha256.clone(),
                            actual,
                        },
                    ));
                }
                std::borrow::Cow::Owned(bytes)
            }
        };
        let engine = &self.sandbox.engine;
        let component = self.sandbox.compile(&bytes, &sel.name, &sel.key)?;
        imports::exported_kind(engine, &component, Some(W::KIND))
            .map_err(|r| fail(sel.key.clone(), r))?;
        imports::check_imports(engine, &component).map_err(|r| fail(sel.key.clone(), r))?;
        let imports = imports::imports(engine, &component);
        let settings = wit_settings(&sel.settings);
        let (pre, manifest) = self
            .sandbox
            .describe::<W>(&component, &settings, &sel.name, &sel.key)?;
        let valid = manifest::validate(&manifest, policy, rules)
            .map_err(|e| fail(sel.key.clone(), LoadErrorReason::Manifest(e)))?;
        self.info.push(ProviderInfo {
            kind: W::KIND.section(),
            name: sel.name.clone(),
            id: valid.id,
            version: valid.version,
            required_permissions: valid.required_permissions,
            reads: valid.reads.iter().map(|r| r.wit_name()).collect(),
        });
        Ok(Loaded {
            name: sel.name.clone(),
            spec: valid.spec,
            settings,
            deadline_ticks: self.sandbox.deadline_ticks(valid.call_budget_ms),
            needs_wasi_context: needs_wasi_context(&imports),
            pre,
        })
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

    /// The providers for one request.
    #[must_use]
    pub fn for_request(&self) -> RequestProviders<'_> {
        RequestProviders { rt: self }
    }

    /// The one call path for every kind: a fresh store and instance, the call, the output logged.
    fn call<W: World>(
        &self,
        loaded: &Loaded<W>,
        evidence: &Evidence,
        extra: W::Extra<'_>,
    ) -> Result<W::Output, ProviderFailure> {
        let evidence = world::evidence_to_wit(evidence);
        let run = || {
            let mut store = self.sandbox.new_store(loaded.deadline_ticks);
            let result = match W::instantiate(&mut store, &loaded.pre) {
                Err(e) => Err(instantiate_failure(&store, &e)),
                Ok(instance) => {
                    match W::call(&mut store, &instance, &loaded.settings, &evidence, extra) {
                        Err(e) => Err(classify(&store, &e)),
                        Ok(Err(message)) => Err(ProviderFailure::Provider(message)),
                        Ok(Ok(value)) => Ok(value),
                    }
                }
            };
            log_output(&loaded.name, store.data_mut());
            result
        };
        if loaded.needs_wasi_context {
            outside_async(run)
        } else {
            run()
        }
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
        // Provider-controlled text (a trap or error message) is escaped before it reaches the log.
        let failure_text = failure.to_string();
        tracing::warn!(
            kind = kind.section(),
            provider,
            reason = failure.label(),
            "provider call failed: {}; continuing fail-closed",
            failure_text.escape_debug()
        );
        if let Ok(mut counts) = self.failures.lock() {
            *counts
                .entry((kind.section(), provider.to_owned(), failure.label()))
                .or_default() += 1;
        }
    }
}

/// Turns a wasmtime error from a call into the failure the core reasons about.
fn classify(store: &Store<CallState>, error: &wasmtime::Error) -> ProviderFailure {
    if store.data().limits.hit {
        return ProviderFailure::MemoryLimit;
    }
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        return ProviderFailure::Exit(exit.0);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => ProviderFailure::Deadline,
        Some(trap) => ProviderFailure::Trap(trap.to_string()),
        None => ProviderFailure::Trap(format!("{error:#}")),
    }
}

fn instantiate_failure(store: &Store<CallState>, e: &wasmtime::Error) -> ProviderFailure {
    match classify(store, e) {
        ProviderFailure::Trap(msg) => ProviderFailure::Instantiate(msg),
        other => other,
    }
}

/// The providers for one request, as the core's [`ProviderHost`]. Each call gets a fresh store
/// and instance.
pub struct RequestProviders<'a> {
    rt: &'a ProviderRuntime,
}

impl ProviderHost for RequestProviders<'_> {
    fn spec(&self, kind: ProviderKind) -> Option<&ProviderSpec> {
        match kind {
            ProviderKind::Geo => self.rt.geo.as_ref().map(|p| &p.spec),
            ProviderKind::Device => self.rt.device.as_ref().map(|p| &p.spec),
            ProviderKind::EdgeCookie => self.rt.ec.as_ref().map(|p| &p.spec),
        }
    }

    fn locate(&mut self, evidence: &Evidence) -> Result<Location, ProviderFailure> {
        match self.rt.geo.as_ref() {
            Some(loaded) => self.rt.call(loaded, evidence, ()),
            None => Ok(Location::default()),
        }
    }

    fn classify(&mut self, evidence: &Evidence) -> Result<Classification, ProviderFailure> {
        match self.rt.device.as_ref() {
            Some(loaded) => self.rt.call(loaded, evidence, ()),
            None => Ok(Classification::default()),
        }
    }

    fn generate_edge_cookie(
        &mut self,
        evidence: &Evidence,
        current: Option<&str>,
    ) -> Result<EcOutput, ProviderFailure> {
        match self.rt.ec.as_ref() {
            Some(loaded) => self.rt.call(loaded, evidence, current),
            None => Ok(EcOutput::default()),
        }
    }
}

#[cfg(test)]
mod tests;
