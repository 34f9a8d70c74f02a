//! `gatehouse compose --config FILE --target fastly|wasi-http -o app.wasm`: one deployable
//! component from the same TOML `serve` reads, the target's prebuilt host component (Fastly:
//! `host/fastly`; wasi:http: `host/wasi-http`) and the configured provider components.
//!
//! What compose decides, in order, for each configured provider (refusing with the provider's
//! name and config key):
//! 1. its bytes: a bundled provider, or the `path` file whose sha256 must equal the pinned one;
//! 2. its imports: only what the target may give a composed provider ([`Target::allows`]);
//!    every other import is listed;
//! 3. its manifest: `describe` runs in the embedded wasmtime sandbox, and the manifest is
//!    validated by the core against the policy and the target's rules (an unknown permission, a
//!    forbidden header, a read the target cannot supply such as `ja4` are refused).
//!
//! Then it writes the deployment document ([`Deployment`]: policy, default country, cookie,
//! consent and origin settings, the validated manifests, literal settings; `{ env = "VAR" }`
//! settings only by their run-time key (`wasi:config`, or Fastly's secret store), never their
//! value; with an Edge Cookie provider, the identity store's name and `[store]` lifecycle
//! settings), wraps it in a generated
//! data-only component, and plugs that, the providers (or a placeholder for an unconfigured
//! kind) into the host component with `wac-graph`.
//!
//! This module must never embed a setting given as `{ env = .. }`, and never write the output
//! unless every check passed.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gatehouse_component_common::store::{DEFAULT_FASTLY_KV_STORE, DEFAULT_KEYVALUE_BUCKET};
use gatehouse_component_common::{
    DEPLOYMENT_FORMAT, DEPLOYMENT_INTERFACE, Deployment, ManifestDoc, OriginDoc, ProviderDoc,
    SettingDoc, StoreDoc, config_key_for_env, deployment::EdgeCookieDoc,
};
use gatehouse_core::pipeline::PagePipeline;
use gatehouse_core::policy::{EMBEDDED_POLICY_SOURCE, EMBEDDED_POLICY_YAML, Policy};
use gatehouse_core::provider::ProviderKind;
use gatehouse_core::provider::manifest::{self, ManifestError};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions, NodeId, PackageId};

use crate::config::{Config, ConfigError, ProviderConfig, SettingValue};
use crate::runtime::{self, LoadError, Sandbox, read_pinned, sha256_hex};

/// The prebuilt wasi:http host component (`host/wasi-http`), built by this crate's build script.
const WASI_HTTP_HOST: &[u8] = include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_HOST_WASI_HTTP"));

/// The prebuilt Fastly host component (`host/fastly`, a `wasm32-wasip1` program adapted with
/// Viceroy's adapter), built by this crate's build script.
const FASTLY_HOST: &[u8] = include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_HOST_FASTLY"));

/// The Fastly secret store the Fastly host reads `{ env = "VAR" }` settings from
/// (`host/fastly`'s `SECRET_STORE`).
pub const FASTLY_SECRET_STORE: &str = "gatehouse";

/// The Fastly backend the Fastly host sends the origin's requests to (`host/fastly`'s
/// `ORIGIN_BACKEND`).
pub const FASTLY_ORIGIN_BACKEND: &str = "origin";

/// The placeholder plugged into the import of a kind with no provider (`host/absent-provider`).
const ABSENT_PROVIDER: &[u8] =
    include_bytes!(env!("GATEHOUSE_COMPONENT_GATEHOUSE_ABSENT_PROVIDER"));

/// The kinds, in the order the pipeline runs them.
const KINDS: [ProviderKind; 3] = [
    ProviderKind::Geo,
    ProviderKind::Device,
    ProviderKind::EdgeCookie,
];

/// What compose can build.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A Fastly Compute component (`fastly compute deploy`, Viceroy locally).
    Fastly,
    /// A `wasi:http/proxy` component (`wasmtime serve`, Spin, other wasi:http platforms).
    WasiHttp,
}

