//! The policy audit a reviewer uses: `permissions explain --config` (which configured providers
//! would be called) and `permissions diff` (what a policy change changes). Outputs are pinned by
//! golden files in `golden/`; regenerate with `BLESS=1 cargo test -p gatehouse --test all audit`
//! and review the diff.

use std::path::Path;
use std::process::{Command, Output};

use crate::support::{BIN, cache_dir, golden, temp_dir, workspace_root};

/// Runs `gatehouse` in `dir` (so file names in reports are relative and stable), with the test
/// run's compiled-component cache.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env("GATEHOUSE_LOG", "warn")
        .env("XDG_CACHE_HOME", cache_dir())
        .output()
        .expect("run gatehouse")
}

fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf-8")
}

/// `permissions explain --config examples/gatehouse.toml` (the shipped example), text and JSON.
fn explain_example(args: &[&str]) -> (String, serde_json::Value) {
    let root = workspace_root();
    let mut all = vec![
        "permissions",
        "explain",
        "--config",
        "examples/gatehouse.toml",
    ];
    all.extend_from_slice(args);
    let text = run_in(&root, &all);
    assert!(
        text.status.success(),
        "{}",
        String::from_utf8_lossy(&text.stderr)
    );
    all.push("--json");
    let json = run_in(&root, &all);
    assert!(json.status.success());
    let doc = serde_json::from_str(&stdout(&json)).expect("explain --json is JSON");
    (stdout(&text), doc)
}

fn provider<'d>(doc: &'d serde_json::Value, kind: &str) -> &'d serde_json::Value {
    doc["providers"]
        .as_array()
        .expect("providers with --config")
        .iter()
        .find(|p| p["kind"] == kind)
        .unwrap_or_else(|| panic!("a `{kind}` provider is reported: {doc}"))
}

#[test]
fn explain_config_de_without_consent_says_the_edge_cookie_is_not_called_for_store_on_device() {
    let (text, doc) = explain_example(&["--country", "DE"]);
    let ec = provider(&doc, "ec");
    assert_eq!(ec["provider"], "hmac");
    assert_eq!(ec["called"], false);
    assert_eq!(ec["missing"], serde_json::json!(["store-on-device"]));
    assert_eq!(provider(&doc, "geo")["called"], true);
    assert_eq!(provider(&doc, "device")["called"], true);
    assert!(
        text.contains("not called: missing `store-on-device`"),
        "{text}"
    );
    golden("explain-config-de.txt", &text);
    golden(
        "explain-config-de.json",
        &format!("{}\n", serde_json::to_string_pretty(&doc).expect("json")),
    );
}

#[test]
fn explain_config_us_calls_every_provider() {
    let (text, doc) = explain_example(&["--country", "US"]);
    for kind in ["geo", "device", "ec"] {
        assert_eq!(provider(&doc, kind)["called"], true, "{kind}: {doc}");
        assert_eq!(provider(&doc, kind)["missing"], serde_json::json!([]));
    }
    assert_eq!(
        provider(&doc, "ec")["unless"],
        "the device provider says bot"
    );
    golden("explain-config-us.txt", &text);
    golden(
        "explain-config-us.json",
        &format!("{}\n", serde_json::to_string_pretty(&doc).expect("json")),
    );
}

#[test]
fn explain_without_config_has_no_providers_section() {
    let out = run_in(
        &workspace_root(),
        &["permissions", "explain", "--country", "DE", "--json"],
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert!(doc.get("providers").is_none(), "{doc}");
}

/// Writes the shipped policy as `old.yaml` and `edit(policy)` as `new.yaml` in a fresh directory,
/// runs `permissions diff old.yaml new.yaml` there (text and `--json`), and returns the outputs.
fn diff_of(label: &str, edit: impl Fn(&str) -> String) -> (Output, Output) {
    let dir = temp_dir(label);
    let policy = std::fs::read_to_string(workspace_root().join("permissions.yaml"))
        .expect("permissions.yaml");
    let edited = edit(&policy);
    assert_ne!(edited, policy, "the edit changes the file");
    std::fs::write(dir.join("old.yaml"), &policy).expect("write old");
    std::fs::write(dir.join("new.yaml"), edited).expect("write new");
    let text = run_in(&dir, &["permissions", "diff", "old.yaml", "new.yaml"]);
    let json = run_in(
        &dir,
        &["permissions", "diff", "old.yaml", "new.yaml", "--json"],
    );
    (text, json)
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "the policy contains {from:?}");
    text.replacen(from, to, 1)
}

