//! The `gatehouse serve` configuration file (TOML).
//!
//! Every table rejects unknown keys; every error names the key and the reason. Provider tables
//! (`[ec.providers.NAME]`, ...) take `path` + `sha256` for an external component (omit both for a
//! bundled one); every other key is handed to that provider alone, as its settings (passed in every call).
//! A value may be written inline or as `{ env = "VAR" }`, read from the environment at startup, so
//! secrets need not live in the file. Config values are never logged.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// A configuration error, naming the file or key and the reason. Never contains a config value.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config `{path}`: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("invalid config `{path}`: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (includes the key and position).
        message: String,
    },
    /// An `[ec]` value the core's page pipeline refuses (the message names the key).
    #[error(transparent)]
    EdgeCookie(#[from] gatehouse_core::pipeline::PipelineConfigError),
    /// A semantic error at `key`.
    #[error("config key `{key}`: {reason}")]
    Invalid {
        /// The dotted key, e.g. `geo.default_country`.
        key: String,
        /// Why it was refused.
        reason: String,
    },
}

impl ConfigError {
    /// An [`ConfigError::Invalid`] at `key`.
    pub fn invalid(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            reason: reason.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `[server]`: where to listen and whom to trust.
    #[serde(default)]
    pub server: ServerConfig,
    /// `[origin]`: the publisher origin to proxy to.
    pub origin: OriginConfig,
    /// `[policy]`: the permission policy.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// `[runtime]`: provider sandbox limits.
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// `[geo]`: the geo provider and the mandatory `default_country`.
    #[serde(default)]
    pub geo: GeoConfig,
    /// `[device]`: the device provider.
    #[serde(default)]
    pub device: KindConfig,
    /// `[ec]`: the Edge Cookie provider and cookie attributes.
    #[serde(default)]
    pub ec: EcConfig,
    /// `[consent]`: consent signal extraction and pipeline settings.
    #[serde(default)]
    pub consent: gatehouse_core::consent::ConsentConfig,
    /// `[store]`: the identity store (embedded redb file or Valkey).
    #[serde(default)]
    pub store: crate::identity::StoreConfig,
    /// `[[partners]]`: partners that push their user ids (`POST /_ts/api/v1/batch-sync`).
    #[serde(default)]
    pub partners: Vec<gatehouse_core::sync::PartnerConfig>,
    /// `[auction]` and `[[auction.bidders]]`: `POST /_ts/api/v1/auction` (absent: the route
    /// answers 404).
    pub auction: Option<gatehouse_core::auction::AuctionConfig>,
    /// `[admin]`: an optional separate listener for `/_ts/health` and `/_ts/metrics`.
    pub admin: Option<AdminConfig>,
}

/// `[admin]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `listen`: where `/_ts/health` and `/_ts/metrics` are served (e.g. `127.0.0.1:9901`); the
    /// public listener then answers 404 for them.
    pub listen: SocketAddr,
}

