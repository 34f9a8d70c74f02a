//! The identity store of the standalone host (`[store]`): which backend, opened once, shared by
//! every request and every reload, and how request handlers call it without blocking the async
//! runtime's workers.
//!
//! - **Backends**: the embedded redb file at `store.path` (the default; created on first run, next
//!   to the config file unless the key says otherwise) or Valkey/Redis at `store.url`, so several
//!   Gatehouse processes share one identity graph. The two keys are exclusive.
//! - **Only with an Edge Cookie provider**: without `ec.provider` there is no identity to keep,
//!   so no store is opened (and no file created). `store.enabled = false` runs the Edge Cookie
//!   statelessly (no withdrawal tombstones, no consent persistence).
//! - **Shared across reloads**: a redb file can be opened once per process, so [`open`] hands
//!   out the store already open for the same file; a reload that changes `store.path` opens
//!   the new one.
//! - **Never blocking an async worker**: the page pipeline awaits the store
//!   ([`IdentityService::pipeline_store`], an [`AsyncIdentityStore`]). redb's writes wait for
//!   its group commit on a oneshot channel, holding no thread; its reads are answered from its
//!   page cache at once. Valkey's calls each run on tokio's blocking pool ([`Offloaded`]).
//!   Every other store call (batch sync, the auction's id lookups) goes through
//!   [`IdentityService::call`], on the blocking pool. Measured in BENCHMARKS.md ("The identity
//!   store's cost").
//! - **Background purge** (redb only; Valkey expires natively): every `store.purge_interval_secs`
//!   a thread removes expired entries, and stops when the store is dropped.
//!
//! Neither a key (a visitor identifier) nor `store.url` (which may hold a password) is ever
//! logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gatehouse_core::identity::{
    AsyncIdentityStore, Backoff, DEFAULT_TOMBSTONE_SECS, Generation, IdentityOutcome,
    IdentitySettings, IdentityStore, RetryPolicy, StoreError, StoreFuture, Versioned, WriteMode,
};
use gatehouse_store::{JitteredBackoff, RedbStore, ValkeyOptions, ValkeyStore};
use serde::Deserialize;

use crate::config::ConfigError;

/// The file name of the embedded store when `store.path` is not set, next to the config file.
pub const DEFAULT_STORE_FILE: &str = "gatehouse-store.redb";

/// `[store]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `enabled`: keep identities in a store (default `true`). `false`: the Edge Cookie is
    /// minted and kept statelessly.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `path`: the embedded redb file (relative to the config file; default
    /// `gatehouse-store.redb` next to it). Its directory must exist.
    pub path: Option<PathBuf>,
    /// `url`: `redis://[user:password@]host:port[/db]` (or `rediss://`, `unix://`) of a Valkey or
    /// Redis primary, instead of `path`; or `{ env = "VAR" }` to read it from the environment.
    pub url: Option<UrlSetting>,
    /// `key_prefix`: prepended to every Valkey key, so one server can hold several deployments
    /// (default `gatehouse:`).
    pub key_prefix: Option<String>,
    /// `connect_timeout_ms`: connecting to Valkey (default 1000).
    pub connect_timeout_ms: Option<u64>,
    /// `io_timeout_ms`: one Valkey command (default 500).
    pub io_timeout_ms: Option<u64>,
    /// `tombstone_secs`: how long a withdrawn identity's tombstone is kept (default 30 days).
    #[serde(default = "default_tombstone_secs")]
    pub tombstone_secs: u64,
    /// `cas_attempts`: compare-and-swap attempts before an update gives up (default 8, 1–100).
    #[serde(default = "default_cas_attempts")]
    pub cas_attempts: u32,
    /// `cas_base_delay_ms`: the cap of the first jittered wait between attempts (default 2).
    #[serde(default = "default_cas_base_delay_ms")]
    pub cas_base_delay_ms: u64,
    /// `cas_max_delay_ms`: the largest wait cap (default 50).
    #[serde(default = "default_cas_max_delay_ms")]
    pub cas_max_delay_ms: u64,
    /// `purge_interval_secs`: how often expired entries are removed from the redb file
    /// (default 300; embedded store only, Valkey expires entries itself).
    pub purge_interval_secs: Option<u64>,
    /// `fastly_kv_store`: the Fastly KV store an app composed for Fastly keeps identities in
    /// (default `gatehouse-identity`). Read by `gatehouse compose --target fastly` only.
    pub fastly_kv_store: Option<String>,
    /// `keyvalue_bucket`: the `wasi:keyvalue` bucket an app composed for wasi:http keeps
    /// identities in (default `""`, the bucket `wasmtime serve -Skeyvalue` offers; Spin:
    /// `"default"`). Read by `gatehouse compose --target wasi-http` only.
    pub keyvalue_bucket: Option<String>,
    /// The config file's directory, for the default `path`.
    #[serde(skip)]
    pub config_dir: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            path: None,
            url: None,
            key_prefix: None,
            connect_timeout_ms: None,
            io_timeout_ms: None,
            tombstone_secs: default_tombstone_secs(),
            cas_attempts: default_cas_attempts(),
            cas_base_delay_ms: default_cas_base_delay_ms(),
            cas_max_delay_ms: default_cas_max_delay_ms(),
            purge_interval_secs: None,
            fastly_kv_store: None,
            keyvalue_bucket: None,
            config_dir: PathBuf::from("."),
        }
    }
}

