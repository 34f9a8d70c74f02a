//! End-to-end behaviour of `gatehouse serve`: who gets an Edge Cookie, and in what form.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::support::{
    BROWSER_UA, CALL_BUDGET_THAT_NEVER_FIRES_MS, Origin, PASSPHRASE, Server, cache_dir, config,
    hmac_ec, workspace_root,
};

pub(crate) fn expected_hash(normalized_ip: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(PASSPHRASE.as_bytes()).expect("hmac key");
    mac.update(normalized_ip.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Asserts the exact Edge Cookie format and attributes; returns the cookie value.
fn assert_edge_cookie(set_cookie: &str, normalized_ip: &str) -> String {
    let (pair, attributes) = set_cookie.split_once("; ").expect("attributes");
    let value = pair.strip_prefix("ts-ec=").expect("cookie name ts-ec");
    let (hash, suffix) = value.split_once('.').expect("hash.suffix");
    assert_eq!(
        hash,
        expected_hash(normalized_ip),
        "HMAC of the normalized client IP"
    );
    assert_eq!(suffix.len(), 6, "six-character suffix: {value}");
    assert!(
        suffix.bytes().all(|b| b.is_ascii_alphanumeric()),
        "suffix alphabet: {value}"
    );
    assert_eq!(
        attributes,
        "Domain=example.test; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=31536000"
    );
    value.to_owned()
}

#[test]
fn default_fr_without_consent_sets_no_edge_cookie() {
    let origin = Origin::start();
    let server = Server::start("fr", &config(&origin.url(), "FR", &hmac_ec()));
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200);
    assert_eq!(
        response.header("x-origin"),
        Some("yes"),
        "proxied to the origin"
    );
    assert_eq!(response.set_cookie("ts-ec"), None);
}

#[test]
fn default_us_mints_an_edge_cookie_with_the_exact_format() {
    let origin = Origin::start();
    let server = Server::start("us", &config(&origin.url(), "US", &hmac_ec()));
    let response = server.get("/articles/1?x=1", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200);
    let set_cookie = response.set_cookie("ts-ec").expect("ts-ec minted");
    assert_edge_cookie(set_cookie, "127.0.0.1");
    // The origin saw the path and query unchanged.
    let requests = origin.requests.lock().expect("requests");
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /articles/1?x=1 ")),
        "{requests:?}"
    );
}

#[test]
fn us_with_gpc_sets_no_edge_cookie() {
    let origin = Origin::start();
    let server = Server::start("us-gpc", &config(&origin.url(), "US", &hmac_ec()));
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("Sec-GPC", "1")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.set_cookie("ts-ec"), None);
}

#[test]
fn known_crawler_gets_no_edge_cookie() {
    let origin = Origin::start();
    let server = Server::start("bot", &config(&origin.url(), "US", &hmac_ec()));
    let googlebot = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    let response = server.get("/", &[("User-Agent", googlebot)]);
    assert_eq!(response.status, 200);
    assert_eq!(response.set_cookie("ts-ec"), None);
}

#[test]
fn existing_valid_cookie_is_kept_unchanged() {
    let origin = Origin::start();
    let server = Server::start("keep", &config(&origin.url(), "US", &hmac_ec()));
    let first = server.get("/", &[("User-Agent", BROWSER_UA)]);
    let value = assert_edge_cookie(first.set_cookie("ts-ec").expect("minted"), "127.0.0.1");
    let cookie = format!("other=1; ts-ec={value}");
    let second = server.get("/", &[("User-Agent", BROWSER_UA), ("Cookie", &cookie)]);
    assert_eq!(second.status, 200);
    assert_eq!(
        second.set_cookie("ts-ec"),
        None,
        "a kept cookie is not re-set"
    );
    let requests = origin.requests.lock().expect("requests");
    assert!(
        requests.last().is_some_and(|r| r.contains(&value)),
        "the cookie reaches the origin unchanged"
    );
}

