//! Connection, origin and admin limits (issue 8): slowloris, silent and idle connections, the
//! connection cap, descriptor exhaustion, an origin that stalls mid-body, the admin listener, and
//! dropped provider headers counted. Every limit under test is configured short (hundreds of
//! milliseconds) and every wait is bounded generously (tens of seconds), so no test depends on
//! how fast or loaded the machine is: without the limit the test hits its bound and fails.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use crate::support::{
    BROWSER_UA, Origin, Server, component, config, hmac_ec, http_get, run, sha256_of, write_config,
};

/// The longest any test waits for the server to act on a limit of at most a second.
const BOUND: Duration = Duration::from_secs(30);

/// The standard config with `lines` added to `[server]`.
fn with_server_keys(origin: &str, lines: &str) -> String {
    config(origin, "US", &hmac_ec()).replace("[server]\n", &format!("[server]\n{lines}\n"))
}

/// Whether the server closed `stream` (EOF or reset) within [`BOUND`], reading and discarding
/// whatever it sends first.
fn closed_by_server(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(BOUND)).expect("read timeout");
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    while started.elapsed() < BOUND {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
    false
}

/// Sends one keep-alive GET on `stream` and reads its whole `Content-Length` response.
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> String {
    stream
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: site.example\r\nUser-Agent: {BROWSER_UA}\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send");
    stream.set_read_timeout(Some(BOUND)).expect("read timeout");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = stream.read(&mut buf).expect("response");
        assert!(
            n > 0,
            "closed mid-response: {}",
            String::from_utf8_lossy(&raw)
        );
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().expect("length"))
                })
                .expect("content-length");
            if raw.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

#[test]
fn slowloris_header_bytes_are_cut_off_after_the_header_read_timeout() {
    let origin = Origin::start();
    let server = Server::start(
        "slowloris",
        &with_server_keys(&origin.url(), "header_read_timeout_ms = 300"),
    );
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: site.example\r\n")
        .expect("start");
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    // One header byte every 100 ms, never finishing the head: the server must hang up.
    let started = Instant::now();
    let mut cut_off = false;
    let mut buf = [0u8; 512];
    while started.elapsed() < BOUND {
        if stream.write_all(b"X").is_err() {
            cut_off = true;
            break;
        }
        match stream.read(&mut buf) {
            Ok(_) => {
                cut_off = true;
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => {
                cut_off = true;
                break;
            }
        }
    }
    assert!(
        cut_off,
        "a slowloris client was still connected after {BOUND:?}"
    );
    assert!(origin.requests.lock().expect("requests").is_empty());
}

#[test]
fn a_silent_connection_is_closed_after_the_header_read_timeout() {
    let origin = Origin::start();
    let server = Server::start(
        "silent",
        &with_server_keys(&origin.url(), "header_read_timeout_ms = 300"),
    );
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    assert!(
        closed_by_server(&mut stream),
        "a connection that never sent a byte was still open after {BOUND:?}"
    );
    let metrics = server.get("/_ts/metrics", &[]);
    assert!(
        metrics.body.lines().any(
            |l| l.starts_with("gatehouse_connections_header_timeout_total ") && !l.ends_with(" 0")
        ),
        "{}",
        metrics.body
    );
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let origin = Origin::start();
    // The header timer (which also bounds HTTP/1.1 keep-alive waits) is far longer than the test's
    // bound: only the idle timeout can close the connection.
    let server = Server::start(
        "idle",
        &with_server_keys(
            &origin.url(),
            "header_read_timeout_ms = 3600000\nidle_timeout_ms = 300",
        ),
    );
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    let response = keep_alive_get(&mut stream, "/");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        closed_by_server(&mut stream),
        "an idle keep-alive connection was still open after {BOUND:?}"
    );
}

#[test]
fn the_idle_timeout_never_cuts_a_request_in_flight() {
    // The origin answers after 1.5 s, five times the idle timeout.
    let origin = Origin::start_with_delay(Duration::from_millis(1500));
    let server = Server::start(
        "idle-in-flight",
        &with_server_keys(
            &origin.url(),
            "header_read_timeout_ms = 3600000\nidle_timeout_ms = 300",
        ),
    );
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    let response = keep_alive_get(&mut stream, "/");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
}

