//! The edge around the sandbox, attacked as an outside review did: whom the server believes about
//! the client, what the origin is told, malformed and oversized requests, config values that end
//! up in responses, the compiled-component cache and the logs. Each test is named after the
//! behaviour it protects and failed before the fix.

use std::io::Read as _;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::serve::expected_hash;
use crate::support::{
    BROWSER_UA, Origin, Server, config, hmac_ec, http_raw, run, temp_dir, write_config,
};

/// The hash part of a minted Edge Cookie.
fn minted_hash(server: &Server, headers: &[(&str, &str)]) -> String {
    let mut all = vec![("User-Agent", BROWSER_UA)];
    all.extend_from_slice(headers);
    let response = server.get("/", &all);
    let cookie = response
        .set_cookie("ts-ec")
        .expect("an edge cookie is minted");
    let value = cookie.split(';').next().expect("pair");
    value
        .trim_start_matches("ts-ec=")
        .split('.')
        .next()
        .expect("hash")
        .to_owned()
}

fn untrusting(config: &str) -> String {
    config.replace(
        "trusted_proxies = [\"127.0.0.1\"]",
        "trusted_proxies = [\"127.0.0.2\"]",
    )
}

/// The last request head the origin received.
fn last_origin_request(origin: &Origin) -> String {
    origin
        .requests
        .lock()
        .expect("requests")
        .last()
        .cloned()
        .expect("the origin was called")
        .to_ascii_lowercase()
}

#[test]
fn client_sent_forwarded_does_not_choose_the_ip_when_the_proxy_writes_xff() {
    // Reproduction: a trusted proxy appends to X-Forwarded-For only; the visitor adds its own
    // `Forwarded: for=…` and used to pick the address its Edge Cookie is hashed from.
    let origin = Origin::start();
    let server = Server::start("xff-only", &config(&origin.url(), "US", &hmac_ec()));
    let hash = minted_hash(
        &server,
        &[
            ("Forwarded", "for=192.0.2.66"),
            ("X-Forwarded-For", "203.0.113.9"),
        ],
    );
    assert_eq!(hash, expected_hash("203.0.113.9"));
}

#[test]
fn unparseable_forwarded_for_hop_stops_the_walk() {
    // Reproduction: `X-Forwarded-For: 192.0.2.66, garbage` from a trusted proxy skipped `garbage`
    // and believed the address the visitor wrote left of it.
    let origin = Origin::start();
    let server = Server::start("xff-garbage", &config(&origin.url(), "US", &hmac_ec()));
    let hash = minted_hash(&server, &[("X-Forwarded-For", "192.0.2.66, garbage")]);
    assert_eq!(hash, expected_hash("127.0.0.1"));
}

#[test]
fn configured_client_ip_header_is_the_only_one_read() {
    let origin = Origin::start();
    let config = config(&origin.url(), "US", &hmac_ec()).replace(
        "trusted_proxies = [\"127.0.0.1\"]",
        "trusted_proxies = [\"127.0.0.1\"]\nclient_ip_header = \"cf-connecting-ip\"",
    );
    let server = Server::start("cf-ip", &config);
    let hash = minted_hash(
        &server,
        &[
            ("X-Forwarded-For", "192.0.2.66"),
            ("CF-Connecting-IP", "203.0.113.9"),
        ],
    );
    assert_eq!(hash, expected_hash("203.0.113.9"));
}

#[test]
fn origin_receives_forwarding_headers_rewritten_from_the_trusted_chain() {
    // Reproduction: the origin received the client's own X-Forwarded-For/Forwarded as sent.
    let origin = Origin::start();
    let server = Server::start(
        "rewrite-xff",
        &untrusting(&config(&origin.url(), "US", &hmac_ec())),
    );
    let response = server.get(
        "/",
        &[
            ("User-Agent", BROWSER_UA),
            ("X-Forwarded-For", "6.6.6.6"),
            ("Forwarded", "for=6.6.6.6;proto=https"),
        ],
    );
    assert_eq!(response.status, 200);
    let seen = last_origin_request(&origin);
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\r\n"), "{seen}");
    assert!(seen.contains("forwarded: for=127.0.0.1\r\n"), "{seen}");
    assert!(seen.contains("via: 1.1 gatehouse\r\n"), "{seen}");
    assert!(!seen.contains("6.6.6.6"), "{seen}");
}

