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
//! - **Never on an async worker**: every store call goes through [`IdentityService::call`]
//!   (tokio's blocking pool). Store calls block on disk (`fsync`) or the network.
//! - **Background purge** (redb only; Valkey expires natively): every `store.purge_interval_secs`
//!   a thread removes expired entries, and stops when the store is dropped.
//!
//! Neither a key (a visitor identifier) nor `store.url` (which may hold a password) is ever
//! logged.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use gatehouse_core::identity::{
    Backoff, DEFAULT_TOMBSTONE_SECS, IdentityOutcome, IdentitySettings, IdentityStore, RetryPolicy,
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
        IdentitySettings {
            tombstone_ttl: Duration::from_secs(self.tombstone_secs),
            retry: RetryPolicy {
                max_attempts: self.cas_attempts,
                base_delay: Duration::from_millis(self.cas_base_delay_ms),
                max_delay: Duration::from_millis(self.cas_max_delay_ms),
            },
        }
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
    settings: IdentitySettings,
    backend: &'static str,
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
    /// A service over any store (tests, other backends).
    #[must_use]
    pub fn new(
        store: Arc<dyn IdentityStore>,
        settings: IdentitySettings,
        backend: &'static str,
    ) -> Self {
        Self {
            store,
            settings,
            backend,
        }
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
        F: FnOnce(&dyn IdentityStore, &IdentitySettings, &mut dyn Backoff) -> R + Send + 'static,
        R: Send + 'static,
    {
        let service = self.clone();
        Ok(tokio::task::spawn_blocking(move || {
            f(&*service.store, &service.settings, &mut JitteredBackoff)
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
            Ok(Some(IdentityService::new(store, settings, "redb")))
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
/// logs what the store did. Blocking: call it on the blocking pool.
///
/// [`PagePipeline::run_with_identity`]: gatehouse_core::pipeline::PagePipeline::run_with_identity
pub fn run_pipeline(
    app: &crate::server::App,
    identity: &IdentityService,
    view: &dyn gatehouse_core::pipeline::RequestView,
    providers: &mut dyn gatehouse_core::pipeline::ProviderHost,
) -> gatehouse_core::pipeline::RequestOutcome<'static> {
    let mut backoff = JitteredBackoff;
    let outcome = app.pipeline.run_with_identity(
        view,
        &crate::server::SystemClock,
        providers,
        gatehouse_core::identity::Identity {
            store: identity.store(),
            backoff: &mut backoff,
            settings: identity.settings(),
        },
    );
    if let Some(decision) = &outcome.decision {
        log_outcome(identity, &decision.identity);
    }
    outcome
}

/// Logs a failed store operation with its cause chain (which never holds a key or the URL).
pub fn log_outcome(identity: &IdentityService, outcome: &IdentityOutcome) {
    match outcome {
        IdentityOutcome::Failed(error) => {
            let mut chain = error.to_string();
            let mut source = std::error::Error::source(&**error);
            while let Some(cause) = source {
                chain.push_str(": ");
                chain.push_str(&cause.to_string());
                source = cause.source();
            }
            tracing::warn!(backend = identity.backend(), "identity store: {chain}");
        }
        other => tracing::debug!(identity = other.label(), "identity lifecycle"),
    }
}
