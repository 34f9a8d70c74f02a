//! `gatehouse`: the standalone Gatehouse host.
//!
//! - `gatehouse serve --config FILE`: the edge server.
//! - `gatehouse reload --config FILE` (or `--pid N`): make the running server reload its config.
//! - `gatehouse permissions explain --country DE ...`: audit what the policy resolves to (with
//!   `--config`, which configured providers would be called).
//! - `gatehouse permissions diff OLD.yaml NEW.yaml`: what a policy change changes.
//! - `gatehouse consent decode STRING`: decode a consent string to JSON.
//! - `gatehouse providers digest FILE`: the sha256 to pin an external provider with.
//! - `gatehouse providers inspect FILE [--json]`: what a provider declares and imports.
//! - `gatehouse partner hash-key < KEY`: the `api_key_sha256` of a partner's API key.
//! - `gatehouse compose --config FILE --target fastly|wasi-http -o app.wasm`: one deployable
//!   component.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use gatehouse_core::pipeline::ProviderKind;
use gatehouse_core::policy::{
    ConfiguredProvider, DefaultCountry, PermissionSet, Policy, diff_policies,
};

use gatehouse::config::Config;
use gatehouse::{app, consent, listener, reload, runtime};

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
        /// Log line format on stderr: `text` (coloured only on a terminal) or `json` (one object
        /// per line). The level filter is `GATEHOUSE_LOG` (e.g. `debug`, `gatehouse=debug`).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Make a running server reload its configuration (sends it `SIGHUP`).
    ///
    /// The server is found through `server.pid_file` of `--config`, or by `--pid`. The outcome
    /// (reloaded, or refused with the error) is in the server's log.
    Reload {
        /// The configuration file the server was started with (its `server.pid_file` is read).
        #[arg(long, short, required_unless_present = "pid", conflicts_with = "pid")]
        config: Option<PathBuf>,
        /// The server's process id.
        #[arg(long)]
        pid: Option<i32>,
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
    /// Partner tools.
    Partner {
        #[command(subcommand)]
        command: PartnerCommand,
    },
    /// Compose one deployable component for Fastly Compute or a wasi:http platform from the config, the prebuilt
    /// host component and the providers (digests, imports and manifests checked first).
    Compose {
        /// The configuration file (TOML), as for `serve`.
        #[arg(long, short)]
        config: PathBuf,
        /// The platform to compose for.
        #[arg(long, value_enum)]
        target: gatehouse::compose::Target,
        /// Where to write the composed component.
        #[arg(long, short)]
        output: PathBuf,
    },
}

#[derive(Subcommand)]
enum PartnerCommand {
    /// Read a partner's API key from stdin and print its `api_key_sha256` (lowercase hex).
    ///
    /// One trailing line break is not part of the key. Keys shorter than 32 bytes are refused.
    HashKey,
}

