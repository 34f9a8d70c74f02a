//! Hostile provider components are cut off; the request is still answered, fail-closed, and the
//! next request is served normally.

use std::time::{Duration, Instant};

use crate::support::{BROWSER_UA, Origin, Server, component, config, run, sha256_of, write_config};

const HOSTILE: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_HOSTILE");

/// "Deadline (5 ms) plus a small margin", for a loaded 2-core CI machine: with the whole suite
/// running in parallel and a benchmark beside it, these requests were answered in 2–16 ms
/// end to end (loopback HTTP included), so 250 ms fails only when the deadline is not enforced.
const ANSWER_WITHIN: Duration = Duration::from_millis(250);

fn hostile_server(mode: &str) -> Server {
    hostile_server_with(mode, "")
}

fn hostile_server_with(mode: &str, runtime: &str) -> Server {
    let origin = Origin::start();
    let path = component(HOSTILE);
    let ec = format!(
        r#"
[ec]
provider = "hostile"
allowed_headers = ["x-provider-debug"]

[ec.providers.hostile]
path = "{}"
sha256 = "{}"
mode = "{mode}"
"#,
        path.display(),
        sha256_of(&path)
    );
    // The default 5 ms deadline, as in production.
    let config = config(&origin.url(), "US", &ec).replace(
        "call_timeout_ms = 1000",
        &format!("call_timeout_ms = 5\n{runtime}"),
    );
    let server = Server::start(&format!("hostile-{mode}"), &config);
    // Keep the origin alive as long as the server: leak it into the test's lifetime.
    std::mem::forget(origin);
    server
}

fn assert_cut_off(mode: &str, reason: &str) {
    assert_cut_off_with(mode, "", reason);
}

fn assert_cut_off_with(mode: &str, runtime: &str, reason: &str) {
    let server = hostile_server_with(mode, runtime);
    for _ in 0..2 {
        let started = Instant::now();
        let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
        let elapsed = started.elapsed();
        assert_eq!(response.status, 200, "answered despite `{mode}`");
        assert_eq!(
            response.set_cookie("ts-ec"),
            None,
            "no Edge Cookie after `{mode}`"
        );
        assert!(
            response.all("set-cookie").is_empty(),
            "no cookie of any kind"
        );
        assert!(elapsed < ANSWER_WITHIN, "`{mode}` answered in {elapsed:?}");
    }
    // The server stays healthy and counts the failures.
    let metrics = server.get("/_ts/metrics", &[]);
    assert_eq!(metrics.status, 200);
    let line = format!(
        "gatehouse_provider_failures_total{{kind=\"ec\",provider=\"hostile\",reason=\"{reason}\"}} 2"
    );
    assert!(metrics.body.contains(&line), "metrics:\n{}", metrics.body);
    assert!(
        server.log().contains(&format!("reason=\"{reason}\"")) || server.log().contains(reason),
        "a log line names the provider and reason:\n{}",
        server.log()
    );
}

#[test]
fn infinite_loop_is_interrupted_at_the_deadline() {
    assert_cut_off("loop", "deadline");
}

#[test]
fn unbounded_memory_growth_hits_the_cap() {
    // A small cap so the limiter, not the 5 ms deadline, is what stops the guest.
    assert_cut_off_with("grow", "memory_limit_mib = 4", "memory");
}

#[test]
fn trap_is_contained() {
    assert_cut_off("trap", "trap");
}

#[test]
fn set_cookie_from_a_provider_is_refused() {
    assert_cut_off("set-cookie", "invalid-output");
}

#[test]
fn well_behaved_external_provider_sets_its_id_and_allowed_headers() {
    let server = hostile_server("ok");
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200);
    let cookie = response.set_cookie("ts-ec").expect("id set");
    assert!(cookie.starts_with("ts-ec=hostile-ok; "), "{cookie}");
}

// ---- Contract 0.2: what a provider may declare, observe and do ----

/// A config running the hostile guest with `settings` (TOML lines) under a roomy deadline, so these
/// tests observe the sandbox's rules, not timing.
fn declared_config(settings: &str, runtime: &str) -> String {
    let origin = Origin::start();
    let path = component(HOSTILE);
    let ec = format!(
        r#"
[ec]
provider = "hostile"
allowed_headers = ["x-provider-debug"]

[ec.providers.hostile]
path = "{}"
sha256 = "{}"
{settings}
"#,
        path.display(),
        sha256_of(&path)
    );
    let config =
        config(&origin.url(), "US", &ec).replace("[runtime]", &format!("[runtime]\n{runtime}"));
    std::mem::forget(origin);
    config
}

/// Starts `serve` with `config`, expects it to refuse, and returns stderr.
fn refused_at_load(label: &str, config: &str) -> String {
    let path = write_config(label, config);
    let out = run(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "`{label}` must fail: {stderr}");
    stderr
}

#[test]
fn manifest_declaring_cookie_is_refused_naming_the_header() {
    let err = refused_at_load(
        "declares-cookie",
        &declared_config("mode = \"ok\"\nreads = \"client-ip,header:Cookie\"", ""),
    );
    assert!(err.contains("`ec.providers.hostile`"), "{err}");
    assert!(err.contains("header `cookie`"), "{err}");
    assert!(err.contains("`reads[1]`"), "{err}");
}

