//! `gatehouse compose --target fastly`: its refusals, and the composed app serving real requests
//! under Viceroy (Fastly's local runtime) with the `fastly.toml` compose prints, with the bundled
//! providers and the hostile guest plugged in.
//!
//! The served tests need Viceroy 0.22: `.ci/run` installs it into
//! `~/.cache/gatehouse-ci-tools/viceroy` and exports `GATEHOUSE_VICEROY`, which must then name a
//! binary (a missing one fails). Outside CI (no `GATEHOUSE_VICEROY`, no `CI`) a machine without
//! Viceroy skips them with a message on stderr saying how to install it.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::compose::{BROWSER, FILESYSTEM, HOSTILE, PASSPHRASE_VAR, compose_config, external_ec};
use crate::support::{Origin, component, http_get, sha256_of, write_config};

/// The Viceroy version `.ci/run` installs.
const VICEROY_VERSION: &str = "0.22.0";

/// Runs `gatehouse compose --target fastly` for `config` with `env`; returns (exit code, stdout,
/// stderr, output path).
fn compose(
    label: &str,
    config: &str,
    env: &[(&str, &str)],
) -> (Option<i32>, String, String, PathBuf) {
    let config = write_config(label, config);
    let output = config.with_file_name("app.wasm");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatehouse"));
    cmd.args(["compose", "--target", "fastly", "--config"])
        .arg(&config)
        .arg("-o")
        .arg(&output)
        .env_remove(PASSPHRASE_VAR);
    for (key, value) in env {
        cmd.env(key, value);
    }
    let out = cmd.output().expect("run gatehouse");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        output,
    )
}

#[test]
fn compose_refuses_a_provider_importing_what_the_fastly_target_cannot_give_listing_the_imports() {
    let path = component(FILESYSTEM);
    let config = compose_config(
        "builtin:demo",
        &external_ec(path.to_str().expect("utf-8"), &sha256_of(&path), ""),
    );
    let (code, _, stderr, output) = compose("fastly-imports", &config, &[]);
    assert_eq!(code, Some(2), "compose must refuse: {stderr}");
    for part in [
        "provider `vendor`",
        "`ec.providers.vendor`",
        "the fastly target cannot satisfy its imports",
        "`wasi:filesystem/preopens@",
        "`wasi:filesystem/types@",
    ] {
        assert!(stderr.contains(part), "missing `{part}` in: {stderr}");
    }
    assert!(!output.exists(), "nothing is written when compose refuses");
}

#[test]
fn compose_for_fastly_refuses_a_pinned_provider_whose_digest_does_not_match() {
    let path = component(HOSTILE);
    let config = compose_config(
        "builtin:demo",
        &external_ec(path.to_str().expect("utf-8"), &"0".repeat(64), ""),
    );
    let (code, _, stderr, output) = compose("fastly-digest", &config, &[]);
    assert_eq!(code, Some(2), "compose must refuse: {stderr}");
    assert!(stderr.contains("digest mismatch"), "{stderr}");
    assert!(!output.exists());
}

#[test]
fn compose_for_fastly_reads_env_settings_from_the_secret_store_and_never_embeds_them() {
    let secret = "fastly-composed-secret-that-must-stay-out-of-the-file";
    let config = compose_config(
        "builtin:demo",
        &format!(
            "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
        ),
    );
    let (code, stdout, stderr, output) =
        compose("fastly-env", &config, &[(PASSPHRASE_VAR, secret)]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let bytes = std::fs::read(&output).expect("composed");
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the environment's value is in the composed component"
    );
    let key = PASSPHRASE_VAR.to_ascii_lowercase();
    assert!(
        stdout.contains(&format!(
            "gatehouse = [{{ key = \"{key}\", env = \"{PASSPHRASE_VAR}\" }}]"
        )),
        "the printed fastly.toml maps the secret store key to the variable: {stdout}"
    );
    assert!(
        stdout.contains("viceroy serve -C fastly.toml"),
        "compose prints the Viceroy command: {stdout}"
    );
}

