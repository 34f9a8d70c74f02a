//! Client-side Edge Cookie providers end to end (issue 10): `GET /_ts/ec.js` and
//! `POST /_ts/api/v1/ec/resolve` on the real server with its embedded store, every status of the
//! endpoint, the page request's permissions applied to it, and switching `hmac` ↔ `client-fixed`
//! by configuration alone. The browser itself: `browser.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::identity::{IdentityRecord, IdentityStore, identity_key};
use gatehouse_store::RedbStore;

use crate::support::{
    BROWSER_UA, Origin, Response, Server, component, config, hmac_ec, http_raw, sha256_of, temp_dir,
};
use crate::valkey_support::Valkey;

/// A value in the Edge Cookie format, as the `client-side` page script computes it.
const RANDOM_VALUE: &str =
    "3f9a0c47e1b2d85c6a7f09e3b41d2c8e5a6b7f0c1d2e3f4a5b6c7d8e9f0a1b2c.aB3dE9";
/// The `client-fixed` provider's one value (`providers/client-fixed`).
const FIXED_VALUE: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.TEST00";
/// GDPR-IAB-TCFv2 "valid tcf v2 consent string using bitfield": purposes 1, 3, 9, 10.
const TCF_GRANTS_STORAGE: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
/// The same with purpose 1 refused (an explicit withdrawal).
pub const TCF_REFUSES_STORAGE: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkACDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
/// Consent strings of 2012–2020 must not expire for these tests.
const NO_EXPIRY: &str = "\n[consent]\nmax_consent_age_days = 36500\n";

/// The `[ec]` section selecting the bundled provider `name`.
fn ec(name: &str) -> String {
    format!("\n[ec]\nprovider = \"{name}\"\ncookie_domain = \"example.test\"\n")
}

/// Writes a config (default country `country`, `ec_toml`) into its own directory, so the
/// default `gatehouse-store.redb` lands next to it.
fn write(label: &str, origin: &Origin, country: &str, ec_toml: &str) -> PathBuf {
    let path = temp_dir(label).join("gatehouse.toml");
    std::fs::write(
        &path,
        config(&origin.url(), country, &format!("{ec_toml}{NO_EXPIRY}")),
    )
    .expect("write config");
    path
}

/// `POST path` with `content_type` and `body` from a browser, with extra `headers`.
fn post(
    addr: SocketAddr,
    path: &str,
    content_type: &str,
    body: &[u8],
    headers: &[(&str, &str)],
) -> Response {
    let mut raw = format!(
        "POST {path} HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n",
        body.len()
    );
    // A browser unless the test says otherwise.
    if !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("user-agent"))
    {
        raw.push_str(&format!("User-Agent: {BROWSER_UA}\r\n"));
    }
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    http_raw(addr, &bytes)
}

fn resolve(server: &Server, value: &str, headers: &[(&str, &str)]) -> Response {
    let body = serde_json::json!({ "value": value }).to_string();
    post(
        server.addr,
        "/_ts/api/v1/ec/resolve",
        "application/json",
        body.as_bytes(),
        headers,
    )
}

fn page(server: &Server, headers: &[(&str, &str)]) -> Response {
    let mut all = vec![("User-Agent", BROWSER_UA)];
    all.extend_from_slice(headers);
    let response = server.get("/", &all);
    assert_eq!(response.status, 200, "{response:?}");
    response
}

fn outcome(response: &Response) -> String {
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("json body");
    body["edge_cookie"]
        .as_str()
        .expect("edge_cookie")
        .to_owned()
}

fn problem_type(response: &Response) -> String {
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json"),
        "{response:?}"
    );
    let body: serde_json::Value = serde_json::from_str(&response.body).expect("json body");
    body["type"].as_str().expect("type").to_owned()
}

fn stop(mut server: Server) {
    server.signal(rustix::process::Signal::TERM);
    assert!(
        server.wait_exit(Duration::from_secs(120)).is_some(),
        "server did not exit"
    );
}

