//! `gatehouse compose --target wasi-http`: its refusals, and the composed app serving real
//! requests under the `wasmtime serve` CLI (the command compose prints), with the bundled
//! providers and the hostile guest plugged in.
//!
//! The served tests need the wasmtime CLI of the workspace's wasmtime version: `.ci/run` installs
//! it into `~/.cache/gatehouse-ci-tools/wasmtime-cli`; `GATEHOUSE_WASMTIME` may name another
//! binary. Without it they fail, saying how to install it.

use std::path::PathBuf;
use std::process::Command;

use crate::hosts::{
    Running, cookie_value, origin_saw_cookie, printed_wasmtime_flags, serve_wasi_http_app,
};
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
[server]
# The tests' client (127.0.0.1) plays the CDN in front: its geo headers count.
trusted_proxies = ["127.0.0.1"]

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

/// Serves a composed app (its path and what compose printed) with the `wasmtime serve` command
/// compose printed, `env` giving the values of the variables that command names.
fn serve(composed: &(PathBuf, String), env: &[(&str, &str)]) -> Running {
    serve_wasi_http_app(&composed.0, &printed_wasmtime_flags(&composed.1, env))
}

/// Composes `config` (its `{ env = .. }` variables unset) and checks the printed serve
/// command; returns the app's path and what compose printed.
fn composed_app(label: &str, config: &str) -> (PathBuf, String) {
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
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("wasmtime serve -Scli -Sconfig -Skeyvalue"),
        "compose prints the serve command: {stdout}"
    );
    (output, stdout)
}

fn page(served: &Running, headers: &[(&str, &str)]) -> crate::support::Response {
    http_get(served.addr, "/", headers)
}

/// The decisions themselves (mint, keep, GPC, DE with and without TCF, bots, own routes) are
/// the conformance suite's (`conformance.rs`), on this host and the others alike; this test covers
/// what only a composed wasi:http app has: a setting read at run time through `wasi:config`, and
/// the health document naming the host and its providers.
#[test]
fn the_composed_wasi_http_app_reads_its_setting_from_wasi_config_and_reports_its_providers() {
    let origin = Origin::start();
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    let app = composed_app("served", &compose_config(&origin.url(), &ec));
    let served = serve(
        &app,
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-wasi-config")],
    );
    // wasi:http reports no peer: the client address is the platform's header.
    let us = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    );
    assert_eq!(us.status, 200, "{us:?}");
    assert!(
        us.set_cookie("ts-ec").is_some(),
        "minted with the setting: {us:?}"
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
        wasmtime::component::Component::from_file(&engine, &app.0).expect("a valid component");
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(&engine).map(|(n, _)| n.to_owned()).collect();
    assert!(
        exports
            .iter()
            .any(|e| e.starts_with("wasi:http/incoming-handler@0.2.")),
        "{exports:?}"
    );
    // The providers, the deployment and the placeholder are inside; what is left is WASI (with
    // `wasi:config` for the passphrase and `wasi:keyvalue@0.2.0-draft` for the identity store,
    // both of which `wasmtime serve -Sconfig -Skeyvalue` offers) and the type-only provider
    // types.
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
    for keyvalue in [
        "wasi:keyvalue/store@0.2.0-draft",
        "wasi:keyvalue/atomics@0.2.0-draft",
    ] {
        assert!(imports.iter().any(|i| i == keyvalue), "{imports:?}");
    }
    let keyvalue: Vec<&String> = imports
        .iter()
        .filter(|i| i.starts_with("wasi:keyvalue/"))
        .collect();
    assert_eq!(keyvalue.len(), 2, "only store and atomics: {keyvalue:?}");
}