impl Target {
    /// The name used in messages and in the deployment document.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Fastly => "fastly",
            Self::WasiHttp => "wasi-http",
        }
    }

    /// Whether a composed provider may import `name` on this target.
    #[must_use]
    pub fn allows(self, name: &str) -> bool {
        match self {
            Self::Fastly => fastly_allows(name),
            Self::WasiHttp => wasi_http_allows(name),
        }
    }

    /// The prebuilt host component.
    fn host_component(self) -> &'static [u8] {
        match self {
            Self::Fastly => FASTLY_HOST,
            Self::WasiHttp => WASI_HTTP_HOST,
        }
    }

    /// The identity store of an app composed for this target, from `[store]`: the Fastly KV
    /// store (`store.fastly_kv_store`) or the `wasi:keyvalue` bucket (`store.keyvalue_bucket`).
    /// `None` without an Edge Cookie provider (no identity to keep) or with
    /// `store.enabled = false` (stateless).
    fn store_doc(self, config: &Config) -> Option<StoreDoc> {
        let store = &config.store;
        if !store.enabled || config.ec.provider.is_none() {
            return None;
        }
        let name = match self {
            Self::Fastly => store
                .fastly_kv_store
                .clone()
                .unwrap_or_else(|| DEFAULT_FASTLY_KV_STORE.to_owned()),
            Self::WasiHttp => store
                .keyvalue_bucket
                .clone()
                .unwrap_or_else(|| DEFAULT_KEYVALUE_BUCKET.to_owned()),
        };
        Some(StoreDoc {
            name,
            tombstone_secs: store.tombstone_secs,
            cas_attempts: store.cas_attempts,
            cas_base_delay_ms: store.cas_base_delay_ms,
            cas_max_delay_ms: store.cas_max_delay_ms,
        })
    }

    /// What holds the `{ env = .. }` settings at run time, for messages.
    fn run_time_store(self) -> String {
        match self {
            Self::Fastly => format!("Fastly secret store `{FASTLY_SECRET_STORE}` key"),
            Self::WasiHttp => "wasi:config key".to_owned(),
        }
    }
}

/// Whether a composed provider may import `name` on the Fastly target.
///
/// On Fastly a composed provider's WASI imports are satisfied by the platform's WASI 0.2 (through
/// the same adapter the host uses), shared with the host component. So it may import what
/// computes, tells the time or writes to the platform's log (`wasi:random`, `wasi:clocks`,
/// `wasi:io`, `wasi:cli`, which std Rust needs) and the type-only `gatehouse:provider/types`.
/// It may not import Fastly's own ABI (`fastly:compute/*`: backends, the secret, config and KV
/// stores, geolocation), nor `wasi:http`, `wasi:config`, `wasi:keyvalue`, `wasi:sockets`,
/// `wasi:filesystem` or anything else: what a provider learns is the evidence the core passes it.
#[must_use]
pub fn fastly_allows(name: &str) -> bool {
    composed_provider_allows(name)
}

/// Whether a composed provider may import `name` on the wasi:http target.
///
/// A composed provider shares the platform's WASI implementations with the host component, not
/// a locked-down copy as in the standalone host. So it may import what computes, tells the time
/// or writes to the platform's log (`wasi:random`, `wasi:clocks`, `wasi:io`, `wasi:cli`, which
/// std Rust needs), and the type-only `gatehouse:provider/types`. It may not import what would
/// reach the network, the deployment's secrets, stored identities or files:
/// `wasi:http`, `wasi:config`, `wasi:keyvalue`, `wasi:sockets`, `wasi:filesystem`, nor anything
/// else.
#[must_use]
pub fn wasi_http_allows(name: &str) -> bool {
    composed_provider_allows(name)
}

/// What both composed targets let a provider import today: computing, time, the platform's log
/// and the type-only provider interface. Each target keeps its own function (and documents its
/// reasons), so one can change without the other.
fn composed_provider_allows(name: &str) -> bool {
    const ALLOWED: &[&str] = &[
        "wasi:random/",
        "wasi:clocks/",
        "wasi:io/",
        "wasi:cli/",
        "gatehouse:provider/types@",
    ];
    ALLOWED.iter().any(|prefix| name.starts_with(prefix))
}

