//! HTTPS origins: the certificate chain and host name are always verified, HTTP/2 or HTTP/1.1 is
//! chosen by ALPN, and a TLS failure is a 502 problem naming it.

use http::Version;

use crate::support::{BROWSER_UA, Server, config, hmac_ec, run, write_config};
use crate::tls_support::{TestCa, TlsOrigin, toml_path};

/// The standard config (US default, HMAC Edge Cookie) proxying to `url`, trusting `ca_file`.
fn https_config(url: &str, ca_file: Option<&std::path::Path>) -> String {
    let ca = ca_file.map_or(String::new(), |p| {
        format!("ca_file = \"{}\"\n", toml_path(p))
    });
    config(url, "US", &hmac_ec()).replace(
        &format!("[origin]\nurl = \"{url}\"\n"),
        &format!("[origin]\nurl = \"{url}\"\n{ca}"),
    )
}

fn assert_tls_problem(response: &crate::support::Response, needle: &str) {
    assert_eq!(response.status, 502, "{response:?}");
    assert_eq!(
        response.header("content-type"),
        Some("application/problem+json")
    );
    let doc: serde_json::Value = serde_json::from_str(&response.body).expect("problem json");
    assert_eq!(doc["type"], "/_ts/problems/origin-tls", "{doc}");
    let detail = doc["detail"].as_str().expect("detail");
    assert!(detail.contains(needle), "{detail}");
}

#[test]
fn https_origin_verified_by_ca_file_is_proxied_over_http2_by_alpn() {
    let ca = TestCa::new("origin-ok");
    let origin = TlsOrigin::start(&ca.issue("origin", &["localhost"]), &[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}", origin.addr.port());
    let server = Server::start("https-ok", &https_config(&url, Some(&ca.cert_file())));
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200, "{response:?}\n{}", server.log());
    assert_eq!(response.header("x-origin"), Some("tls"));
    assert!(response.set_cookie("ts-ec").is_some(), "the decision ran");
    assert_eq!(
        *origin.versions.lock().expect("versions"),
        vec![Version::HTTP_2]
    );
}

#[test]
fn https_origin_without_h2_is_proxied_over_http1() {
    let ca = TestCa::new("origin-h1");
    let origin = TlsOrigin::start(&ca.issue("origin", &["localhost"]), &[b"http/1.1"]);
    let url = format!("https://localhost:{}", origin.addr.port());
    let server = Server::start("https-h1", &https_config(&url, Some(&ca.cert_file())));
    let response = server.get("/page", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200, "{response:?}\n{}", server.log());
    assert_eq!(
        *origin.versions.lock().expect("versions"),
        vec![Version::HTTP_11]
    );
}

#[test]
fn https_origin_with_wrong_host_name_gives_502_naming_the_name_mismatch() {
    let ca = TestCa::new("origin-name");
    let origin = TlsOrigin::start(&ca.issue("origin", &["localhost"]), &[b"h2", b"http/1.1"]);
    // Same server, reached by an address its certificate does not name.
    let url = format!("https://127.0.0.1:{}", origin.addr.port());
    let server = Server::start("https-name", &https_config(&url, Some(&ca.cert_file())));
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_tls_problem(&response, "certificate name mismatch");
    assert_tls_problem(&response, "`127.0.0.1`");
    assert!(origin.versions.lock().expect("versions").is_empty());
    assert!(
        server.log().contains("origin TLS failed"),
        "{}",
        server.log()
    );
}

#[test]
fn https_origin_signed_by_an_unknown_ca_gives_502_naming_it() {
    let ca = TestCa::new("origin-real");
    let other = TestCa::new("origin-other");
    let origin = TlsOrigin::start(&ca.issue("origin", &["localhost"]), &[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}", origin.addr.port());
    let server = Server::start("https-ca", &https_config(&url, Some(&other.cert_file())));
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_tls_problem(&response, "certificate unknown");
    assert!(origin.versions.lock().expect("versions").is_empty());
}

#[test]
fn https_origin_is_verified_against_the_system_roots_by_default() {
    // No `ca_file`: a test CA is in no system store, so the origin is refused as unknown.
    let ca = TestCa::new("origin-system");
    let origin = TlsOrigin::start(&ca.issue("origin", &["localhost"]), &[b"h2", b"http/1.1"]);
    let url = format!("https://localhost:{}", origin.addr.port());
    let server = Server::start("https-system", &https_config(&url, None));
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_tls_problem(&response, "certificate unknown");
}

#[test]
fn origin_ca_file_with_an_http_origin_fails_naming_the_key() {
    let ca = TestCa::new("origin-http-ca");
    let cfg = https_config("http://127.0.0.1:9", Some(&ca.cert_file()));
    let path = write_config("http-ca", &cfg);
    let out = run(&["serve", "--config", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`origin.ca_file`"), "{stderr}");
}

#[test]
fn origin_ca_file_without_certificates_fails_naming_the_key() {
    let dir = crate::support::temp_dir("empty-ca");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "not a certificate\n").expect("write");
    let cfg = https_config("https://localhost:9", Some(&empty));
    let path = write_config("empty-ca", &cfg);
    let out = run(&["serve", "--config", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`origin.ca_file`"), "{stderr}");
    assert!(stderr.contains("no PEM certificate"), "{stderr}");
}
