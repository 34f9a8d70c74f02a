//! The Edge Cookie lifecycle end to end (issue 10, must-show 1 and 2): the real server with
//! its identity store, the embedded redb file and a real Valkey/Redis server.
//!
//! The redb file is locked by the server that has it open, so a test reads it after stopping
//! that server (which also shows the store survives the process); Valkey is read while it runs.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gatehouse_core::identity::{IdentityRecord, IdentityStore, identity_key};
use gatehouse_store::{RedbStore, ValkeyOptions, ValkeyStore};

use crate::support::{BROWSER_UA, Origin, Server, config, hmac_ec, temp_dir};
use crate::valkey_support::Valkey;

/// GDPR-IAB-TCFv2 t/01-parse.t "valid tcf v2 consent string using bitfield": consent to
/// purposes 1, 3, 9 and 10 (so `store-on-device`).
const TCF_GRANTS_STORAGE: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
/// [`TCF_GRANTS_STORAGE`] with the purpose 1 consent bit (core segment bit 152) cleared:
/// purposes 3, 9 and 10, `purpose_one_treatment` false, so purpose 1 was disclosed and refused,
/// an explicit withdrawal (`gatehouse consent decode` shows it).
const TCF_REFUSES_STORAGE: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkACDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
/// Consent strings of 2012–2020 must not expire for these tests.
const NO_EXPIRY: &str = "\n[consent]\nmax_consent_age_days = 36500\n";

/// A server config with the HMAC Edge Cookie and `store_toml` appended, written into its own
/// directory (so the default `gatehouse-store.redb` lands there).
fn write(label: &str, origin: &Origin, country: &str, store_toml: &str) -> PathBuf {
    let dir = temp_dir(label);
    let path = dir.join("gatehouse.toml");
    std::fs::write(
        &path,
        config(
            &origin.url(),
            country,
            &format!("{}{NO_EXPIRY}{store_toml}", hmac_ec()),
        ),
    )
    .expect("write config");
    path
}

fn redb_file(config_path: &Path) -> PathBuf {
    config_path.with_file_name("gatehouse-store.redb")
}

/// A page request from a browser with `headers`; returns the `ts-ec` Set-Cookie, if any.
fn page(server: &Server, headers: &[(&str, &str)]) -> Option<String> {
    let mut all = vec![("User-Agent", BROWSER_UA)];
    all.extend_from_slice(headers);
    let response = server.get("/", &all);
    assert_eq!(response.status, 200, "{response:?}");
    response.set_cookie("ts-ec").map(str::to_owned)
}

/// The cookie value of a `Set-Cookie: ts-ec=VALUE; ...` line.
fn value_of(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .and_then(|kv| kv.trim().strip_prefix("ts-ec="))
        .expect("ts-ec=value")
        .to_owned()
}

fn record(store: &dyn IdentityStore, value: &str) -> Option<IdentityRecord> {
    store
        .get(&identity_key(value))
        .expect("store get")
        .map(|v| IdentityRecord::decode(&v.value).expect("decodable record"))
}

fn stop(mut server: Server) {
    server.signal(rustix::process::Signal::TERM);
    assert!(
        server.wait_exit(Duration::from_secs(120)).is_some(),
        "server did not exit"
    );
}

fn is_expiry(set_cookie: &str) -> bool {
    set_cookie.starts_with("ts-ec=;") && set_cookie.contains("Max-Age=0")
}