/// `store.url`: inline or `{ env = "VAR" }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum UrlSetting {
    /// Inline.
    Inline(String),
    /// Read from the environment at startup.
    Env {
        /// The variable.
        env: String,
    },
}

fn default_true() -> bool {
    true
}
fn default_tombstone_secs() -> u64 {
    DEFAULT_TOMBSTONE_SECS
}
fn default_cas_attempts() -> u32 {
    RetryPolicy::default().max_attempts
}
fn default_cas_base_delay_ms() -> u64 {
    millis(RetryPolicy::default().base_delay)
}
fn default_cas_max_delay_ms() -> u64 {
    millis(RetryPolicy::default().max_delay)
}
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The default purge interval: five minutes.
const DEFAULT_PURGE_INTERVAL_SECS: u64 = 300;
/// The most compare-and-swap attempts `store.cas_attempts` accepts.
const MAX_CAS_ATTEMPTS: u32 = 100;

/// Which backend a valid `[store]` selects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded redb file.
    Redb(PathBuf),
    /// Valkey/Redis at this URL (never logged).
    Valkey(String),
}

impl StoreConfig {
    /// Checks every key; the error names it.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.path.is_some() && self.url.is_some() {
            return Err(ConfigError::invalid(
                "store.url",
                "cannot be combined with `store.path`: choose the embedded file or valkey",
            ));
        }
        let valkey_only = [
            ("store.key_prefix", self.key_prefix.is_some()),
            (
                "store.connect_timeout_ms",
                self.connect_timeout_ms.is_some(),
            ),
            ("store.io_timeout_ms", self.io_timeout_ms.is_some()),
        ];
        for (key, set) in valkey_only {
            if set && self.url.is_none() {
                return Err(ConfigError::invalid(
                    key,
                    "applies only to a valkey store (`store.url`)",
                ));
            }
        }
        if self.purge_interval_secs.is_some() && self.url.is_some() {
            return Err(ConfigError::invalid(
                "store.purge_interval_secs",
                "applies only to the embedded store: valkey expires entries itself",
            ));
        }
        if self.purge_interval_secs == Some(0) {
            return Err(ConfigError::invalid(
                "store.purge_interval_secs",
                "must be greater than 0",
            ));
        }
        for (key, value) in [
            ("store.connect_timeout_ms", self.connect_timeout_ms),
            ("store.io_timeout_ms", self.io_timeout_ms),
        ] {
            if value == Some(0) {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if self.tombstone_secs == 0 {
            return Err(ConfigError::invalid(
                "store.tombstone_secs",
                "must be greater than 0: a withdrawal must be remembered",
            ));
        }
        if !(1..=MAX_CAS_ATTEMPTS).contains(&self.cas_attempts) {
            return Err(ConfigError::invalid(
                "store.cas_attempts",
                format!("must be 1 to {MAX_CAS_ATTEMPTS}"),
            ));
        }
        if self.cas_base_delay_ms > self.cas_max_delay_ms {
            return Err(ConfigError::invalid(
                "store.cas_base_delay_ms",
                "must not be greater than `store.cas_max_delay_ms`",
            ));
        }
        if let Some(name) = &self.fastly_kv_store
            && (name.is_empty() || name.len() > 255 || name.chars().any(char::is_control))
        {
            return Err(ConfigError::invalid(
                "store.fastly_kv_store",
                "must be a Fastly KV store name: 1 to 255 characters, no control characters",
            ));
        }
        if let Some(bucket) = &self.keyvalue_bucket
            && bucket.chars().any(char::is_control)
        {
            return Err(ConfigError::invalid(
                "store.keyvalue_bucket",
                "must not contain control characters",
            ));
        }
        if let Some(UrlSetting::Env { env }) = &self.url
            && env.is_empty()
        {
            return Err(ConfigError::invalid(
                "store.url",
                "`env` must name an environment variable",
            ));
        }
        Ok(())
    }

    /// The lifecycle settings: tombstone time and compare-and-swap bounds.
    #[must_use]
    pub fn settings(&self) -> IdentitySettings {
        gatehouse_component_common::deployment::identity_settings(
            self.tombstone_secs,
            self.cas_attempts,
            self.cas_base_delay_ms,
            self.cas_max_delay_ms,
        )
    }

    /// Where the store is: `store.url` (environment resolved) or the redb file.
    ///
    /// # Errors
    /// When `store.url` names an environment variable that is not set.
    pub fn location(&self) -> Result<StoreLocation, ConfigError> {
        match &self.url {
            Some(UrlSetting::Inline(url)) => Ok(StoreLocation::Valkey(url.clone())),
            Some(UrlSetting::Env { env }) => match std::env::var(env) {
                Ok(url) if !url.is_empty() => Ok(StoreLocation::Valkey(url)),
                _ => Err(ConfigError::invalid(
                    "store.url",
                    format!("environment variable `{env}` is not set"),
                )),
            },
            None => {
                Ok(StoreLocation::Redb(self.path.clone().unwrap_or_else(
                    || self.config_dir.join(DEFAULT_STORE_FILE),
                )))
            }
        }
    }

    fn valkey_options(&self) -> ValkeyOptions {
        let defaults = ValkeyOptions::default();
        ValkeyOptions {
            connect_timeout: self
                .connect_timeout_ms
                .map_or(defaults.connect_timeout, Duration::from_millis),
            io_timeout: self
                .io_timeout_ms
                .map_or(defaults.io_timeout, Duration::from_millis),
            key_prefix: self.key_prefix.clone().unwrap_or(defaults.key_prefix),
            max_idle: defaults.max_idle,
        }
    }
}

