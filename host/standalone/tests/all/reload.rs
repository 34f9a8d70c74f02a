//! Reload without restart: `SIGHUP` and `gatehouse reload` re-read the policy and settings,
//! validate them as at startup, and swap them in between requests; an invalid configuration is
//! refused and the old one keeps serving.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use rustix::process::Signal;

use crate::support::{BROWSER_UA, Origin, Server, config, hmac_ec, http_get, run, temp_dir};
use crate::tls_support::{TestCa, server_tls_section, tls_get};

const POLICY: &str = include_str!("../../../../permissions.yaml");
const US_RULE: &str = "\n  US: us-opt-out\n";
const US_AS_GDPR: &str = "\n  US: gdpr-eu\n";

/// A config in its own directory with `policy.path = "policy.yaml"` (US rule as shipped) and a
/// pid file; returns the config path.
fn reloadable_config(label: &str, origin: &Origin) -> PathBuf {
    assert!(POLICY.contains(US_RULE), "the shipped policy's US rule");
    let dir = temp_dir(label);
    std::fs::write(dir.join("policy.yaml"), POLICY).expect("policy");
    let cfg = config(&origin.url(), "US", &hmac_ec()).replace(
        "[server]\n",
        &format!(
            "[server]\npid_file = \"{}\"\n",
            dir.join("gatehouse.pid").display()
        ),
    ) + "\n[policy]\npath = \"policy.yaml\"\n";
    let path = dir.join("gatehouse.toml");
    std::fs::write(&path, cfg).expect("config");
    path
}

fn write_policy(config: &Path, text: &str) {
    std::fs::write(config.with_file_name("policy.yaml"), text).expect("policy");
}

fn mints(server: &Server) -> bool {
    let response = server.get("/", &[("User-Agent", BROWSER_UA)]);
    assert_eq!(response.status, 200, "{response:?}");
    response.set_cookie("ts-ec").is_some()
}