/// Why compose refused or failed. Messages name the provider and the config key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ComposeError {
    /// The config file is unreadable or invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The policy is invalid or the default country names no rule.
    #[error(transparent)]
    Policy(#[from] gatehouse_core::policy::PolicyError),
    /// The cookie or consent settings are invalid.
    #[error(transparent)]
    Pipeline(#[from] gatehouse_core::pipeline::PipelineConfigError),
    /// A provider's file is unreadable, its digest is not the pinned one, or its `describe`
    /// failed.
    #[error(transparent)]
    Provider(#[from] LoadError),
    /// A provider imports what the target cannot give it.
    #[error(
        "provider `{provider}` (`{key}`): the {target} target cannot satisfy its imports: {}",
        imports.iter().map(|i| format!("`{i}`")).collect::<Vec<_>>().join(", ")
    )]
    Imports {
        /// The config name.
        provider: String,
        /// The config key of its table.
        key: String,
        /// The target.
        target: &'static str,
        /// Every import refused.
        imports: Vec<String>,
    },
    /// A provider's manifest breaks the policy or the target's rules.
    #[error("provider `{provider}` (`{key}`): {source}")]
    Manifest {
        /// The config name.
        provider: String,
        /// The config key of its table.
        key: String,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// A component could not be parsed or plugged by `wac-graph`.
    #[error("composing the {component} component: {message}")]
    Graph {
        /// Which component (`host`, `deployment`, a provider's config key).
        component: String,
        /// wac's message.
        message: String,
    },
    /// The output could not be written.
    #[error("cannot write `{path}`: {source}")]
    Write {
        /// The output file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A composed app.
#[derive(Debug)]
pub struct Composed {
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// The embedded deployment document.
    pub deployment: Deployment,
    /// The target composed for.
    pub target: Target,
    /// `(run-time key, environment variable)` of each `{ env = .. }` setting: the values to
    /// supply at run time (a `wasi:config` key, or a key of Fastly's secret store).
    pub config_vars: Vec<(String, String)>,
    /// `{ env = .. }` settings whose variable was unset at compose time, so `describe` saw a
    /// placeholder (config keys).
    pub placeholder_settings: Vec<String>,
}

impl Composed {
    /// The command that serves `output` locally: `wasmtime serve` for wasi:http (`-Skeyvalue`
    /// always: the host component imports `wasi:keyvalue`), Viceroy (with the
    /// [`Composed::viceroy_config`] file `fastly.toml` next to it) for Fastly.
    #[must_use]
    pub fn serve_command(&self, output: &Path) -> String {
        match self.target {
            Target::WasiHttp => {
                let mut command = String::from("wasmtime serve -Scli -Sconfig -Skeyvalue");
                for (key, var) in &self.config_vars {
                    command.push_str(&format!(" -Sconfig-var={key}=\"${var}\""));
                }
                command.push_str(&format!(" --addr=127.0.0.1:8080 {}", output.display()));
                command
            }
            Target::Fastly => format!(
                "viceroy serve -C fastly.toml --addr 127.0.0.1:7676 {}",
                output.display()
            ),
        }
    }

    /// For Fastly: the `[local_server]` tables of the `fastly.toml` Viceroy needs: the
    /// [`FASTLY_ORIGIN_BACKEND`] backend (unless the origin is `builtin:demo`), the
    /// [`FASTLY_SECRET_STORE`] secret store, whose entries read the same environment variables
    /// the config names, and the identity store's KV store, empty (Viceroy keeps it in memory
    /// for the life of the process). `None` for wasi:http.
    #[must_use]
    pub fn viceroy_config(&self) -> Option<String> {
        if self.target != Target::Fastly {
            return None;
        }
        let mut text =
            String::from("manifest_version = 3\nlanguage = \"other\"\n\n[local_server]\n");
        let origin = &self.deployment.origin;
        if origin.url != "builtin:demo" {
            text.push_str(&format!(
                "\n[local_server.backends.{FASTLY_ORIGIN_BACKEND}]\nurl = {}\n",
                toml_string(&origin.url)
            ));
        }
        text.push_str("\n[local_server.secret_stores]\n");
        let entries: Vec<String> = self
            .config_vars
            .iter()
            .map(|(key, var)| {
                format!(
                    "{{ key = {}, env = {} }}",
                    toml_string(key),
                    toml_string(var)
                )
            })
            .collect();
        text.push_str(&format!(
            "{FASTLY_SECRET_STORE} = [{}]\n",
            entries.join(", ")
        ));
        if let Some(store) = &self.deployment.store {
            text.push_str(&format!(
                "\n[local_server.kv_stores]\n{} = []\n",
                toml_string(&store.name)
            ));
        }
        Some(text)
    }
}

/// `value` as a TOML basic string.
fn toml_string(value: &str) -> String {
    toml::Value::String(value.to_owned()).to_string()
}

/// One provider table of the config, with its settings not resolved.
struct Selected<'c> {
    name: &'c str,
    key: String,
    table: Option<&'c ProviderConfig>,
}

fn selected(config: &Config, kind: ProviderKind) -> Option<Selected<'_>> {
    let (provider, providers) = match kind {
        ProviderKind::Geo => (&config.geo.provider, &config.geo.providers),
        ProviderKind::Device => (&config.device.provider, &config.device.providers),
        ProviderKind::EdgeCookie => (&config.ec.provider, &config.ec.providers),
    };
    let name = provider.as_deref()?;
    Some(Selected {
        name,
        key: format!("{}.providers.{name}", kind.section()),
        table: providers.get(name),
    })
}

/// `geo.provider = "fastly"`: Fastly's own geolocation, answered by the Fastly host (no
/// component); a `[geo.providers.fastly]` with a `path` is an ordinary provider of that name.
pub const FASTLY_GEO: &str = "fastly";

/// Why `geo.provider = "fastly"` is refused outside the Fastly target.
pub const FASTLY_GEO_ELSEWHERE: &str = "`fastly` is Fastly's own geolocation, which only the Fastly app has: \
     compose with `--target fastly`, or pick a geo provider component (e.g. `header-geo`)";

/// The component's bytes: bundled, or the pinned file after its digest matched.
fn provider_bytes(kind: ProviderKind, sel: &Selected<'_>) -> Result<Vec<u8>, ComposeError> {
    match sel.table.and_then(|t| t.path.as_ref()) {
        Some(path) => {
            let pinned = sel
                .table
                .and_then(|t| t.sha256.as_deref())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{}.sha256", sel.key),
                        "is required with `path`: pin the external component by digest",
                    )
                })?
                .to_ascii_lowercase();
            Ok(read_pinned(sel.name, &sel.key, path, &pinned)?)
        }
        None => {
            if sel.table.is_some_and(|t| t.sha256.is_some()) {
                return Err(ConfigError::invalid(
                    format!("{}.sha256", sel.key),
                    "is only meaningful with `path`",
                )
                .into());
            }
            runtime::BUNDLED
                .iter()
                .find(|(k, n, _)| *k == kind && *n == sel.name)
                .map(|(.., bytes)| bytes.to_vec())
                .ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{}.provider", kind.section()),
                        format!(
                            "unknown provider `{}`: not bundled for `{}` (bundled: {}) and `[{}]` has no `path`",
                            sel.name,
                            kind.section(),
                            runtime::bundled_names(kind).join(", "),
                            sel.key
                        ),
                    )
                    .into()
                })
        }
    }
}