#[test]
fn mint_keep_not_permitted_and_withdrawal_on_the_embedded_store_survive_restarts() {
    let origin = Origin::start();
    let path = write("identity-redb", &origin, "US", "");
    let server = Server::start_at(&path);

    // Mint: a US browser without a cookie gets one.
    let minted = page(&server, &[("X-Geo-Country", "US")]).expect("minted");
    let value = value_of(&minted);
    let cookie = format!("ts-ec={value}");
    // Keep: the same cookie comes back, nothing is set.
    assert_eq!(page(&server, &[("Cookie", &cookie)]), None);
    // Not permitted (GDPR country, no consent yet): nothing set, nothing expired.
    assert_eq!(
        page(&server, &[("Cookie", &cookie), ("X-Geo-Country", "DE")]),
        None
    );
    stop(server);

    // The record is live on disk after the server is gone.
    let file = redb_file(&path);
    {
        let store = RedbStore::open(&file).expect("open the store file");
        match record(&store, &value) {
            Some(IdentityRecord::Live(live)) => assert_eq!(live.country.as_deref(), Some("US")),
            other => panic!("expected a live record, got {other:?}"),
        }
    }

    // Restart on the same file: the cookie is kept (no re-mint), the record still there.
    let server = Server::start_at(&path);
    assert_eq!(page(&server, &[("Cookie", &cookie)]), None);
    // GPC withdrawal: the cookie is expired with the same attributes.
    let expired = page(&server, &[("Cookie", &cookie), ("Sec-GPC", "1")]).expect("expired");
    assert!(is_expiry(&expired), "{expired}");
    assert!(expired.contains("Domain=example.test"), "{expired}");
    stop(server);
    {
        let store = RedbStore::open(&file).expect("open the store file");
        assert!(
            matches!(record(&store, &value), Some(IdentityRecord::Tombstone(_))),
            "GPC withdrawal leaves a tombstone"
        );
    }

    // Re-consent: the same cookie on a permitted request revives the tombstone (compare-and-swap).
    let server = Server::start_at(&path);
    assert_eq!(page(&server, &[("Cookie", &cookie)]), None);
    stop(server);
    let store = RedbStore::open(&file).expect("open the store file");
    assert!(
        matches!(record(&store, &value), Some(IdentityRecord::Live(_))),
        "re-consent revives the identity"
    );
}

#[test]
fn tcf_withdrawal_expires_the_cookie_and_tombstones_the_stored_consent() {
    let origin = Origin::start();
    let path = write("identity-tcf", &origin, "DE", "");
    let server = Server::start_at(&path);
    let grant = format!("euconsent-v2={TCF_GRANTS_STORAGE}");
    let value = value_of(&page(&server, &[("Cookie", &grant)]).expect("minted with consent"));
    let refuse = format!("ts-ec={value}; euconsent-v2={TCF_REFUSES_STORAGE}");
    let expired = page(&server, &[("Cookie", &refuse)]).expect("expired");
    assert!(is_expiry(&expired), "{expired}");
    stop(server);
    let store = RedbStore::open(redb_file(&path)).expect("open the store file");
    assert!(
        matches!(record(&store, &value), Some(IdentityRecord::Tombstone(_))),
        "TCF withdrawal leaves a tombstone without the stored consent"
    );
}

#[test]
fn a_cookie_without_consent_signals_is_decided_with_the_stored_consent() {
    let origin = Origin::start();
    let path = write("identity-persist", &origin, "DE", "");
    let server = Server::start_at(&path);
    let grant = format!("euconsent-v2={TCF_GRANTS_STORAGE}");
    let value = value_of(&page(&server, &[("Cookie", &grant)]).expect("minted with consent"));
    let only_cookie = format!("ts-ec={value}");
    let before = origin.requests.lock().expect("requests").len();
    // No consent signal: the stored TCF consent permits, so the cookie reaches the origin.
    assert_eq!(page(&server, &[("Cookie", &only_cookie)]), None);
    let forwarded = origin.requests.lock().expect("requests")[before..].join("\n");
    assert!(
        forwarded.contains(&value),
        "the Edge Cookie is forwarded under the stored consent:\n{forwarded}"
    );
    // Control: a cookie the store does not know, in the same jurisdiction, is stripped.
    let unknown = "ts-ec=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.AbCdEf";
    let before = origin.requests.lock().expect("requests").len();
    assert_eq!(page(&server, &[("Cookie", unknown)]), None);
    let forwarded = origin.requests.lock().expect("requests")[before..].join("\n");
    assert!(
        !forwarded.contains("0123456789abcdef0123"),
        "an unknown cookie without consent is not forwarded:\n{forwarded}"
    );
}

