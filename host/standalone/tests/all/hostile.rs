//! Hostile provider components are cut off; the request is still answered, fail-closed, and the
//! next request is served normally.
//!
//! No outcome here may depend on machine speed or load (issue 15): a test asserting a reason other
//! than `deadline` runs with call budgets that never fire, so no budget can beat the trap, memory
//! cap or output check under test. The tests proving a budget is enforced set only that budget
//! tight (the other never fires, so the cut-off can only be the one under test) and need no
//! elapsed bound, because a guest that loops forever returning at all proves it was cut off. The
//! CPU budget measures the provider's own work, so a loaded machine cannot make it fire early.

use std::time::{Duration, Instant};

use crate::support::{
    BROWSER_UA, CALL_BUDGET_THAT_NEVER_FIRES_MS, Origin, Server, component, config, run, sha256_of,
    write_config,
};

const HOSTILE: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_HOSTILE");

/// The production default CPU budget (`runtime.call_cpu_ms`), for the test that proves it is
/// enforced.
const PRODUCTION_CPU_BUDGET_MS: u64 = 5;

/// A sanity bound for the looping guest's answer: the guest never returns by itself, so any
/// answer proves the deadline cut it off; this only turns a missing deadline into a failure in
/// seconds rather than at the harness's response wait. Seconds, not milliseconds, so that no
/// machine load can trip it.
const LOOP_ANSWERED_WITHIN: Duration = Duration::from_secs(60);

/// The CPU budget for `mode`: the production budget for the looping guest, a budget that never
/// fires for every other mode.
fn call_cpu_ms(mode: &str) -> u64 {
    if mode == "loop" {
        PRODUCTION_CPU_BUDGET_MS
    } else {
        CALL_BUDGET_THAT_NEVER_FIRES_MS
    }
}

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
    let base = config(&origin.url(), "US", &ec);
    let budget_line = format!("call_cpu_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}");
    assert!(
        base.contains(&budget_line),
        "the test config sets the budget"
    );
    let config = base.replace(
        &budget_line,
        &format!("call_cpu_ms = {}\n{runtime}", call_cpu_ms(mode)),
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
        let response = server.get_within("/", &[("User-Agent", BROWSER_UA)], LOOP_ANSWERED_WITHIN);
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
        assert!(
            elapsed < LOOP_ANSWERED_WITHIN,
            "`{mode}` answered in {elapsed:?}"
        );
    }
    // The server stays healthy and counts the failures.
    let metrics = server.get("/_ts/metrics", &[]);
    assert_eq!(metrics.status, 200);
    let line = format!(
        "gatehouse_provider_failures_total{{kind=\"ec\",provider=\"hostile\",reason=\"{reason}\"}} 2"
    );
    assert!(metrics.body.contains(&line), "metrics:\n{}", metrics.body);
    let log = server.log_when(|log| log.contains(reason));
    assert!(
        log.contains(&format!("reason=\"{reason}\"")) || log.contains(reason),
        "a log line names the provider and reason:\n{log}"
    );
}

#[test]
fn infinite_loop_is_interrupted_at_the_cpu_budget() {
    // The wall-clock backstop never fires (the test config), so only the CPU budget can.
    assert_cut_off("loop", "deadline");
}

#[test]
fn a_loop_is_cut_off_after_the_server_was_idle_and_its_epoch_ticker_parked() {
    // The ticker parks after 100 idle ticks (100 ms); a call starting then must wake it, or
    // nothing would ever interrupt the loop and this request would not be answered.
    let server = hostile_server("loop");
    for _ in 0..2 {
        std::thread::sleep(Duration::from_millis(400));
        let response = server.get_within("/", &[("User-Agent", BROWSER_UA)], LOOP_ANSWERED_WITHIN);
        assert_eq!(response.status, 200);
        assert_eq!(response.set_cookie("ts-ec"), None);
    }
    assert_deadline_failures(&server, 2);
}