/// `[server]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// `listen`: socket address; port 0 picks a free port (logged at startup).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `trusted_proxies`: addresses or CIDR blocks whose client-IP header and CDN facts are
    /// believed.
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// `client_ip_header`: the one header the trusted proxy writes the client address into:
    /// `x-forwarded-for` (default), `forwarded`, or a single-address header such as
    /// `cf-connecting-ip`.
    #[serde(default = "default_client_ip_header")]
    pub client_ip_header: String,
    /// `cdn_headers`: request headers carrying facts a CDN or proxy sets (geo, client address,
    /// original host and scheme); removed from requests whose peer is not a trusted proxy.
    #[serde(default = "default_cdn_headers")]
    pub cdn_headers: Vec<String>,
    /// `max_body_bytes`: the largest request body forwarded to the origin; larger ones are
    /// answered 413.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: u64,
    /// `drain_timeout_ms`: on `SIGTERM`/`SIGINT`, how long requests in flight may take to finish
    /// before the process exits anyway. Counted from the signal, `drain_delay_ms` included.
    #[serde(default = "default_drain_timeout")]
    pub drain_timeout_ms: u64,
    /// `drain_delay_ms`: on `SIGTERM`/`SIGINT`, how long to keep accepting connections (answering
    /// `/_ts/health` with 503 `draining` and closing each HTTP/1.1 connection after its response)
    /// before the listener closes, so a load balancer's health checks see the drain first.
    #[serde(default)]
    pub drain_delay_ms: u64,
    /// `pid_file`: where to write the server's process id, for `gatehouse reload --config`.
    pub pid_file: Option<PathBuf>,
    /// `[server.tls]`: terminate TLS on the listener (HTTP/2 and HTTP/1.1 by ALPN).
    pub tls: Option<ServerTlsConfig>,
    /// `header_read_timeout_ms`: how long a client may take to send a complete request head. On
    /// HTTP/1.1 it also bounds the wait for the next request on a kept-alive connection; on any
    /// connection it bounds the time from accept (TLS handshake included) to the first request.
    #[serde(default = "default_header_read_timeout")]
    pub header_read_timeout_ms: u64,
    /// `idle_timeout_ms`: a connection with no request in flight for this long is closed.
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: u64,
    /// `max_connections`: client connections open at once; past it, new connections are
    /// accepted and closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// `tls_handshake_timeout_ms`: how long a client may take to complete the TLS handshake.
    #[serde(default = "default_tls_handshake_timeout")]
    pub tls_handshake_timeout_ms: u64,
    /// `http2_max_concurrent_streams`: requests one HTTP/2 connection may have open at once.
    #[serde(default = "default_http2_max_concurrent_streams")]
    pub http2_max_concurrent_streams: u32,
    /// `http2_keepalive_interval_ms`: how often an HTTP/2 connection is pinged; a ping not
    /// acknowledged within 20 s closes it. `0` disables the pings.
    #[serde(default = "default_http2_keepalive_interval")]
    pub http2_keepalive_interval_ms: u64,
    /// `fingerprint_headers`: the request headers a trusted CDN writes transport fingerprints
    /// into (`{ ja4 = "x-ja4", http2 = "x-http2-fp" }`). Only then does this host supply the
    /// `ja4` / `http2-fingerprint` reads, and only from trusted proxies.
    pub fingerprint_headers: Option<FingerprintHeaders>,
}

/// `[server.fingerprint_headers]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FingerprintHeaders {
    /// `ja4`: the header carrying the JA4 TLS fingerprint.
    pub ja4: Option<String>,
    /// `http2`: the header carrying the HTTP/2 fingerprint.
    pub http2: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            trusted_proxies: Vec::new(),
            client_ip_header: default_client_ip_header(),
            cdn_headers: default_cdn_headers(),
            max_body_bytes: default_max_body_bytes(),
            drain_timeout_ms: default_drain_timeout(),
            drain_delay_ms: 0,
            pid_file: None,
            tls: None,
            header_read_timeout_ms: default_header_read_timeout(),
            idle_timeout_ms: default_idle_timeout(),
            max_connections: default_max_connections(),
            tls_handshake_timeout_ms: default_tls_handshake_timeout(),
            http2_max_concurrent_streams: default_http2_max_concurrent_streams(),
            http2_keepalive_interval_ms: default_http2_keepalive_interval(),
            fingerprint_headers: None,
        }
    }
}

/// 10 s: Envoy's edge-proxy guidance for `request_headers_timeout`; nginx's
/// `client_header_timeout` (60 s) is longer than any real client needs.
fn default_header_read_timeout() -> u64 {
    10_000
}

/// 60 s: a kept-alive connection lives about as long as nginx's `keepalive_timeout` (75 s) and
/// load balancers' idle timeouts (AWS ALB: 60 s) allow.
fn default_idle_timeout() -> u64 {
    60_000
}

/// 10,000: well below the descriptor limits production hosts set (65,536 and up), so the cap,
/// not descriptor exhaustion, is what a flood meets first.
fn default_max_connections() -> usize {
    10_000
}

/// 10 s, as the header read.
fn default_tls_handshake_timeout() -> u64 {
    10_000
}

/// 100: Envoy's edge-proxy guidance (nginx: 128).
fn default_http2_max_concurrent_streams() -> u32 {
    100
}

/// 20 s.
fn default_http2_keepalive_interval() -> u64 {
    20_000
}