/// The settings as the document holds them, and as `describe` sees them at compose time.
struct ProviderSettings {
    documented: Vec<SettingDoc>,
    for_describe: Vec<(String, String)>,
    config_vars: Vec<(String, String)>,
    placeholders: Vec<String>,
}

fn provider_settings(sel: &Selected<'_>, target: Target) -> Result<ProviderSettings, ComposeError> {
    let mut out = ProviderSettings {
        documented: Vec::new(),
        for_describe: Vec::new(),
        config_vars: Vec::new(),
        placeholders: Vec::new(),
    };
    let empty = BTreeMap::new();
    for (key, value) in sel.table.map_or(&empty, |t| &t.settings) {
        let literal = match value {
            SettingValue::Text(s) => Some(s.clone()),
            SettingValue::Integer(i) => Some(i.to_string()),
            SettingValue::Bool(b) => Some(b.to_string()),
            SettingValue::Env { .. } => None,
        };
        match (literal, value) {
            (Some(value), _) => {
                out.for_describe.push((key.clone(), value.clone()));
                out.documented.push(SettingDoc::Literal {
                    key: key.clone(),
                    value,
                });
            }
            (None, SettingValue::Env { env }) => {
                let config_key = config_key_for_env(env).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{}.{key}", sel.key),
                        format!(
                            "environment variable `{env}` cannot name a run-time key (ASCII letters, digits and `_`, starting with a letter)"
                        ),
                    )
                })?;
                // `describe` runs with the value when the composing environment has it; it is
                // never written into the document.
                let value = std::env::var(env).unwrap_or_else(|_| {
                    out.placeholders.push(format!("{}.{key}", sel.key));
                    format!("{{{} {config_key}}}", target.run_time_store())
                });
                out.for_describe.push((key.clone(), value));
                out.config_vars.push((config_key.clone(), env.clone()));
                out.documented.push(SettingDoc::Config {
                    key: key.clone(),
                    config_key,
                });
            }
            (None, _) => unreachable!("every other setting value is literal"),
        }
    }
    Ok(out)
}

