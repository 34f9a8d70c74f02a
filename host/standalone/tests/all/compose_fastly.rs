//! `gatehouse compose --target fastly`: its refusals, and the composed app serving real requests
//! under Viceroy (Fastly's local runtime) with the `fastly.toml` compose prints, with the bundled
//! providers and the hostile guest plugged in.
//!
//! The served tests need Viceroy 0.22: `.ci/run` installs it into
//! `~/.cache/gatehouse-ci-tools/viceroy` and exports `GATEHOUSE_VICEROY`, which must then name a
//! binary (a missing one fails). Outside CI (no `GATEHOUSE_VICEROY`, no `CI`) a machine without
//! Viceroy skips them with a message on stderr saying how to install it.

use std::path::PathBuf;
use std::process::Command;

use crate::compose::{BROWSER, FILESYSTEM, HOSTILE, PASSPHRASE_VAR, compose_config, external_ec};
use crate::hosts::{
    Running, cookie_value, origin_saw_cookie, serve_fastly, serve_fastly_edited, viceroy,
};
use crate::support::{Origin, component, http_get, sha256_of, write_config};

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
    assert!(
        stdout.contains("[local_server.kv_stores]\n\"gatehouse-identity\" = []"),
        "the printed fastly.toml declares the identity store's KV store: {stdout}"
    );
}

#[test]
fn compose_for_fastly_names_the_configured_kv_store_and_none_without_an_edge_cookie_provider() {
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n\n[store]\nfastly_kv_store = \"publisher-ids\"\n"
    );
    let (code, stdout, stderr, _) =
        compose("fastly-kv-name", &compose_config("builtin:demo", &ec), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(
        stdout.contains("[local_server.kv_stores]\n\"publisher-ids\" = []"),
        "{stdout}"
    );
    // No Edge Cookie provider: no identity to keep, no KV store.
    let (code, stdout, stderr, _) =
        compose("fastly-no-ec", &compose_config("builtin:demo", ""), &[]);
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("kv_stores"), "{stdout}");
    // `store.enabled = false`: stateless.
    let stateless = format!("{ec}enabled = false\n");
    let (code, stdout, stderr, _) = compose(
        "fastly-stateless",
        &compose_config("builtin:demo", &stateless),
        &[],
    );
    assert_eq!(code, Some(0), "{stdout}{stderr}");
    assert!(!stdout.contains("kv_stores"), "{stdout}");
    // A name Fastly cannot have is refused, naming the key.
    let unnamed = ec.replace("\"publisher-ids\"", "\"\"");
    let (code, _, stderr, output) = compose(
        "fastly-kv-empty",
        &compose_config("builtin:demo", &unnamed),
        &[],
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("store.fastly_kv_store"), "{stderr}");
    assert!(!output.exists());
}

fn page(served: &Running, headers: &[(&str, &str)]) -> crate::support::Response {
    http_get(served.addr, "/", headers)
}