#[test]
fn geo_header_from_an_untrusted_peer_is_neither_believed_nor_forwarded() {
    // Reproduction: `X-Geo-Country` was believed from any peer, so a visitor chose its own
    // jurisdiction.
    let origin = Origin::start();
    let server = Server::start(
        "untrusted-geo",
        &untrusting(&config(&origin.url(), "FR", &hmac_ec())),
    );
    let response = server.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "US")]);
    assert_eq!(
        response.set_cookie("ts-ec"),
        None,
        "FR default still applies"
    );
    let seen = last_origin_request(&origin);
    assert!(!seen.contains("x-geo-country"), "{seen}");

    // From a trusted proxy the same header counts.
    let trusted = Server::start("trusted-geo", &config(&origin.url(), "FR", &hmac_ec()));
    let response = trusted.get("/", &[("User-Agent", BROWSER_UA), ("X-Geo-Country", "US")]);
    assert!(response.set_cookie("ts-ec").is_some());
}

#[test]
fn connect_and_trace_are_refused_not_forwarded() {
    let origin = Origin::start();
    let server = Server::start("connect", &config(&origin.url(), "US", &hmac_ec()));
    let connect = http_raw(
        server.addr,
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    );
    assert_eq!(connect.status, 405);
    assert_eq!(
        connect.header("content-type"),
        Some("application/problem+json")
    );
    let trace = http_raw(
        server.addr,
        b"TRACE / HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(trace.status, 405);
    assert!(origin.requests.lock().expect("requests").is_empty());
}

#[test]
fn two_host_headers_are_a_400() {
    let origin = Origin::start();
    let config = config(&origin.url(), "US", &hmac_ec())
        .replace("url = \"http", "preserve_host = true\nurl = \"http");
    let server = Server::start("two-hosts", &config);
    let response = http_raw(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(response.status, 400);
    assert!(
        response.body.contains("/_ts/problems/bad-request"),
        "{}",
        response.body
    );
    assert!(origin.requests.lock().expect("requests").is_empty());
}

/// An origin that reads whatever it is sent and never answers, so the only way a request ends is
/// Gatehouse giving up on the client's body (no race with an early origin response).
fn silent_origin() -> (String, Arc<Mutex<usize>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&connections);
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            *seen.lock().expect("count") += 1;
            std::thread::spawn(move || {
                let mut sink = [0u8; 4096];
                while matches!(stream.read(&mut sink), Ok(n) if n > 0) {}
            });
        }
    });
    (url, connections)
}