/// Why the identity store could not be opened at startup or reload.
#[derive(Debug, thiserror::Error)]
pub enum StoreOpenError {
    /// A `[store]` key is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The redb file cannot be created or opened (names `store.path`).
    #[error(transparent)]
    Redb(#[from] gatehouse_store::RedbOpenError),
    /// Valkey cannot be reached or the URL is invalid (names `store.url`, never its value).
    #[error(transparent)]
    Valkey(#[from] gatehouse_store::ValkeyOpenError),
}

/// Why [`IdentityService::call`] could not run its closure to completion.
#[derive(Debug, thiserror::Error)]
pub enum StoreCallError {
    /// The blocking task panicked or the runtime is shutting down.
    #[error("identity store call did not complete: {0}")]
    Task(#[from] tokio::task::JoinError),
}

/// The identity store of a running server, with its `[store]` settings. Cheap to clone (an
/// `Arc`); shared by every request, the `/_ts/api/v1/` endpoints and every reload that keeps
/// the same store.
#[derive(Clone)]
pub struct IdentityService {
    store: Arc<dyn IdentityStore>,
    /// The same store as the page pipeline awaits it.
    pipeline_store: Arc<dyn AsyncIdentityStore>,
    settings: IdentitySettings,
    backend: &'static str,
}

/// A blocking [`IdentityStore`] as an [`AsyncIdentityStore`]: each call runs on tokio's
/// blocking pool and the caller awaits it, so a network round trip (Valkey) never holds an
/// async worker. Must be polled inside a tokio runtime.
pub struct Offloaded(pub Arc<dyn IdentityStore>);

impl Offloaded {
    fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn IdentityStore) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, Result<T, StoreError>> {
        let store = Arc::clone(&self.0);
        Box::pin(async move {
            tokio::task::spawn_blocking(move || f(&*store))
                .await
                .unwrap_or_else(|e| {
                    Err(StoreError::Unavailable {
                        store: "blocking pool",
                        source: Box::new(e),
                    })
                })
        })
    }
}

impl AsyncIdentityStore for Offloaded {
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Result<Option<Versioned>, StoreError>> {
        let key = key.to_owned();
        self.run(move |store| store.get(&key))
    }

    fn insert<'a>(
        &'a self,
        key: &'a str,
        value: Vec<u8>,
        mode: WriteMode,
        ttl: Option<Duration>,
    ) -> StoreFuture<'a, Result<Generation, StoreError>> {
        let key = key.to_owned();
        self.run(move |store| store.insert(&key, &value, mode, ttl))
    }
}