fn default_client_ip_header() -> String {
    "x-forwarded-for".into()
}

fn default_cdn_headers() -> Vec<String> {
    crate::client_ip::DEFAULT_CDN_HEADERS
        .iter()
        .map(|h| (*h).to_owned())
        .collect()
}

/// 1 MiB, nginx's `client_max_body_size` default.
fn default_max_body_bytes() -> u64 {
    1 << 20
}

/// `[server.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerTlsConfig {
    /// `cert`: PEM certificate chain, leaf first (relative to the config file).
    pub cert: PathBuf,
    /// `key`: PEM private key (PKCS#8, PKCS#1 or SEC1; relative to the config file).
    pub key: PathBuf,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

/// 25 s: below the 30 s a Kubernetes pod gets between `SIGTERM` and `SIGKILL` by default.
fn default_drain_timeout() -> u64 {
    25_000
}

/// `[origin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OriginConfig {
    /// `url`: `http://host:port` of the publisher origin, or `builtin:demo` for a built-in demo page.
    pub url: String,
    /// `preserve_host`: forward the visitor's `Host` header instead of the origin's authority.
    #[serde(default)]
    pub preserve_host: bool,
    /// `timeout_ms`: how long to wait for the origin's response headers.
    #[serde(default = "default_origin_timeout")]
    pub timeout_ms: u64,
    /// `ca_file`: PEM CA certificates to verify an `https://` origin with, instead of the system
    /// roots (relative to the config file).
    pub ca_file: Option<PathBuf>,
    /// `connect_timeout_ms`: how long to wait for a connection (TCP, and TLS for `https://`) to
    /// the origin.
    #[serde(default = "default_origin_connect_timeout")]
    pub connect_timeout_ms: u64,
    /// `body_idle_timeout_ms`: how long the origin's response body may go without sending a
    /// byte; past it the visitor's response is ended with an error.
    #[serde(default = "default_origin_body_idle_timeout")]
    pub body_idle_timeout_ms: u64,
    /// `pool_idle_timeout_ms`: how long an idle pooled origin connection is kept.
    #[serde(default = "default_origin_pool_idle_timeout")]
    pub pool_idle_timeout_ms: u64,
    /// `pool_max_idle`: most idle connections kept to the origin.
    #[serde(default = "default_origin_pool_max_idle")]
    pub pool_max_idle: usize,
}

fn default_origin_timeout() -> u64 {
    10_000
}

/// 5 s: Envoy's usual cluster `connect_timeout` (nginx's `proxy_connect_timeout`: 60 s).
fn default_origin_connect_timeout() -> u64 {
    5_000
}

/// 60 s: nginx's `proxy_read_timeout` (the longest gap between two reads from the origin).
fn default_origin_body_idle_timeout() -> u64 {
    60_000
}

/// 30 s: shorter than nginx's `keepalive_timeout` (75 s), so the origin rarely closes a pooled
/// connection just as it is reused, and idle connections do not pile up after a burst.
fn default_origin_pool_idle_timeout() -> u64 {
    30_000
}

/// 128: enough idle connections for bursts to a single origin; the rest are closed.
fn default_origin_pool_max_idle() -> usize {
    128
}

/// `[policy]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// `path`: a `permissions.yaml` to use instead of the embedded default (relative to the config
    /// file).
    pub path: Option<PathBuf>,
}