fn stored(config_path: &Path, value: &str) -> Option<IdentityRecord> {
    let store = RedbStore::open(config_path.with_file_name("gatehouse-store.redb"))
        .expect("open the store file");
    store
        .get(&identity_key(value))
        .expect("store get")
        .map(|v| IdentityRecord::decode(&v.value).expect("decodable record"))
}

#[test]
fn client_side_defers_on_the_page_and_resolve_sets_the_cookie_and_creates_the_record() {
    let origin = Origin::start();
    let path = write("ec-resolve-set", &origin, "US", &ec("client-side"));
    let server = Server::start_at(&path);

    // The page request defers: no cookie.
    assert_eq!(page(&server, &[]).set_cookie("ts-ec"), None);
    // The page script is served.
    let script = server.get("/_ts/ec.js", &[]);
    assert_eq!(script.status, 200);
    assert_eq!(
        script.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert!(script.body.contains("crypto.getRandomValues"));
    assert!(script.body.contains("/_ts/api/v1/ec/resolve"));

    // The CDN in front (the test client, a trusted proxy) reports the country, as for a page.
    let response = resolve(&server, RANDOM_VALUE, &[("X-Geo-Country", "US")]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(outcome(&response), "set");
    // The same attributes as a minted cookie.
    assert_eq!(
        response.set_cookie("ts-ec"),
        Some(
            format!(
                "ts-ec={RANDOM_VALUE}; Domain=example.test; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=31536000"
            )
            .as_str()
        )
    );
    assert_eq!(response.header("cache-control"), Some("no-store, private"));

    // The browser now holds it: the page keeps it, and a second resolve keeps it too.
    let cookie = format!("ts-ec={RANDOM_VALUE}");
    assert_eq!(
        page(&server, &[("Cookie", &cookie)]).set_cookie("ts-ec"),
        None
    );
    let again = resolve(
        &server,
        "aaaa0c47e1b2d85c6a7f09e3b41d2c8e5a6b7f0c1d2e3f4a5b6c7d8e9f0a1b2c.zzzzzz",
        &[("Cookie", &cookie)],
    );
    assert_eq!(outcome(&again), "kept");
    assert_eq!(again.set_cookie("ts-ec"), None);
    stop(server);

    match stored(&path, RANDOM_VALUE) {
        Some(IdentityRecord::Live(live)) => {
            assert_eq!(live.country.as_deref(), Some("US"));
        }
        other => panic!("expected a live record, got {other:?}"),
    }
}

#[test]
fn resolve_with_a_value_the_provider_rejects_answers_422_and_sets_nothing() {
    let origin = Origin::start();
    let path = write("ec-resolve-reject", &origin, "US", &ec("client-side"));
    let server = Server::start_at(&path);
    let degenerate = format!("{}.aB3dE9", "0".repeat(64));
    for value in [
        degenerate.as_str(),
        "not-the-format",
        "bad value; Max-Age=1",
    ] {
        let response = resolve(&server, value, &[]);
        assert_eq!(response.status, 422, "{value}: {response:?}");
        assert_eq!(problem_type(&response), "/_ts/problems/ec-value-rejected");
        assert_eq!(response.set_cookie("ts-ec"), None);
    }
    // A cookie the provider refuses (another provider's format) does not save a bad value.
    let response = resolve(&server, &degenerate, &[("Cookie", "ts-ec=from-elsewhere")]);
    assert_eq!(response.status, 422, "{response:?}");
    assert_eq!(response.set_cookie("ts-ec"), None);
    stop(server);
    assert!(stored(&path, &degenerate).is_none());
}

#[test]
fn a_cookie_the_provider_refuses_is_replaced_by_the_verified_posted_value() {
    let origin = Origin::start();
    let path = write("ec-resolve-replace", &origin, "US", &ec("client-side"));
    let server = Server::start_at(&path);
    // E.g. a `host-signals` value (64 hex, no suffix) after switching to `client-side`.
    let stale = format!("ts-ec={}", "ab".repeat(32));
    assert_eq!(
        page(&server, &[("Cookie", &stale)]).set_cookie("ts-ec"),
        None
    );
    let response = resolve(&server, RANDOM_VALUE, &[("Cookie", &stale)]);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(outcome(&response), "set");
    assert!(
        response
            .set_cookie("ts-ec")
            .is_some_and(|c| c.starts_with(&format!("ts-ec={RANDOM_VALUE};")))
    );
    stop(server);
    assert!(matches!(
        stored(&path, RANDOM_VALUE),
        Some(IdentityRecord::Live(_))
    ));
}

#[test]
fn resolve_applies_the_page_permissions_and_a_refusal_sets_no_cookie() {
    let origin = Origin::start();
    let path = write("ec-resolve-refused", &origin, "FR", &ec("client-side"));
    let server = Server::start_at(&path);
    let refusing = format!("euconsent-v2={TCF_REFUSES_STORAGE}");
    let granting = format!("euconsent-v2={TCF_GRANTS_STORAGE}");
    // GDPR default, no consent yet; a TCF record refusing purpose 1; GPC in the US.
    for headers in [
        vec![],
        vec![("Cookie", refusing.as_str())],
        vec![("X-Geo-Country", "US"), ("Sec-GPC", "1")],
    ] {
        let response = resolve(&server, RANDOM_VALUE, &headers);
        assert_eq!(response.status, 200, "{headers:?}: {response:?}");
        assert_eq!(outcome(&response), "not-permitted", "{headers:?}");
        assert_eq!(response.set_cookie("ts-ec"), None, "{headers:?}");
    }
    // A bot never gets one.
    let bot = post(
        server.addr,
        "/_ts/api/v1/ec/resolve",
        "application/json",
        format!("{{\"value\":\"{RANDOM_VALUE}\"}}").as_bytes(),
        &[
            ("Cookie", granting.as_str()),
            (
                "User-Agent",
                "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            ),
        ],
    );
    assert_eq!(bot.status, 200, "{bot:?}");
    assert_eq!(outcome(&bot), "bot");
    assert_eq!(bot.set_cookie("ts-ec"), None);
    // Consent granting storage: set.
    let response = resolve(&server, RANDOM_VALUE, &[("Cookie", &granting)]);
    assert_eq!(outcome(&response), "set", "{response:?}");
    assert!(response.set_cookie("ts-ec").is_some());
    stop(server);
    match stored(&path, RANDOM_VALUE) {
        Some(IdentityRecord::Live(live)) => {
            let consent = live.consent.expect("the request's consent is stored");
            assert_eq!(
                consent.signals.tc_string.as_deref(),
                Some(TCF_GRANTS_STORAGE)
            );
        }
        other => panic!("expected a live record, got {other:?}"),
    }
}

#[test]
fn resolve_with_a_cookie_and_a_withdrawal_expires_it_and_tombstones_the_identity() {
    let origin = Origin::start();
    let path = write("ec-resolve-withdraw", &origin, "US", &ec("client-side"));
    let server = Server::start_at(&path);
    assert_eq!(outcome(&resolve(&server, RANDOM_VALUE, &[])), "set");
    let cookie = format!("ts-ec={RANDOM_VALUE}");
    let response = resolve(
        &server,
        RANDOM_VALUE,
        &[("Cookie", &cookie), ("Sec-GPC", "1")],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(outcome(&response), "withdrawn");
    let expired = response.set_cookie("ts-ec").expect("expired");
    assert!(
        expired.starts_with("ts-ec=;") && expired.contains("Max-Age=0"),
        "{expired}"
    );
    stop(server);
    assert!(matches!(
        stored(&path, RANDOM_VALUE),
        Some(IdentityRecord::Tombstone(_))
    ));
}

#[test]
fn resolve_answers_405_413_415_and_400_for_requests_it_cannot_take() {
    let origin = Origin::start();
    let path = write("ec-resolve-statuses", &origin, "US", &ec("client-side"));
    let server = Server::start_at(&path);
    let route = "/_ts/api/v1/ec/resolve";

    let get = server.get(route, &[]);
    assert_eq!(get.status, 405);
    assert_eq!(get.header("allow"), Some("POST"));
    assert_eq!(problem_type(&get), "/_ts/problems/method-not-allowed");

    let text = post(server.addr, route, "text/plain", b"{\"value\":\"x\"}", &[]);
    assert_eq!(text.status, 415);
    assert_eq!(problem_type(&text), "/_ts/problems/unsupported-media-type");

    // Over 64 KiB, declared: refused before the body is read.
    let big = format!(
        "{{\"value\":\"{RANDOM_VALUE}\",\"pad\":\"{}\"}}",
        "x".repeat(64 * 1024)
    );
    let too_large = post(server.addr, route, "application/json", big.as_bytes(), &[]);
    assert_eq!(too_large.status, 413);
    assert_eq!(problem_type(&too_large), "/_ts/problems/payload-too-large");
    // Exactly 64 KiB is read (and then refused as malformed: `pad` is not a field).
    let padding = 64 * 1024 - format!("{{\"value\":\"{RANDOM_VALUE}\",\"pad\":\"\"}}").len();
    let at_limit = format!(
        "{{\"value\":\"{RANDOM_VALUE}\",\"pad\":\"{}\"}}",
        "x".repeat(padding)
    );
    assert_eq!(at_limit.len(), 64 * 1024);
    let read = post(
        server.addr,
        route,
        "application/json",
        at_limit.as_bytes(),
        &[],
    );
    assert_eq!(read.status, 400, "{read:?}");

    for malformed in [
        &b"not json"[..],
        b"{}",
        b"{\"value\": 7}",
        b"[\"x\"]",
        b"{\"value\":\"x\",\"other\":1}",
    ] {
        let response = post(server.addr, route, "application/json", malformed, &[]);
        assert_eq!(
            response.status,
            400,
            "{}",
            String::from_utf8_lossy(malformed)
        );
        assert_eq!(
            problem_type(&response),
            "/_ts/problems/invalid-ec-resolve-request"
        );
        assert_eq!(response.set_cookie("ts-ec"), None);
    }

    let script_post = post(server.addr, "/_ts/ec.js", "application/json", b"{}", &[]);
    assert_eq!(script_post.status, 405);
    assert_eq!(script_post.header("allow"), Some("GET, HEAD"));
}

#[test]
fn resolve_sets_no_cookie_when_the_store_is_unavailable() {
    let origin = Origin::start();
    let valkey = Valkey::start();
    let path = write(
        "ec-resolve-store-down",
        &origin,
        "US",
        &format!(
            "{}\n[store]\nurl = \"{}\"\nconnect_timeout_ms = 200\nio_timeout_ms = 200\n",
            ec("client-side"),
            valkey.url()
        ),
    );
    let server = Server::start_at(&path);
    drop(valkey);
    let response = resolve(&server, RANDOM_VALUE, &[]);
    assert_eq!(response.status, 503, "{response:?}");
    assert_eq!(problem_type(&response), "/_ts/problems/store-unavailable");
    assert_eq!(response.set_cookie("ts-ec"), None);
}

#[test]
fn client_routes_answer_404_when_the_provider_computes_its_value_on_the_server() {
    let origin = Origin::start();
    let path = write("ec-resolve-hmac", &origin, "US", &hmac_ec());
    let server = Server::start_at(&path);
    for response in [
        server.get("/_ts/ec.js", &[]),
        resolve(&server, RANDOM_VALUE, &[]),
    ] {
        assert_eq!(response.status, 404, "{response:?}");
        assert_eq!(problem_type(&response), "/_ts/problems/not-found");
        assert_eq!(response.set_cookie("ts-ec"), None);
    }
}

#[test]
fn client_fixed_accepts_only_its_fixed_value() {
    let origin = Origin::start();
    let path = write("ec-resolve-fixed", &origin, "US", &ec("client-fixed"));
    let server = Server::start_at(&path);
    let script = server.get("/_ts/ec.js", &[]);
    assert!(script.body.contains(FIXED_VALUE), "{script:?}");
    assert!(script.body.contains("TEST-ONLY"));
    assert_eq!(resolve(&server, RANDOM_VALUE, &[]).status, 422);
    let response = resolve(&server, FIXED_VALUE, &[]);
    assert_eq!(outcome(&response), "set");
    assert!(
        response
            .set_cookie("ts-ec")
            .is_some_and(|c| c.starts_with(&format!("ts-ec={FIXED_VALUE};")))
    );
}

#[test]
fn switching_between_hmac_and_client_fixed_is_configuration_only() {
    let origin = Origin::start();
    let path = write("ec-switch", &origin, "US", &hmac_ec());
    let server = Server::start_at(&path);
    let rewrite = |ec_toml: &str| {
        std::fs::write(
            &path,
            config(&origin.url(), "US", &format!("{ec_toml}{NO_EXPIRY}")),
        )
        .expect("rewrite config");
    };

    // hmac: the page mints, there is no page script.
    assert!(page(&server, &[]).set_cookie("ts-ec").is_some());
    assert_eq!(server.get("/_ts/ec.js", &[]).status, 404);

    // client-fixed, by editing the config and reloading the same binary.
    rewrite(&ec("client-fixed"));
    server.signal(rustix::process::Signal::HUP);
    server.wait_for_log("configuration reloaded", 1);
    assert_eq!(page(&server, &[]).set_cookie("ts-ec"), None, "defers");
    assert_eq!(server.get("/_ts/ec.js", &[]).status, 200);
    let response = resolve(&server, FIXED_VALUE, &[]);
    assert_eq!(outcome(&response), "set", "{response:?}");

    // And back to hmac.
    rewrite(&hmac_ec());
    server.signal(rustix::process::Signal::HUP);
    server.wait_for_log("configuration reloaded", 2);
    assert!(page(&server, &[]).set_cookie("ts-ec").is_some());
    assert_eq!(resolve(&server, FIXED_VALUE, &[]).status, 404);
}

#[test]
fn an_external_client_side_provider_serves_the_script_named_by_ec_client_script() {
    let origin = Origin::start();
    let dir = temp_dir("ec-client-script");
    let wasm = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_CLIENT_SIDE"));
    std::fs::write(dir.join("vendor-ec.js"), "/* vendor page script */\n").expect("script");
    let path = dir.join("gatehouse.toml");
    std::fs::write(
        &path,
        config(
            &origin.url(),
            "US",
            &format!(
                "\n[ec]\nprovider = \"vendor\"\nclient_script = \"vendor-ec.js\"\n\
                 [ec.providers.vendor]\npath = \"{}\"\nsha256 = \"{}\"\n",
                wasm.display(),
                sha256_of(&wasm)
            ),
        ),
    )
    .expect("write config");
    let server = Server::start_at(&path);
    let script = server.get("/_ts/ec.js", &[]);
    assert_eq!(script.status, 200);
    assert_eq!(script.body, "/* vendor page script */\n");
    assert_eq!(outcome(&resolve(&server, RANDOM_VALUE, &[])), "set");
}

#[test]
fn ec_client_script_for_a_server_side_provider_fails_startup_naming_the_key() {
    let origin = Origin::start();
    let path = write(
        "ec-client-script-hmac",
        &origin,
        "US",
        &hmac_ec().replace(
            "cookie_domain = \"example.test\"",
            "cookie_domain = \"example.test\"\nclient_script = \"ec.js\"",
        ),
    );
    let out = crate::support::run(&["serve", "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ec.client_script"), "{stderr}");
    assert!(
        stderr.contains("`hmac` computes its value on the server"),
        "{stderr}"
    );
}