/// The imports of a component, as `wac` reads them.
fn component_imports(bytes: &[u8], component: &str) -> Result<Vec<String>, ComposeError> {
    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes("gatehouse:probe", None, bytes.to_vec(), graph.types_mut())
        .map_err(|e| ComposeError::Graph {
        component: component.to_owned(),
        message: format!("{e:#}"),
    })?;
    Ok(graph.types()[package.ty()]
        .imports
        .keys()
        .cloned()
        .collect())
}

/// Composes the app `config_path` describes for `target`.
///
/// # Errors
/// [`ComposeError`]: the first config error, digest mismatch, refused import, failed `describe`
/// or refused manifest, naming the provider and its config key.
pub fn compose(config_path: &Path, target: Target) -> Result<Composed, ComposeError> {
    let config = Config::load(config_path)?;
    let (policy_yaml, policy_source) = match &config.policy.path {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|e| {
                ConfigError::invalid(
                    "policy.path",
                    format!("cannot read policy `{}`: {e}", path.display()),
                )
            })?,
            path.display().to_string(),
        ),
        None => (
            EMBEDDED_POLICY_YAML.to_owned(),
            EMBEDDED_POLICY_SOURCE.to_owned(),
        ),
    };
    let policy = Policy::from_yaml_str(&policy_yaml, &policy_source)?;
    let origin = origin_doc(&config, target)?;
    let mut deployment = Deployment {
        format: DEPLOYMENT_FORMAT,
        target: target.name().to_owned(),
        policy_yaml,
        policy_source,
        default_country: config.default_country()?.to_owned(),
        consent: consent_table(config_path)?,
        edge_cookie: EdgeCookieDoc {
            name: config.ec.cookie_name.clone(),
            domain: config.ec.cookie_domain.clone(),
            max_age_secs: config.ec.max_age_secs,
            allowed_headers: config.ec.allowed_headers.clone(),
            max_headers: config.ec.max_headers,
            max_header_bytes: config.ec.max_header_bytes,
        },
        origin,
        client_ip_header: config.client_ip_header()?.name().to_owned(),
        // Checked here (startup's rule, naming the entry); embedded as written.
        trusted_proxies: {
            config.trusted_proxies()?;
            config.server.trusted_proxies.clone()
        },
        cdn_headers: config
            .cdn_headers()?
            .iter()
            .map(|h| h.as_str().to_owned())
            .collect(),
        forbidden_headers: config.runtime.forbidden_headers.clone(),
        geo: None,
        fastly_geo: false,
        device: None,
        ec: None,
        store: target.store_doc(&config),
    };
    // The same validation the host runs on every request, once here.
    PagePipeline::new(
        &policy,
        deployment
            .pipeline_settings()
            .map_err(|e| ConfigError::invalid("consent", e.to_string()))?,
    )?;

    let mut limits = crate::app::runtime_limits(&config);
    limits.max_instances = limits.max_instances.min(8);
    let sandbox = Sandbox::new(limits)?;
    let rules = deployment.manifest_rules();
    let mut config_vars = Vec::new();
    let mut placeholder_settings = Vec::new();
    let mut plugged: Vec<(ProviderKind, String, Vec<u8>)> = Vec::new();
    for kind in KINDS {
        let Some(sel) = selected(&config, kind) else {
            continue;
        };
        if kind == ProviderKind::Geo
            && sel.name == FASTLY_GEO
            && sel.table.is_none_or(|t| t.path.is_none())
        {
            // Fastly's own geolocation: nothing to plug, the host answers.
            if target != Target::Fastly {
                return Err(ConfigError::invalid("geo.provider", FASTLY_GEO_ELSEWHERE).into());
            }
            if sel
                .table
                .is_some_and(|t| !t.settings.is_empty() || t.sha256.is_some())
            {
                return Err(ConfigError::invalid(
                    sel.key.clone(),
                    "Fastly's geolocation takes no settings",
                )
                .into());
            }
            deployment.fastly_geo = true;
            continue;
        }
        let bytes = provider_bytes(kind, &sel)?;
        let refused: Vec<String> = component_imports(&bytes, &sel.key)?
            .into_iter()
            .filter(|name| !target.allows(name))
            .collect();
        if !refused.is_empty() {
            return Err(ComposeError::Imports {
                provider: sel.name.to_owned(),
                key: sel.key.clone(),
                target: target.name(),
                imports: refused,
            });
        }
        let settings = provider_settings(&sel, target)?;
        let found =
            sandbox.describe_component(kind, &bytes, &settings.for_describe, sel.name, &sel.key)?;
        manifest::validate(&found, &policy, &rules).map_err(|source| ComposeError::Manifest {
            provider: sel.name.to_owned(),
            key: sel.key.clone(),
            source,
        })?;
        let doc = ProviderDoc {
            name: sel.name.to_owned(),
            sha256: sha256_hex(&bytes),
            manifest: ManifestDoc::from(&found),
            settings: settings.documented,
        };
        match kind {
            ProviderKind::Geo => deployment.geo = Some(doc),
            ProviderKind::Device => deployment.device = Some(doc),
            ProviderKind::EdgeCookie => deployment.ec = Some(doc),
        }
        config_vars.extend(settings.config_vars);
        placeholder_settings.extend(settings.placeholders);
        plugged.push((kind, sel.key.clone(), bytes));
    }
    config_vars.sort();
    config_vars.dedup();

    let document = deployment.to_json().map_err(|e| ComposeError::Graph {
        component: "deployment".into(),
        message: e.to_string(),
    })?;
    let bytes = plug(target, &deployment_component(&document)?, &plugged)?;
    Ok(Composed {
        target,
        bytes,
        deployment,
        config_vars,
        placeholder_settings,
    })
}

