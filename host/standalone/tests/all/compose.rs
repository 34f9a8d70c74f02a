//! `gatehouse compose --target wasi-http`: its refusals, and the composed app serving real
//! requests under the `wasmtime serve` CLI (the command compose prints), with the bundled
//! providers and the hostile guest plugged in.
//!
//! The served tests need the wasmtime CLI of the workspace's wasmtime version: `.ci/run` installs
//! it into `~/.cache/gatehouse-ci-tools/wasmtime-cli`; `GATEHOUSE_WASMTIME` may name another
//! binary. Without it they fail, saying how to install it.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::{Origin, component, http_get, run, sha256_of, write_config};

pub(crate) const HOSTILE: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_HOSTILE");
const TRANSPORT: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_TRANSPORT");
const UNKNOWN_PERMISSION: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_UNKNOWN_PERMISSION");
pub(crate) const FILESYSTEM: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_FILESYSTEM");

/// A browser User-Agent (`ua-device` classifies it as a desktop, not a bot).
pub(crate) const BROWSER: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";

/// The HMAC passphrase variable of the served config.
pub(crate) const PASSPHRASE_VAR: &str = "GATEHOUSE_TEST_EC_PASSPHRASE";

/// A config for `compose` with `origin`, the bundled geo and device providers, and `ec`.
pub(crate) fn compose_config(origin: &str, ec: &str) -> String {
    format!(
        r#"
[origin]
url = "{origin}"

[geo]
default_country = "FR"
provider = "header-geo"

[geo.providers.header-geo]
country_header = "x-geo-country"
region_header = "x-geo-region"

[device]
provider = "ua-device"

{ec}
"#
    )
}

/// An `[ec]` section plugging the external component `path` (pinned to `sha256`) with `settings`.
pub(crate) fn external_ec(path: &str, sha256: &str, settings: &str) -> String {
    format!(
        r#"
[ec]
provider = "vendor"

[ec.providers.vendor]
path = "{path}"
sha256 = "{sha256}"
{settings}
"#
    )
}

/// Runs `gatehouse compose` for `config`; returns (exit code, stdout, stderr, output path).
fn compose(label: &str, config: &str) -> (Option<i32>, String, String, PathBuf) {
    let config = write_config(label, config);
    let output = config.with_file_name("app.wasm");
    let out = run(&[
        "compose",
        "--config",
        config.to_str().expect("utf-8 path"),
        "--target",
        "wasi-http",
        "-o",
        output.to_str().expect("utf-8 path"),
    ]);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        output,
    )
}

fn assert_refused(label: &str, config: &str, expected: &[&str]) {
    let (code, _, stderr, output) = compose(label, config);
    assert_eq!(code, Some(2), "compose must refuse: {stderr}");
    for part in expected {
        assert!(stderr.contains(part), "missing `{part}` in: {stderr}");
    }
    assert!(!output.exists(), "nothing is written when compose refuses");
}

#[test]
fn compose_refuses_a_provider_whose_digest_does_not_match_its_pin() {
    let path = component(TRANSPORT);
    let config = compose_config(
        "builtin:demo",
        &external_ec(path.to_str().expect("utf-8"), &"0".repeat(64), ""),
    );
    assert_refused(
        "compose-digest",
        &config,
        &[
            "provider `vendor`",
            "`ec.providers.vendor.sha256`",
            "digest mismatch",
        ],
    );
}

#[test]
fn compose_refuses_a_provider_requiring_a_permission_the_policy_does_not_define() {
    let path = component(UNKNOWN_PERMISSION);
    let config = compose_config(
        "builtin:demo",
        &external_ec(path.to_str().expect("utf-8"), &sha256_of(&path), ""),
    );
    assert_refused(
        "compose-unknown-permission",
        &config,
        &["provider `vendor`", "`ec.providers.vendor`", "permission"],
    );
}

#[test]
fn compose_refuses_a_provider_importing_what_the_wasi_http_target_cannot_give_listing_the_imports()
{
    let path = component(FILESYSTEM);
    let config = compose_config(
        "builtin:demo",
        &external_ec(path.to_str().expect("utf-8"), &sha256_of(&path), ""),
    );
    assert_refused(
        "compose-imports",
        &config,
        &[
            "provider `vendor`",
            "the wasi-http target cannot satisfy its imports",
            "`wasi:filesystem/preopens@",
            "`wasi:filesystem/types@",
        ],
    );
}

#[test]
fn compose_refuses_a_provider_reading_what_the_wasi_http_target_cannot_supply() {
    let path = component(TRANSPORT);
    let config = compose_config(
        "builtin:demo",
        &external_ec(path.to_str().expect("utf-8"), &sha256_of(&path), ""),
    );
    assert_refused(
        "compose-ja4",
        &config,
        &["provider `vendor`", "`ec.providers.vendor`", "ja4"],
    );
}