#[test]
fn connections_past_the_cap_are_closed_while_the_others_are_served() {
    let origin = Origin::start();
    let server = Server::start(
        "cap",
        &with_server_keys(
            &origin.url(),
            "max_connections = 3\nheader_read_timeout_ms = 3600000\nidle_timeout_ms = 3600000",
        ),
    );
    let mut held: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    // The first three were accepted in order; the fourth meets the cap and is closed at once.
    let mut fourth = TcpStream::connect(server.addr).expect("connect");
    assert!(
        closed_by_server(&mut fourth),
        "the connection past `server.max_connections` was not closed"
    );
    // The ones under the cap are served.
    let response = keep_alive_get(&mut held[0], "/");
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // Once one closes, a new connection is served again.
    drop(held.pop());
    let started = Instant::now();
    loop {
        let mut stream = TcpStream::connect(server.addr).expect("connect");
        stream
            .write_all(
                b"GET /_ts/health HTTP/1.1\r\nHost: site.example\r\nConnection: close\r\n\r\n",
            )
            .expect("send");
        let mut raw = Vec::new();
        stream.set_read_timeout(Some(BOUND)).expect("timeout");
        let _ = stream.read_to_end(&mut raw);
        if raw.starts_with(b"HTTP/1.1 200") {
            break;
        }
        assert!(
            started.elapsed() < BOUND,
            "no connection was served after one under the cap closed"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log_when(|log| log.contains("connection cap reached"));
    assert!(log.contains("connection cap reached"), "{log}");
}

/// Open descriptors of process `pid`.
fn open_descriptors(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .count() as u64
}

#[test]
fn descriptor_exhaustion_backs_off_logs_boundedly_and_recovers() {
    let origin = Origin::start();
    let server = Server::start(
        "emfile",
        &with_server_keys(
            &origin.url(),
            "header_read_timeout_ms = 3600000\nidle_timeout_ms = 3600000",
        ),
    );
    // Leave the server a handful of descriptors beyond what it holds now.
    let pid =
        rustix::process::Pid::from_raw(i32::try_from(server.pid()).expect("pid")).expect("pid");
    let limit = open_descriptors(server.pid()) + 6;
    rustix::process::prlimit(
        Some(pid),
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(limit),
            maximum: Some(limit),
        },
    )
    .expect("lower the server's RLIMIT_NOFILE");
    // The kernel completes these handshakes (the accept queue) whether or not the server can
    // accept them; past the limit, every accept fails with EMFILE.
    let clients: Vec<TcpStream> = (0..24)
        .map(|_| TcpStream::connect(server.addr).expect("connect"))
        .collect();
    let started = Instant::now();
    let log = server.log_when(|log| log.contains("accept failed"));
    assert!(log.contains("accept failed"), "{log}");
    // Watch the failures for a while: one line per second, not one per failure.
    std::thread::sleep(Duration::from_secs(2));
    let lines = server.log().matches("accept failed").count() as u64;
    let allowed = started.elapsed().as_secs() + 2;
    assert!(
        lines <= allowed,
        "{lines} `accept failed` lines in {:?} (at most one per second):\n{}",
        started.elapsed(),
        server.log()
    );
    // Freed descriptors: a normal request is served again.
    drop(clients);
    let response = server.get("/_ts/health", &[]);
    assert_eq!(response.status, 200, "{}", response.body);
    let metrics = server.get("/_ts/metrics", &[]);
    assert!(
        metrics
            .body
            .lines()
            .any(|l| l.starts_with("gatehouse_accept_errors_total ") && !l.ends_with(" 0")),
        "{}",
        metrics.body
    );
}

/// An origin that sends a 200 head declaring 100 bytes, sends 5, and then stalls forever.
fn stalling_origin() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100\r\n\r\nhello",
                );
                // Hold the connection open without sending more, until the server gives up.
                while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
            });
        }
    });
    url
}

#[test]
fn an_origin_that_stalls_mid_body_ends_the_visitors_response() {
    let url = stalling_origin();
    let config = config(&url, "US", &hmac_ec())
        .replace("[origin]\n", "[origin]\nbody_idle_timeout_ms = 300\n");
    let server = Server::start("origin-stall", &config);
    let mut stream = TcpStream::connect(server.addr).expect("connect");
    stream
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: site.example\r\nUser-Agent: {BROWSER_UA}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("send");
    stream.set_read_timeout(Some(BOUND)).expect("timeout");
    let mut raw = Vec::new();
    let ended = match stream.read_to_end(&mut raw) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    };
    assert!(
        ended,
        "the visitor's response was still open after {BOUND:?}"
    );
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    assert_eq!(body, "hello", "the response must end short of its length");
    let log = server.log_when(|log| log.contains("origin response body stalled"));
    assert!(log.contains("origin response body stalled"), "{log}");
    assert!(log.contains("origin.body_idle_timeout_ms"), "{log}");
}