/// `[runtime]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// `call_cpu_ms`: the CPU time one provider call may use, instantiation included, measured on
    /// the calling thread's CPU clock (so a busy machine does not use it up). A provider's own
    /// `call-budget-ms` applies within it.
    #[serde(default = "default_call_cpu")]
    pub call_cpu_ms: u64,
    /// `call_timeout_ms`: the wall-clock backstop of one provider call, for time spent blocked
    /// rather than computing.
    #[serde(default = "default_call_timeout")]
    pub call_timeout_ms: u64,
    /// `max_concurrent_pipelines`: page requests whose pipeline (provider calls included) runs at
    /// once, each on a thread taken off the async workers; more wait for a slot.
    #[serde(default = "default_max_concurrent_pipelines")]
    pub max_concurrent_pipelines: u32,
    /// `inline_budget_ms`: a page pipeline whose providers' CPU budgets add up to at most this
    /// runs on the async worker that holds the request, without the hand-off to a blocking
    /// thread (every call is cut off at its CPU budget, so a misbehaving provider holds that
    /// worker at most this long). Larger budgets run off the workers; identity-store calls are
    /// awaited either way. `0`: always off the workers.
    #[serde(default = "default_inline_budget")]
    pub inline_budget_ms: u64,
    /// `[runtime.answer_cache]`: answers of pure providers, reused for identical inputs.
    #[serde(default)]
    pub answer_cache: AnswerCacheConfig,
    /// `memory_limit_mib`: linear-memory cap per provider instance. The default, 128, leaves room
    /// for componentize-py and componentize-js output, whose initial memories exceed 16 MiB.
    #[serde(default = "default_memory_limit")]
    pub memory_limit_mib: u64,
    /// `max_instances`: provider instances alive at once (pooling allocator slots).
    #[serde(default = "default_max_instances")]
    pub max_instances: u32,
    /// `max_core_instances_per_component`: core wasm instances one provider may contain. The
    /// default, 32, fits componentize-py output (~14).
    #[serde(default = "default_max_core_instances")]
    pub max_core_instances_per_component: u32,
    /// `max_memories_per_component`: linear memories one provider may define.
    #[serde(default = "default_max_memories")]
    pub max_memories_per_component: u32,
    /// `max_tables_per_component`: tables one provider may define.
    #[serde(default = "default_max_tables")]
    pub max_tables_per_component: u32,
    /// `output_limit_bytes`: bytes of a provider's stdout, and of its stderr, kept and logged per
    /// call; the rest is dropped (and counted).
    #[serde(default = "default_output_limit")]
    pub output_limit_bytes: usize,
    /// `forbidden_headers`: request headers no provider may declare as a read, besides `cookie`,
    /// `authorization` and `proxy-authorization`, which are always forbidden.
    #[serde(default)]
    pub forbidden_headers: Vec<String>,
    /// `cache_dir`: where AOT-compiled components are cached; `""` disables the cache. Default:
    /// `$XDG_CACHE_HOME/gatehouse` or `~/.cache/gatehouse`.
    pub cache_dir: Option<PathBuf>,
    /// `cache_max_mb`: the most the component cache may hold; when a new entry takes it over,
    /// the least recently used entries are removed.
    #[serde(default = "default_cache_max_mb")]
    pub cache_max_mb: u64,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            call_cpu_ms: default_call_cpu(),
            call_timeout_ms: default_call_timeout(),
            max_concurrent_pipelines: default_max_concurrent_pipelines(),
            inline_budget_ms: default_inline_budget(),
            answer_cache: AnswerCacheConfig::default(),
            memory_limit_mib: default_memory_limit(),
            max_instances: default_max_instances(),
            max_core_instances_per_component: default_max_core_instances(),
            max_memories_per_component: default_max_memories(),
            max_tables_per_component: default_max_tables(),
            output_limit_bytes: default_output_limit(),
            forbidden_headers: Vec::new(),
            cache_dir: None,
            cache_max_mb: default_cache_max_mb(),
        }
    }
}

/// `[runtime.answer_cache]`. A provider is pure when its component imports nothing but the
/// provider types (no random, no clock, no other WASI), decided at load; only pure providers'
/// answers are cached, keyed by the evidence they declared (one cache per provider, so component
/// and settings are fixed).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerCacheConfig {
    /// `enabled`: cache pure providers' answers (default `true`).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// `max_entries`: answers kept per provider, least recently used evicted (default 10000).
    #[serde(default = "default_answer_cache_entries")]
    pub max_entries: u64,
    /// `ttl_secs`: how long an answer is reused (default 300).
    #[serde(default = "default_answer_cache_ttl")]
    pub ttl_secs: u64,
}

