//! Hostile provider components are cut off; the request is still answered, fail-closed, and the
//! next request is served normally.
//!
//! No outcome here may depend on machine speed or load (issue 15): a test asserting a reason other
//! than `deadline` runs with a call budget that never fires, so the deadline cannot beat the trap,
//! memory cap or output check under test; the one test proving the deadline is enforced uses the
//! production 5 ms deadline and needs no tight elapsed bound, because a guest that loops forever
//! returning at all proves it was cut off.

use std::time::{Duration, Instant};

use crate::support::{
    BROWSER_UA, CALL_BUDGET_THAT_NEVER_FIRES_MS, Origin, Server, component, config, sha256_of,
};

const HOSTILE: &str = env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_HOSTILE");

/// The production default deadline, for the test that proves the deadline is enforced.
const PRODUCTION_DEADLINE_MS: u64 = 5;

/// A sanity bound for the looping guest's answer: the guest never returns by itself, so any
/// answer proves the deadline cut it off; this only turns a missing deadline into a failure in
/// seconds rather than at the harness's response wait. Seconds, not milliseconds, so that no
/// machine load can trip it.
const LOOP_ANSWERED_WITHIN: Duration = Duration::from_secs(60);

/// The call budget for `mode`: the production deadline for the looping guest, a budget that
/// never fires for every other mode.
fn call_timeout_ms(mode: &str) -> u64 {
    if mode == "loop" {
        PRODUCTION_DEADLINE_MS
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
    let budget_line = format!("call_timeout_ms = {CALL_BUDGET_THAT_NEVER_FIRES_MS}");
    assert!(
        base.contains(&budget_line),
        "the test config sets the budget"
    );
    let config = base.replace(
        &budget_line,
        &format!("call_timeout_ms = {}\n{runtime}", call_timeout_ms(mode)),
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
fn infinite_loop_is_interrupted_at_the_deadline() {
    assert_cut_off("loop", "deadline");
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