#[test]
fn cookie_for_another_ip_is_replaced() {
    let origin = Origin::start();
    let server = Server::start("replace", &config(&origin.url(), "US", &hmac_ec()));
    let stale = format!("ts-ec={}.abcdef", expected_hash("192.0.2.1"));
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("Cookie", &stale)]);
    assert_edge_cookie(
        response.set_cookie("ts-ec").expect("re-minted"),
        "127.0.0.1",
    );
}

#[test]
fn geo_header_selects_the_jurisdiction() {
    let origin = Origin::start();
    let server = Server::start("geo", &config(&origin.url(), "US", &hmac_ec()));
    let de = server.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "DE")]);
    assert_eq!(
        de.set_cookie("ts-ec"),
        None,
        "DE is GDPR: no consent, no cookie"
    );
    let fr_default = Server::start("geo-fr", &config(&origin.url(), "FR", &hmac_ec()));
    let us = fr_default.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "us")]);
    assert!(us.set_cookie("ts-ec").is_some(), "US via geo header mints");
}

#[test]
fn forwarded_for_is_honoured_only_from_trusted_proxies() {
    let origin = Origin::start();
    let config = config(&origin.url(), "US", &hmac_ec()).replace(
        "trusted_proxies = [\"127.0.0.1\"]",
        "trusted_proxies = [\"127.0.0.2\"]",
    );
    let server = Server::start("xff", &config);
    // 127.0.0.1 is not a trusted proxy here: its X-Forwarded-For is ignored.
    let response = server.get(
        "/",
        &[
            ("User-Agent", BROWSER_UA),
            ("X-Forwarded-For", "2001:db8:85a3:0:8a2e:370:7334:1234"),
        ],
    );
    assert_edge_cookie(response.set_cookie("ts-ec").expect("minted"), "127.0.0.1");
}

#[test]
fn ipv6_clients_are_hashed_by_their_64_prefix() {
    let origin = Origin::start();
    let extra = format!("{}\n", hmac_ec());
    let server = Server::start("v6", &config(&origin.url(), "US", &extra));
    let response = server.get(
        "/",
        &[
            ("User-Agent", BROWSER_UA),
            ("X-Forwarded-For", "2001:db8:85a3:0:8a2e:370:7334:1234"),
        ],
    );
    assert_edge_cookie(
        response.set_cookie("ts-ec").expect("minted"),
        "20010db885a30000",
    );
}

#[test]
fn assets_and_own_routes_run_no_providers() {
    let origin = Origin::start();
    let server = Server::start("assets", &config(&origin.url(), "US", &hmac_ec()));
    let asset = server.get("/static/app.js", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(asset.status, 200);
    assert_eq!(asset.set_cookie("ts-ec"), None);
    let health = server.get("/_ts/health", &[]);
    assert_eq!(health.status, 200);
    assert!(health.body.contains("\"status\":\"ok\""), "{}", health.body);
    let missing = server.get("/_ts/nope", &[]);
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        missing.body.contains("/_ts/problems/not-found"),
        "{}",
        missing.body
    );
}

#[test]
fn unreachable_origin_is_a_problem_json_502() {
    // A port nothing listens on.
    let port = crate::support::unused_port();
    let server = Server::start(
        "no-origin",
        &config(&format!("http://127.0.0.1:{port}"), "US", &hmac_ec()),
    );
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 502);
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    assert!(
        response.body.contains("origin-unavailable"),
        "{}",
        response.body
    );
}

/// A TC string consenting to purposes 1, 3, 9 and 10, last updated 2012-01-10 (CPAN
/// GDPR-IAB-TCFv2 `t/01-parse.t`; also in the core's consent tests). Old, so tests that want it
/// honoured raise `consent.max_consent_age_days`.
const TCF_PURPOSE_1: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";

const LONG_CONSENT_AGE: &str = "\n[consent]\nmax_consent_age_days = 36500\n";

#[test]
fn de_with_tcf_storage_consent_mints_an_edge_cookie() {
    let origin = Origin::start();
    let extra = format!("{}{LONG_CONSENT_AGE}", hmac_ec());
    let server = Server::start("de-tcf", &config(&origin.url(), "DE", &extra));
    let cookie = format!("euconsent-v2={TCF_PURPOSE_1}");
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("Cookie", &cookie)]);
    assert_edge_cookie(
        response.set_cookie("ts-ec").expect("consented"),
        "127.0.0.1",
    );
}