#[test]
fn an_unopenable_store_path_fails_startup_naming_the_key() {
    let origin = Origin::start();
    let missing = temp_dir("identity-bad-path").join("no-such-dir/store.redb");
    let path = write(
        "identity-bad-path",
        &origin,
        "US",
        &format!("\n[store]\npath = \"{}\"\n", missing.display()),
    );
    let out = crate::support::run(&["serve", "--config", &path.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`store.path`"), "{stderr}");
}

#[test]
fn store_path_and_url_together_fail_startup_naming_the_key() {
    let origin = Origin::start();
    let path = write(
        "identity-both",
        &origin,
        "US",
        "\n[store]\npath = \"a.redb\"\nurl = \"redis://127.0.0.1:1\"\n",
    );
    let out = crate::support::run(&["serve", "--config", &path.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`store.url`"), "{stderr}");
    assert!(
        !stderr.contains("127.0.0.1:1"),
        "the url is never printed: {stderr}"
    );
}

#[test]
fn an_unknown_store_key_fails_startup() {
    let origin = Origin::start();
    let path = write(
        "identity-unknown",
        &origin,
        "US",
        "\n[store]\ntombstone = 5\n",
    );
    let out = crate::support::run(&["serve", "--config", &path.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("tombstone"), "{stderr}");
}

#[test]
fn without_a_store_the_edge_cookie_is_stateless_and_no_file_is_created() {
    let origin = Origin::start();
    let path = write(
        "identity-disabled",
        &origin,
        "US",
        "\n[store]\nenabled = false\n",
    );
    let server = Server::start_at(&path);
    let value = value_of(&page(&server, &[]).expect("minted"));
    // Statelessly, GPC with the cookie still expires the browser's copy (there is nothing to
    // tombstone), and no store file appears.
    let cookie = format!("ts-ec={value}");
    let expired = page(&server, &[("Cookie", &cookie), ("Sec-GPC", "1")]).expect("expired");
    assert!(expired.contains("Max-Age=0"), "{expired}");
    assert!(!redb_file(&path).exists());
}

#[test]
fn an_unreachable_valkey_fails_startup_without_printing_the_url() {
    let origin = Origin::start();
    let port = crate::support::unused_port();
    let path = write(
        "identity-valkey-down",
        &origin,
        "US",
        &format!(
            "\n[store]\nurl = \"redis://:secret-password@127.0.0.1:{port}\"\nconnect_timeout_ms = 200\n"
        ),
    );
    let out = crate::support::run(&["serve", "--config", &path.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("`store.url`"), "{stderr}");
    assert!(!stderr.contains("secret-password"), "{stderr}");
}

fn valkey_toml(valkey: &Valkey) -> String {
    format!("\n[store]\nurl = \"{}\"\n", valkey.url())
}

fn valkey_store(valkey: &Valkey) -> ValkeyStore {
    ValkeyStore::connect(&valkey.url(), ValkeyOptions::default()).expect("connect to valkey")
}

#[test]
fn the_lifecycle_on_valkey_mints_withdraws_and_revives() {
    let valkey = Valkey::start();
    let origin = Origin::start();
    let path = write("identity-valkey", &origin, "US", &valkey_toml(&valkey));
    let server = Server::start_at(&path);
    let store = valkey_store(&valkey);

    let value = value_of(&page(&server, &[]).expect("minted"));
    assert!(matches!(
        record(&store, &value),
        Some(IdentityRecord::Live(_))
    ));
    let cookie = format!("ts-ec={value}");
    assert_eq!(
        page(&server, &[("Cookie", &cookie), ("X-Geo-Country", "DE")]),
        None
    );
    assert!(
        matches!(record(&store, &value), Some(IdentityRecord::Live(_))),
        "not permitted destroys nothing"
    );
    let expired = page(&server, &[("Cookie", &cookie), ("Sec-GPC", "1")]).expect("expired");
    assert!(is_expiry(&expired), "{expired}");
    assert!(matches!(
        record(&store, &value),
        Some(IdentityRecord::Tombstone(_))
    ));
    assert_eq!(page(&server, &[("Cookie", &cookie)]), None);
    assert!(
        matches!(record(&store, &value), Some(IdentityRecord::Live(_))),
        "re-consent revives"
    );
}

#[test]
fn two_servers_sharing_one_valkey_see_each_others_records() {
    let valkey = Valkey::start();
    let origin = Origin::start();
    let a = Server::start_at(&write(
        "identity-shared-a",
        &origin,
        "US",
        &valkey_toml(&valkey),
    ));
    let b = Server::start_at(&write(
        "identity-shared-b",
        &origin,
        "US",
        &valkey_toml(&valkey),
    ));
    let value = value_of(&page(&a, &[]).expect("minted on a"));
    // b withdraws what a minted...
    let cookie = format!("ts-ec={value}");
    let expired = page(&b, &[("Cookie", &cookie), ("Sec-GPC", "1")]).expect("expired on b");
    assert!(is_expiry(&expired), "{expired}");
    let store = valkey_store(&valkey);
    assert!(matches!(
        record(&store, &value),
        Some(IdentityRecord::Tombstone(_))
    ));
    // ...and a, asked without any consent signal, finds no stored consent behind the tombstone:
    // in a GDPR country the cookie is not permitted and not forwarded.
    let before = origin.requests.lock().expect("requests").len();
    assert_eq!(
        page(&a, &[("Cookie", &cookie), ("X-Geo-Country", "DE")]),
        None
    );
    let forwarded = origin.requests.lock().expect("requests")[before..].join("\n");
    assert!(!forwarded.contains(&value), "{forwarded}");
}

/// The deterministic host-signals provider with the fingerprint headers a trusted CDN sets.
fn host_signals_ec() -> String {
    r#"
[server.fingerprint_headers]
ja4 = "x-ja4"
http2 = "x-http2-fp"

[ec]
provider = "host-signals"

[ec.providers.host-signals]
passphrase = "test-passphrase"
"#
    .to_owned()
}

fn write_host_signals(label: &str, origin: &Origin, store_toml: &str) -> PathBuf {
    let path = temp_dir(label).join("gatehouse.toml");
    std::fs::write(
        &path,
        config(
            &origin.url(),
            "US",
            &format!("{}{store_toml}", host_signals_ec()),
        ),
    )
    .expect("write config");
    path
}

const JA4: &str = "t13d1516h2_8daaf6152771_e5627efa2ab1";
const HTTP2_FP: &str = "1:65536;2:0;4:6291456;6:262144|15663105|0|m,a,s,p";

#[test]
fn host_signals_mints_from_the_trusted_fingerprint_headers() {
    let origin = Origin::start();
    let path = write_host_signals("host-signals", &origin, "\n[store]\nenabled = false\n");
    let server = Server::start_at(&path);
    let fingerprints = [("X-Ja4", JA4), ("X-Http2-Fp", HTTP2_FP)];
    let first = value_of(&page(&server, &fingerprints).expect("minted"));
    assert_eq!(first.len(), 64, "{first}");
    // Deterministic: the same signals mint the same value; another JA4 another one.
    let again = value_of(&page(&server, &fingerprints).expect("minted again"));
    assert_eq!(first, again);
    let other = page(
        &server,
        &[("X-Ja4", "t13d1516h2_8daaf6152771_000000000000")],
    )
    .map(|c| value_of(&c))
    .expect("minted");
    assert_ne!(first, other);
    // Without any fingerprint there is nothing to derive the identity from.
    assert_eq!(page(&server, &[]), None);
}

#[test]
fn fingerprint_headers_from_an_untrusted_peer_are_ignored() {
    let origin = Origin::start();
    let path = write_host_signals(
        "host-signals-untrusted",
        &origin,
        "\n[store]\nenabled = false\n",
    );
    // The test client (127.0.0.1) is no longer the trusted CDN.
    let text = std::fs::read_to_string(&path)
        .expect("read config")
        .replace(
            r#"trusted_proxies = ["127.0.0.1"]"#,
            r#"trusted_proxies = ["192.0.2.1"]"#,
        );
    std::fs::write(&path, text).expect("write config");
    let server = Server::start_at(&path);
    assert_eq!(
        page(&server, &[("X-Ja4", JA4), ("X-Http2-Fp", HTTP2_FP)]),
        None
    );
}

#[test]
fn host_signals_is_refused_at_load_without_fingerprint_headers() {
    let origin = Origin::start();
    let path = temp_dir("host-signals-refused").join("gatehouse.toml");
    std::fs::write(
        &path,
        config(
            &origin.url(),
            "US",
            "[ec]\nprovider = \"host-signals\"\n[ec.providers.host-signals]\npassphrase = \"p\"\n",
        ),
    )
    .expect("write config");
    let out = crate::support::run(&["serve", "--config", &path.display().to_string()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("read `ja4`"), "{stderr}");
    assert!(stderr.contains("`ec.providers.host-signals`"), "{stderr}");
}

/// Sends 200 simultaneous first requests (no cookie) with the same fingerprints: the
/// deterministic host-signals provider mints one value, so all 200 race for one identity key.
/// Returns that value.
fn two_hundred_simultaneous_first_requests(server: &Server) -> String {
    let addr = server.addr;
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(200));
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                crate::support::http_get(
                    addr,
                    "/",
                    &[
                        ("User-Agent", BROWSER_UA),
                        ("X-Ja4", JA4),
                        ("X-Http2-Fp", HTTP2_FP),
                    ],
                )
            })
        })
        .collect();
    let mut values = std::collections::BTreeSet::new();
    for t in threads {
        let response = t.join().expect("request thread");
        assert_eq!(response.status, 200, "{response:?}");
        values.insert(value_of(
            response
                .set_cookie("ts-ec")
                .expect("every request gets the cookie"),
        ));
    }
    assert_eq!(values.len(), 1, "one identity: {values:?}");
    let log = server.log();
    assert!(!log.contains("identity store:"), "no store failure: {log}");
    values.into_iter().next().expect("one value")
}

#[test]
fn two_hundred_simultaneous_first_requests_leave_one_record_on_valkey() {
    let valkey = Valkey::start();
    let origin = Origin::start();
    let server = Server::start_at(&write_host_signals(
        "identity-200-valkey",
        &origin,
        &valkey_toml(&valkey),
    ));
    let value = two_hundred_simultaneous_first_requests(&server);
    assert!(matches!(
        record(&valkey_store(&valkey), &value),
        Some(IdentityRecord::Live(_))
    ));
    assert_eq!(valkey.identity_keys(), 1, "exactly one record");
}

#[test]
fn two_hundred_simultaneous_first_requests_leave_one_record_on_redb() {
    let origin = Origin::start();
    let path = write_host_signals("identity-200-redb", &origin, "");
    let server = Server::start_at(&path);
    let value = two_hundred_simultaneous_first_requests(&server);
    stop(server);
    let store = RedbStore::open(redb_file(&path)).expect("open");
    assert_eq!(
        store.stored_entries().expect("count"),
        1,
        "exactly one record"
    );
    assert!(matches!(
        record(&store, &value),
        Some(IdentityRecord::Live(_))
    ));
}
