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
//! - Every call runs under a budget of the provider's own CPU time (instantiation included: the
//!   provider's `call-budget-ms`, capped by `runtime.call_cpu_ms`), checked on every epoch tick
//!   against the calling thread's CPU clock, so a busy machine does not use it up; a wall-clock
//!   backstop (`runtime.call_timeout_ms`) bounds time spent blocked. Plus a linear-memory cap. A
//!   provider that traps, loops, exits or exhausts memory is cut off and reported as a
//!   [`ProviderFailure`], never a crash. Why CPU time and not fuel: BENCHMARKS.md.
//! - A fresh instance per call means a provider can keep no state across visitors.
//! - One generic loader and call path ([`world::World`]) serve all three kinds.
//! - Compiled components are cached on disk keyed by (component sha256, engine compatibility hash).

mod answer_cache;
mod bindings;
mod cache;
mod error;
mod imports;
mod state;
mod world;

use std::collections::BTreeMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
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
use answer_cache::{AnswerCache, AnswerKey};
pub use answer_cache::{AnswerCacheLimits, AnswerCounts};
pub use error::{LoadError, LoadErrorReason, pool_limit_key};
pub use imports::{OFFERED, PROVIDER_INTERFACE_VERSION};
use state::{CallBudget, CallState, MemoryLimiter};
use world::{DeviceWorld, EdgeCookieWorld, GeoWorld, Template, World};