/// `[origin]` for a composed host: `builtin:demo` or `http(s)://host[:port]`. The platform
/// verifies an `https://` origin's certificate against its own roots, so `origin.ca_file` cannot
/// be honoured and is refused.
fn origin_doc(config: &Config, target: Target) -> Result<OriginDoc, ConfigError> {
    if config.origin.ca_file.is_some() {
        let platform = match target {
            Target::Fastly => "Fastly verifies the origin backend",
            Target::WasiHttp => "the wasi:http platform verifies the origin",
        };
        return Err(ConfigError::invalid(
            "origin.ca_file",
            format!("cannot be applied by a composed host: {platform} with its own trust store"),
        ));
    }
    let url = config.origin.url.trim();
    if url != "builtin:demo" {
        let authority = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .ok_or_else(|| {
                ConfigError::invalid(
                    "origin.url",
                    format!(
                        "`{url}`: expected `http://host[:port]`, `https://host[:port]` or `builtin:demo`"
                    ),
                )
            })?;
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(ConfigError::invalid(
                "origin.url",
                format!("`{url}`: the origin URL needs a host and no path or query"),
            ));
        }
    }
    Ok(OriginDoc {
        url: url.to_owned(),
        preserve_host: config.origin.preserve_host,
        timeout_ms: config.origin.timeout_ms,
    })
}

/// The `[consent]` table as written (its values are settings, not secrets), as JSON.
fn consent_table(config_path: &Path) -> Result<serde_json::Value, ConfigError> {
    let text = std::fs::read_to_string(config_path).map_err(|source| ConfigError::Read {
        path: config_path.to_owned(),
        source,
    })?;
    let value: toml::Table = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: config_path.to_owned(),
        message: e.message().to_owned(),
    })?;
    match value.get("consent") {
        None => Ok(serde_json::Value::Null),
        Some(table) => {
            serde_json::to_value(table).map_err(|e| ConfigError::invalid("consent", e.to_string()))
        }
    }
}

/// A component exporting [`DEPLOYMENT_INTERFACE`], whose `get` returns `document`: one data
/// segment and a canonical-ABI lift, written in the component text format.
fn deployment_component(document: &str) -> Result<Vec<u8>, ComposeError> {
    const DATA_OFFSET: usize = 8;
    let len = document.len();
    let pages = (DATA_OFFSET + len).div_ceil(65_536).max(1);
    let mut escaped = String::with_capacity(len * 2);
    // The return area at 0 holds (pointer, length) of the string, little-endian.
    let mut bytes = Vec::with_capacity(DATA_OFFSET + len);
    bytes.extend_from_slice(&u32::try_from(DATA_OFFSET).unwrap_or(8).to_le_bytes());
    bytes.extend_from_slice(
        &u32::try_from(len)
            .map_err(|_| ComposeError::Graph {
                component: "deployment".into(),
                message: "the deployment document is over 4 GiB".into(),
            })?
            .to_le_bytes(),
    );
    bytes.extend_from_slice(document.as_bytes());
    for b in bytes {
        if (b.is_ascii_graphic() && b != b'"' && b != b'\\') || b == b' ' {
            escaped.push(char::from(b));
        } else {
            escaped.push_str(&format!("\\{b:02x}"));
        }
    }
    let text = format!(
        r#"(component
  (core module $m
    (memory (export "memory") {pages})
    (data (i32.const 0) "{escaped}")
    (func (export "get") (result i32) (i32.const 0)))
  (core instance $i (instantiate $m))
  (func $get (result string) (canon lift (core func $i "get") (memory (core memory $i "memory"))))
  (instance $deployment (export "get" (func $get)))
  (export "{DEPLOYMENT_INTERFACE}" (instance $deployment)))"#
    );
    wat::parse_str(&text).map_err(|e| ComposeError::Graph {
        component: "deployment".into(),
        message: e.to_string(),
    })
}