/// The decisions themselves (mint, keep, GPC, DE with and without TCF, bots, own routes) are
/// the conformance suite's (`conformance.rs`), on this host and the others alike; this test covers
/// what only a deployed Fastly app has: a setting read at run time from the secret store, and the
/// health document naming the host and its providers.
#[test]
fn the_composed_fastly_app_reads_its_secret_at_run_time_and_reports_its_providers() {
    let Some(viceroy) = viceroy() else { return };
    let origin = Origin::start();
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    let served = serve_fastly(
        &viceroy,
        "fastly-served",
        &compose_config(&origin.url(), &ec),
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-the-secret-store")],
    );
    let us = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(us.status, 200, "{us:?}");
    assert!(
        us.set_cookie("ts-ec").is_some(),
        "minted with the secret: {us:?}"
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
    let served = serve_fastly(
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
    let served = serve_fastly(
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
    let served = serve_fastly(
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

#[test]
fn the_composed_fastly_app_keeps_the_identity_lifecycle_in_the_fastly_kv_store_across_requests() {
    let Some(viceroy) = viceroy() else { return };
    let origin = Origin::start();
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    let served = serve_fastly(
        &viceroy,
        "fastly-kv-lifecycle",
        &compose_config(&origin.url(), &ec),
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-the-secret-store")],
    );
    let browser = ("user-agent", BROWSER);
    let consented = format!("euconsent-v2={}", crate::support::tc_full_consent_now());

    // US: minted (the record is stored add-only first), then kept, not re-minted.
    let us = page(&served, &[browser, ("x-geo-country", "US")]);
    let us_value = cookie_value(us.set_cookie("ts-ec").expect("US: minted"));
    let us_cookie = format!("ts-ec={us_value}");
    let kept = page(
        &served,
        &[browser, ("x-geo-country", "US"), ("cookie", &us_cookie)],
    );
    assert_eq!(kept.status, 200);
    assert_eq!(kept.set_cookie("ts-ec"), None, "kept, not re-minted");
    assert!(origin_saw_cookie(&origin, &us_value));

    // DE with TCF consent: minted, and the consent is stored with the record in the KV store.
    let de = page(
        &served,
        &[browser, ("x-geo-country", "DE"), ("cookie", &consented)],
    );
    let value = cookie_value(de.set_cookie("ts-ec").expect("DE with consent: minted"));
    let cookie = format!("ts-ec={value}");

    // The next request carries the cookie and no consent signal: decided with the consent the
    // KV store kept from the previous request (another Viceroy instance), so it is permitted and
    // the cookie reaches the origin.
    let returning = page(
        &served,
        &[browser, ("x-geo-country", "DE"), ("cookie", &cookie)],
    );
    assert_eq!(returning.status, 200);
    assert_eq!(returning.set_cookie("ts-ec"), None);
    assert!(
        origin_saw_cookie(&origin, &value),
        "stored consent from the KV store: {:?}",
        origin.requests.lock().expect("lock").last()
    );
    // A cookie the store has no record of gets no such fallback.
    let unknown = format!("ts-ec={}.AAAAAA", "0f".repeat(32));
    page(
        &served,
        &[browser, ("x-geo-country", "DE"), ("cookie", &unknown)],
    );
    assert!(!origin_saw_cookie(
        &origin,
        &format!("{}.AAAAAA", "0f".repeat(32))
    ));

    // GPC with the cookie: an explicit withdrawal expires it and tombstones the record.
    let gpc = page(
        &served,
        &[
            browser,
            ("x-geo-country", "US"),
            ("sec-gpc", "1"),
            ("cookie", &cookie),
        ],
    );
    assert_eq!(gpc.status, 200, "{gpc:?}");
    let expired = gpc.set_cookie("ts-ec").expect("the cookie is expired");
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert!(!origin_saw_cookie(&origin, &value));

    // The tombstone persisted: the stored consent is gone, so the cookie alone is not permitted.
    let after = page(
        &served,
        &[browser, ("x-geo-country", "DE"), ("cookie", &cookie)],
    );
    assert_eq!(after.set_cookie("ts-ec"), None);
    assert!(
        !origin_saw_cookie(&origin, &value),
        "a tombstone never lends its consent"
    );

    // Re-consent: the request's own TCF consent revives the record (compare-and-swap over the
    // tombstone's generation), and the next request without signals is permitted again.
    let both = format!("{cookie}; {consented}");
    let reconsent = page(
        &served,
        &[browser, ("x-geo-country", "DE"), ("cookie", &both)],
    );
    assert_eq!(reconsent.status, 200);
    assert_eq!(reconsent.set_cookie("ts-ec"), None, "kept");
    assert!(origin_saw_cookie(&origin, &value));
    let revived = page(
        &served,
        &[browser, ("x-geo-country", "DE"), ("cookie", &cookie)],
    );
    assert_eq!(revived.set_cookie("ts-ec"), None);
    assert!(
        origin_saw_cookie(&origin, &value),
        "the revived record's consent is used again"
    );
}

#[test]
fn without_its_kv_store_the_composed_fastly_app_sets_no_cookie() {
    let Some(viceroy) = viceroy() else { return };
    let ec = format!(
        "[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\npassphrase = {{ env = \"{PASSPHRASE_VAR}\" }}\n"
    );
    // The service has no KV store of that name: every store call fails, so a mint sets no cookie
    // (fail-closed, as the core's lifecycle does with a store that is down), and the page is
    // still served.
    let served = serve_fastly_edited(
        &viceroy,
        "fastly-kv-missing",
        &compose_config("builtin:demo", &ec),
        &[(PASSPHRASE_VAR, "a-test-passphrase-from-the-secret-store")],
        |toml| {
            toml.split("\n[local_server.kv_stores]")
                .next()
                .unwrap_or_default()
                .to_owned()
        },
    );
    let us = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "US")]);
    assert_eq!(us.status, 200, "{us:?}");
    assert_eq!(us.set_cookie("ts-ec"), None, "store unavailable: no cookie");
}

/// `geo.provider = "fastly"`: Fastly's geolocation answers for the client address, instead of a
/// geo component. Viceroy's default for a loopback address is San Francisco (`US`, region `CA`).
#[test]
fn fastly_geolocation_is_the_geo_provider_on_fastly_and_refused_elsewhere() {
    let config = |origin: &str| {
        format!(
            "[origin]\nurl = \"{origin}\"\n\n[geo]\ndefault_country = \"FR\"\nprovider = \"fastly\"\n\n\
             [device]\nprovider = \"ua-device\"\n\n[ec]\nprovider = \"hmac\"\n\n[ec.providers.hmac]\n\
             passphrase = \"a-test-passphrase\"\n"
        )
    };
    // Refused where there is no Fastly: compose for wasi:http, and `serve`.
    let path = write_config("fastly-geo-elsewhere", &config("builtin:demo"));
    for args in [
        vec![
            "compose",
            "--target",
            "wasi-http",
            "-o",
            "/dev/null",
            "--config",
        ],
        vec!["serve", "--config"],
    ] {
        let mut all = args.clone();
        all.push(path.to_str().expect("utf-8"));
        let out = crate::support::run(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted it");
        assert!(
            stderr.contains("`geo.provider`") && stderr.contains("--target fastly"),
            "{args:?}: {stderr}"
        );
    }

    let Some(viceroy) = viceroy() else { return };
    let origin = Origin::start();
    let served = serve_fastly(&viceroy, "fastly-geo", &config(&origin.url()), &[]);
    // The visitor's own geo claim is dropped (loopback is no trusted proxy here); Fastly's
    // lookup of the address decides the jurisdiction.
    let page = page(&served, &[("user-agent", BROWSER), ("x-geo-country", "DE")]);
    assert_eq!(page.status, 200, "{page:?}");
    assert!(
        page.set_cookie("ts-ec").is_some(),
        "US/CA permits it: {page:?}"
    );
    let forwarded = origin
        .requests
        .lock()
        .expect("origin log")
        .last()
        .cloned()
        .expect("the origin was sent the page");
    assert!(
        forwarded.contains("gatehouse-decision: rule=\"US/CA\"")
            && forwarded.contains("geo=region"),
        "{forwarded}"
    );
    assert!(
        !forwarded.to_ascii_lowercase().contains("x-geo-country"),
        "{forwarded}"
    );
    let health = http_get(served.addr, "/_ts/health", &[]);
    let doc: serde_json::Value = serde_json::from_str(&health.body).expect("health json");
    assert_eq!(doc["providers"][0]["kind"], "geo", "{doc}");
    assert_eq!(doc["providers"][0]["name"], "fastly", "{doc}");
}