/// The Viceroy binary, or `None` (with a loud message) when it is absent outside CI.
fn viceroy() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GATEHOUSE_VICEROY") {
        let path = PathBuf::from(path);
        assert!(
            path.exists(),
            "GATEHOUSE_VICEROY names `{}`, which does not exist",
            path.display()
        );
        return Some(path);
    }
    let cached = std::env::var_os("HOME")
        .map(PathBuf::from)
        .map(|home| home.join(".cache/gatehouse-ci-tools/viceroy/bin/viceroy"));
    if let Some(path) = cached.filter(|p| p.exists()) {
        return Some(path);
    }
    let hint = format!(
        "the composed Fastly app is served with Viceroy, which is not installed: run \
         `cargo install viceroy --version ={VICEROY_VERSION} --locked --root ~/.cache/gatehouse-ci-tools/viceroy` \
         (as .ci/run does), or set GATEHOUSE_VICEROY"
    );
    assert!(std::env::var_os("CI").is_none(), "{hint}");
    eprintln!("\n!!! SKIPPED (not in CI): {hint}\n");
    None
}

/// Viceroy serving a composed app.
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

/// Composes `config` for Fastly, writes the `fastly.toml` compose printed next to the app and
/// serves it with the command compose printed (on a free port).
fn serve(viceroy: &Path, label: &str, config: &str, env: &[(&str, &str)]) -> Served {
    let (code, stdout, stderr, app) = compose(label, config, &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    let fastly_toml = stdout
        .split_once("from this fastly.toml:\n")
        .and_then(|(_, rest)| rest.split_once("serve it with:"))
        .map(|(toml, _)| toml.to_owned())
        .expect("compose prints the fastly.toml");
    let serve_line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("viceroy serve"))
        .expect("compose prints the viceroy command");
    assert!(serve_line.contains("-C fastly.toml"), "{serve_line}");
    let dir = app.parent().expect("dir");
    std::fs::write(dir.join("fastly.toml"), fastly_toml).expect("write fastly.toml");
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut cmd = Command::new(viceroy);
    cmd.current_dir(dir)
        .args(["serve", "-C", "fastly.toml", "--addr"])
        .arg(addr.to_string())
        .arg(&app)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (key, value) in env {
        cmd.env(key, value);
    }
    let child = cmd.spawn().expect("spawn viceroy");
    let mut served = Served { child, addr };
    // Viceroy compiles the component before it listens.
    let deadline = Instant::now() + Duration::from_secs(120);
    while TcpStream::connect(addr).is_err() {
        if let Ok(Some(status)) = served.child.try_wait() {
            panic!("viceroy exited before listening: {status}");
        }
        assert!(Instant::now() < deadline, "viceroy did not listen in 120 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    served.addr = addr;
    served
}

fn page(served: &Served, headers: &[(&str, &str)]) -> crate::support::Response {
    http_get(served.addr, "/", headers)
}

#[test]
fn the_composed_fastly_app_decides_like_the_standalone_host_under_viceroy() {
    let Some(viceroy) = viceroy() else { return };
    let origin = Origin::start();
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\ncookie_domain = \"example.test\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    let served = serve(
        &viceroy,
        "fastly-served",
        &compose_config(&origin.url(), &ec),
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-the-secret-store")],
    );

    // US: minted, with the configured attributes; the page is the origin's.
    let us = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(us.status, 200, "{us:?}");
    let cookie = us
        .set_cookie("ts-ec")
        .expect("US visitors get an Edge Cookie");
    assert!(cookie.contains("Domain=example.test"), "{cookie}");
    assert!(cookie.contains("Max-Age=31536000"), "{cookie}");
    assert_eq!(us.header("x-origin"), Some("yes"), "proxied to the origin");
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

    // An existing cookie the provider accepts is kept, not re-minted.
    let value = cookie
        .split(';')
        .next()
        .and_then(|kv| kv.split_once('='))
        .map(|(_, v)| v.to_owned())
        .expect("cookie value");
    let returning = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("cookie", &format!("ts-ec={value}")),
        ],
    );
    assert_eq!(returning.status, 200);
    if let Some(again) = returning.set_cookie("ts-ec") {
        assert!(again.contains(&value), "the same identity: {again}");
    }

    // GPC opts out: no cookie.
    let gpc = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("sec-gpc", "1"),
        ],
    );
    assert_eq!(gpc.status, 200);
    assert_eq!(gpc.set_cookie("ts-ec"), None, "GPC: no cookie");

    // DE without consent: GDPR, no cookie.
    let de = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "DE")]);
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
        &[("user-agent", "curl/8.5.0"), ("x-geo-country", "US")],
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
    let health = http_get(served.addr, "/_ts/health", &[]);
    assert_eq!(health.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&health.body).expect("health json");
    assert_eq!(doc["status"], "ok");
    assert_eq!(doc["host"], "fastly");
    assert_eq!(doc["providers"].as_array().map(Vec::len), Some(3), "{doc}");
}

