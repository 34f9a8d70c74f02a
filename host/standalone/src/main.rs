//! `gatehouse`: the standalone Gatehouse host.
//!
//! - `gatehouse serve --config FILE`: the edge server.
//! - `gatehouse permissions explain --country DE ...`: audit what the policy resolves to.
//! - `gatehouse consent decode STRING`: decode a consent string to JSON.
//! - `gatehouse providers digest FILE`: the sha256 to pin an external provider with.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gatehouse_core::edge::{EdgeCookieRules, ProviderKind};
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
        /// A GPP string the request carried (its `__gpp` cookie).
        #[arg(long)]
        gpp: Option<String>,
        /// The request's `__gpp_sid` (applicable GPP section ids, e.g. `2,7` or `-1`).
        #[arg(long, allow_hyphen_values = true)]
        gpp_sid: Option<String>,
        /// A whole `Cookie` header, parsed exactly as the server parses it.
        #[arg(long)]
        cookie: Option<String>,
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
                    gpp,
                    gpp_sid,
                    cookie,
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
                gpp,
                gpp_sid,
                cookie,
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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
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
    let ec_rules = EdgeCookieRules::new(policy, &config.ec.allowed_headers)
        .map_err(|reason| config::ConfigError::invalid("ec", reason))?;
    let cache_dir = match &config.runtime.cache_dir {
        Some(dir) if dir.as_os_str().is_empty() => None,
        Some(dir) => Some(dir.clone()),
        None => default_cache_dir(),
    };
    let limits = runtime::Limits {
        call_timeout: Duration::from_millis(config.runtime.call_timeout_ms),
        memory_bytes: usize::try_from(config.runtime.memory_limit_mib.saturating_mul(1 << 20))
            .unwrap_or(usize::MAX),
        max_instances: config.runtime.max_instances,
        cache_dir,
    };
    let rt =
        runtime::ProviderRuntime::load(limits, policy, geo.as_ref(), device.as_ref(), ec.as_ref())?;
    for p in rt.providers() {
        tracing::info!(
            kind = p.kind,
            name = %p.name,
            id = %p.id,
            version = %p.version,
            requires = ?p.required_permissions,
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
        policy,
        default_country,
        ec_rules,
        cookie: server::CookieSettings {
            name: config.ec.cookie_name.clone(),
            domain: config.ec.cookie_domain.clone(),
            max_age_secs: config.ec.max_age_secs,
        },
        runtime: rt,
        trusted_proxies,
        origin,
        consent: config.consent,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(server::serve(app, config.server.listen))
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
    gpp: Option<String>,
    gpp_sid: Option<String>,
    cookie: Option<String>,
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
    let rule = policy.match_jurisdiction(
        args.country.as_deref(),
        args.region.as_deref(),
        &default_country,
    );
    let signals = consent::explain_signals(
        &consent_config,
        &consent::ExplainInput {
            tcf: args.tcf.as_deref(),
            gpp: args.gpp.as_deref(),
            gpp_sid: args.gpp_sid.as_deref(),
            us_privacy: args.us_privacy.as_deref(),
            gpc: args.gpc,
            cookie: args.cookie.as_deref(),
        },
        gatehouse_core::consent::JurisdictionFacts {
            gdpr_applies: rule.gdpr_applies(),
            us_privacy_applies: rule.us_privacy_applies(),
        },
    )?;
    let explanation = rule.explain(&signals);
    Ok(if args.json {
        serde_json::to_string_pretty(&explanation)?
    } else {
        explanation.to_string()
    })
}