#[test]
fn malformed_chunked_body_is_the_clients_400_not_a_502() {
    // Reproduction: a bad chunk size was answered 502 and logged as an origin failure.
    let (url, _) = silent_origin();
    let server = Server::start("bad-chunk", &config(&url, "US", &hmac_ec()));
    let response = http_raw(
        server.addr,
        b"POST /form HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\n\
          Connection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 400, "{}", response.body);
    assert!(
        response.body.contains("/_ts/problems/bad-request"),
        "{}",
        response.body
    );
    assert!(
        !server.log().contains("origin request failed"),
        "{}",
        server.log()
    );
}

#[test]
fn oversized_request_bodies_are_413() {
    let (url, connections) = silent_origin();
    let config =
        config(&url, "US", &hmac_ec()).replace("[origin]", "max_body_bytes = 1024\n\n[origin]");
    let server = Server::start("too-large", &config);
    // Declared too large: refused before the origin is contacted.
    let declared = http_raw(
        server.addr,
        b"POST /form HTTP/1.1\r\nHost: site.example\r\nContent-Length: 4096\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(declared.status, 413);
    assert_eq!(
        declared.header("content-type"),
        Some("application/problem+json")
    );
    assert_eq!(*connections.lock().expect("count"), 0);
    // Streamed past the limit without a length.
    let mut raw = b"POST /form HTTP/1.1\r\nHost: site.example\r\nTransfer-Encoding: chunked\r\n\
                    Connection: close\r\n\r\n800\r\n"
        .to_vec();
    raw.extend(std::iter::repeat_n(b'a', 0x800));
    raw.extend_from_slice(b"\r\n0\r\n\r\n");
    let streamed = http_raw(server.addr, &raw);
    assert_eq!(streamed.status, 413, "{}", streamed.body);
}

fn startup_error(label: &str, config: &str) -> String {
    let path = write_config(label, config);
    let out = run(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(2), "`{label}` must fail to start");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn config_values_that_reach_responses_are_validated_at_startup() {
    // Reproduction: these were accepted and went verbatim into `Set-Cookie` or let a provider set
    // framing headers (an empty reply).
    let origin = Origin::start();
    let cases: &[(&str, &str, &str)] = &[
        (
            "allowed_headers = [\"content-length\"]",
            "ec.allowed_headers[0]",
            "content-length",
        ),
        (
            "allowed_headers = [\"transfer-encoding\"]",
            "ec.allowed_headers[0]",
            "transfer-encoding",
        ),
        (
            "allowed_headers = [\"Set-Cookie\"]",
            "ec.allowed_headers[0]",
            "set-cookie",
        ),
        (
            "allowed_headers = [\"x-ok\", \"\"]",
            "ec.allowed_headers[1]",
            "not a valid header name",
        ),
        (
            "allowed_headers = [\"x bad\"]",
            "ec.allowed_headers[0]",
            "not a valid header name",
        ),
        (
            "cookie_domain = \"example.com; SameSite=None\"",
            "ec.cookie_domain",
            "host name",
        ),
        ("cookie_name = \"a b;c\"", "ec.cookie_name", "cookie name"),
    ];
    for (i, (line, key, reason)) in cases.iter().enumerate() {
        let ec = hmac_ec().replace("[ec]\n", &format!("[ec]\n{line}\n"));
        let config =
            config(&origin.url(), "US", &ec).replace("cookie_domain = \"example.test\"\n", "");
        let err = startup_error(&format!("bad-value-{i}"), &config);
        assert!(err.contains(&format!("`{key}`")), "{line}: {err}");
        assert!(err.contains(reason), "{line}: {err}");
    }
}

fn cache_entries(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
                .collect()
        })
        .unwrap_or_default();
    entries.sort();
    entries
}

#[test]
fn swapped_cache_entries_are_recompiled_not_run() {
    // Reproduction: renaming one provider's compiled artifact to another's cache name made the
    // server run it under the other's pinned digest.
    let origin = Origin::start();
    let cache = temp_dir("swap-cache").join("cache");
    let config = config(&origin.url(), "US", &hmac_ec()).replace(
        &format!("cache_dir = \"{}\"", crate::support::cache_dir().display()),
        &format!("cache_dir = \"{}\"", cache.display()),
    );
    drop(Server::start("swap-1", &config));
    let entries = cache_entries(&cache);
    assert_eq!(entries.len(), 3, "geo, device and EC compiled: {entries:?}");
    let (a, b) = (&entries[0], &entries[1]);
    let tmp = cache.join("swap.tmp");
    std::fs::rename(a, &tmp).expect("swap");
    std::fs::rename(b, a).expect("swap");
    std::fs::rename(&tmp, b).expect("swap");
    let server = Server::start("swap-2", &config);
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert!(
        response.set_cookie("ts-ec").is_some(),
        "providers still work"
    );
    let bot = server.get("/", &[("User-Agent", "Googlebot/2.1")]);
    assert_eq!(
        bot.set_cookie("ts-ec"),
        None,
        "the device provider is itself"
    );
    let log = server.log_when(|log| log.matches("not bound to this component").count() >= 2);
    assert_eq!(
        log.matches("not bound to this component").count(),
        2,
        "{log}"
    );
}

#[cfg(unix)]
#[test]
fn a_cache_directory_others_can_write_is_not_used() {
    use std::os::unix::fs::PermissionsExt as _;
    let origin = Origin::start();
    let cache = temp_dir("open-cache").join("cache");
    std::fs::create_dir_all(&cache).expect("mkdir");
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let config = config(&origin.url(), "US", &hmac_ec()).replace(
        &format!("cache_dir = \"{}\"", crate::support::cache_dir().display()),
        &format!("cache_dir = \"{}\"", cache.display()),
    );
    let server = Server::start("open-cache", &config);
    assert!(server.get("/", &[("User-Agent", BROWSER_UA)]).status == 200);
    let log = server.log_when(|log| log.contains("other users can write to it"));
    assert!(log.contains("other users can write to it"), "{log}");
    assert!(cache_entries(&cache).is_empty(), "nothing written there");
}

#[test]
fn logs_carry_no_colour_codes_when_not_on_a_terminal() {
    // Reproduction: logs written to a file carried ANSI escape sequences.
    let origin = Origin::start();
    let server = Server::start("no-ansi", &config(&origin.url(), "US", &hmac_ec()));
    let _ = server.get("/", &[("User-Agent", BROWSER_UA)]);
    let log = server.log_when(|log| log.contains("provider loaded"));
    assert!(log.contains("provider loaded"), "{log}");
    assert!(!log.contains('\u{1b}'), "{log:?}");
}

#[test]
fn json_log_format_writes_one_object_per_line() {
    let origin = Origin::start();
    let server = Server::start_with_args(
        "json-log",
        &config(&origin.url(), "US", &hmac_ec()),
        &["--log-format", "json"],
    );
    let log = server.log_when(|log| log.contains("provider loaded"));
    let lines: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
    assert!(!lines.is_empty());
    for line in lines {
        let value: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        assert!(value.get("level").is_some(), "{line}");
    }
}