impl Default for AnswerCacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_entries: default_answer_cache_entries(),
            ttl_secs: default_answer_cache_ttl(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_answer_cache_entries() -> u64 {
    10_000
}
fn default_answer_cache_ttl() -> u64 {
    300
}

fn default_max_headers() -> usize {
    gatehouse_core::pipeline::ProviderHeaderLimits::default().max_count
}
fn default_max_header_bytes() -> usize {
    gatehouse_core::pipeline::ProviderHeaderLimits::default().max_bytes
}
fn default_call_cpu() -> u64 {
    5
}
fn default_call_timeout() -> u64 {
    1000
}
fn default_max_concurrent_pipelines() -> u32 {
    64
}
fn default_inline_budget() -> u64 {
    15
}
fn default_cache_max_mb() -> u64 {
    1024
}
fn default_memory_limit() -> u64 {
    128
}
fn default_max_core_instances() -> u32 {
    32
}
fn default_max_memories() -> u32 {
    2
}
fn default_max_tables() -> u32 {
    32
}
fn default_output_limit() -> usize {
    4096
}
fn default_max_instances() -> u32 {
    1000
}

/// A provider kind's section: which provider, and each provider's settings.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KindConfig {
    /// `provider`: the provider to run; absent means none (neutral behaviour).
    pub provider: Option<String>,
    /// `providers.NAME`: per-provider settings.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// `[geo]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GeoConfig {
    /// `default_country`: the jurisdiction for requests whose location is unknown or matches no
    /// rule (`FR`, `US/CA`, ...). Required.
    pub default_country: Option<String>,
    /// `provider`.
    pub provider: Option<String>,
    /// `providers.NAME`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
}

/// `[ec]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EcConfig {
    /// `provider`.
    pub provider: Option<String>,
    /// `providers.NAME`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// `cookie_name`: the Edge Cookie's name.
    #[serde(default = "default_cookie_name")]
    pub cookie_name: String,
    /// `cookie_domain`: the publisher's cookie domain (`Domain=` attribute); absent = host-only.
    pub cookie_domain: Option<String>,
    /// `max_age_secs`: the cookie's `Max-Age`.
    #[serde(default = "default_max_age")]
    pub max_age_secs: u64,
    /// `allowed_headers`: response headers a provider may set (`set-cookie` is always refused).
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    /// `max_headers`: most response headers one provider answer may add.
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    /// `max_header_bytes`: most bytes (names plus values) of one provider answer's headers.
    #[serde(default = "default_max_header_bytes")]
    pub max_header_bytes: usize,
    /// `client_script`: the page script of an external client-side provider (relative to the
    /// config file), served at `GET /_ts/ec.js`; the bundled `client-side` and `client-fixed`
    /// ship their own. Refused for a provider that computes its value on the server.
    pub client_script: Option<PathBuf>,
}

impl Default for EcConfig {
    fn default() -> Self {
        Self {
            provider: None,
            providers: BTreeMap::new(),
            cookie_name: default_cookie_name(),
            cookie_domain: None,
            max_age_secs: default_max_age(),
            allowed_headers: Vec::new(),
            max_headers: default_max_headers(),
            max_header_bytes: default_max_header_bytes(),
            client_script: None,
        }
    }
}

fn default_cookie_name() -> String {
    "ts-ec".into()
}
fn default_max_age() -> u64 {
    31_536_000
}

/// One provider's table. Not `deny_unknown_fields`: every key besides `path` and `sha256` is a
/// provider setting.
#[derive(Debug, Default, Deserialize)]
pub struct ProviderConfig {
    /// `path`: an external component file (relative to the config file). Absent = bundled.
    pub path: Option<PathBuf>,
    /// `sha256`: the external component's expected digest (lowercase hex). Required with `path`.
    pub sha256: Option<String>,
    /// Every other key: settings for the provider, visible to it alone.
    #[serde(flatten)]
    pub settings: BTreeMap<String, SettingValue>,
}

/// A provider setting: inline, or read from the environment at startup.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SettingValue {
    /// An inline string.
    Text(String),
    /// An inline integer.
    Integer(i64),
    /// An inline boolean.
    Bool(bool),
    /// `{ env = "VAR" }`.
    Env {
        /// The environment variable.
        env: String,
    },
}