#[test]
fn the_composed_wasi_http_app_keeps_identities_in_wasi_keyvalue_for_the_request_under_wasmtime_serve()
 {
    let origin = Origin::start();
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    let app = composed_app("served-keyvalue", &compose_config(&origin.url(), &ec));
    let served = serve(
        &app,
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-wasi-config")],
    );
    let client = ("x-forwarded-for", "203.0.113.8");

    // A mint stores its record add-only first: with `-Skeyvalue` the store is there, so the
    // cookie is set.
    let us = page(
        &served,
        &[("user-agent", BROWSER), ("x-geo-country", "US"), client],
    );
    let value = cookie_value(us.set_cookie("ts-ec").expect("minted"));

    // An explicit withdrawal with the cookie expires it and tombstones the record in the
    // request's bucket.
    let cookie = format!("ts-ec={value}");
    let gpc = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("sec-gpc", "1"),
            ("cookie", &cookie),
            client,
        ],
    );
    assert_eq!(gpc.status, 200, "{gpc:?}");
    let expired = gpc.set_cookie("ts-ec").expect("the cookie is expired");
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert_eq!(gpc.header("cache-control"), Some("private"));
    assert!(
        !origin_saw_cookie(&origin, &value),
        "a withdrawn cookie is not forwarded"
    );

    // What persists: nothing. `wasmtime serve` gives every request a fresh in-memory bucket, so
    // the consent stored with a DE visitor's record is gone on their next request, which (with
    // no consent signal of its own) is therefore not permitted: the cookie is not forwarded.
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
    let de_value = cookie_value(de_tcf.set_cookie("ts-ec").expect("DE with consent: minted"));
    let de_cookie = format!("ts-ec={de_value}");
    let returning = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "DE"),
            ("cookie", &de_cookie),
            client,
        ],
    );
    assert_eq!(returning.status, 200);
    assert_eq!(returning.set_cookie("ts-ec"), None);
    assert!(
        !origin_saw_cookie(&origin, &de_value),
        "no stored consent survives the request under wasmtime serve"
    );
}

#[test]
fn a_wasi_keyvalue_bucket_the_platform_does_not_have_fails_the_mint_closed() {
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n\n[store]\nkeyvalue_bucket = \"not-offered\"\n"
    );
    let app = composed_app(
        "served-keyvalue-missing",
        &compose_config("builtin:demo", &ec),
    );
    let served = serve(
        &app,
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-wasi-config")],
    );
    // `wasmtime serve` has only the bucket `""`: opening another fails, the store is
    // unavailable, and a mint sets no cookie; the page is still served.
    let us = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("x-forwarded-for", "203.0.113.9"),
        ],
    );
    assert_eq!(us.status, 200, "{us:?}");
    assert_eq!(us.set_cookie("ts-ec"), None, "store unavailable: no cookie");
}

/// The issue's promise for the example: `examples/gatehouse.toml` composed for wasi:http serves
/// under `wasmtime serve -Scli -Sconfig -Skeyvalue --addr=... app.wasm` with no other flag, and
/// decides (a US browser behind the platform's `X-Forwarded-For` is minted an Edge Cookie).
#[test]
fn the_example_config_composed_for_wasi_http_serves_with_the_documented_flags_alone() {
    let example = crate::support::workspace_root().join("examples/gatehouse.toml");
    let text = std::fs::read_to_string(&example).expect("read the example config");
    let app = composed_app("example-wasi-http", &text);
    let command = app
        .1
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("wasmtime serve"))
        .expect("the printed serve command");
    let flags: Vec<String> = command
        .split_whitespace()
        .filter(|f| f.starts_with('-'))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        flags,
        ["-Scli", "-Sconfig", "-Skeyvalue", "--addr=127.0.0.1:8080"],
        "{command}"
    );
    let served = serve(&app, &[]);
    let us = page(
        &served,
        &[
            ("user-agent", BROWSER),
            ("x-geo-country", "US"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    );
    assert_eq!(us.status, 200, "{us:?}");
    assert!(us.set_cookie("ts-ec").is_some(), "{us:?}");
    assert!(us.body.contains("Gatehouse demo origin"), "{}", us.body);
}
