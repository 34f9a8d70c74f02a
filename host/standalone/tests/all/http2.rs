//! HTTP/2 from clients, cleartext with prior knowledge (h2c) and over TLS by ALPN: the page flow
//! decides exactly as over HTTP/1.1.

use crate::support::{BROWSER_UA, Origin, Server, config, hmac_ec};
use crate::tls_support::{TestCa, h2c_get, server_tls_section, tls_get};

/// The HMAC part of a `ts-ec` Set-Cookie (the suffix is random per mint).
fn cookie_hash(set_cookie: &str) -> &str {
    set_cookie
        .strip_prefix("ts-ec=")
        .and_then(|v| v.split('.').next())
        .expect("ts-ec value")
}

/// The attributes of a `ts-ec` Set-Cookie.
fn cookie_attributes(set_cookie: &str) -> &str {
    set_cookie.split_once("; ").expect("attributes").1
}

#[test]
fn h2c_page_flow_sets_the_same_edge_cookie_as_http1() {
    let origin = Origin::start();
    let server = Server::start("h2c-us", &config(&origin.url(), "US", &hmac_ec()));
    let headers = [("user-agent", BROWSER_UA)];
    let h1 = server.get("/", &headers);
    let h2 = h2c_get(server.addr, "/", &headers);
    assert_eq!(h2.status, 200, "{h2:?}");
    assert_eq!(h2.header("x-origin"), Some("yes"), "proxied to the origin");
    let (h1_cookie, h2_cookie) = (
        h1.set_cookie("ts-ec").expect("h1 mints"),
        h2.set_cookie("ts-ec").expect("h2 mints"),
    );
    assert_eq!(cookie_hash(h1_cookie), cookie_hash(h2_cookie));
    assert_eq!(cookie_attributes(h1_cookie), cookie_attributes(h2_cookie));
    // The origin got an HTTP/1.1 request with a Host header.
    let requests = origin.requests.lock().expect("requests");
    assert!(
        requests
            .last()
            .is_some_and(|r| r.starts_with("GET / HTTP/1.1")),
        "{requests:?}"
    );
}

#[test]
fn h2c_page_flow_honours_gpc_and_jurisdiction_like_http1() {
    let origin = Origin::start();
    let us = Server::start("h2c-gpc", &config(&origin.url(), "US", &hmac_ec()));
    let gpc = [("user-agent", BROWSER_UA), ("sec-gpc", "1")];
    assert_eq!(us.get("/", &gpc).set_cookie("ts-ec"), None);
    assert_eq!(h2c_get(us.addr, "/", &gpc).set_cookie("ts-ec"), None);
    let fr = Server::start("h2c-fr", &config(&origin.url(), "FR", &hmac_ec()));
    let browser = [("user-agent", BROWSER_UA)];
    assert_eq!(fr.get("/", &browser).set_cookie("ts-ec"), None);
    let h2 = h2c_get(fr.addr, "/", &browser);
    assert_eq!(h2.status, 200);
    assert_eq!(h2.set_cookie("ts-ec"), None);
}

#[test]
fn h2c_existing_cookie_split_across_cookie_fields_is_kept() {
    // HTTP/2 clients may send each cookie as its own `cookie` field (RFC 9113 §8.2.3).
    let origin = Origin::start();
    let server = Server::start("h2c-keep", &config(&origin.url(), "US", &hmac_ec()));
    let first = h2c_get(server.addr, "/", &[("user-agent", BROWSER_UA)]);
    let minted = first.set_cookie("ts-ec").expect("minted");
    let pair = minted.split_once(';').expect("pair").0;
    let second = h2c_get(
        server.addr,
        "/",
        &[
            ("user-agent", BROWSER_UA),
            ("cookie", "other=1"),
            ("cookie", pair),
        ],
    );
    assert_eq!(second.status, 200);
    assert_eq!(
        second.set_cookie("ts-ec"),
        None,
        "a kept cookie is not re-set"
    );
    let requests = origin.requests.lock().expect("requests");
    let last = requests.last().expect("origin request");
    let cookie_lines: Vec<&str> = last
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("cookie:"))
        .collect();
    assert_eq!(
        cookie_lines,
        vec![format!("cookie: other=1; {pair}").as_str()],
        "one joined Cookie header reaches the HTTP/1.1 origin"
    );
}

#[test]
fn tls_listener_serves_http2_and_http1_by_alpn_with_the_same_decision() {
    let ca = TestCa::new("listener");
    let leaf = ca.issue("listener", &["localhost"]);
    let origin = Origin::start();
    let cfg = config(&origin.url(), "US", &hmac_ec()) + &server_tls_section(&leaf);
    let server = Server::start("tls-listener", &cfg);
    let headers = [("user-agent", BROWSER_UA)];
    let (h2, alpn) = tls_get(server.addr, &ca, &[b"h2", b"http/1.1"], "/", &headers);
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert_eq!(h2.status, 200, "{h2:?}");
    let (h1, alpn) = tls_get(server.addr, &ca, &[b"http/1.1"], "/", &headers);
    assert_eq!(alpn.as_deref(), Some(&b"http/1.1"[..]));
    assert_eq!(h1.status, 200, "{h1:?}");
    let (h1_cookie, h2_cookie) = (
        h1.set_cookie("ts-ec").expect("h1 mints"),
        h2.set_cookie("ts-ec").expect("h2 mints"),
    );
    assert_eq!(cookie_hash(h1_cookie), cookie_hash(h2_cookie));
    assert_eq!(cookie_attributes(h1_cookie), cookie_attributes(h2_cookie));
    let (gpc, _) = tls_get(
        server.addr,
        &ca,
        &[b"h2"],
        "/",
        &[("user-agent", BROWSER_UA), ("sec-gpc", "1")],
    );
    assert_eq!(gpc.status, 200);
    assert_eq!(gpc.set_cookie("ts-ec"), None, "GPC honoured over TLS h2");
}

#[test]
fn tls_key_that_does_not_fit_the_certificate_fails_naming_the_key() {
    let ca = TestCa::new("mismatch");
    let a = ca.issue("a", &["localhost"]);
    let b = ca.issue("b", &["localhost"]);
    let origin = Origin::start();
    let cfg = config(&origin.url(), "US", &hmac_ec())
        + &format!(
            "[server.tls]\ncert = \"{}\"\nkey = \"{}\"\n",
            a.cert.display(),
            b.key.display()
        );
    let path = crate::support::write_config("tls-mismatch", &cfg);
    let out = crate::support::run(&["serve", "--config", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`server.tls.key`"), "{stderr}");
}