/// The page pipeline's compare-and-swap wait: a jittered sleep on tokio's timer, holding no
/// thread. Must be polled inside a tokio runtime.
#[derive(Clone, Copy, Debug, Default)]
pub struct TimerBackoff;

impl Backoff for TimerBackoff {
    fn pause(&self, up_to: Duration) -> StoreFuture<'_, ()> {
        Box::pin(tokio::time::sleep(gatehouse_store::jittered(up_to)))
    }
}

impl std::fmt::Debug for IdentityService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityService")
            .field("backend", &self.backend)
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl IdentityService {
    /// A service over any store (tests, other backends). Each of the page pipeline's store
    /// calls runs on the blocking pool ([`Offloaded`]); a backend that can wait without a
    /// thread uses [`IdentityService::with_pipeline_store`].
    pub fn new(
        store: Arc<dyn IdentityStore>,
        settings: IdentitySettings,
        backend: &'static str,
    ) -> Self {
        Self {
            pipeline_store: Arc::new(Offloaded(Arc::clone(&store))),
            store,
            settings,
            backend,
        }
    }

    /// A service whose page pipeline awaits `pipeline_store`, the same store as `store`.
    #[must_use]
    pub fn with_pipeline_store(
        store: Arc<dyn IdentityStore>,
        pipeline_store: Arc<dyn AsyncIdentityStore>,
        settings: IdentitySettings,
        backend: &'static str,
    ) -> Self {
        Self {
            store,
            pipeline_store,
            settings,
            backend,
        }
    }

    /// The store as the page pipeline awaits it: never blocks the polling worker.
    #[must_use]
    pub fn pipeline_store(&self) -> &dyn AsyncIdentityStore {
        &*self.pipeline_store
    }

    /// The store. Its calls block: use it inside [`IdentityService::call`] (or another blocking
    /// context), never directly on an async worker.
    #[must_use]
    pub fn store(&self) -> &dyn IdentityStore {
        &*self.store
    }

    /// `[store]` settings: tombstone time and compare-and-swap bounds.
    #[must_use]
    pub fn settings(&self) -> &IdentitySettings {
        &self.settings
    }

    /// What the page pipeline's lifecycle needs: the awaitable store, [`TimerBackoff`] and
    /// the settings.
    #[must_use]
    pub fn lifecycle(&self) -> gatehouse_core::identity::Identity<'_> {
        gatehouse_core::identity::Identity {
            store: self.pipeline_store(),
            backoff: &TimerBackoff,
            settings: &self.settings,
        }
    }

    /// `redb` or `valkey`.
    #[must_use]
    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// Runs `f` with the store, the settings and the host's jittered backoff on tokio's
    /// blocking pool, and waits for it without blocking the async worker.
    ///
    /// ```ignore
    /// let outcome = identity.call(move |store, settings, backoff| {
    ///     gatehouse_core::identity::compare_and_swap(store, &key, &settings.retry, backoff, step)
    /// }).await?;
    /// ```
    ///
    /// # Errors
    /// [`StoreCallError::Task`] when `f` panicked or the runtime shuts down.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreCallError>
    where
        F: FnOnce(&dyn IdentityStore, &IdentitySettings, &dyn Backoff) -> R + Send + 'static,
        R: Send + 'static,
    {
        let service = self.clone();
        Ok(tokio::task::spawn_blocking(move || {
            f(&*service.store, &service.settings, &JitteredBackoff)
        })
        .await?)
    }
}

