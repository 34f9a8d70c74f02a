//! The `permissions explain`, `consent decode`, `providers digest` and `providers inspect` commands.

use crate::support::{component, run, sha256_of};

fn stdout_of(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

fn explain_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["permissions", "explain", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&stdout_of(&all)).expect("explain --json is JSON")
}

#[test]
fn providers_digest_prints_the_sha256() {
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HMAC"));
    let out = stdout_of(&["providers", "digest", path.to_str().expect("utf-8")]);
    assert_eq!(out.trim(), sha256_of(&path));
}

fn held(doc: &serde_json::Value) -> Vec<String> {
    doc["held"]
        .as_array()
        .expect("held")
        .iter()
        .map(|v| v.as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn explain_de_without_consent_holds_nothing() {
    let doc = explain_json(&["--country", "DE"]);
    assert_eq!(doc["matched_rule"], "DE");
    assert_eq!(doc["group"], "gdpr-eu");
    assert_eq!(doc["gdpr_applies"], true);
    assert!(held(&doc).is_empty(), "{doc}");
    let text = stdout_of(&["permissions", "explain", "--country", "DE"]);
    assert!(text.contains("gdpr-eu"), "{text}");
    assert!(text.contains("store-on-device"), "{text}");
}

#[test]
fn explain_gb_uses_the_uk_group() {
    let doc = explain_json(&["--country", "gb"]);
    assert_eq!(doc["matched_rule"], "GB");
    assert_eq!(doc["group"], "gdpr-uk");
    assert!(held(&doc).is_empty(), "{doc}");
}

#[test]
fn explain_us_ca_with_and_without_gpc() {
    let without = explain_json(&["--country", "US", "--region", "CA"]);
    assert_eq!(without["matched_rule"], "US/CA");
    assert_eq!(without["matched_by"], "region");
    assert!(
        held(&without).contains(&"store-on-device".to_owned()),
        "{without}"
    );
    let with = explain_json(&["--country", "US", "--region", "CA", "--gpc"]);
    assert_eq!(with["signals"]["gpc"], true);
    assert!(
        held(&with).len() < held(&without).len(),
        "GPC revokes: {with}"
    );
    let text = stdout_of(&[
        "permissions",
        "explain",
        "--country",
        "US",
        "--region",
        "CA",
        "--gpc",
    ]);
    assert!(
        text.to_lowercase().contains("gpc"),
        "the text names the deciding signal: {text}"
    );
}

#[test]
fn explain_br_falls_back_to_the_default_country() {
    let fr = explain_json(&["--country", "BR"]);
    assert_eq!(fr["matched_by"], "default");
    assert_eq!(
        fr["matched_rule"], "FR",
        "FR is the default without --config"
    );
    let us = explain_json(&["--country", "BR", "--default-country", "US"]);
    assert_eq!(us["matched_by"], "default");
    assert_eq!(us["matched_rule"], "US");
    assert!(!held(&us).is_empty());
    let us_gpc = explain_json(&["--country", "BR", "--default-country", "US", "--gpc"]);
    assert!(held(&us_gpc).len() < held(&us).len(), "{us_gpc}");
}

#[test]
fn explain_with_an_unknown_default_country_fails() {
    let out = run(&[
        "permissions",
        "explain",
        "--country",
        "DE",
        "--default-country",
        "BR",
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BR"), "{err}");
}

fn decode(args: &[&str]) -> (bool, serde_json::Value) {
    let mut all = vec!["consent", "decode"];
    all.extend_from_slice(args);
    let out = run(&all);
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let doc = serde_json::from_str(stdout.trim()).expect("one JSON object on stdout");
    (out.status.success(), doc)
}

#[test]
fn consent_decode_us_privacy() {
    let (ok, doc) = decode(&["1YYN"]);
    assert!(ok);
    assert_eq!(doc["version"], 1);
    assert_eq!(doc["notice"], "Y");
    assert_eq!(doc["opt_out_sale"], "Y");
    assert_eq!(doc["lspa"], "N");
    assert_eq!(doc["opted_out"], true);
}

#[test]
fn consent_decode_tcf_with_auto_detection() {
    let (ok, doc) = decode(&[
        "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA",
    ]);
    assert!(ok);
    assert_eq!(doc["version"], 2);
    assert_eq!(doc["purpose_consents"], serde_json::json!([1, 3, 9, 10]));
    assert_eq!(doc["last_updated"], "2012-01-10T17:10:13.4Z");
}

#[test]
fn consent_decode_gpp_usnat() {
    let (ok, doc) = decode(&["DBABLA~BVVVVVVVVWA.YA", "--kind", "gpp"]);
    assert!(ok);
    assert_eq!(doc["section_ids"], serde_json::json!([7]));
    assert_eq!(doc["sections"]["7"]["sale_opt_out"], 1);
    assert_eq!(doc["sections"]["7"]["gpc"], true);
}

#[test]
fn consent_decode_errors_are_json_with_a_non_zero_exit() {
    let (ok, doc) = decode(&["nonsense"]);
    assert!(!ok);
    assert!(doc["error"].is_string(), "{doc}");
    let (ok, doc) = decode(&["1YYN", "--kind", "tcf"]);
    assert!(!ok);
    assert!(doc["error"].is_string(), "{doc}");
}

#[test]
fn explain_with_a_tcf_string_names_the_deciding_purpose() {
    let dir = crate::support::temp_dir("explain-tcf");
    let config = dir.join("gatehouse.toml");
    std::fs::write(
        &config,
        "[origin]\nurl = \"builtin:demo\"\n[geo]\ndefault_country = \"FR\"\n[consent]\nmax_consent_age_days = 36500\n",
    )
    .expect("write config");
    let doc = explain_json(&[
        "--country",
        "DE",
        "--config",
        config.to_str().expect("utf-8"),
        "--tcf",
        "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA",
    ]);
    assert!(held(&doc).contains(&"store-on-device".to_owned()), "{doc}");
    let store = doc["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .find(|p| p["permission"] == "store-on-device")
        .expect("store-on-device");
    assert_eq!(store["decided_by"]["kind"], "tcf_consent");
    assert_eq!(store["decided_by"]["purpose"], 1);
}

#[test]
fn providers_inspect_json_lists_world_manifest_reads_and_imports() {
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_PROVIDER_HEADER_GEO"));
    let out = stdout_of(&[
        "providers",
        "inspect",
        path.to_str().expect("utf-8"),
        "--json",
        "--setting",
        "country_header=CF-IPCountry",
    ]);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("json");
    let keys: Vec<_> = doc.as_object().expect("object").keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "id",
            "imports",
            "reads",
            "required_permissions",
            "sha256",
            "size",
            "version",
            "world"
        ]
    );
    assert_eq!(doc["world"], "geo-provider");
    assert_eq!(doc["id"], "header-geo");
    assert_eq!(
        doc["reads"],
        serde_json::json!(["header(cf-ipcountry)", "header(x-geo-region)"]),
        "the reads follow the settings"
    );
    assert_eq!(doc["sha256"], sha256_of(&path));
    assert_eq!(doc["size"], std::fs::metadata(&path).expect("file").len());
}

#[test]
fn providers_inspect_text_shows_every_import_of_a_std_component() {
    let path = component(env!("GATEHOUSE_COMPONENT_GATEHOUSE_GUEST_HOSTILE"));
    let out = stdout_of(&[
        "providers",
        "inspect",
        path.to_str().expect("utf-8"),
        "--setting",
        "reads=client-ip,user-agent",
    ]);
    assert!(
        out.contains("world:                edge-cookie-provider"),
        "{out}"
    );
    assert!(out.contains("id:                   hostile"), "{out}");
    assert!(out.contains("reads:                client-ip"), "{out}");
    assert!(out.contains("user-agent"), "{out}");
    assert!(out.contains("store-on-device"), "{out}");
    // A std component imports the WASI its runtime uses; inspect shows each one.
    assert!(out.contains("wasi:cli/stdout@"), "{out}");
    assert!(out.contains("wasi:cli/exit@"), "{out}");
}

#[test]
fn providers_inspect_refuses_a_file_that_is_not_a_component() {
    let dir = crate::support::temp_dir("inspect-bad");
    let path = dir.join("not.wasm");
    std::fs::write(&path, b"not wasm").expect("write");
    let out = crate::support::run(&["providers", "inspect", path.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a valid component"), "{err}");
}
