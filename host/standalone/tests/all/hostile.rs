//! Hostile provider components are cut off; the request is still answered, fail-closed, and the
//! next request is served normally.

use std::time::{Duration, Instant};

use crate::support::{BROWSER_UA, Origin, Server, component, config, sha256_of};

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