/// Stores opened by this process, by file, so a reload reuses the open redb database (a file
/// can be opened once per process).
static OPEN_REDB: Mutex<Vec<(PathBuf, Weak<RedbStore>)>> = Mutex::new(Vec::new());

/// Opens the store `[store]` selects, or returns `None` when `store.enabled = false`.
/// A redb file already open in this process is shared, not reopened.
///
/// # Errors
/// [`StoreOpenError`], naming the key.
pub fn open(config: &StoreConfig) -> Result<Option<IdentityService>, StoreOpenError> {
    if !config.enabled {
        return Ok(None);
    }
    config.validate()?;
    let settings = config.settings();
    match config.location()? {
        StoreLocation::Valkey(url) => {
            let store = ValkeyStore::connect(&url, config.valkey_options())?;
            tracing::info!(backend = "valkey", "identity store connected");
            Ok(Some(IdentityService::new(
                Arc::new(store),
                settings,
                "valkey",
            )))
        }
        StoreLocation::Redb(path) => {
            let store = open_redb(
                &path,
                Duration::from_secs(
                    config
                        .purge_interval_secs
                        .unwrap_or(DEFAULT_PURGE_INTERVAL_SECS),
                ),
            )?;
            Ok(Some(IdentityService::with_pipeline_store(
                Arc::clone(&store) as Arc<dyn IdentityStore>,
                store,
                settings,
                "redb",
            )))
        }
    }
}

fn open_redb(path: &Path, purge_every: Duration) -> Result<Arc<RedbStore>, StoreOpenError> {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut open = OPEN_REDB.lock().unwrap_or_else(|e| e.into_inner());
    open.retain(|(_, weak)| weak.strong_count() > 0);
    if let Some(store) = open
        .iter()
        .find(|(p, _)| *p == absolute)
        .and_then(|(_, weak)| weak.upgrade())
    {
        return Ok(store);
    }
    let store = Arc::new(RedbStore::open(&absolute)?);
    tracing::info!(backend = "redb", path = %absolute.display(), "identity store opened");
    spawn_purge(Arc::downgrade(&store), purge_every);
    open.push((absolute, Arc::downgrade(&store)));
    Ok(store)
}

/// Removes expired entries every `every` until the store is dropped.
fn spawn_purge(store: Weak<RedbStore>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("gatehouse-store-purge".into())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let Some(store) = store.upgrade() else { break };
                match store.purge_expired() {
                    Ok(0) => {}
                    Ok(purged) => tracing::debug!(purged, "expired identity entries purged"),
                    Err(e) => tracing::warn!("identity store purge failed: {e}"),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot start the identity store purge thread: {e}");
    }
}

/// Runs the page pipeline with the identity lifecycle ([`PagePipeline::run_with_identity`]) and
/// logs what the store did. Store calls are awaited; provider calls run on the polling thread.
///
/// [`PagePipeline::run_with_identity`]: gatehouse_core::pipeline::PagePipeline::run_with_identity
pub async fn run_pipeline(
    app: &crate::server::App,
    identity: &IdentityService,
    view: &(dyn gatehouse_core::pipeline::RequestView + Sync),
    providers: &mut (dyn gatehouse_core::pipeline::ProviderHost + Send),
) -> gatehouse_core::pipeline::RequestOutcome<'static> {
    let outcome = app
        .pipeline
        .run_with_identity(
            view,
            &crate::server::SystemClock,
            providers,
            identity.lifecycle(),
        )
        .await;
    if let Some(decision) = &outcome.decision {
        log_outcome(identity, &decision.identity);
    }
    outcome
}

/// Logs a failed store operation with its cause chain (which never holds a key or the URL).
pub fn log_outcome(identity: &IdentityService, outcome: &IdentityOutcome) {
    match outcome {
        IdentityOutcome::Failed(error) => {
            let chain = gatehouse_component_common::store::error_chain(&**error);
            tracing::warn!(backend = identity.backend(), "identity store: {chain}");
        }
        other => tracing::debug!(identity = other.label(), "identity lifecycle"),
    }
}
