//! `gatehouse`: the standalone Gatehouse host.
//!
//! - `gatehouse serve --config FILE`: the edge server.
//! - `gatehouse permissions explain --country DE ...`: audit what the policy resolves to.
//! - `gatehouse consent decode STRING`: decode a consent string to JSON.
//! - `gatehouse providers digest FILE`: the sha256 to pin an external provider with.
//! - `gatehouse providers inspect FILE [--json]`: what a provider declares and imports.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gatehouse_core::pipeline::{
    EdgeCookieSettings, PagePipeline, PipelineSettings, ProviderHeaderLimits, ProviderKind,
};
use gatehouse_core::policy::Policy;

use gatehouse::config::{self, Config};
use gatehouse::{consent, runtime, server};

#[derive(Parser)]
#[command(
    name = "gatehouse",
    version,
    about = "Gatehouse: a policy-gated edge server for publishers"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve: proxy to the origin, decide per request, run permitted providers.
    Serve {
        /// The configuration file (TOML).
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Inspect the permission policy.
    Permissions {
        #[command(subcommand)]
        command: PermissionsCommand,
    },
    /// Consent string tools.
    Consent {
        #[command(subcommand)]
        command: ConsentCommand,
    },
    /// Provider component tools.
    Providers {
        #[command(subcommand)]
        command: ProvidersCommand,
    },
}