/// The versioned interface a provider of `kind` exports and the host imports.
fn provider_interface(kind: ProviderKind) -> String {
    let name = match kind {
        ProviderKind::Geo => "geo",
        ProviderKind::Device => "device",
        ProviderKind::EdgeCookie => "edge-cookie",
    };
    format!(
        "gatehouse:provider/{name}@{}",
        runtime::PROVIDER_INTERFACE_VERSION
    )
}

/// Plugs the deployment component, the providers and the placeholder for each unconfigured kind
/// into the host component, and re-exports the host's exports.
fn plug(
    target: Target,
    deployment: &[u8],
    providers: &[(ProviderKind, String, Vec<u8>)],
) -> Result<Vec<u8>, ComposeError> {
    let mut graph = CompositionGraph::new();
    let graph_error = |component: &str| {
        let component = component.to_owned();
        move |e: &dyn std::fmt::Display| ComposeError::Graph {
            component: component.clone(),
            message: e.to_string(),
        }
    };
    let register = |graph: &mut CompositionGraph,
                    name: &str,
                    bytes: &[u8]|
     -> Result<PackageId, ComposeError> {
        let package = Package::from_bytes(name, None, bytes.to_vec(), graph.types_mut())
            .map_err(|e| graph_error(name)(&format!("{e:#}")))?;
        graph
            .register_package(package)
            .map_err(|e| graph_error(name)(&e))
    };
    let host = register(
        &mut graph,
        &format!("gatehouse:{}-host", target.name()),
        target.host_component(),
    )?;
    let host_exports: Vec<String> = graph.types()[graph[host].ty()]
        .exports
        .keys()
        .cloned()
        .collect();
    let host_instance = graph.instantiate(host);

    let connect = |graph: &mut CompositionGraph,
                   component: &str,
                   from: NodeId,
                   interface: &str|
     -> Result<(), ComposeError> {
        let export = graph
            .alias_instance_export(from, interface)
            .map_err(|e| graph_error(component)(&e))?;
        graph
            .set_instantiation_argument(host_instance, interface, export)
            .map_err(|e| graph_error(component)(&e))
    };

    let deployment_package = register(&mut graph, "gatehouse:deployment", deployment)?;
    let deployment_instance = graph.instantiate(deployment_package);
    connect(
        &mut graph,
        "deployment",
        deployment_instance,
        DEPLOYMENT_INTERFACE,
    )?;

    let mut absent_instance = None;
    for kind in KINDS {
        let interface = provider_interface(kind);
        match providers.iter().find(|(k, ..)| *k == kind) {
            Some((_, key, bytes)) => {
                let package = register(
                    &mut graph,
                    &format!("gatehouse:plugged-{}", kind.section()),
                    bytes,
                )?;
                let instance = graph.instantiate(package);
                connect(&mut graph, key, instance, &interface)?;
            }
            None => {
                let instance = match absent_instance {
                    Some(instance) => instance,
                    None => {
                        let package =
                            register(&mut graph, "gatehouse:absent-provider", ABSENT_PROVIDER)?;
                        let instance = graph.instantiate(package);
                        absent_instance = Some(instance);
                        instance
                    }
                };
                connect(&mut graph, "placeholder provider", instance, &interface)?;
            }
        }
    }

    for name in host_exports {
        let node = graph
            .alias_instance_export(host_instance, &name)
            .map_err(|e| graph_error("host")(&e))?;
        graph
            .export(node, &name)
            .map_err(|e| graph_error("host")(&e))?;
    }
    graph
        .encode(EncodeOptions::default())
        .map_err(|e| graph_error("composed")(&e))
}