#[test]
fn compose_never_embeds_a_setting_read_from_the_environment() {
    let secret = "composed-secret-that-must-stay-out-of-the-file";
    let config = compose_config(
        "builtin:demo",
        &format!(
            "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
        ),
    );
    let config_path = write_config("compose-env", &config);
    let output = config_path.with_file_name("app.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["compose", "--target", "wasi-http", "--config"])
        .arg(&config_path)
        .arg("-o")
        .arg(&output)
        .env(PASSPHRASE_VAR, secret)
        .output()
        .expect("run gatehouse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bytes = std::fs::read(&output).expect("composed");
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the environment's value is in the composed component"
    );
    let key = PASSPHRASE_VAR.to_ascii_lowercase();
    assert!(
        stdout.contains(&format!("-Sconfig-var={key}=\"${PASSPHRASE_VAR}\"")),
        "the serve command names the config variable: {stdout}"
    );
}

/// The wasmtime CLI the served tests run, or a panic saying how to install it.
fn wasmtime_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("GATEHOUSE_WASMTIME") {
        return PathBuf::from(path);
    }
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|home| home.join(".cache/gatehouse-ci-tools/wasmtime-cli/bin/wasmtime"));
    if let Some(path) = cached.filter(|p| p.exists()) {
        return path;
    }
    if Command::new("wasmtime")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("wasmtime");
    }
    panic!(
        "the composed wasi:http app is served with the wasmtime CLI, which is not installed: run \
         `cargo install wasmtime-cli --version 48.0.8 --locked --root ~/.cache/gatehouse-ci-tools/wasmtime-cli` \
         (as .ci/run does), or set GATEHOUSE_WASMTIME to a wasmtime 48 binary"
    );
}

/// `wasmtime serve` running a composed app.
struct Served {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serves `app` with the flags `gatehouse compose` printed, on a free port.
fn serve(app: &Path, config_vars: &[(&str, &str)]) -> Served {
    let mut cmd = Command::new(wasmtime_cli());
    cmd.args(["serve", "-Scli", "-Sconfig"]);
    for (key, value) in config_vars {
        cmd.arg(format!("-Sconfig-var={key}={value}"));
    }
    cmd.arg("--addr=127.0.0.1:0")
        .arg(app)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn wasmtime serve");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    // `Serving HTTP on http://127.0.0.1:PORT/`
    let addr = loop {
        let line = lines
            .next()
            .expect("wasmtime serve exited before listening")
            .expect("stderr line");
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.trim_end_matches('/').parse().expect("listen address");
        }
    };
    // Keep draining stderr (the app's log) so wasmtime never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Served { child, addr }
}

/// Composes `config` (with `env` set for compose) and checks the printed serve command.
fn composed_app(label: &str, config: &str) -> PathBuf {
    let config_path = write_config(label, config);
    let output = config_path.with_file_name("app.wasm");
    let out = Command::new(env!("CARGO_BIN_EXE_gatehouse"))
        .args(["compose", "--target", "wasi-http", "--config"])
        .arg(&config_path)
        .arg("-o")
        .arg(&output)
        .env_remove(PASSPHRASE_VAR)
        .output()
        .expect("run gatehouse");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("wasmtime serve -Scli -Sconfig"),
        "compose prints the serve command: {stdout}"
    );
    output
}

fn page(served: &Served, headers: &[(&str, &str)]) -> crate::support::Response {
    http_get(served.addr, "/", headers)
}