#[test]
fn reload_applies_a_changed_country_rule_to_the_next_request() {
    let origin = Origin::start();
    let path = reloadable_config("reload-rule", &origin);
    let server = Server::start_at(&path);
    assert!(
        mints(&server),
        "US as shipped: opt-out regime, cookie minted"
    );
    write_policy(&path, &POLICY.replace(US_RULE, US_AS_GDPR));
    let out = run(&["reload", "--config", path.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    server.wait_for_log("configuration reloaded", 1);
    assert!(
        !mints(&server),
        "US now under gdpr-eu: no cookie without consent"
    );
}

#[test]
fn reload_by_pid_with_sighup_applies_the_new_policy() {
    let origin = Origin::start();
    let path = reloadable_config("reload-pid", &origin);
    let server = Server::start_at(&path);
    write_policy(&path, &POLICY.replace(US_RULE, US_AS_GDPR));
    let pid = server.pid().to_string();
    let out = run(&["reload", "--pid", &pid]);
    assert!(out.status.success());
    server.wait_for_log("configuration reloaded", 1);
    assert!(!mints(&server));
    // And back, with a plain SIGHUP.
    write_policy(&path, POLICY);
    server.signal(Signal::HUP);
    server.wait_for_log("configuration reloaded", 2);
    assert!(mints(&server));
}

#[test]
fn broken_policy_reload_is_refused_and_the_old_policy_still_serves() {
    let origin = Origin::start();
    let path = reloadable_config("reload-broken", &origin);
    let server = Server::start_at(&path);
    // An unknown permission in an override: startup would refuse this policy.
    write_policy(
        &path,
        &POLICY.replace(
            US_RULE,
            "\n  US: { group: gdpr-eu, overrides: [+no-such-permission] }\n",
        ),
    );
    server.signal(Signal::HUP);
    server.wait_for_log("reload refused", 1);
    let log = server.log();
    assert!(
        log.contains("no-such-permission"),
        "the error is logged:\n{log}"
    );
    assert!(mints(&server), "the old policy (US opt-out) keeps serving");
    assert_eq!(server.get("/_ts/health", &[]).status, 200);
}

#[test]
fn broken_config_reload_is_refused_naming_the_key() {
    let origin = Origin::start();
    let path = reloadable_config("reload-bad-key", &origin);
    let server = Server::start_at(&path);
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(
        &path,
        text.replace("default_country = \"US\"", "default_country = \"BR\""),
    )
    .expect("config");
    server.signal(Signal::HUP);
    server.wait_for_log("reload refused", 1);
    assert!(
        server.log().contains("`geo.default_country`"),
        "{}",
        server.log()
    );
    assert!(mints(&server), "still the old configuration");
}

#[test]
fn listen_address_change_on_reload_says_it_needs_a_restart() {
    let origin = Origin::start();
    let path = reloadable_config("reload-listen", &origin);
    let server = Server::start_at(&path);
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("127.0.0.1:0", "127.0.0.1:1")).expect("config");
    server.signal(Signal::HUP);
    server.wait_for_log("configuration reloaded", 1);
    assert!(
        server
            .log()
            .contains("`server.listen` changed: it takes effect only after a restart"),
        "{}",
        server.log()
    );
    assert!(mints(&server), "still listening where it was");
}

#[test]
fn reload_under_load_drops_no_request() {
    let origin = Origin::start();
    let path = reloadable_config("reload-load", &origin);
    let server = Server::start_at(&path);
    let addr = server.addr;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (stop, done) = (Arc::clone(&stop), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                // Bounded: stops when told, or after 2,000 requests.
                for _ in 0..2_000 {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let response = http_get(addr, "/", &[("User-Agent", BROWSER_UA)]);
                    if response.status != 200 {
                        failures.push(format!("{response:?}"));
                    }
                    done.fetch_add(1, Ordering::Relaxed);
                }
                failures
            })
        })
        .collect();
    for round in 1..=6 {
        let policy = if round % 2 == 1 {
            POLICY.replace(US_RULE, US_AS_GDPR)
        } else {
            POLICY.to_owned()
        };
        write_policy(&path, &policy);
        server.signal(Signal::HUP);
        server.wait_for_log("configuration reloaded", round);
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.store(true, Ordering::Relaxed);
    let failures: Vec<String> = clients
        .into_iter()
        .flat_map(|c| c.join().expect("client thread"))
        .collect();
    assert!(
        failures.is_empty(),
        "{} failed: {failures:?}",
        failures.len()
    );
    assert!(
        done.load(Ordering::Relaxed) >= 40,
        "requests ran during the reloads: {}",
        done.load(Ordering::Relaxed)
    );
    // The last reload restored the shipped policy.
    assert!(mints(&server));
    assert!(!server.log().contains("reload refused"), "{}", server.log());
}

#[test]
fn reload_without_a_pid_file_fails_naming_the_key() {
    let origin = Origin::start();
    let path = crate::support::write_config("reload-no-pid", &config(&origin.url(), "US", ""));
    let out = run(&["reload", "--config", path.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("`server.pid_file`"), "{stderr}");
}

#[test]
fn reload_re_reads_the_tls_certificate_files() {
    let (old_ca, new_ca) = (TestCa::new("rotate-old"), TestCa::new("rotate-new"));
    let leaf = old_ca.issue("listener", &["localhost"]);
    let origin = Origin::start();
    let cfg = config(&origin.url(), "US", &hmac_ec()) + &server_tls_section(&leaf);
    let server = Server::start("reload-tls", &cfg);
    let alpn: &[&[u8]] = &[b"h2"];
    assert_eq!(tls_get(server.addr, &old_ca, alpn, "/", &[]).0.status, 200);
    // Rotate: a certificate from another CA, written over the configured files.
    let rotated = new_ca.issue("rotated", &["localhost"]);
    std::fs::copy(&rotated.cert, &leaf.cert).expect("rotate cert");
    std::fs::copy(&rotated.key, &leaf.key).expect("rotate key");
    server.signal(Signal::HUP);
    server.wait_for_log("configuration reloaded", 1);
    assert_eq!(tls_get(server.addr, &new_ca, alpn, "/", &[]).0.status, 200);
}
