//! Building the request-serving state ([`App`]) from a parsed configuration.
//!
//! Startup and every reload call [`build`]: a reloaded configuration is validated exactly as at
//! startup, because it is the same code. Nothing here touches the listener or a running server.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::pipeline::{
    EdgeCookieSettings, PagePipeline, PipelineConfigError, PipelineSettings, ProviderHeaderLimits,
    ProviderKind,
};
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
    let cdn_headers = config.cdn_headers()?;
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
            edge_cookie: EdgeCookieSettings {
                name: config.ec.cookie_name.clone(),
                domain: config.ec.cookie_domain.clone(),
                max_age_secs: config.ec.max_age_secs,
                allowed_headers: config.ec.allowed_headers.clone(),
                header_limits: ProviderHeaderLimits {
                    max_count: config.ec.max_headers,
                    max_bytes: config.ec.max_header_bytes,
                },
            },
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
    let origin = Origin::from_config(
        &config.origin.url,
        config.origin.preserve_host,
        Duration::from_millis(config.origin.timeout_ms),
        config.origin.ca_file.as_deref(),
    )?;
    // An identity exists only with an Edge Cookie provider: without one, no store is opened.
    let identity = match &ec {
        Some(_) => crate::identity::open(&config.store)?,
        None => None,
    };
    let batch_sync = crate::batch_sync::BatchSync::new(
        gatehouse_core::sync::Partners::new(&config.partners)?,
        identity.clone(),
        config.ec.max_age_secs,
    );
    Ok(App {
        identity,
        pipeline,
        batch_sync,
        runtime: rt,
        client_ip,
        cdn_headers,
        max_body_bytes: config.server.max_body_bytes,
        origin,
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
        call_timeout: Duration::from_millis(config.runtime.call_timeout_ms),
        memory_bytes: usize::try_from(config.runtime.memory_limit_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        max_instances: config.runtime.max_instances,
        max_core_instances_per_component: config.runtime.max_core_instances_per_component,
        max_memories_per_component: config.runtime.max_memories_per_component,
        max_tables_per_component: config.runtime.max_tables_per_component,
        output_limit_bytes: config.runtime.output_limit_bytes,
        forbidden_headers: config.runtime.forbidden_headers.clone(),
        cache_dir,
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("gatehouse"))
}
