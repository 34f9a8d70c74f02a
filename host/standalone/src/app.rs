//! Building the request-serving state ([`App`]) from a parsed configuration.
//!
//! Startup and every reload call [`build`]: a reloaded configuration is validated exactly as at
//! startup, because it is the same code. Nothing here touches the listener or a running server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::pipeline::{PagePipeline, PipelineConfigError, PipelineSettings, ProviderKind};
use gatehouse_core::policy::{Policy, PolicyError};

use crate::config::{Config, ConfigError};
use crate::origin::Origin;
use crate::runtime::{self, LoadError, ProviderRuntime};
use crate::server::App;

/// Why an [`App`] could not be built from a configuration.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A config key is missing or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy file is invalid, or the default country names no rule.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// A provider could not be loaded.
    #[error(transparent)]
    Provider(#[from] LoadError),
    /// The Edge Cookie or consent settings are invalid (the error names the key).
    #[error(transparent)]
    Pipeline(#[from] PipelineConfigError),
    /// `[auction]` is invalid (the error names the key).
    #[error(transparent)]
    Auction(#[from] gatehouse_core::auction::AuctionConfigError),
    /// The identity store cannot be opened (the error names `store.path` or `store.url`).
    #[error(transparent)]
    Store(#[from] crate::identity::StoreOpenError),
    /// `[[partners]]` is invalid (the error names the key).
    #[error(transparent)]
    Partners(#[from] gatehouse_core::sync::PartnerConfigError),
}

/// Loads the policy: the file at `path` (`policy.path`), or the embedded default.
///
/// A policy read from a file lives as long as the process: the page pipeline and every request
/// borrow it. A reload therefore keeps the previous policy in memory (a few kilobytes per
/// reload), which keeps every request free of reference counting.
///
/// # Errors
/// When the file cannot be read or is not a valid policy.
pub fn load_policy(path: Option<&Path>) -> Result<&'static Policy, BuildError> {
    match path {
        None => Ok(Policy::embedded()?),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(
                    "policy.path",
                    format!("cannot read policy `{}`: {e}", path.display()),
                )
            })?;
            let policy = Policy::from_yaml_str(&text, &path.display().to_string())?;
            Ok(Box::leak(Box::new(policy)))
        }
    }
}

/// Builds everything a request needs from `config`: policy, default jurisdiction, providers
/// (compiled and checked against the policy), origin client, cookie and consent settings.
///
/// # Errors
/// The first invalid key, policy error or provider that cannot be loaded.
pub fn build(config: &Config) -> Result<App, BuildError> {
    let policy = load_policy(config.policy.path.as_deref())?;
    let default_country = policy.default_country(config.default_country()?)?;
    tracing::info!(
        policy = policy.source(),
        "default jurisdiction baseline: {}",
        policy.baseline_summary(&default_country)
    );
    let client_ip = crate::client_ip::ClientIpPolicy {
        trusted: config.trusted_proxies()?,
        header: config.client_ip_header()?,
    };
    let mut cdn_headers = config.cdn_headers()?;
    let (ja4_header, http2_header) = config.fingerprint_headers()?;
    // Fingerprint headers are CDN facts: removed from requests of untrusted peers.
    cdn_headers.extend(ja4_header.iter().chain(http2_header.iter()).cloned());
    let select = |kind: ProviderKind| {
        config.selected_provider(kind.section(), &runtime::bundled_names(kind))
    };
    let geo = select(ProviderKind::Geo)?;
    let device = select(ProviderKind::Device)?;
    let ec = select(ProviderKind::EdgeCookie)?;
    let pipeline = PagePipeline::new(
        policy,
        PipelineSettings {
            default_country: config.default_country()?.to_owned(),
            consent: config.consent.clone(),
            edge_cookie: config.edge_cookie_settings(),
        },
    )?;
    let limits = runtime_limits(config);
    let rt = ProviderRuntime::load(limits, policy, geo.as_ref(), device.as_ref(), ec.as_ref())?;
    for p in rt.providers() {
        tracing::info!(
            kind = p.kind,
            name = %p.name,
            id = %p.id,
            version = %p.version,
            requires = ?p.required_permissions,
            reads = ?p.reads,
            "provider loaded"
        );
    }
    let origin = Origin::from_config(&config.origin)?;
    // An identity exists only with an Edge Cookie provider: without one, no store is opened.
    let identity = match &ec {
        Some(_) => crate::identity::open(&config.store)?,
        None => None,
    };
    let partners = gatehouse_core::sync::Partners::new(&config.partners)?;
    // Bidders that name a partner take its `bidstream_enabled` and `consent_forwarding`.
    let auction = match &config.auction {
        None => None,
        Some(auction) => Some(crate::auction::AuctionService::new(
            gatehouse_core::auction::Auction::with_partners(
                policy,
                auction.clone(),
                &config.consent,
                &config.ec.cookie_name,
                &partners,
            )?,
        )?),
    };
    let batch_sync =
        crate::batch_sync::BatchSync::new(partners, identity.clone(), config.ec.max_age_secs);
    let client_script =
        crate::ec_resolve::client_script(config.ec.client_script.as_deref(), ec.as_ref())?;
    Ok(App {
        auction,
        fingerprint_headers: (ja4_header, http2_header),
        identity,
        pipeline,
        batch_sync,
        runtime: rt,
        client_ip,
        cdn_headers,
        max_body_bytes: config.server.max_body_bytes,
        origin,
        client_script,
    })
}

/// `$XDG_CACHE_HOME/gatehouse`, else `~/.cache/gatehouse`.
/// The sandbox limits of `[runtime]`, as `serve` applies them.
#[must_use]
pub fn runtime_limits(config: &Config) -> runtime::Limits {
    let cache_dir = match &config.runtime.cache_dir {
        Some(dir) if dir.as_os_str().is_empty() => None,
        Some(dir) => Some(dir.clone()),
        None => default_cache_dir(),
    };
    runtime::Limits {
        call_cpu: Duration::from_millis(config.runtime.call_cpu_ms),
        call_timeout: Duration::from_millis(config.runtime.call_timeout_ms),
        max_concurrent_pipelines: config.runtime.max_concurrent_pipelines,
        inline_budget: Duration::from_millis(config.runtime.inline_budget_ms),
        answer_cache: runtime::AnswerCacheLimits {
            enabled: config.runtime.answer_cache.enabled,
            max_entries: usize::try_from(config.runtime.answer_cache.max_entries)
                .ok()
                .and_then(std::num::NonZeroUsize::new)
                .unwrap_or(std::num::NonZeroUsize::MIN),
            ttl: Duration::from_secs(config.runtime.answer_cache.ttl_secs),
        },
        memory_bytes: usize::try_from(config.runtime.memory_limit_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        max_instances: config.runtime.max_instances,
        max_core_instances_per_component: config.runtime.max_core_instances_per_component,
        max_memories_per_component: config.runtime.max_memories_per_component,
        max_tables_per_component: config.runtime.max_tables_per_component,
        output_limit_bytes: config.runtime.output_limit_bytes,
        forbidden_headers: config.runtime.forbidden_headers.clone(),
        cache_dir,
        cache_max_bytes: config.runtime.cache_max_mb.saturating_mul(1 << 20),
        supplies_ja4: config
            .server
            .fingerprint_headers
            .as_ref()
            .is_some_and(|f| f.ja4.is_some()),
        supplies_http2_fingerprint: config
            .server
            .fingerprint_headers
            .as_ref()
            .is_some_and(|f| f.http2.is_some()),
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("gatehouse"))
}