/// Where a provider's component comes from.
#[derive(Debug, Clone)]
pub enum ComponentSource {
    /// A first-party provider compiled into this binary.
    Bundled(&'static str),
    /// An external file pinned by digest.
    External {
        /// The file.
        path: PathBuf,
        /// The expected lowercase hex sha256.
        sha256: String,
    },
}

/// A provider selected for a kind, fully resolved.
#[derive(Debug, Clone)]
pub struct SelectedProvider {
    /// The config name (`[ec] provider = "NAME"`).
    pub name: String,
    /// The config key of its table, for error messages (`ec.providers.hmac`).
    pub key: String,
    /// Where the component comes from.
    pub source: ComponentSource,
    /// The provider's settings, environment references resolved.
    pub settings: Vec<(String, String)>,
}

/// `line L, column C: message`, without the source excerpt `toml`'s `Display` adds: the offending
/// line may hold a secret (a mistyped `passphrase = ...`), and config values are never printed.
fn describe_toml_error(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {}", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
}

impl Config {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// When the file cannot be read or does not match the schema.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let mut config: Self = toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: describe_toml_error(&text, &e),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.make_paths_relative_to(base);
        config.validate()?;
        Ok(config)
    }

    fn make_paths_relative_to(&mut self, base: &Path) {
        let fix = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        for p in [
            self.policy.path.as_mut(),
            self.origin.ca_file.as_mut(),
            self.server.pid_file.as_mut(),
            self.ec.client_script.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            fix(p);
        }
        if let Some(p) = self.store.path.as_mut() {
            fix(p);
        }
        base.clone_into(&mut self.store.config_dir);
        if let Some(tls) = self.server.tls.as_mut() {
            fix(&mut tls.cert);
            fix(&mut tls.key);
        }
        if let Some(p) = self
            .runtime
            .cache_dir
            .as_mut()
            .filter(|p| !p.as_os_str().is_empty())
        {
            fix(p);
        }
        for providers in [
            &mut self.geo.providers,
            &mut self.device.providers,
            &mut self.ec.providers,
        ] {
            for p in providers.values_mut().filter_map(|p| p.path.as_mut()) {
                fix(p);
            }
        }
    }

    /// The validated `[geo] default_country` value.
    ///
    /// # Errors
    /// When the key is missing or empty.
    pub fn default_country(&self) -> Result<&str, ConfigError> {
        match self.geo.default_country.as_deref().map(str::trim) {
            Some(c) if !c.is_empty() => Ok(c),
            _ => Err(ConfigError::invalid(
                "geo.default_country",
                "is required: set the jurisdiction for requests whose location is unknown \
                 (e.g. `FR` for the most protective baseline)",
            )),
        }
    }

