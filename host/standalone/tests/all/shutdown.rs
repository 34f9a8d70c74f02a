//! Graceful shutdown: requests in flight finish, new connections are refused, idle connections
//! are closed, health reports `draining`, and the process exits 0 within the drain timeout.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::support::{BROWSER_UA, Origin, Server, config, hmac_ec, http_get};

/// The standard config (US default, HMAC Edge Cookie) with `server` keys added to `[server]`.
fn drain_config(origin: &Origin, server: &str) -> String {
    config(&origin.url(), "US", &hmac_ec()).replace("[server]\n", &format!("[server]\n{server}\n"))
}

/// Waits until `origin` has received `n` requests.
fn wait_for_origin_requests(origin: &Origin, n: usize) {
    let start = Instant::now();
    while origin.requests.lock().expect("requests").len() < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "origin got no request"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits until connecting to the server is refused; panics after 5 s.
fn wait_until_refused(server: &Server) {
    let start = Instant::now();
    while TcpStream::connect(server.addr).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "the listener still accepts after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn request_in_flight_at_sigterm_completes_and_new_connections_are_refused() {
    let origin = Origin::start_with_delay(Duration::from_millis(1500));
    let mut server = Server::start(
        "drain-in-flight",
        &drain_config(&origin, "drain_timeout_ms = 10000"),
    );
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || http_get(addr, "/", &[("User-Agent", BROWSER_UA)]));
    wait_for_origin_requests(&origin, 1);
    let signalled = Instant::now();
    server.signal(Signal::TERM);
    wait_until_refused(&server);
    let response = in_flight.join().expect("client thread");
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.header("x-origin"), Some("yes"));
    assert!(
        response.set_cookie("ts-ec").is_some(),
        "the decision still ran"
    );
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("exits within the drain timeout");
    assert!(status.success(), "exit status {status:?}\n{}", server.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "{:?}",
        signalled.elapsed()
    );
    assert!(server.log().contains("drained"), "{}", server.log());
}

#[test]
fn idle_keep_alive_connection_is_closed_at_sigterm_and_exit_is_prompt() {
    let origin = Origin::start();
    let mut server = Server::start(
        "drain-idle",
        &drain_config(&origin, "drain_timeout_ms = 20000"),
    );
    // One request on a keep-alive connection, then leave it idle.
    let mut idle = TcpStream::connect(server.addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    idle.write_all(b"GET /_ts/health HTTP/1.1\r\nHost: site.example\r\n\r\n")
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = idle.read(&mut buf).expect("response");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let signalled = Instant::now();
    server.signal(Signal::TERM);
    // The server closes the idle connection: the read sees EOF, not the 10 s timeout.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).expect("closed, not timed out");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("an idle connection does not hold the exit up");
    assert!(status.success(), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(5));
}

#[test]
fn health_reports_draining_with_503_during_the_drain_delay() {
    let origin = Origin::start();
    let mut server = Server::start(
        "drain-delay",
        &drain_config(&origin, "drain_delay_ms = 1500\ndrain_timeout_ms = 10000"),
    );
    assert_eq!(server.get("/_ts/health", &[]).status, 200);
    server.signal(Signal::TERM);
    server.wait_for_log("SIGTERM: draining", 1);
    let health = server.get("/_ts/health", &[]);
    assert_eq!(health.status, 503, "{health:?}");
    let doc: serde_json::Value = serde_json::from_str(&health.body).expect("json");
    assert_eq!(doc["status"], "draining");
    // Pages are still served during the delay, each closing its connection.
    let page = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(page.status, 200);
    assert_eq!(page.header("connection"), Some("close"));
    wait_until_refused(&server);
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn drain_timeout_bounds_the_exit_when_a_request_hangs() {
    let origin = Origin::start_with_delay(Duration::from_secs(20));
    let mut server = Server::start(
        "drain-timeout",
        // The test config's origin timeout never fires, so the request hangs for the whole
        // origin delay and only the drain timeout can end it.
        &drain_config(&origin, "drain_timeout_ms = 1000"),
    );
    let addr = server.addr;
    std::thread::spawn(move || {
        let _ = std::panic::catch_unwind(|| http_get(addr, "/", &[]));
    });
    wait_for_origin_requests(&origin, 1);
    let signalled = Instant::now();
    server.signal(Signal::TERM);
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("exits at the drain timeout");
    assert!(status.success(), "{status:?}");
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "{took:?}"
    );
    assert!(server.log().contains("drain timeout"), "{}", server.log());
}

#[test]
fn drain_delay_not_shorter_than_timeout_fails_naming_the_key() {
    let origin = Origin::start();
    let cfg = drain_config(&origin, "drain_delay_ms = 5000\ndrain_timeout_ms = 5000");
    let path = crate::support::write_config("drain-bad", &cfg);
    let out = crate::support::run(&["serve", "--config", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`server.drain_delay_ms`"), "{stderr}");
}

#[test]
fn http2_request_in_flight_at_sigterm_completes() {
    let origin = Origin::start_with_delay(Duration::from_millis(1500));
    let mut server = Server::start(
        "drain-h2",
        &drain_config(&origin, "drain_timeout_ms = 10000"),
    );
    let addr = server.addr;
    let in_flight = std::thread::spawn(move || {
        crate::tls_support::h2c_get(addr, "/", &[("user-agent", BROWSER_UA)])
    });
    wait_for_origin_requests(&origin, 1);
    server.signal(Signal::TERM);
    wait_until_refused(&server);
    let response = in_flight.join().expect("client thread");
    assert_eq!(response.status, 200, "{response:?}");
    assert!(response.set_cookie("ts-ec").is_some());
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status:?}");
}