#[derive(Subcommand)]
enum PermissionsCommand {
    /// Show the permissions a request would hold, and which rule and signal decided each.
    Explain {
        /// ISO 3166-1 alpha-2 country of the request (omit for "unknown": the default country).
        #[arg(long)]
        country: Option<String>,
        /// ISO 3166-2 subdivision without the country prefix (e.g. `CA`).
        #[arg(long)]
        region: Option<String>,
        /// A TCF v2 TC string the request carried.
        #[arg(long)]
        tcf: Option<String>,
        /// The request carried `Sec-GPC: 1`.
        #[arg(long)]
        gpc: bool,
        /// A US Privacy string the request carried (e.g. `1YYN`).
        #[arg(long)]
        us_privacy: Option<String>,
        /// The default country (`geo.default_country`); default: taken from `--config`, else `FR`.
        #[arg(long)]
        default_country: Option<String>,
        /// A config file whose `[policy]` and `[geo] default_country` to use.
        #[arg(long)]
        config: Option<PathBuf>,
        /// A `permissions.yaml` to use instead of the embedded one.
        #[arg(long)]
        policy: Option<PathBuf>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ConsentCommand {
    /// Decode a TCF, GPP, US Privacy or Additional Consent string to JSON.
    Decode {
        /// The string.
        input: String,
        /// The kind; auto-detected when omitted.
        #[arg(long)]
        kind: Option<String>,
    },
}

#[derive(Subcommand)]
enum ProvidersCommand {
    /// Print the sha256 of a component file, for `sha256 = ".."` in the config.
    Digest {
        /// The component file.
        file: PathBuf,
    },
    /// Show what a provider component is before pinning it: world, id, version, required
    /// permissions, declared reads, every import, size and sha256. Runs its `describe` in the
    /// sandbox.
    Inspect {
        /// The component file.
        file: PathBuf,
        /// A setting passed to `describe`, as `key=value` (repeatable).
        #[arg(long = "setting", value_name = "KEY=VALUE")]
        settings: Vec<String>,
        /// Print JSON (`world`, `id`, `version`, `required_permissions`, `reads`, `imports`,
        /// `size`, `sha256`).
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config } => {
            init_tracing();
            match serve(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Permissions {
            command:
                PermissionsCommand::Explain {
                    country,
                    region,
                    tcf,
                    gpc,
                    us_privacy,
                    default_country,
                    config,
                    policy,
                    json,
                },
        } => {
            let result = explain(ExplainArgs {
                country,
                region,
                tcf,
                gpc,
                us_privacy,
                default_country,
                config,
                policy,
                json,
            });
            match result {
                Ok(out) => {
                    println!("{out}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Consent {
            command: ConsentCommand::Decode { input, kind },
        } => consent::decode_command(&input, kind.as_deref()),
        Command::Providers {
            command:
                ProvidersCommand::Inspect {
                    file,
                    settings,
                    json,
                },
        } => match inspect(&file, &settings, json) {
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Providers {
            command: ProvidersCommand::Digest { file },
        } => match std::fs::read(&file) {
            Ok(bytes) => {
                println!("{}", runtime::sha256_hex(&bytes));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: cannot read `{}`: {e}", file.display());
                ExitCode::from(2)
            }
        },
    }
}

/// `gatehouse providers inspect`.
fn inspect(file: &Path, settings: &[String], json: bool) -> anyhow::Result<String> {
    let settings = settings
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow::anyhow!("`--setting {s}`: expected `key=value`"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bytes = std::fs::read(file).with_context(|| format!("cannot read `{}`", file.display()))?;
    let sandbox = runtime::Sandbox::new(runtime::Limits::default())?;
    let found = sandbox.inspect(&bytes, &settings, &file.display().to_string())?;
    if json {
        return Ok(serde_json::to_string_pretty(&found)?);
    }
    // The manifest is the provider's own text: escape it so it cannot drive the terminal.
    let list = |items: &[String]| {
        if items.is_empty() {
            "(none)".to_owned()
        } else {
            items
                .iter()
                .map(|i| i.escape_debug().to_string())
                .collect::<Vec<_>>()
                .join("\n                      ")
        }
    };
    Ok(format!(
        "world:                {}\nid:                   {}\nversion:              {}\n\
         required permissions: {}\nreads:                {}\nimports:              {}\n\
         size:                 {} bytes\nsha256:               {}",
        found.world,
        found.id.escape_debug(),
        found.version.escape_debug(),
        list(&found.required_permissions),
        list(&found.reads),
        list(&found.imports),
        found.size,
        found.sha256,
    ))
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only on a terminal: escape codes in a log file or pipe would be noise (and would
    // make the provider-controlled text in a log line harder to audit).
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .init();
}

/// Loads the policy: the file at `path`, or the embedded default.
fn load_policy(path: Option<&Path>) -> anyhow::Result<&'static Policy> {
    match path {
        None => Policy::embedded().context("the embedded permissions.yaml is invalid"),
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| {
                format!("cannot read policy `{}` (`policy.path`)", path.display())
            })?;
            let policy = Policy::from_yaml_str(&text, &path.display().to_string())?;
            // The policy lives as long as the process; leaking it lets every request borrow it.
            Ok(Box::leak(Box::new(policy)))
        }
    }
}

fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let policy = load_policy(config.policy.path.as_deref())?;
    let default_country_key = config.default_country()?;
    let default_country = policy.default_country(default_country_key)?;
    tracing::info!(
        policy = policy.source(),
        "default jurisdiction baseline: {}",
        policy.baseline_summary(&default_country)
    );
    let trusted_proxies = config.trusted_proxies()?;
    let select = |kind: ProviderKind| {
        config.selected_provider(kind.section(), &runtime::bundled_names(kind))
    };
    let geo = select(ProviderKind::Geo)?;
    let device = select(ProviderKind::Device)?;
    let ec = select(ProviderKind::EdgeCookie)?;
    let pipeline = PagePipeline::new(
        policy,
        PipelineSettings {
            default_country: default_country_key.to_owned(),
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
    let cache_dir = match &config.runtime.cache_dir {
        Some(dir) if dir.as_os_str().is_empty() => None,
        Some(dir) => Some(dir.clone()),
        None => default_cache_dir(),
    };
    let limits = runtime_limits(&config.runtime, cache_dir);
    let rt =
        runtime::ProviderRuntime::load(limits, policy, geo.as_ref(), device.as_ref(), ec.as_ref())?;
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
    let origin = server::Origin::from_config(
        &config.origin.url,
        config.origin.preserve_host,
        Duration::from_millis(config.origin.timeout_ms),
    )
    .map_err(|reason| config::ConfigError::invalid("origin.url", reason))?;
    let app = Arc::new(server::App {
        pipeline,
        runtime: rt,
        trusted_proxies,
        origin,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::serve(app, config.server.listen))
}

/// The sandbox limits of `[runtime]`.
fn runtime_limits(runtime: &config::RuntimeConfig, cache_dir: Option<PathBuf>) -> runtime::Limits {
    runtime::Limits {
        call_timeout: Duration::from_millis(runtime.call_timeout_ms),
        memory_bytes: usize::try_from(runtime.memory_limit_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        max_instances: runtime.max_instances,
        max_core_instances_per_component: runtime.max_core_instances_per_component,
        max_memories_per_component: runtime.max_memories_per_component,
        max_tables_per_component: runtime.max_tables_per_component,
        output_limit_bytes: runtime.output_limit_bytes,
        forbidden_headers: runtime.forbidden_headers.clone(),
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

struct ExplainArgs {
    country: Option<String>,
    region: Option<String>,
    tcf: Option<String>,
    gpc: bool,
    us_privacy: Option<String>,
    default_country: Option<String>,
    config: Option<PathBuf>,
    policy: Option<PathBuf>,
    json: bool,
}

fn explain(args: ExplainArgs) -> anyhow::Result<String> {
    let config = args.config.as_deref().map(Config::load).transpose()?;
    let policy_path = args
        .policy
        .clone()
        .or_else(|| config.as_ref().and_then(|c| c.policy.path.clone()));
    let policy = load_policy(policy_path.as_deref())?;
    let default_key = match (&args.default_country, &config) {
        (Some(key), _) => key.clone(),
        (None, Some(config)) => config.default_country()?.to_owned(),
        (None, None) => "FR".to_owned(),
    };
    let default_country = policy
        .default_country(&default_key)
        .map_err(|e| anyhow::anyhow!("default country: {e}"))?;
    let consent_config = config.map(|c| c.consent).unwrap_or_default();
    let signals = consent::explain_signals(
        &consent_config,
        args.tcf.as_deref(),
        args.gpc,
        args.us_privacy.as_deref(),
    )?;
    let rule = policy.match_jurisdiction(
        args.country.as_deref(),
        args.region.as_deref(),
        &default_country,
    );
    let explanation = rule.explain(&signals);
    Ok(if args.json {
        serde_json::to_string_pretty(&explanation)?
    } else {
        explanation.to_string()
    })
}
