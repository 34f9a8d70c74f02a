//! End-to-end check of the vendor example providers (`examples/vendor-*`) against a real
//! `gatehouse serve`, as a publisher would run them: inspected, pinned by sha256, loaded, and
//! called only where the policy permits.
//!
//! ```text
//! gatehouse-vendor-e2e --gatehouse BIN --rust EC.wasm --python GEO.wasm --js DEVICE.wasm [--cache-dir DIR]
//! ```
//!
//! `--cache-dir` is the server's `[runtime] cache_dir` (compiled components, keyed by digest and
//! engine): give a lasting directory so a second run does not compile the Python and JavaScript
//! components again. Without it a fresh directory is used and removed afterwards.
//!
//! `.ci/vendor-e2e` builds the three examples exactly as their READMEs say and runs this. Every check
//! prints `ok` or `FAILED` with the reason; the run ends with `N passed, M failed` and exits
//! non-zero on any failure or missing argument. Nothing is skipped.
//!
//! How "called" and "not called" are told apart from outside (the server is a black box):
//! - Edge Cookie (std Rust): when called it sets the allowlisted header `x-example-ec`.
//! - Geo (Python): its IP table sends 192.0.2.0/24 to DE, where the Edge Cookie needs consent;
//!   without its answer the request falls back to `default_country = "US"`, where it does not.
//! - Device (JavaScript): it classifies a crawler User-Agent as a bot, and bots get no Edge
//!   Cookie; without its answer the request is `unknown` (not a bot) and gets one.

use std::io::{BufRead, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use sha2::{Digest, Sha256};

const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
const CRAWLER: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
/// A publisher-configured bot (the JS example's `extra_bots` setting), matched by no built-in rule.
const UPTIME_MONITOR: &str = "acme-uptime/3.2 (+https://status.example)";
/// GPP with the US national section: targeted-advertising opt-out only (sale and sharing not
/// opted out). It revokes `create-ads-profile` (the geo example's permission), not
/// `store-on-device`.
const GPP_TARGETED_ADS_OPT_OUT: &str = "__gpp=DBABLA~BVVpAAAAAqA; __gpp_sid=7";
/// IPs in the Python example's table (documentation ranges).
const IP_DE: &str = "192.0.2.7";
const IP_US_CA: &str = "198.51.100.9";
const IP_US: &str = "203.0.113.5";
/// The Edge Cookie example's setting, for `inspect` (the serve config has the same).
const SECRET_SETTING: &str = "secret=vendor-e2e-secret-0123456789";
/// The geo example's IP table.
const RANGES_SETTING: &str = "ranges=192.0.2.0/24=DE, 198.51.100.0/24=US/CA, 203.0.113.0/24=US";

struct Args {
    gatehouse: PathBuf,
    rust: PathBuf,
    python: PathBuf,
    js: PathBuf,
    cache_dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = std::env::args().skip(1);
    let (mut gatehouse, mut rust, mut python, mut js) = (None, None, None, None);
    let mut cache_dir = None;
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .map(PathBuf::from)
            .with_context(|| format!("`{flag}` needs a value"))?;
        match flag.as_str() {
            "--gatehouse" => gatehouse = Some(value),
            "--rust" => rust = Some(value),
            "--python" => python = Some(value),
            "--js" => js = Some(value),
            "--cache-dir" => cache_dir = Some(value),
            other => bail!("unknown argument `{other}`"),
        }
    }
    let need = |v: Option<PathBuf>, flag: &str| -> Result<PathBuf> {
        let path = v.with_context(|| format!("missing `{flag} PATH`"))?;
        ensure!(
            path.is_file(),
            "`{flag}`: `{}` is not a file",
            path.display()
        );
        // The configs the check writes live in a scratch directory, where a relative path
        // would resolve elsewhere.
        std::fs::canonicalize(&path).with_context(|| format!("`{flag}`: `{}`", path.display()))
    };
    Ok(Args {
        gatehouse: need(gatehouse, "--gatehouse")?,
        rust: need(rust, "--rust")?,
        python: need(python, "--python")?,
        js: need(js, "--js")?,
        cache_dir,
    })
}

/// Counts checks; each prints one line.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn check(&mut self, name: &str, result: Result<()>) {
        match result {
            Ok(()) => {
                self.passed += 1;
                println!("check {name} ... ok");
            }
            Err(e) => {
                self.failed += 1;
                println!("check {name} ... FAILED: {e:#}");
            }
        }
    }
}