#[test]
fn the_composed_fastly_app_fails_a_provider_closed_when_its_secret_is_missing() {
    let Some(viceroy) = viceroy() else { return };
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    // Viceroy reads the secret store entry from the variable, which is unset: it holds an empty
    // secret, which the host treats as missing, so the provider is not called and the page is
    // served without a cookie.
    let served = serve(
        &viceroy,
        "fastly-no-secret",
        &compose_config("builtin:demo", &ec),
        &[],
    );
    let us = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(us.status, 200, "{us:?}");
    assert_eq!(us.set_cookie("ts-ec"), None);
}

#[test]
fn the_composed_fastly_app_serves_the_builtin_demo_page_without_an_origin() {
    let Some(viceroy) = viceroy() else { return };
    let served = serve(
        &viceroy,
        "fastly-demo",
        &compose_config("builtin:demo", ""),
        &[],
    );
    let demo = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(demo.status, 200);
    assert!(demo.body.contains("Gatehouse demo origin"), "{}", demo.body);
    assert_eq!(demo.set_cookie("ts-ec"), None, "no Edge Cookie provider");
}

#[test]
fn a_trapping_provider_fails_its_fastly_request_closed_and_the_next_one_is_served() {
    let Some(viceroy) = viceroy() else { return };
    let origin = Origin::start();
    let hostile = component(HOSTILE);
    let ec = external_ec(
        hostile.to_str().expect("utf-8"),
        &sha256_of(&hostile),
        "mode = \"trap\"\nreads = \"client-ip\"",
    );
    let served = serve(
        &viceroy,
        "fastly-trap",
        &compose_config(&origin.url(), &ec),
        &[],
    );

    // The trap aborts the whole program: the platform's 500, no cookie, origin never asked.
    let trapped = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(trapped.status, 500, "{trapped:?}");
    assert_eq!(trapped.set_cookie("ts-ec"), None);
    // (`viceroy serve` itself sends each backend one bare `GET /` at startup to check it is up;
    // what Gatehouse forwards carries its decision header.)
    let forwarded: Vec<String> = origin
        .requests
        .lock()
        .expect("lock")
        .iter()
        .filter(|r| r.to_ascii_lowercase().contains("gatehouse-decision"))
        .cloned()
        .collect();
    assert!(forwarded.is_empty(), "the origin saw: {forwarded:?}");

    // Where the provider is gated off (DE without consent) it is never called: served.
    let gated = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "DE")]);
    assert_eq!(gated.status, 200, "{gated:?}");
    assert_eq!(gated.header("x-origin"), Some("yes"));

    // The next page request gets a fresh instance: it traps again, nothing is left over.
    let again = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(again.status, 500);
}