#[test]
fn expired_tcf_consent_is_ignored() {
    let origin = Origin::start();
    let server = Server::start("de-tcf-expired", &config(&origin.url(), "DE", &hmac_ec()));
    let cookie = format!("euconsent-v2={TCF_PURPOSE_1}");
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("Cookie", &cookie)]);
    assert_eq!(
        response.set_cookie("ts-ec"),
        None,
        "older than 395 days: no consent"
    );
}

#[test]
fn gpp_us_sale_opt_out_sets_no_edge_cookie() {
    let origin = Origin::start();
    let server = Server::start("us-gpp", &config(&origin.url(), "US", &hmac_ec()));
    // usnat v1 with every opt-out set and a GPC sub-section (iab_gpp crate fixtures).
    let cookie = "__gpp=DBABLA~BVVVVVVVVWA.YA; __gpp_sid=7";
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("Cookie", cookie)]);
    assert_eq!(response.set_cookie("ts-ec"), None);
}

#[test]
fn malformed_consent_cookie_is_ignored_and_others_still_count() {
    let origin = Origin::start();
    let server = Server::start("us-bad-tcf", &config(&origin.url(), "US", &hmac_ec()));
    let bad = server.get(
        "/",
        &[
            ("User-Agent", BROWSER_UA),
            ("Cookie", "euconsent-v2=!!!not-base64!!!"),
        ],
    );
    assert!(
        bad.set_cookie("ts-ec").is_some(),
        "a malformed TC string is ignored"
    );
    let bad_and_usp = server.get(
        "/",
        &[
            ("User-Agent", BROWSER_UA),
            ("Cookie", "euconsent-v2=!!!; us_privacy=1YYN"),
        ],
    );
    assert_eq!(
        bad_and_usp.set_cookie("ts-ec"),
        None,
        "the US Privacy opt-out still counts"
    );
}

/// The shipped `examples/gatehouse.toml`, listening on a free port, with the test run's component
/// cache and a call budget that never fires (the outcome must not depend on machine load).
fn example_config() -> String {
    let example = std::fs::read_to_string(workspace_root().join("examples/gatehouse.toml"))
        .expect("examples/gatehouse.toml");
    let replace = |text: String, from: &str, to: &str| {
        assert!(text.contains(from), "the example contains {from:?}");
        text.replace(from, to)
    };
    let example = replace(
        example,
        "listen = \"127.0.0.1:8080\"",
        "listen = \"127.0.0.1:0\"",
    );
    replace(
        example,
        "call_cpu_ms = 5\ncall_timeout_ms = 1000\n",
        &format!(
            "call_cpu_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}\ncall_timeout_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}\ncache_dir = \"{}\"\n",
            cache_dir().display()
        ),
    )
}

#[test]
fn example_config_defaults_to_fr_and_mints_only_for_a_us_visitor_as_the_readme_shows() {
    let example = example_config();
    assert!(
        example.contains("default_country = \"FR\""),
        "the example ships the protective default"
    );
    let server = Server::start("example", &example);
    // The README's curl lines, in order.
    let us = server.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "US")]);
    assert_eq!(us.status, 200);
    assert!(us.set_cookie("ts-ec").is_some(), "US: ts-ec minted");
    let unknown = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(unknown.status, 200);
    assert!(
        unknown.all("set-cookie").is_empty(),
        "unknown location: the FR default refuses"
    );
    let us_gpc = server.get(
        "/",
        &[
            ("User-Agent", BROWSER_UA),
            ("X-Geo-Country", "US"),
            ("Sec-GPC", "1"),
        ],
    );
    assert!(us_gpc.all("set-cookie").is_empty(), "GPC opts out");
    let de = server.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "DE")]);
    assert!(de.all("set-cookie").is_empty(), "GDPR, no consent");
    let health = server.get("/_ts/health", &[]);
    assert_eq!(health.status, 200);
}
