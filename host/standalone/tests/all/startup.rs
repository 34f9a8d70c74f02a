//! Startup refuses bad configuration with a message naming the key and the reason.

use crate::support::{Origin, component, config, hmac_ec, run, sha256_of, write_config};

/// Runs `serve` with `config`; asserts it fails and returns stderr.
fn startup_error(label: &str, config: &str) -> String {
    let path = write_config(label, config);
    let out = run(&["serve", "--config", path.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !out.status.success(),
        "`{label}` must fail to start; stderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

fn origin_url() -> String {
    // Startup fails before any request, so the origin never needs to answer.
    let origin = Origin::start();
    let url = origin.url();
    std::mem::forget(origin);
    url
}

fn external_ec(name: &str, path: &std::path::Path, sha256: &str) -> String {
    format!(
        r#"
[ec]
provider = "{name}"

[ec.providers.{name}]
path = "{}"
sha256 = "{sha256}"
"#,
        path.display()
    )
}

#[test]
fn missing_default_country_fails_naming_the_key() {
    let cfg = config(&origin_url(), "X", &hmac_ec()).replace("default_country = \"X\"\n", "");
    let err = startup_error("no-default", &cfg);
    assert!(err.contains("`geo.default_country`"), "{err}");
    assert!(err.contains("required"), "{err}");
}

#[test]
fn default_country_without_a_rule_fails_naming_the_key() {
    let err = startup_error("default-br", &config(&origin_url(), "BR", &hmac_ec()));
    assert!(err.contains("`geo.default_country`"), "{err}");
    assert!(err.contains("BR"), "{err}");
}

#[test]
fn unknown_provider_fails_naming_the_key() {
    let ec = "[ec]\nprovider = \"nope\"\n";
    let err = startup_error("unknown-provider", &config(&origin_url(), "US", ec));
    assert!(err.contains("`ec.provider`"), "{err}");
    assert!(err.contains("`nope`"), "{err}");
}

#[test]
fn digest_mismatch_fails_showing_both_digests() {
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HMAC"));
    let wrong = "0".repeat(64);
    let err = startup_error(
        "digest",
        &config(&origin_url(), "US", &external_ec("vendor", &path, &wrong)),
    );
    assert!(err.contains("`ec.providers.vendor.sha256`"), "{err}");
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&wrong), "{err}");
    assert!(err.contains(&sha256_of(&path)), "{err}");
}

#[test]
fn manifest_with_unknown_permission_fails_naming_it() {
    let path = component(env!(
        "GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_UNKNOWN_PERMISSION"
    ));
    let err = startup_error(
        "unknown-permission",
        &config(
            &origin_url(),
            "US",
            &external_ec("mind", &path, &sha256_of(&path)),
        ),
    );
    assert!(err.contains("provider `mind`"), "{err}");
    assert!(err.contains("`ec.providers.mind`"), "{err}");
    assert!(err.contains("read-minds"), "{err}");
}

#[test]
fn provider_declaring_a_read_this_host_cannot_supply_fails_naming_the_read() {
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_TRANSPORT"));
    let err = startup_error(
        "transport",
        &config(
            &origin_url(),
            "US",
            &external_ec("fingerprint", &path, &sha256_of(&path)),
        ),
    );
    assert!(err.contains("provider `fingerprint`"), "{err}");
    assert!(err.contains("read `ja4`"), "{err}");
    assert!(err.contains("`ec.providers.fingerprint`"), "{err}");
}

#[test]
fn component_of_the_wrong_kind_fails() {
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_UA_DEVICE"));
    let err = startup_error(
        "wrong-kind",
        &config(
            &origin_url(),
            "US",
            &external_ec("dev", &path, &sha256_of(&path)),
        ),
    );
    assert!(err.contains("gatehouse:provider/edge-cookie"), "{err}");
}

#[test]
fn unknown_config_key_fails_naming_it() {
    let cfg =
        config(&origin_url(), "US", &hmac_ec()).replace("[runtime]", "[runtime]\ncall_timeout = 5");
    let err = startup_error("unknown-key", &cfg);
    assert!(err.contains("call_timeout"), "{err}");
}

#[test]
fn secret_from_missing_env_var_fails_without_leaking() {
    let ec = "[ec]\nprovider = \"hmac\"\n[ec.providers.hmac]\npassphrase = { env = \"GATEHOUSE_TEST_UNSET_SECRET\" }\n";
    let err = startup_error("env-secret", &config(&origin_url(), "US", ec));
    assert!(err.contains("`ec.providers.hmac.passphrase`"), "{err}");
    assert!(err.contains("GATEHOUSE_TEST_UNSET_SECRET"), "{err}");
}

#[test]
fn config_syntax_error_does_not_echo_the_secret() {
    let ec = "[ec]\nprovider = \"hmac\"\n[ec.providers.hmac]\npassphrase = \"s3cr3t-passphrase\n";
    let err = startup_error("syntax-secret", &config(&origin_url(), "US", ec));
    assert!(err.contains("line "), "the error says where: {err}");
    assert!(
        !err.contains("s3cr3t"),
        "the secret must not be printed: {err}"
    );
}

#[test]
fn inline_budget_over_100_ms_fails_naming_the_key() {
    let cfg = config(&origin_url(), "US", &hmac_ec())
        .replace("[runtime]", "[runtime]\ninline_budget_ms = 101");
    let err = startup_error("inline-budget", &cfg);
    assert!(
        err.contains("runtime.inline_budget_ms") && err.contains("at most 100"),
        "{err}"
    );
}