/// `gatehouse compose`: composes and writes `output`.
///
/// # Errors
/// Any [`ComposeError`]; nothing is written then.
pub fn compose_to_file(
    config_path: &Path,
    target: Target,
    output: &Path,
) -> Result<Composed, ComposeError> {
    let composed = compose(config_path, target)?;
    std::fs::write(output, &composed.bytes).map_err(|source| ComposeError::Write {
        path: output.to_owned(),
        source,
    })?;
    Ok(composed)
}

/// The `gatehouse compose` command: composes, writes `output`, and prints what was plugged and
/// the command that serves the result. Exit status 2 on error.
#[must_use]
pub fn run_command(config: &Path, target: Target, output: &Path) -> std::process::ExitCode {
    match compose_to_file(config, target, output) {
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(2)
        }
        Ok(composed) => {
            println!(
                "composed `{}` for {} ({} bytes)",
                output.display(),
                target.name(),
                composed.bytes.len()
            );
            for kind in KINDS {
                match composed.deployment.provider(kind) {
                    Some(p) => println!(
                        "  {:<6} {} ({} {}, sha256 {})",
                        kind.section(),
                        p.name,
                        p.manifest.id.escape_debug(),
                        p.manifest.version.escape_debug(),
                        p.sha256
                    ),
                    None => println!("  {:<6} none", kind.section()),
                }
            }
            for key in &composed.placeholder_settings {
                println!(
                    "note: `{key}` comes from the environment, which was unset here: `describe` ran with a placeholder"
                );
            }
            if let Some(viceroy_config) = composed.viceroy_config() {
                println!(
                    "Viceroy reads the backend, the secret store and the KV store from this fastly.toml:\n{viceroy_config}"
                );
            }
            println!("serve it with:\n  {}", composed.serve_command(output));
            std::process::ExitCode::SUCCESS
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wasi_http_target_refuses_network_secrets_storage_and_files() {
        for refused in [
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:sockets/tcp@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
            "vendor:telemetry/send@1.0.0",
        ] {
            assert!(!wasi_http_allows(refused), "{refused}");
        }
        for allowed in [
            "wasi:random/random@0.2.6",
            "wasi:clocks/wall-clock@0.2.6",
            "wasi:io/streams@0.2.6",
            "wasi:cli/stdout@0.2.6",
            "gatehouse:provider/types@0.2.0",
        ] {
            assert!(wasi_http_allows(allowed), "{allowed}");
        }
    }

    #[test]
    fn the_fastly_target_refuses_fastlys_own_abi_network_secrets_storage_and_files() {
        for refused in [
            "fastly:compute/backend@0.1.0",
            "fastly:compute/secret-store@0.1.0",
            "fastly:compute/kv-store@0.1.0",
            "wasi:http/outgoing-handler@0.2.6",
            "wasi:config/store@0.2.0-rc.1",
            "wasi:keyvalue/store@0.2.0-draft",
            "wasi:sockets/tcp@0.2.6",
            "wasi:filesystem/preopens@0.2.6",
            "vendor:telemetry/send@1.0.0",
        ] {
            assert!(!Target::Fastly.allows(refused), "{refused}");
        }
        for allowed in [
            "wasi:random/random@0.2.6",
            "wasi:clocks/monotonic-clock@0.2.6",
            "wasi:io/streams@0.2.6",
            "wasi:cli/stderr@0.2.6",
            "gatehouse:provider/types@0.2.0",
        ] {
            assert!(Target::Fastly.allows(allowed), "{allowed}");
        }
    }

    #[test]
    fn the_deployment_component_returns_the_document_under_wasmtime() {
        use wasmtime::component::{Component, Linker};
        let document = "{\"a\":\"\\\"quoted\\\" \u{e9} \\n\"}";
        let bytes = deployment_component(document).expect("component");
        let engine = wasmtime::Engine::default();
        let component = Component::new(&engine, &bytes).expect("valid component");
        let linker = Linker::<()>::new(&engine);
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = linker
            .instantiate(&mut store, &component)
            .expect("instantiates");
        let index = instance
            .get_export_index(&mut store, None, DEPLOYMENT_INTERFACE)
            .expect("exports the interface");
        let get = instance
            .get_export_index(&mut store, Some(&index), "get")
            .expect("exports get");
        let get = instance
            .get_typed_func::<(), (String,)>(&mut store, &get)
            .expect("typed");
        let (text,) = get.call(&mut store, ()).expect("call");
        assert_eq!(text, document);
    }
}