#[test]
fn with_an_admin_listener_health_and_metrics_are_served_only_there() {
    let origin = Origin::start();
    let config = format!(
        "{}\n[admin]\nlisten = \"127.0.0.1:0\"\n",
        config(&origin.url(), "US", &hmac_ec())
    );
    let server = Server::start("admin", &config);
    let admin = server.admin_addr();
    for path in ["/_ts/health", "/_ts/metrics"] {
        let public = server.get(path, &[]);
        assert_eq!(public.status, 404, "{path} on the public listener");
        assert_eq!(
            public.header("content-type"),
            Some("application/problem+json")
        );
        let private = http_get(admin, path, &[]);
        assert_eq!(private.status, 200, "{path} on the admin listener");
    }
    assert!(
        http_get(admin, "/_ts/metrics", &[])
            .body
            .contains("gatehouse_connections_open"),
    );
    // The admin listener serves nothing else, and the public one still proxies.
    assert_eq!(http_get(admin, "/", &[]).status, 404);
    assert_eq!(server.get("/", &[("User-Agent", BROWSER_UA)]).status, 200);
}

#[test]
fn without_an_admin_listener_health_and_metrics_stay_public() {
    let origin = Origin::start();
    let server = Server::start("no-admin", &config(&origin.url(), "US", &hmac_ec()));
    let health = server.get("/_ts/health", &[]);
    assert_eq!(health.status, 200);
    // Tracking the request in flight keeps the body's framing: a generated response still
    // carries its length instead of turning chunked.
    assert!(health.header("content-length").is_some(), "{health:?}");
    assert_eq!(server.get("/_ts/metrics", &[]).status, 200);
}

#[test]
fn zero_limits_are_refused_at_startup_naming_the_key() {
    let origin = Origin::start();
    let cases = [
        (
            "[server]",
            "header_read_timeout_ms",
            "server.header_read_timeout_ms",
        ),
        ("[server]", "idle_timeout_ms", "server.idle_timeout_ms"),
        ("[server]", "max_connections", "server.max_connections"),
        (
            "[server]",
            "tls_handshake_timeout_ms",
            "server.tls_handshake_timeout_ms",
        ),
        (
            "[server]",
            "http2_max_concurrent_streams",
            "server.http2_max_concurrent_streams",
        ),
        (
            "[origin]",
            "connect_timeout_ms",
            "origin.connect_timeout_ms",
        ),
        (
            "[origin]",
            "body_idle_timeout_ms",
            "origin.body_idle_timeout_ms",
        ),
        ("[runtime]", "cache_max_mb", "runtime.cache_max_mb"),
    ];
    for (section, key, dotted) in cases {
        let config = config(&origin.url(), "US", &hmac_ec())
            .replace(&format!("{section}\n"), &format!("{section}\n{key} = 0\n"));
        let path = write_config(&format!("zero-{key}"), &config);
        let out = run(&["serve", "--config", path.to_str().expect("utf-8")]);
        assert_eq!(out.status.code(), Some(2), "{dotted} = 0 must be refused");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("`{dotted}`")), "{err}");
        assert!(err.contains("greater than 0"), "{err}");
    }
}

#[test]
fn dropped_provider_headers_are_counted_and_logged_without_their_value() {
    // The hostile guest's `reflect` mode answers `x-provider-debug: <its evidence>`; with an
    // empty allowlist the header is dropped.
    let origin = Origin::start();
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_HOSTILE"));
    let ec = format!(
        "[ec]\nprovider = \"hostile\"\n\n[ec.providers.hostile]\npath = \"{}\"\nsha256 = \"{}\"\nmode = \"reflect\"\n",
        path.display(),
        sha256_of(&path)
    );
    let server = Server::start("dropped-headers", &config(&origin.url(), "US", &ec));
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200);
    assert!(response.header("x-provider-debug").is_none());
    let metrics = server.get("/_ts/metrics", &[]);
    assert!(
        metrics
            .body
            .contains("gatehouse_provider_headers_dropped_total 1\n"),
        "{}",
        metrics.body
    );
    let log = server.log_when(|log| log.contains("provider response header dropped"));
    let line = log
        .lines()
        .find(|l| l.contains("provider response header dropped"))
        .unwrap_or_else(|| panic!("no drop logged:\n{log}"));
    assert!(line.contains("x-provider-debug"), "{line}");
    assert!(line.contains("not-allowlisted"), "{line}");
    assert!(
        !line.contains("Evidence"),
        "the value must not be logged: {line}"
    );
}