fn main() {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("error: {e:#}");
            eprintln!(
                "usage: gatehouse-vendor-e2e --gatehouse BIN --rust EC.wasm --python GEO.wasm --js DEVICE.wasm [--cache-dir DIR]"
            );
            std::process::exit(2);
        }
    };
    let mut report = Report::default();
    if let Err(e) = run(&args, &mut report) {
        report.failed += 1;
        println!("check setup ... FAILED: {e:#}");
    }
    println!("\n{} passed, {} failed", report.passed, report.failed);
    if report.failed > 0 || report.passed == 0 {
        std::process::exit(1);
    }
}

/// What `providers inspect --json` says about one example.
struct Inspected {
    sha256: String,
}

/// Expected facts per example, checked against `gatehouse providers inspect`.
struct Example<'a> {
    label: &'a str,
    path: &'a Path,
    world: &'a str,
    id: &'a str,
    permission: &'a str,
    reads: &'a [&'a str],
    imports: &'a [&'a str],
    /// The settings `describe` needs (as in the serve config).
    settings: &'a [&'a str],
}

fn inspect(gatehouse: &Path, example: &Example<'_>) -> Result<Inspected> {
    let out = Command::new(gatehouse)
        .args(["providers", "inspect", "--json"])
        .arg(example.path)
        .args(example.settings.iter().flat_map(|s| ["--setting", s]))
        .output()
        .context("run `gatehouse providers inspect --json`")?;
    ensure!(
        out.status.success(),
        "`providers inspect --json` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("`providers inspect --json` output")?;
    let field = |name: &str| {
        json.get(name)
            .with_context(|| format!("inspect JSON has no `{name}`: {json}"))
    };
    ensure!(
        field("world")?.as_str() == Some(example.world),
        "world: {}",
        field("world")?
    );
    ensure!(
        field("id")?.as_str() == Some(example.id),
        "id: {}",
        field("id")?
    );
    let permissions = field("required_permissions")?.to_string();
    ensure!(
        permissions.contains(example.permission),
        "required_permissions {permissions} lacks `{}`",
        example.permission
    );
    let reads = field("reads")?
        .as_array()
        .context("`reads` is not an array")?;
    let reads: Vec<String> = reads.iter().map(read_label).collect();
    ensure!(
        reads == example.reads,
        "reads {reads:?}, expected {:?}",
        example.reads
    );
    let imports = field("imports")?.to_string();
    for import in example.imports {
        ensure!(
            imports.contains(import),
            "imports {imports} lack `{import}`"
        );
    }
    let bytes = std::fs::read(example.path)?;
    let size = field("size")?.as_u64().context("`size` is not a number")?;
    ensure!(
        size == bytes.len() as u64,
        "size {size} != {} bytes",
        bytes.len()
    );
    let sha256 = field("sha256")?
        .as_str()
        .context("`sha256` is not a string")?
        .to_string();
    let ours = hex::encode(Sha256::digest(&bytes));
    ensure!(sha256 == ours, "sha256 {sha256} != {ours}");

    // The human-readable form names the same reads and imports.
    let out = Command::new(gatehouse)
        .args(["providers", "inspect"])
        .arg(example.path)
        .args(example.settings.iter().flat_map(|s| ["--setting", s]))
        .output()
        .context("run `gatehouse providers inspect`")?;
    ensure!(out.status.success(), "`providers inspect` failed");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in example.reads.iter().chain(example.imports) {
        ensure!(
            text.contains(needle),
            "`providers inspect` output lacks `{needle}`:\n{text}"
        );
    }
    Ok(Inspected { sha256 })
}

/// A read as the inspect JSON renders it: a string, or an object such as `{"header": "x"}`.
fn read_label(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn run(args: &Args, report: &mut Report) -> Result<()> {
    let rust = Example {
        label: "vendor-rust",
        path: &args.rust,
        world: "edge-cookie-provider",
        id: "example-edge-cookie",
        permission: "store-on-device",
        reads: &[],
        imports: &[
            "wasi:random/random",
            "wasi:clocks/wall-clock",
            "wasi:cli/stdout",
        ],
        settings: &[SECRET_SETTING],
    };
    let python = Example {
        label: "vendor-python",
        path: &args.python,
        world: "geo-provider",
        id: "example-geo-py",
        permission: "create-ads-profile",
        reads: &["client-ip"],
        imports: &[
            "wasi:random/random",
            "wasi:filesystem/preopens",
            "wasi:sockets/tcp",
        ],
        settings: &[RANGES_SETTING],
    };
    let js = Example {
        label: "vendor-js",
        path: &args.js,
        world: "device-provider",
        id: "example-device-js",
        permission: "scan-device-characteristics",
        reads: &[
            "user-agent",
            "header(sec-ch-ua-mobile)",
            "header(sec-ch-ua-platform)",
            "header(sec-ch-ua-model)",
        ],
        imports: &["wasi:random/random", "wasi:cli/stdout"],
        settings: &[],
    };
    let mut pins = Vec::new();
    for example in [&rust, &python, &js] {
        let result = inspect(&args.gatehouse, example);
        let sha = result.as_ref().ok().map(|i| i.sha256.clone());
        report.check(
            &format!(
                "{}: providers inspect prints its reads and imports",
                example.label
            ),
            result.map(|_| ()),
        );
        // Pin by our own digest, so the serve checks still run if inspect is wrong.
        let ours = hex::encode(Sha256::digest(std::fs::read(example.path)?));
        pins.push(sha.unwrap_or(ours));
    }

    let scratch = TempDir::new()?;
    let dir = scratch.path();
    let cache = match &args.cache_dir {
        Some(cache) => {
            std::fs::create_dir_all(cache)
                .with_context(|| format!("create `{}`", cache.display()))?;
            std::fs::canonicalize(cache)?
        }
        None => dir.join("cache"),
    };
    let config = format!(
        r#"
[server]
listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1/32"]

[origin]
url = "builtin:demo"

[runtime]
cache_dir = "{cache}"
# Interpreted providers on a loaded CI machine: a roomy CPU budget, backstop and memory.
call_cpu_ms = 2000
call_timeout_ms = 2000
memory_limit_mib = 128

[geo]
default_country = "US"
provider = "example"

[geo.providers.example]
path = "{python}"
sha256 = "{python_sha}"
ranges = "{ranges}"

[device]
provider = "example"

[device.providers.example]
path = "{js}"
sha256 = "{js_sha}"
extra_bots = "acme-uptime"

[ec]
provider = "example"
cookie_domain = "example.test"
allowed_headers = ["x-example-ec"]

[ec.providers.example]
path = "{rust}"
sha256 = "{rust_sha}"
secret = "{secret}"
"#,
        ranges = RANGES_SETTING.trim_start_matches("ranges="),
        secret = SECRET_SETTING.trim_start_matches("secret="),
        cache = cache.display(),
        python = args.python.display(),
        js = args.js.display(),
        rust = args.rust.display(),
        python_sha = pins[1],
        js_sha = pins[2],
        rust_sha = pins[0],
    );
    let config_path = dir.join("gatehouse.toml");
    std::fs::write(&config_path, config)?;
    let server = Server::start(&args.gatehouse, &config_path)?;
    let result = serve_checks(&server, report);
    if report.failed > 0 || result.is_err() {
        println!("--- server log ---\n{}", server.log());
    }
    result
}

fn serve_checks(server: &Server, report: &mut Report) -> Result<()> {
    let health = server.get("/_ts/health", &[])?;
    report.check(
        "all three examples are loaded (/_ts/health)",
        (|| {
            ensure!(health.status == 200, "status {}", health.status);
            for id in ["example-edge-cookie", "example-geo-py", "example-device-js"] {
                ensure!(
                    health.body.contains(id),
                    "health lacks `{id}`: {}",
                    health.body
                );
            }
            Ok(())
        })(),
    );

    // Edge Cookie (std Rust).
    let permitted = server.get("/", &[("user-agent", BROWSER), ("x-forwarded-for", IP_US)])?;
    let minted = permitted.set_cookie("ts-ec").map(str::to_string);
    report.check(
        "rust edge cookie: called on a permitted request (US)",
        (|| {
            let cookie = minted.as_deref().context("no ts-ec Set-Cookie")?;
            ensure!(
                cookie.starts_with("ts-ec=v1."),
                "unexpected cookie {cookie}"
            );
            ensure!(
                permitted.header("x-example-ec") == Some("minted"),
                "x-example-ec: {:?}",
                permitted.header("x-example-ec")
            );
            Ok(())
        })(),
    );
    if let Some(cookie) = &minted {
        let value = cookie
            .split(';')
            .next()
            .unwrap_or_default()
            .trim_start_matches("ts-ec=");
        let again = server.get(
            "/",
            &[
                ("user-agent", BROWSER),
                ("x-forwarded-for", IP_US),
                ("cookie", &format!("ts-ec={value}")),
            ],
        )?;
        report.check(
            "rust edge cookie: keeps the cookie it minted",
            (|| {
                ensure!(
                    again.header("x-example-ec") == Some("kept"),
                    "x-example-ec: {:?}",
                    again.header("x-example-ec")
                );
                Ok(())
            })(),
        );
    }
    let refused = server.get(
        "/",
        &[
            ("user-agent", BROWSER),
            ("x-forwarded-for", IP_US),
            ("sec-gpc", "1"),
        ],
    )?;
    report.check(
        "rust edge cookie: not called on a refused request (GPC)",
        (|| {
            ensure!(refused.status == 200, "status {}", refused.status);
            ensure!(refused.set_cookie("ts-ec").is_none(), "ts-ec was set");
            ensure!(
                refused.header("x-example-ec").is_none(),
                "x-example-ec present: provider ran"
            );
            Ok(())
        })(),
    );

    // Geo (Python).
    let located = server.get("/", &[("user-agent", BROWSER), ("x-forwarded-for", IP_DE)])?;
    report.check(
        "python geo: called on a permitted request (its DE answer withholds the cookie)",
        (|| {
            ensure!(located.status == 200, "status {}", located.status);
            ensure!(
                located.set_cookie("ts-ec").is_none(),
                "ts-ec set: the request was not located in DE"
            );
            Ok(())
        })(),
    );
    let not_located = server.get(
        "/",
        &[
            ("user-agent", BROWSER),
            ("x-forwarded-for", IP_DE),
            ("cookie", GPP_TARGETED_ADS_OPT_OUT),
        ],
    )?;
    report.check(
        "python geo: not called on a refused request (GPP targeted-ads opt-out: default US applies)",
        (|| {
            ensure!(
                not_located.set_cookie("ts-ec").is_some(),
                "no ts-ec: the request was located (geo ran) or the cookie was refused"
            );
            ensure!(not_located.header("x-example-ec") == Some("minted"), "x-example-ec missing");
            Ok(())
        })(),
    );

    // Device (JavaScript).
    for (what, ua) in [
        ("a crawler", CRAWLER),
        ("the publisher's extra bot", UPTIME_MONITOR),
    ] {
        let bot = server.get("/", &[("user-agent", ua), ("x-forwarded-for", IP_US)])?;
        report.check(
            &format!("js device: called on a permitted request ({what} is a bot: no cookie)"),
            (|| {
                ensure!(bot.status == 200, "status {}", bot.status);
                ensure!(
                    bot.set_cookie("ts-ec").is_none(),
                    "ts-ec set: not classified as a bot"
                );
                ensure!(
                    bot.header("x-example-ec").is_none(),
                    "edge cookie provider ran for a bot"
                );
                Ok(())
            })(),
        );
    }
    let california = server.get(
        "/",
        &[("user-agent", CRAWLER), ("x-forwarded-for", IP_US_CA)],
    )?;
    report.check(
        "js device: not called on a refused request (US/CA denies scan-device-characteristics)",
        (|| {
            ensure!(
                california.set_cookie("ts-ec").is_some(),
                "no ts-ec: the crawler was classified (device ran) or geo did not say US/CA"
            );
            Ok(())
        })(),
    );
    Ok(())
}

/// A scratch directory for the config (and the cache, without `--cache-dir`), removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self> {
        let path =
            std::env::temp_dir().join(format!("gatehouse-vendor-e2e-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("create `{}`", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `gatehouse serve`, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    fn start(bin: &Path, config: &Path) -> Result<Self> {
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env("GATEHOUSE_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn `gatehouse serve`")?;
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().context("stderr")?;
        let writer = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Ok(mut log) = writer.lock() {
                    log.push_str(&line);
                    log.push('\n');
                }
            }
        });
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("gatehouse listening on http://") {
                    let _ = tx.send(addr.parse::<SocketAddr>());
                }
            }
        });
        // Compiling the Python and JS components (tens of MB) takes a while on first start.
        let server = match rx.recv_timeout(Duration::from_secs(600)) {
            Ok(Ok(addr)) => Self { child, addr, log },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                std::thread::sleep(Duration::from_millis(200));
                let log = log.lock().map(|l| l.clone()).unwrap_or_default();
                bail!("server did not start ({other:?}); log:\n{log}");
            }
        };
        Ok(server)
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
        http_get(self.addr, path, headers)
    }

    fn log(&self) -> String {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn set_cookie(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == "set-cookie")
            .map(|(_, v)| v.as_str())
            .find(|v| v.starts_with(&format!("{name}=")))
    }
}

/// A minimal HTTP/1.1 GET with `Connection: close`, from 127.0.0.1 (a trusted proxy here, so
/// `X-Forwarded-For` sets the client address).
fn http_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Result<Response> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n");
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").context("no response head")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .context("no status line")?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Ok(Response {
        status,
        headers,
        body: body.to_owned(),
    })
}