#[test]
fn the_composed_wasi_http_app_decides_like_the_standalone_host_under_wasmtime_serve() {
    let origin = Origin::start();
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\ncookie_domain = \"example.test\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    let app = composed_app("served", &compose_config(&origin.url(), &ec));
    let key = PASSPHRASE_VAR.to_ascii_lowercase();
    let served = serve(&app, &[(&key, "a-test-passphrase-from-wasi-config")]);
    let client = ("x-forwarded-for", "203.0.113.7");

    // US: minted, with the configured attributes; the page is the origin's.
    let us = page(
        &served,
        &[("user-agent", BROWSER), ("x-geo-country", "US"), client],
    );
    assert_eq!(us.status, 200, "{us:?}");
    let cookie = us
        .set_cookie("ts-ec")
        .expect("US visitors get an Edge Cookie");
    assert!(cookie.contains("Domain=example.test"), "{cookie}");
    assert!(cookie.contains("Max-Age=31536000"), "{cookie}");
    assert_eq!(us.header("x-origin"), Some("yes"), "proxied to the origin");
    assert_eq!(us.header("cache-control"), Some("private"));
    let forwarded = origin
        .requests
        .lock()
        .expect("lock")
        .last()
        .cloned()
        .expect("seen");
    assert!(
        forwarded
            .to_ascii_lowercase()
            .contains("gatehouse-decision: rule=\"us\""),
        "the origin is told the decision: {forwarded}"
    );

    // GPC opts out: no cookie.
    let gpc = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("sec-gpc", "1"),
            client,
        ],
    );
    assert_eq!(gpc.status, 200);
    assert_eq!(gpc.set_cookie("ts-ec"), None, "GPC: no cookie");

    // DE without consent: GDPR, no cookie.
    let de = page(
        &served,
        &[("user-agent", BROWSER), ("x-geo-country", "DE"), client],
    );
    assert_eq!(de.status, 200);
    assert_eq!(
        de.set_cookie("ts-ec"),
        None,
        "DE without consent: no cookie"
    );

    // DE with a TCF record consenting to every purpose: the Edge Cookie is set.
    let consented = format!("euconsent-v2={}", crate::support::tc_full_consent_now());
    let de_tcf = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "DE"),
            ("cookie", &consented),
            client,
        ],
    );
    assert_eq!(de_tcf.status, 200);
    assert!(
        de_tcf.set_cookie("ts-ec").is_some(),
        "DE with TCF consent: cookie set {de_tcf:?}"
    );

    // A bot gets none, even in the US.
    let bot = page(
        &served,
        &[
            ("user-agent", "curl/8.5.0"),
            ("x-geo-country", "US"),
            client,
        ],
    );
    assert_eq!(bot.status, 200);
    assert_eq!(bot.set_cookie("ts-ec"), None, "bots get no cookie");

    // Gatehouse's own routes.
    let unknown = http_get(served.addr, "/_ts/nope", &[]);
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        unknown.body.contains("/_ts/problems/not-found"),
        "{}",
        unknown.body
    );
    let health = http_get(served.addr, "/_ts/health", &[]);
    assert_eq!(health.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&health.body).expect("health json");
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["providers"].as_array().map(Vec::len), Some(3), "{doc}");
}

#[test]
fn the_composed_app_serves_the_builtin_demo_page_without_an_origin() {
    let app = composed_app("served-demo", &compose_config("builtin:demo", ""));
    let served = serve(&app, &[]);
    let demo = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(demo.status, 200);
    assert!(demo.body.contains("Gatehouse demo origin"), "{}", demo.body);
    assert_eq!(
        demo.set_cookie("ts-ec"),
        None,
        "no Edge Cookie provider configured"
    );
}

#[test]
fn a_trapping_composed_provider_fails_its_request_closed_and_the_next_one_is_served() {
    let origin = Origin::start();
    let hostile = component(HOSTILE);
    let ec = external_ec(
        hostile.to_str().expect("utf-8"),
        &sha256_of(&hostile),
        "mode = \"trap\"\nreads = \"client-ip\"",
    );
    let app = composed_app("served-trap", &compose_config(&origin.url(), &ec));
    let served = serve(&app, &[]);
    let client = ("x-forwarded-for", "203.0.113.7");

    // The trap aborts the whole instance: no cookie, and the origin never sees the request.
    let trapped = page(
        &served,
        &[("user-agent", BROWSER), ("x-geo-country", "US"), client],
    );
    assert_eq!(trapped.status, 500, "{trapped:?}");
    assert_eq!(trapped.set_cookie("ts-ec"), None);
    assert!(origin.requests.lock().expect("lock").is_empty());

    // Where the provider is gated off (DE without consent) it is never called: served.
    let gated = page(
        &served,
        &[("user-agent", BROWSER), ("x-geo-country", "DE"), client],
    );
    assert_eq!(gated.status, 200, "{gated:?}");
    assert_eq!(gated.header("x-origin"), Some("yes"));

    // A static asset runs no provider either.
    let asset = http_get(served.addr, "/app.js", &[client]);
    assert_eq!(asset.status, 200);

    // The next page request gets a fresh instance, which traps again but nothing is left over.
    let again = page(
        &served,
        &[("user-agent", BROWSER), ("x-geo-country", "US"), client],
    );
    assert_eq!(again.status, 500);
}

#[test]
fn the_composed_app_exports_the_incoming_handler_and_imports_only_what_wasmtime_serve_offers() {
    let app = composed_app(
        "compose-shape",
        &compose_config(
            "builtin:demo",
            &format!(
                "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
            ),
        ),
    );
    let engine = wasmtime::Engine::default();
    let component =
        wasmtime::component::Component::from_file(&engine, &app).expect("a valid component");
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "{exports:?}"
    );
    // The providers, the deployment and the placeholder are inside; what is left is WASI (with
    // `wasi:config` for the passphrase) and the type-only provider types.
    let imports: Vec<String> = ty.imports(&engine).map(|(n, _)| n.to_owned()).collect();
    for import in &imports {
        assert!(
            import.starts_with("wasi:") || import == "gatehouse:provider/types@0.2.0",
            "unexpected import `{import}` in {imports:?}"
        );
    }
    assert!(
        imports.iter().any(|i| i.starts_with("wasi:config/store@")),
        "{imports:?}"
    );
    assert!(
        imports
            .iter()
            .any(|i| i.starts_with("wasi:http/outgoing-handler@")),
        "{imports:?}"
    );
}