#[test]
fn manifest_declaring_authorization_is_refused_naming_the_header() {
    let err = refused_at_load(
        "declares-authorization",
        &declared_config("mode = \"ok\"\nreads = \"header:authorization\"", ""),
    );
    assert!(err.contains("header `authorization`"), "{err}");
}

#[test]
fn manifest_declaring_a_publisher_forbidden_header_is_refused() {
    let err = refused_at_load(
        "declares-forbidden",
        &declared_config(
            "mode = \"ok\"\nreads = \"header:x-session\"",
            "forbidden_headers = [\"X-Session\"]",
        ),
    );
    assert!(err.contains("header `x-session`"), "{err}");
}

#[test]
fn manifest_id_with_control_characters_is_refused_naming_the_field() {
    let err = refused_at_load(
        "id-control",
        &declared_config(
            "mode = \"ok\"\nid = \"evil\\u001b]0;pwned\\u0007\\nforged log line\"",
            "",
        ),
    );
    assert!(err.contains("manifest field `id`"), "{err}");
    assert!(err.contains("control character"), "{err}");
    assert!(
        !err.contains("\u{1b}]0;pwned"),
        "the escape character never reaches the log: {err:?}"
    );
    assert!(!err.contains("\nforged log line"), "{err:?}");
}

#[test]
fn over_long_manifest_values_are_refused_naming_the_field() {
    let long = "a".repeat(65);
    let err = refused_at_load(
        "id-long",
        &declared_config(&format!("mode = \"ok\"\nid = \"{long}\""), ""),
    );
    assert!(err.contains("manifest field `id`"), "{err}");
    assert!(err.contains("65 bytes"), "{err}");
    let version = format!("1.0.0-{}", "x".repeat(300));
    let err = refused_at_load(
        "version-long",
        &declared_config(&format!("mode = \"ok\"\nversion = \"{version}\""), ""),
    );
    assert!(err.contains("manifest field `version`"), "{err}");
    assert!(
        !err.contains(&version),
        "the value is truncated, not echoed whole"
    );
}

#[test]
fn provider_cannot_observe_headers_it_did_not_declare() {
    let server = Server::start(
        "reflect",
        &declared_config(
            "mode = \"reflect\"\nreads = \"user-agent,header:x-declared\"",
            "",
        ),
    );
    let response = server.get(
        "/account?token=SECRET-QUERY",
        &[
            ("User-Agent", BROWSER_UA),
            ("Cookie", "session=SECRET-COOKIE"),
            ("Authorization", "Bearer SECRET-BEARER"),
            ("Proxy-Authorization", "Basic SECRET-PROXY"),
            ("X-Undeclared", "SECRET-UNDECLARED"),
            ("X-Declared", "visible-value"),
        ],
    );
    assert_eq!(response.status, 200);
    let seen = response
        .header("x-provider-debug")
        .expect("the reflecting provider ran");
    assert!(seen.contains("visible-value"), "declared header: {seen}");
    assert!(seen.contains("Chrome"), "declared user agent: {seen}");
    for secret in [
        "SECRET-COOKIE",
        "SECRET-BEARER",
        "SECRET-PROXY",
        "SECRET-UNDECLARED",
        "SECRET-QUERY",
        "/account",
        "127.0.0.1",
    ] {
        assert!(
            !seen.contains(secret),
            "undeclared `{secret}` leaked: {seen}"
        );
    }
}

#[test]
fn stdout_flood_is_captured_and_capped() {
    let server = Server::start(
        "flood",
        &declared_config("mode = \"flood\"", "output_limit_bytes = 1000"),
    );
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200);
    assert!(
        response
            .set_cookie("ts-ec")
            .is_some_and(|c| c.starts_with("ts-ec=hostile-flood;")),
        "a chatty provider still answers"
    );
    // The log is read by a background thread: wait for the output line.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("provider output") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let log = server.log();
    assert!(log.contains("provider output"), "{log}");
    // 1 MiB written, 1000 bytes kept: the rest is counted, not logged.
    assert!(log.contains("dropped_bytes=1047576"), "{log}");
    let kept = log.matches("FFFF").count() * 4;
    assert!(
        (900..=1000).contains(&kept),
        "{kept} bytes of the flood reached the log"
    );
}

#[test]
fn exit_fails_the_call_and_the_next_request_is_fine() {
    let server = Server::start("exit", &declared_config("mode = \"exit\"", ""));
    for _ in 0..2 {
        let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
        assert_eq!(response.status, 200, "answered despite `exit`");
        assert_eq!(response.set_cookie("ts-ec"), None);
    }
    let metrics = server.get("/_ts/metrics", &[]);
    assert!(
        metrics.body.contains(
            "gatehouse_provider_failures_total{kind=\"ec\",provider=\"hostile\",reason=\"exit\"} 2"
        ),
        "{}",
        metrics.body
    );
    assert_eq!(server.get("/_ts/health", &[]).status, 200);
}

#[test]
fn a_provider_cannot_sleep_on_a_server_thread() {
    let server = Server::start("sleep", &declared_config("mode = \"sleep\"", ""));
    let started = Instant::now();
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    let elapsed = started.elapsed();
    assert_eq!(response.status, 200);
    // The guest asked for 30 s; clock subscriptions are ready at once.
    assert!(elapsed < Duration::from_secs(5), "blocked for {elapsed:?}");
    assert!(
        response
            .set_cookie("ts-ec")
            .is_some_and(|c| c.starts_with("ts-ec=hostile-slept;")),
        "{:?}",
        response.set_cookie("ts-ec")
    );
}