/// The first-party providers compiled into this binary, per kind.
pub const BUNDLED: &[(ProviderKind, &str, &[u8])] = &[
    (
        ProviderKind::EdgeCookie,
        "hmac",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HMAC")),
    ),
    (
        ProviderKind::EdgeCookie,
        "host-signals",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HOST_SIGNALS")),
    ),
    (
        ProviderKind::EdgeCookie,
        "client-side",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_CLIENT_SIDE")),
    ),
    (
        ProviderKind::EdgeCookie,
        "client-fixed",
        include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_CLIENT_FIXED")),
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
    /// `call_cpu_ms`: the publisher's cap on the CPU time of one provider call, instantiation
    /// included; a provider's own `call-budget-ms` applies within it.
    pub call_cpu: Duration,
    /// `call_timeout_ms`: the wall-clock backstop of one provider call, for time spent blocked.
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
    /// `cache_max_mb` in bytes: the cache's size cap (least recently used entries go first).
    pub cache_max_bytes: u64,
    /// `max_concurrent_pipelines`: pipeline runs off the async workers at once.
    pub max_concurrent_pipelines: u32,
    /// `inline_budget_ms`: the largest sum of the providers' CPU budgets whose pipeline runs on
    /// the async worker ([`ProviderRuntime::runs_inline`]).
    pub inline_budget: Duration,
    /// `[runtime.answer_cache]`: pure providers' answers.
    pub answer_cache: AnswerCacheLimits,
    /// Whether this host supplies the `ja4` read (`server.fingerprint_headers.ja4` is set).
    pub supplies_ja4: bool,
    /// Whether this host supplies `http2-fingerprint` (`server.fingerprint_headers.http2`).
    pub supplies_http2_fingerprint: bool,
}

impl Default for Limits {
    /// The `[runtime]` defaults (see `config::RuntimeConfig`).
    fn default() -> Self {
        Self {
            call_cpu: Duration::from_millis(5),
            call_timeout: Duration::from_millis(1000),
            memory_bytes: 128 << 20,
            max_instances: 1000,
            max_core_instances_per_component: 32,
            max_memories_per_component: 2,
            max_tables_per_component: 32,
            output_limit_bytes: 4096,
            forbidden_headers: Vec::new(),
            cache_dir: None,
            cache_max_bytes: 1 << 30,
            max_concurrent_pipelines: 64,
            inline_budget: Duration::from_millis(15),
            answer_cache: AnswerCacheLimits::default(),
            supplies_ja4: false,
            supplies_http2_fingerprint: false,
        }
    }
}

/// The epoch tick; deadlines are measured in ticks of this length.
const TICK: Duration = Duration::from_millis(1);

/// Budget (CPU and wall clock) for `describe` at load time: the first instantiation of a
/// component is slower than warm per-request calls (lazy initialisation, page faults), and startup
/// must not fail on a briefly loaded machine. It still bounds a provider that loops in `describe`.
const DESCRIBE_BUDGET: Duration = Duration::from_secs(2);

/// Bytes of each linear memory restored in place (not madvised) when an instance is freed. With
/// PAGEMAP_SCAN only dirtied pages count against it; without, this many low bytes are memset, which
/// covers the stack, data and allocation arena of a small provider (ours: a 64 KiB stack and a
/// 128 KiB arena, see the SDK's `rt` feature).
const KEEP_RESIDENT: usize = 512 << 10;

/// Bytes of each table restored in place likewise.
const TABLE_KEEP_RESIDENT: usize = 64 << 10;

/// Table elements a provider may grow a table to.
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Builds the engine: pooling allocator, epoch interruption (the tick on which call budgets are
/// checked), no async, no fuel.
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

/// Ticks of no call in flight after which the ticker parks (see [`Ticker`]).
const IDLE_TICKS: u32 = 100;

/// The thread incrementing the engine's epoch every [`TICK`] while calls may be running, until
/// the sandbox (or the engine) is dropped.
///
/// An idle server does not tick: once no store has existed for [`IDLE_TICKS`] ticks the thread
/// parks, and the next [`Ticker::call_started`] wakes it. A thousand wake-ups a second on a
/// server with no provider call to bound would only take the CPU from the workers (a 2-core
/// machine's scheduler preempts a worker for each; measured in BENCHMARKS.md, "Idle servers stop
/// ticking").
///
/// Why parking cannot leave a call unbounded: a call's store holds an [`ActiveCall`] for its
/// whole life, and the thread parks only after reading zero calls in flight *after* announcing
/// that it parks; a call that starts in between reads the announcement and unparks it (both
/// sides are `SeqCst`, and an `unpark` before the `park` makes the `park` return at once).
struct Ticker {
    state: Arc<TickerState>,
    thread: Option<std::thread::JoinHandle<()>>,
}

#[derive(Default)]
struct TickerState {
    /// Stores alive now.
    in_flight: AtomicUsize,
    /// Stores created so far (so a burst of short calls between two ticks counts as activity).
    started: AtomicU64,
    /// The thread is parked or about to park.
    parked: AtomicBool,
    /// The sandbox is gone: the thread ends (even if components keep the engine alive).
    closed: AtomicBool,
}

/// Held by every store for its life: the ticker keeps ticking while one exists.
pub(crate) struct ActiveCall(Arc<TickerState>);

impl Drop for ActiveCall {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    fn start(engine: &Engine) -> Self {
        let state = Arc::new(TickerState::default());
        let weak = engine.weak();
        let shared = Arc::clone(&state);
        let thread = std::thread::Builder::new()
            .name("gatehouse-epoch".into())
            .spawn(move || {
                let mut seen = shared.started.load(Ordering::SeqCst);
                let mut idle = 0u32;
                while let Some(engine) = weak.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                    if shared.closed.load(Ordering::SeqCst) {
                        break;
                    }
                    let started = shared.started.load(Ordering::SeqCst);
                    if started != seen || shared.in_flight.load(Ordering::SeqCst) > 0 {
                        seen = started;
                        idle = 0;
                        continue;
                    }
                    idle += 1;
                    if idle < IDLE_TICKS {
                        continue;
                    }
                    shared.parked.store(true, Ordering::SeqCst);
                    if shared.in_flight.load(Ordering::SeqCst) == 0
                        && shared.started.load(Ordering::SeqCst) == seen
                    {
                        // Returns at the next `call_started` (or spuriously: the loop re-checks).
                        std::thread::park();
                    }
                    shared.parked.store(false, Ordering::SeqCst);
                    idle = 0;
                }
            })
            .inspect_err(|e| tracing::error!("cannot start epoch ticker thread: {e}"))
            .ok();
        Self { state, thread }
    }

    /// Announces a store: the ticker runs until it is dropped.
    fn call_started(&self) -> ActiveCall {
        self.state.in_flight.fetch_add(1, Ordering::SeqCst);
        self.state.started.fetch_add(1, Ordering::SeqCst);
        if self.state.parked.load(Ordering::SeqCst) {
            self.unpark();
        }
        ActiveCall(Arc::clone(&self.state))
    }

    fn unpark(&self) {
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.state.closed.store(true, Ordering::SeqCst);
        self.unpark();
    }
}

/// Lowercase hex sha256.
#[must_use]
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The bytes of the external component of provider `provider` (config table `key`) at `path`,
/// once their sha256 matches the lowercase hex `pinned`.
///
/// # Errors
/// [`LoadErrorReason::Read`] (key `KEY.path`) when the file cannot be read,
/// [`LoadErrorReason::Digest`] (key `KEY.sha256`) when it is not the pinned component.
pub fn read_pinned(
    provider: &str,
    key: &str,
    path: &std::path::Path,
    pinned: &str,
) -> Result<Vec<u8>, LoadError> {
    let fail = |field: &str, reason| LoadError {
        provider: provider.to_owned(),
        key: format!("{key}.{field}"),
        reason,
    };
    let bytes = std::fs::read(path).map_err(|error| {
        fail(
            "path",
            LoadErrorReason::Read {
                path: path.to_owned(),
                error,
            },
        )
    })?;
    let actual = sha256_hex(&bytes);
    if actual != pinned {
        return Err(fail(
            "sha256",
            LoadErrorReason::Digest {
                path: path.to_owned(),
                expected: pinned.to_owned(),
                actual,
            },
        ));
    }
    Ok(bytes)
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
    ticker: Ticker,
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
        let ticker = Ticker::start(&engine);
        let linker = build_linker(&engine).map_err(engine_error)?;
        Ok(Self {
            engine,
            linker,
            limits,
            ticker,
        })
    }

    /// A provider's CPU budget: its own `call-budget-ms`, within the publisher's cap.
    fn cpu_budget(&self, budget_ms: Option<u32>) -> Duration {
        let cap = self.limits.call_cpu;
        budget_ms
            .map_or(cap, |b| Duration::from_millis(u64::from(b)).min(cap))
            .max(TICK)
    }

    fn new_store(&self, cpu: Duration, wall: Duration) -> Store<CallState> {
        let mut store = Store::new(
            &self.engine,
            CallState::new(
                MemoryLimiter {
                    max_memory: self.limits.memory_bytes,
                    max_table_elements: MAX_TABLE_ELEMENTS,
                    hit: false,
                },
                CallBudget::new(cpu, wall),
                self.limits.output_limit_bytes,
                self.ticker.call_started(),
            ),
        );
        store.limiter(|s| &mut s.limits);
        // The budget is checked on every tick; see `CallBudget`.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut cx| Ok(cx.data_mut().budget.on_tick()));
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
            self.limits.cache_max_bytes,
        )
        .map_err(|e| {
            pool_or(provider, key, &e, |message| LoadErrorReason::Compile {
                message,
            })
        })
    }

    /// Links `component` as world `W` and runs `describe` with `settings`. The template is
    /// returned only when `describe` answered, which type-checked the kind's function (see
    /// [`world::Template::call`]).
    fn describe<W: World>(
        &self,
        component: &Component,
        settings: &[bindings::types::Setting],
        provider: &str,
        key: &str,
    ) -> Result<(Template<W>, Manifest), LoadError> {
        let fail = |reason| LoadError {
            provider: provider.to_owned(),
            key: key.to_owned(),
            reason,
        };
        let pre = self
            .linker
            .instantiate_pre(component)
            .and_then(Template::<W>::new)
            .map_err(|e| {
                pool_or(provider, key, &e, |message| LoadErrorReason::Link {
                    message,
                })
            })?;
        let mut store = self.new_store(DESCRIBE_BUDGET, DESCRIBE_BUDGET);
        let answer = outside_async(|| {
            let result = match pre.instantiate(&mut store) {
                Err(e) => Err(instantiate_failure(&store, &e)),
                Ok(instance) => Template::<W>::describe(&mut store, &instance, settings)
                    .map_err(|e| classify(&store, &e)),
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
    /// The provider's CPU budget per call.
    cpu_budget: Duration,
    /// Calls must run where wasmtime-wasi may block (see [`outside_async`]).
    needs_wasi_context: bool,
    pre: Template<W>,
    /// Answers reused for identical inputs, when the component is pure and the cache enabled.
    answers: Option<AnswerCache<W::Output>>,
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
    /// Slots for [`ProviderRuntime::run_blocking`].
    blocking_slots: tokio::sync::Semaphore,
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
            supplies_ja4: limits.supplies_ja4,
            supplies_http2_fingerprint: limits.supplies_http2_fingerprint,
        };
        let slots = usize::try_from(limits.max_concurrent_pipelines.max(1)).unwrap_or(1);
        let mut rt = Self {
            blocking_slots: tokio::sync::Semaphore::new(slots),
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
                std::borrow::Cow::Owned(read_pinned(&sel.name, &sel.key, path, sha256)?)
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
            cpu_budget: self.sandbox.cpu_budget(valid.call_budget_ms),
            needs_wasi_context: needs_wasi_context(&imports),
            pre,
            answers: (self.sandbox.limits.answer_cache.enabled && answer_cache::is_pure(&imports))
                .then(|| AnswerCache::new(&self.sandbox.limits.answer_cache)),
        })
    }

    /// The loaded providers.
    #[must_use]
    pub fn providers(&self) -> &[ProviderInfo] {
        &self.info
    }

    /// Answer-cache hits and misses by (kind, provider), for the providers whose answers are
    /// cached (pure ones), for `/_ts/metrics`.
    #[must_use]
    pub fn answer_cache_counts(&self) -> Vec<(&'static str, &str, AnswerCounts)> {
        fn counts<W: World>(p: Option<&Loaded<W>>) -> Option<(&'static str, &str, AnswerCounts)> {
            let p = p?;
            Some((
                W::KIND.section(),
                p.name.as_str(),
                p.answers.as_ref()?.counts(),
            ))
        }
        [
            counts(self.geo.as_ref()),
            counts(self.device.as_ref()),
            counts(self.ec.as_ref()),
        ]
        .into_iter()
        .flatten()
        .collect()
    }

    /// Failure counts by (kind, provider, reason), for `/_ts/metrics`.
    #[must_use]
    pub fn failure_counts(&self) -> FailureCounts {
        self.failures.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Whether any provider is loaded.
    #[must_use]
    pub fn has_providers(&self) -> bool {
        self.geo.is_some() || self.device.is_some() || self.ec.is_some()
    }

    /// Whether a pipeline calling every loaded provider may run on the async worker holding
    /// the request: the providers' CPU budgets add up to at most `runtime.inline_budget_ms`
    /// (each call is cut off at its budget, so that bounds how long a worker can be held).
    #[must_use]
    pub fn runs_inline(&self) -> bool {
        let budgets = [
            self.geo.as_ref().map(|l| l.cpu_budget),
            self.device.as_ref().map(|l| l.cpu_budget),
            self.ec.as_ref().map(|l| l.cpu_budget),
        ];
        let total: Duration = budgets.into_iter().flatten().sum();
        !self.sandbox.limits.inline_budget.is_zero() && total <= self.sandbox.limits.inline_budget
    }

    /// Runs `f`, synchronous work that may take long (a page pipeline run with its provider
    /// calls, or a store call), where it cannot stall unrelated connections: on a multi-threaded
    /// tokio runtime the calling worker thread becomes a blocking thread for the duration
    /// (`block_in_place`), and tokio hands its other tasks to another worker. At most
    /// `runtime.max_concurrent_pipelines` such runs proceed at once; more wait (asynchronously)
    /// for a slot, so a flood of slow providers cannot grow the thread count without bound.
    ///
    /// Why `block_in_place` and not `spawn_blocking`: `f` starts at once on the thread that
    /// already holds the request (no hand-off to a pool thread and back), and it may borrow the
    /// request; measured in BENCHMARKS.md.
    pub async fn run_blocking<R>(&self, f: impl FnOnce() -> R) -> R {
        // The semaphore is never closed, so `acquire` cannot fail; without a permit we still run.
        let _slot = self.blocking_slots.acquire().await.ok();
        outside_async(f)
    }

    /// The providers for one request.
    #[must_use]
    pub fn for_request(&self) -> RequestProviders<'_> {
        RequestProviders { rt: self }
    }

    /// The one call path for every kind: a cached answer of a pure provider, or a fresh store and
    /// instance, the call, the output logged.
    fn call<W: World>(
        &self,
        loaded: &Loaded<W>,
        evidence: &Evidence,
        extra: W::Extra<'_>,
    ) -> Result<W::Output, ProviderFailure> {
        let Some(cache) = &loaded.answers else {
            return self.call_fresh(loaded, evidence, extra);
        };
        let key = AnswerKey {
            evidence: evidence.clone(),
            extra: W::extra_key(extra),
        };
        if let Some(answer) = cache.get(&key) {
            return Ok(answer);
        }
        let answer = self.call_fresh(loaded, evidence, extra)?;
        cache.insert(key, answer.clone());
        Ok(answer)
    }

    /// A provider call in a fresh store and instance.
    fn call_fresh<W: World>(
        &self,
        loaded: &Loaded<W>,
        evidence: &Evidence,
        extra: W::Extra<'_>,
    ) -> Result<W::Output, ProviderFailure> {
        let evidence = world::evidence_to_wit(evidence);
        let run = || {
            let mut store = self
                .sandbox
                .new_store(loaded.cpu_budget, self.sandbox.limits.call_timeout);
            let result = match loaded.pre.instantiate(&mut store) {
                Err(e) => Err(instantiate_failure(&store, &e)),
                Ok(instance) => {
                    match loaded
                        .pre
                        .call(&mut store, &instance, &loaded.settings, &evidence, extra)
                    {
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