    /// The provider selected for `section` (`geo`, `device`, `ec`), if any.
    ///
    /// # Errors
    /// When the name is neither bundled for this kind nor configured with a `path`, when `path`
    /// and `sha256` are not given together, or when an `{ env = .. }` variable is unset.
    pub fn selected_provider(
        &self,
        section: &str,
        bundled: &[&'static str],
    ) -> Result<Option<SelectedProvider>, ConfigError> {
        let (provider, providers) = match section {
            "geo" => (&self.geo.provider, &self.geo.providers),
            "device" => (&self.device.provider, &self.device.providers),
            _ => (&self.ec.provider, &self.ec.providers),
        };
        let Some(name) = provider else {
            return Ok(None);
        };
        let key = format!("{section}.providers.{name}");
        let table = providers.get(name);
        let source = match table.and_then(|t| t.path.clone()) {
            Some(path) => {
                let sha256 = table
                    .and_then(|t| t.sha256.clone())
                    .ok_or_else(|| {
                        ConfigError::invalid(
                            format!("{key}.sha256"),
                            "is required with `path`: pin the external component by digest",
                        )
                    })?
                    .to_ascii_lowercase();
                if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.sha256"),
                        "must be 64 hex digits",
                    ));
                }
                ComponentSource::External { path, sha256 }
            }
            None => {
                if table.is_some_and(|t| t.sha256.is_some()) {
                    return Err(ConfigError::invalid(
                        format!("{key}.sha256"),
                        "is only meaningful with `path`",
                    ));
                }
                if section == "geo" && name == crate::compose::FASTLY_GEO {
                    return Err(ConfigError::invalid(
                        "geo.provider",
                        crate::compose::FASTLY_GEO_ELSEWHERE,
                    ));
                }
                let bundled_name = bundled.iter().find(|b| **b == name.as_str()).ok_or_else(|| {
                    ConfigError::invalid(
                        format!("{section}.provider"),
                        format!(
                            "unknown provider `{name}`: not bundled for `{section}` (bundled: {}) \
                             and `[{key}]` has no `path`",
                            bundled.join(", ")
                        ),
                    )
                })?;
                ComponentSource::Bundled(bundled_name)
            }
        };
        let mut settings = Vec::new();
        for (k, v) in table.map(|t| &t.settings).into_iter().flatten() {
            let value = match v {
                SettingValue::Text(s) => s.clone(),
                SettingValue::Integer(i) => i.to_string(),
                SettingValue::Bool(b) => b.to_string(),
                SettingValue::Env { env } => std::env::var(env).map_err(|_| {
                    ConfigError::invalid(
                        format!("{key}.{k}"),
                        format!("environment variable `{env}` is not set"),
                    )
                })?,
            };
            settings.push((k.clone(), value));
        }
        Ok(Some(SelectedProvider {
            name: name.clone(),
            key,
            source,
            settings,
        }))
    }

    /// Checks every value that ends up in a response or steers the proxy: cookie attributes are
    /// written into `Set-Cookie` verbatim, allowlisted provider headers could otherwise replace the
    /// framing of a response. Called by [`Config::load`].
    ///
    /// # Errors
    /// The first invalid value, naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        // The `[ec]` values are checked by the core, the one place that knows what a cookie
        // attribute or an allowlisted header may be; its errors name the key.
        self.edge_cookie_settings().validated()?;
        self.validate_runtime()?;
        self.client_ip_header()?;
        self.cdn_headers()?;
        self.store.validate()?;
        self.fingerprint_headers()?;
        let positive = [
            ("server.max_body_bytes", self.server.max_body_bytes),
            (
                "server.header_read_timeout_ms",
                self.server.header_read_timeout_ms,
            ),
            ("server.idle_timeout_ms", self.server.idle_timeout_ms),
            (
                "server.max_connections",
                u64::try_from(self.server.max_connections).unwrap_or(u64::MAX),
            ),
            (
                "server.tls_handshake_timeout_ms",
                self.server.tls_handshake_timeout_ms,
            ),
            (
                "server.http2_max_concurrent_streams",
                u64::from(self.server.http2_max_concurrent_streams),
            ),
            ("origin.timeout_ms", self.origin.timeout_ms),
            ("origin.connect_timeout_ms", self.origin.connect_timeout_ms),
            (
                "origin.body_idle_timeout_ms",
                self.origin.body_idle_timeout_ms,
            ),
        ];
        for (key, value) in positive {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if let Some(admin) = &self.admin
            && admin.listen == self.server.listen
            && admin.listen.port() != 0
        {
            return Err(ConfigError::invalid(
                "admin.listen",
                "must differ from `server.listen`",
            ));
        }
        Ok(())
    }

    /// The `[runtime]` values that have a range.
    fn validate_runtime(&self) -> Result<(), ConfigError> {
        let r = &self.runtime;
        for (key, value) in [
            ("runtime.call_cpu_ms", r.call_cpu_ms),
            ("runtime.call_timeout_ms", r.call_timeout_ms),
            (
                "runtime.max_concurrent_pipelines",
                u64::from(r.max_concurrent_pipelines),
            ),
            (
                "runtime.answer_cache.max_entries",
                r.answer_cache.max_entries,
            ),
            ("runtime.answer_cache.ttl_secs", r.answer_cache.ttl_secs),
            ("runtime.cache_max_mb", r.cache_max_mb),
        ] {
            if value == 0 {
                return Err(ConfigError::invalid(key, "must be greater than 0"));
            }
        }
        if r.inline_budget_ms > 100 {
            return Err(ConfigError::invalid(
                "runtime.inline_budget_ms",
                "must be at most 100: longer would let one request's providers hold an async \
                 worker (and every connection queued on it) that long",
            ));
        }
        Ok(())
    }

    /// The `[ec]` cookie and provider-header settings, as the core's page pipeline takes them
    /// (not yet validated: see [`Config::validate`]).
    #[must_use]
    pub fn edge_cookie_settings(&self) -> gatehouse_core::pipeline::EdgeCookieSettings {
        gatehouse_core::pipeline::EdgeCookieSettings {
            name: self.ec.cookie_name.clone(),
            domain: self.ec.cookie_domain.clone(),
            max_age_secs: self.ec.max_age_secs,
            allowed_headers: self.ec.allowed_headers.clone(),
            header_limits: gatehouse_core::pipeline::ProviderHeaderLimits {
                max_count: self.ec.max_headers,
                max_bytes: self.ec.max_header_bytes,
            },
        }
    }

    /// The parsed `[server] client_ip_header`.
    ///
    /// # Errors
    /// When it is not a header name.
    pub fn client_ip_header(&self) -> Result<crate::client_ip::ClientIpHeader, ConfigError> {
        self.server
            .client_ip_header
            .parse()
            .map_err(|e| ConfigError::invalid("server.client_ip_header", e))
    }

    /// The parsed `[server.fingerprint_headers]`: `(ja4, http2)` header names.
    ///
    /// # Errors
    /// When a name is not a header name, or no trusted proxy is configured (the headers would
    /// never be believed).
    pub fn fingerprint_headers(
        &self,
    ) -> Result<(Option<http::HeaderName>, Option<http::HeaderName>), ConfigError> {
        let Some(f) = &self.server.fingerprint_headers else {
            return Ok((None, None));
        };
        let parse = |key: &str, v: &Option<String>| {
            v.as_deref()
                .map(|h| {
                    http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes())
                        .map_err(|_| ConfigError::invalid(key, "is not a valid header name"))
                })
                .transpose()
        };
        let names = (
            parse("server.fingerprint_headers.ja4", &f.ja4)?,
            parse("server.fingerprint_headers.http2", &f.http2)?,
        );
        if self.server.trusted_proxies.is_empty() && (names.0.is_some() || names.1.is_some()) {
            return Err(ConfigError::invalid(
                "server.fingerprint_headers",
                "needs `server.trusted_proxies`: fingerprints are read only from the trusted CDN in front",
            ));
        }
        Ok(names)
    }

    /// The parsed `[server] cdn_headers`.
    ///
    /// # Errors
    /// When an entry is not a header name.
    pub fn cdn_headers(&self) -> Result<Vec<http::HeaderName>, ConfigError> {
        self.server
            .cdn_headers
            .iter()
            .enumerate()
            .map(|(i, h)| {
                http::HeaderName::from_bytes(h.trim().to_ascii_lowercase().as_bytes()).map_err(
                    |_| {
                        ConfigError::invalid(
                            format!("server.cdn_headers[{i}]"),
                            "is not a valid header name",
                        )
                    },
                )
            })
            .collect()
    }

    /// The validated drain settings: `(drain_delay, drain_timeout)`.
    ///
    /// # Errors
    /// When `server.drain_delay_ms` is not shorter than `server.drain_timeout_ms`.
    pub fn drain(&self) -> Result<(std::time::Duration, std::time::Duration), ConfigError> {
        let (delay, timeout) = (self.server.drain_delay_ms, self.server.drain_timeout_ms);
        if delay >= timeout {
            return Err(ConfigError::invalid(
                "server.drain_delay_ms",
                format!(
                    "must be shorter than `server.drain_timeout_ms` ({timeout}), which counts from the signal"
                ),
            ));
        }
        Ok((
            std::time::Duration::from_millis(delay),
            std::time::Duration::from_millis(timeout),
        ))
    }

    /// The parsed `[server] trusted_proxies`.
    ///
    /// # Errors
    /// When an entry is not an IP address or CIDR block.
    pub fn trusted_proxies(&self) -> Result<Vec<crate::client_ip::Cidr>, ConfigError> {
        self.server
            .trusted_proxies
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parse()
                    .map_err(|e| ConfigError::invalid(format!("server.trusted_proxies[{i}]"), e))
            })
            .collect()
    }
}
