//! The route through the real binary: `[[partners]]` config, authentication, and the store
//! requirement.

use crate::support::{Origin, Server, config, http_raw, run, write_config};

use super::key_of;

fn post(server: &Server, headers: &[(&str, &str)], body: &str) -> crate::support::Response {
    let mut raw = format!(
        "POST /_ts/api/v1/batch-sync HTTP/1.1\r\nhost: gatehouse.test\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    raw.push_str("\r\n");
    raw.push_str(body);
    http_raw(server.addr, raw.as_bytes())
}

fn partners_toml() -> String {
    let hash = gatehouse_core::sync::hash_api_key(key_of("ssp").as_bytes()).expect("hash");
    format!(
        r#"
[[partners]]
id = "ssp"
name = "SSP"
source_domain = "ssp.example"
api_key_sha256 = "{hash}"
batch_rate_limit = 60
"#
    )
}

#[test]
fn the_batch_sync_route_authenticates_partners_from_the_config() {
    let origin = Origin::start();
    let server = Server::start("sync-route", &config(&origin.url(), "US", &partners_toml()));
    let body = r#"{"mappings": []}"#;
    let answer = post(&server, &[("content-type", "application/json")], body);
    assert_eq!(answer.status, 401, "{}", answer.body);
    assert_eq!(
        answer.header("content-type"),
        Some("application/problem+json")
    );
    let auth = format!("bearer {}", key_of("ssp"));
    let answer = post(
        &server,
        &[("authorization", &auth), ("content-type", "text/plain")],
        body,
    );
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert!(
        !server.log().contains(&key_of("ssp")),
        "the key is never logged"
    );
}

#[test]
fn duplicate_partner_key_hashes_fail_startup_naming_the_key() {
    let origin = Origin::start();
    let twice = format!(
        "{}{}",
        partners_toml(),
        partners_toml()
            .replace("id = \"ssp\"", "id = \"other\"")
            .replace("ssp.example", "other.example")
    );
    let path = write_config("sync-dup", &config(&origin.url(), "US", &twice));
    let out = run(&["serve", "--config", path.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "config key `partners[1].api_key_sha256`: the api key hash is already used by partner `ssp`"
        ),
        "{stderr}"
    );
}

#[test]
fn partner_hash_key_prints_the_sha256_of_stdin_and_refuses_short_keys() {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let hash = |input: &[u8]| {
        let mut child = Command::new(crate::support::BIN)
            .args(["partner", "hash-key"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input)
            .expect("write");
        child.wait_with_output().expect("output")
    };
    let key = key_of("ssp");
    let out = hash(format!("{key}\n").as_bytes());
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        gatehouse_core::sync::hash_api_key(key.as_bytes()).expect("hash")
    );
    let out = hash(b"too-short\n");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("api key is 9 bytes; at least 32 are required"),
        "{stderr}"
    );
    assert!(!stderr.contains("too-short"));
}