/// The server counted exactly `count` calls of the hostile provider cut off at a deadline.
fn assert_deadline_failures(server: &Server, count: usize) {
    let metrics = server.get("/_ts/metrics", &[]);
    assert!(
        metrics.body.contains(&format!(
            "provider=\"hostile\",reason=\"deadline\"}} {count}\n"
        )),
        "{}",
        metrics.body
    );
}

#[test]
fn the_wall_clock_backstop_cuts_off_a_call_the_cpu_budget_allows() {
    let config = declared_config("mode = \"loop\"", "").replace(
        &format!("call_timeout_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}"),
        "call_timeout_ms = 5",
    );
    let server = Server::start("backstop", &config);
    let response = server.get_within("/", &[("User-Agent", BROWSER_UA)], LOOP_ANSWERED_WITHIN);
    assert_eq!(response.status, 200);
    assert_eq!(response.set_cookie("ts-ec"), None);
    assert_deadline_failures(&server, 1);
}

/// When each finished, relative to a common start.
fn finished_after(start: Instant, f: impl FnOnce() -> crate::support::Response) -> (Duration, u16) {
    let response = f();
    (start.elapsed(), response.status)
}

#[test]
fn a_looping_provider_does_not_delay_health_or_requests_without_providers() {
    // More looping requests than the server has async workers (one per core): run inline, they
    // would hold every worker until their CPU budget ran out. Each may compute for 4 s of CPU
    // time, so with one more loop than cores none can finish before 4 s have passed.
    let loops = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get) + 1;
    let config = declared_config("mode = \"loop\"", "").replace(
        &format!("call_cpu_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}"),
        "call_cpu_ms = 4000",
    );
    let server = Server::start("isolation", &config);
    let start = Instant::now();
    let (loops_done, others_done) = std::thread::scope(|scope| {
        let looping: Vec<_> = (0..loops)
            .map(|_| {
                scope.spawn(|| {
                    finished_after(start, || {
                        server.get_within("/", &[("User-Agent", BROWSER_UA)], LOOP_ANSWERED_WITHIN)
                    })
                })
            })
            .collect();
        // Let the loops reach their providers (if they have not yet, this test can only pass).
        std::thread::sleep(Duration::from_millis(500));
        let health = finished_after(start, || server.get("/_ts/health", &[]));
        // A static asset is not a page: no provider runs for it.
        let asset = finished_after(start, || {
            server.get("/style.css", &[("User-Agent", BROWSER_UA)])
        });
        let loops_done: Vec<_> = looping
            .into_iter()
            .map(|h| h.join().expect("loop request"))
            .collect();
        (loops_done, [health, asset])
    });
    let first_loop = loops_done.iter().map(|(t, _)| *t).min().expect("loops");
    assert!(
        loops_done.iter().all(|(_, status)| *status == 200),
        "{loops_done:?}"
    );
    for (done, status) in others_done {
        assert_eq!(status, 200);
        assert!(
            done < first_loop,
            "answered at {done:?}, after the first looping request ({first_loop:?})"
        );
    }
    assert_deadline_failures(&server, loops);
}

#[test]
fn unbounded_memory_growth_hits_the_cap() {
    // A small cap, and a call budget that never fires: only the limiter can stop the guest.
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

#[test]
fn a_providers_own_call_budget_cuts_it_off_before_the_publisher_cap() {
    // The publisher's CPU cap and the wall-clock backstop never fire (the test config); the
    // provider asks for 1 ms and then loops, so only its own budget can cut it off.
    let server = Server::start(
        "budget",
        &declared_config("mode = \"loop\"\ncall_budget_ms = 1", ""),
    );
    let response = server.get_within("/", &[("User-Agent", BROWSER_UA)], LOOP_ANSWERED_WITHIN);
    assert_eq!(response.status, 200);
    assert_eq!(response.set_cookie("ts-ec"), None);
    let metrics = server.get("/_ts/metrics", &[]);
    assert!(
        metrics
            .body
            .contains("provider=\"hostile\",reason=\"deadline\"} 1"),
        "{}",
        metrics.body
    );
}