fn golden_diff(name: &str, text: &Output, json: &Output) -> serde_json::Value {
    assert_eq!(
        text.status.code(),
        Some(1),
        "a change exits 1: {}",
        String::from_utf8_lossy(&text.stderr)
    );
    assert_eq!(json.status.code(), Some(1));
    golden(&format!("{name}.txt"), &stdout(text));
    golden(&format!("{name}.json"), &stdout(json));
    serde_json::from_str(&stdout(json)).expect("diff --json is JSON")
}

#[test]
fn diff_moving_us_to_gdpr_eu_lists_every_us_outcome_change() {
    let (text, json) = diff_of("diff-us", |p| {
        replace_once(p, "  US: us-opt-out\n", "  US: gdpr-eu\n")
    });
    let doc = golden_diff("diff-us-to-gdpr-eu", &text, &json);
    assert_eq!(doc["rules_changed"][0]["key"], "US");
    assert_eq!(doc["jurisdictions"][0]["jurisdiction"], "US");
    assert!(stdout(&text).contains("store-on-device"));
}

#[test]
fn diff_adding_a_deny_override_names_the_rule_and_its_outcomes() {
    let (text, json) = diff_of("diff-override", |p| {
        replace_once(
            p,
            "overrides: [-use-precise-geolocation] }",
            "overrides: [-use-precise-geolocation, -store-on-device] }",
        )
    });
    let doc = golden_diff("diff-add-override", &text, &json);
    assert_eq!(doc["rules_changed"][0]["key"], "US/WA");
    assert_eq!(doc["jurisdictions"][0]["jurisdiction"], "US/WA");
}

#[test]
fn diff_renaming_a_group_is_a_rename_without_outcome_changes() {
    let (text, json) = diff_of("diff-rename", |p| p.replace("non-regulated", "no-regime"));
    let doc = golden_diff("diff-rename-group", &text, &json);
    assert_eq!(
        doc["groups_renamed"],
        serde_json::json!([{"from": "non-regulated", "to": "no-regime"}])
    );
    assert_eq!(doc["jurisdictions"], serde_json::json!([]));
}

#[test]
fn diff_of_identical_policies_exits_0() {
    let dir = temp_dir("diff-same");
    let policy = workspace_root().join("permissions.yaml");
    std::fs::copy(&policy, dir.join("old.yaml")).expect("copy");
    std::fs::copy(&policy, dir.join("new.yaml")).expect("copy");
    let out = run_in(&dir, &["permissions", "diff", "old.yaml", "new.yaml"]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert!(stdout(&out).contains("no changes"));
    let json = run_in(
        &dir,
        &["permissions", "diff", "old.yaml", "new.yaml", "--json"],
    );
    assert_eq!(json.status.code(), Some(0));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("json");
    assert_eq!(doc["changed"], false);
}

#[test]
fn diff_validates_both_files_as_at_startup_and_exits_2() {
    let (text, _) = diff_of("diff-invalid", |p| {
        replace_once(p, "  US: us-opt-out\n", "  US: us-optout\n")
    });
    assert_eq!(text.status.code(), Some(2));
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(err.contains("new.yaml"), "{err}");
    assert!(err.contains("`us-optout`"), "{err}");
    // The default country must name a rule of both policies.
    let (text, _) = diff_of("diff-no-fr", |p| replace_once(p, "  FR: gdpr-eu\n", ""));
    assert_eq!(text.status.code(), Some(2));
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(err.contains("`geo.default_country`"), "{err}");
    assert!(err.contains("FR"), "{err}");
}