/// `serve --log-format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
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
    /// Show what a policy change changes: every jurisdiction, permission and signal situation
    /// whose outcome differs, and the rules, groups, permissions and mappings behind it. Exits 0
    /// when nothing changes, 1 when something does, 2 on error.
    Diff {
        /// The current `permissions.yaml`.
        old: PathBuf,
        /// The proposed `permissions.yaml`.
        new: PathBuf,
        /// The default country (`geo.default_country`) to evaluate both with; default: taken from
        /// `--config`, else `FR`. Validated against both policies, as at startup.
        #[arg(long)]
        default_country: Option<String>,
        /// A config file whose `[geo] default_country` to use.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON instead of a report.
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
        Command::Serve { config, log_format } => {
            init_tracing(log_format);
            match serve(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    eprintln!("error: {e:#}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Reload { config, pid } => {
            let target = match (&config, pid) {
                (_, Some(pid)) => reload::Target::Pid(pid),
                (Some(config), None) => reload::Target::Config(config),
                (None, None) => unreachable!("clap requires `--config` or `--pid`"),
            };
            match reload::signal_running_server(target) {
                Ok(pid) => {
                    println!("sent SIGHUP to gatehouse process {pid}; the outcome is in its log");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
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
        Command::Permissions {
            command:
                PermissionsCommand::Diff {
                    old,
                    new,
                    default_country,
                    config,
                    json,
                },
        } => match diff(&old, &new, default_country, config.as_deref(), json) {
            Ok((out, changed)) => {
                print!("{out}");
                if changed {
                    ExitCode::from(1)
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
        Command::Consent {
            command: ConsentCommand::Decode { input, kind },
        } => consent::decode_command(&input, kind.as_deref()),
        Command::Compose {
            config,
            target,
            output,
        } => gatehouse::compose::run_command(&config, target, &output),
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
        Command::Partner {
            command: PartnerCommand::HashKey,
        } => match hash_key_from_stdin() {
            Ok(hash) => {
                println!("{hash}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(2)
            }
        },
    }
}

/// `gatehouse partner hash-key`: the key is never echoed, logged or put in an error.
fn hash_key_from_stdin() -> anyhow::Result<String> {
    use std::io::Read as _;
    let mut key = Vec::new();
    std::io::stdin()
        .read_to_end(&mut key)
        .context("cannot read the api key from stdin")?;
    if key.last() == Some(&b'\n') {
        key.pop();
        if key.last() == Some(&b'\r') {
            key.pop();
        }
    }
    Ok(gatehouse_core::sync::hash_api_key(&key)?)
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

/// Logs go to stderr, filtered by `GATEHOUSE_LOG` (default `info`; the only variable read),
/// coloured only when stderr is a terminal.
fn init_tracing(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        LogFormat::Json => builder.json().with_ansi(false).init(),
    }
}

fn serve(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let settings = listener::Settings::from_config(&config)?;
    let app = app::build(&config)?;
    let tls = settings
        .tls
        .as_ref()
        .map(listener::tls_config)
        .transpose()?;
    let live = Arc::new(listener::Live::new(app, tls));
    let reloader = reload::Reloader::new(config_path.to_owned(), settings.clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(listener::serve(live, settings, reloader));
    // Connections cut off by the drain timeout, or a reload still compiling, must not hold the
    // exit up.
    runtime.shutdown_timeout(Duration::from_millis(500));
    result
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
    let policy = app::load_policy(policy_path.as_deref())?;
    let default_key = match (&args.default_country, &config) {
        (Some(key), _) => key.clone(),
        (None, Some(config)) => config.default_country()?.to_owned(),
        (None, None) => "FR".to_owned(),
    };
    let default_country = policy
        .default_country(&default_key)
        .map_err(|e| anyhow::anyhow!("default country: {e}"))?;
    let consent_config = config
        .as_ref()
        .map(|c| c.consent.clone())
        .unwrap_or_default();
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
    let mut explanation = rule.explain(&signals);
    if let Some(config) = &config {
        let store_on_device = policy
            .permission_id("store-on-device")
            .context("the policy does not define `store-on-device`")?;
        let loaded = configured_provider_requirements(config, policy)?;
        let providers: Vec<ConfiguredProvider<'_>> = loaded
            .iter()
            .map(|(kind, name, required)| ConfiguredProvider {
                kind: *kind,
                name,
                required: *required,
            })
            .collect();
        explanation = explanation.with_providers(rule.explain_providers(
            &default_country,
            &signals,
            store_on_device,
            &providers,
        ));
    }
    Ok(if args.json {
        serde_json::to_string_pretty(&explanation)?
    } else {
        explanation.to_string()
    })
}

/// `permissions diff`: the report (text or JSON) and whether anything changed.
fn diff(
    old_path: &Path,
    new_path: &Path,
    default_country: Option<String>,
    config: Option<&Path>,
    json: bool,
) -> anyhow::Result<(String, bool)> {
    let default_key = match (default_country, config) {
        (Some(key), _) => key,
        (None, Some(config)) => Config::load(config)?.default_country()?.to_owned(),
        (None, None) => "FR".to_owned(),
    };
    // Each file is validated as `serve` validates `policy.path`, then the default country
    // against it.
    let load = |path: &Path| -> anyhow::Result<(&'static Policy, DefaultCountry)> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read policy `{}`", path.display()))?;
        let policy: &'static Policy = Box::leak(Box::new(Policy::from_yaml_str(
            &text,
            &path.display().to_string(),
        )?));
        let default_country = policy.default_country(&default_key)?;
        Ok((policy, default_country))
    };
    let (old, old_default) = load(old_path)?;
    let (new, new_default) = load(new_path)?;
    let report = diff_policies(old, &old_default, new, &new_default);
    let out = if json {
        format!("{}\n", serde_json::to_string_pretty(&report)?)
    } else {
        report.to_string()
    };
    Ok((out, report.changed))
}

/// Each configured provider's kind, config name and required permissions, read from its own
/// manifest by loading it exactly as `serve` does (digest pinning, import checks, `describe`), so
/// `permissions explain --config` reports what the server would enforce.
fn configured_provider_requirements(
    config: &Config,
    policy: &Policy,
) -> anyhow::Result<Vec<(ProviderKind, String, PermissionSet)>> {
    let select = |kind: ProviderKind| {
        config.selected_provider(kind.section(), &runtime::bundled_names(kind))
    };
    let (geo, device, ec) = (
        select(ProviderKind::Geo)?,
        select(ProviderKind::Device)?,
        select(ProviderKind::EdgeCookie)?,
    );
    let mut limits = app::runtime_limits(config);
    // Loading needs one instance at a time.
    limits.max_instances = limits.max_instances.min(8);
    let rt =
        runtime::ProviderRuntime::load(limits, policy, geo.as_ref(), device.as_ref(), ec.as_ref())?;
    rt.providers()
        .iter()
        .map(|info| {
            let kind = [
                ProviderKind::Geo,
                ProviderKind::Device,
                ProviderKind::EdgeCookie,
            ]
            .into_iter()
            .find(|kind| kind.section() == info.kind)
            .with_context(|| {
                format!("provider `{}` has unknown kind `{}`", info.name, info.kind)
            })?;
            let required = policy.set_from_names(&info.required_permissions)?;
            Ok((kind, info.name.clone(), required))
        })
        .collect()
}
