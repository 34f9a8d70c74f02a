//! `consent decode` with per-section GPP errors, and `permissions explain` with `--gpp`,
//! `--gpp-sid` and `--cookie` (the server's own parsing), issues 7 and 17.

use crate::support::{run, temp_dir};

/// iabgpp-es test/GppModel.test.ts "should decode defaults from all sections": `tcfcav1` (5) is
/// version 2, which this decoder refuses; every other section decodes.
const IABGPP_ES_DEFAULTS: &str = "DBACOaw~CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA~CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAA.YAAAAAAAAAA~1---~BAAAAAAAAAA.QA~BAAAAAAA.QA~BAAAAAA~BAAAAAA.QA~BAAAAAAA~BAAAAAAA.QA";
/// GDPR-IAB-TCFv2 t/01-parse.t bitfield vector: consent to purposes 1, 3, 9, 10.
const TCF_GRANTS_STORAGE: &str =
    "CLcVDxRMWfGmWAVAHCENAXCkAKDAADnAABRgA5mdfCKZuYJez-NQm0TBMYA4oCAAGQYIAAAAAAEAIAEgAA";
/// iabtcf-java TCStringV2Test::testCanConstructTCModelFromBase64String: purposes 2 and 10.
const TCF_PURPOSES_2_10: &str = "COtybn4PA_zT4KjACBENAPCIAEBAAECAAIAAAAAAAAAA";
/// iabgpp-es TcfEuV2.test.ts "encode defaults": no purpose at all (vendor list version 0).
const TCF_NO_PURPOSES: &str = "CPSG_8APSG_8AAAAAAENAACAAAAAAAAAAAAAAAAAAAAA.QAAA.IAAA";

/// A config that keeps 2012–2022 consent strings from expiring.
fn no_expiry_config() -> String {
    let path = temp_dir("explain-consent").join("gatehouse.toml");
    std::fs::write(
        &path,
        "[origin]\nurl = \"builtin:demo\"\n[geo]\ndefault_country = \"FR\"\n[consent]\nmax_consent_age_days = 36500\n",
    )
    .expect("write config");
    path.display().to_string()
}

fn explain(args: &[&str]) -> (serde_json::Value, String) {
    let config = no_expiry_config();
    let mut all = vec!["permissions", "explain", "--json", "--config", &config];
    all.extend_from_slice(args);
    let out = run(&all);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{args:?}: {stderr}");
    (
        serde_json::from_slice(&out.stdout).expect("explain --json is JSON"),
        stderr,
    )
}

fn holds(doc: &serde_json::Value, permission: &str) -> bool {
    doc["held"]
        .as_array()
        .expect("held")
        .iter()
        .any(|p| p == permission)
}

#[test]
fn consent_decode_shows_a_malformed_gpp_section_and_exits_0() {
    let out = run(&["consent", "decode", IABGPP_ES_DEFAULTS]);
    assert!(out.status.success(), "the header decodes: exit 0");
    let doc: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("one JSON object on stdout");
    assert_eq!(
        doc["sections"]["5"],
        serde_json::json!({"error": "unsupported tcfcav1 version 2"})
    );
    assert_eq!(doc["sections"]["2"]["vendor_list_version"], 0);
    assert_eq!(doc["sections"]["6"]["opt_out_sale"], "-");
    assert_eq!(doc["sections"]["7"]["sale_opt_out"], 0);
    // A bad header is still an error.
    let out = run(&["consent", "decode", "DBACDY~1YYN"]);
    assert!(!out.status.success());
}

#[test]
fn explain_gpp_and_gpp_sid_decide_as_the_server_does() {
    let gpp = format!("DBABM~{TCF_GRANTS_STORAGE}");
    let (granted, _) = explain(&["--country", "DE", "--gpp", &gpp]);
    assert!(holds(&granted, "store-on-device"), "{granted}");
    let (none, _) = explain(&["--country", "DE", "--gpp", &gpp, "--gpp-sid", "-1"]);
    assert!(!holds(&none, "store-on-device"), "{none}");
    assert!(none["signals"]["tcf"].is_null());
    let (listed, _) = explain(&["--country", "DE", "--gpp", &gpp, "--gpp-sid", "2,7"]);
    assert!(holds(&listed, "store-on-device"));
}

#[test]
fn explain_names_a_fail_closed_gpp_section() {
    let (doc, stderr) = explain(&["--country", "US", "--gpp", "DBABL~z"]);
    assert_eq!(
        doc["signals"]["fail_closed_gpp_sections"],
        serde_json::json!([7])
    );
    assert!(!holds(&doc, "store-on-device"));
    assert!(stderr.contains("gpp section 7 (`usnat`)"), "{stderr}");
    let store = doc["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .find(|p| p["permission"] == "store-on-device")
        .expect("store-on-device");
    assert!(
        store["reason"]
            .as_str()
            .is_some_and(|r| r.contains("fail closed: gpp section 7 did not decode")),
        "{store}"
    );
}

#[test]
fn explain_cookie_uses_the_server_parsing() {
    // Both US Privacy cookie names, every copy; the `usprivacy` opt-out counts.
    let (doc, stderr) = explain(&[
        "--country",
        "US",
        "--cookie",
        "us_privacy=xx; usprivacy=1YYN",
    ]);
    assert!(!holds(&doc, "store-on-device"), "{doc}");
    assert!(stderr.contains("us privacy string"), "{stderr}");
    // A flag and the cookie header carrying the same signal is refused.
    let config = no_expiry_config();
    let out = run(&[
        "permissions",
        "explain",
        "--config",
        &config,
        "--us-privacy",
        "1YNN",
        "--cookie",
        "us_privacy=1YYN",
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("`--us-privacy`"));
}

#[test]
fn restrictive_conflict_mode_is_symmetric_over_every_mapped_permission() {
    // Reproduction: a standalone TC string consenting to purposes 2 and 10 and a GPP tcfeuv2
    // section consenting to none agree on purposes 1, 3 and 4, so the standalone record was used
    // alone and `select-basic-ads` (purpose 2) was held although the GPP record refuses it.
    let cookie = format!("euconsent-v2={TCF_PURPOSES_2_10}; __gpp=DBABM~{TCF_NO_PURPOSES}");
    let (doc, _) = explain(&["--country", "DE", "--cookie", &cookie]);
    assert!(!holds(&doc, "select-basic-ads"), "{doc}");
    // Swapped sides: the same.
    let cookie = format!("euconsent-v2={TCF_NO_PURPOSES}; __gpp=DBABM~{TCF_PURPOSES_2_10}");
    let (doc, _) = explain(&["--country", "DE", "--cookie", &cookie]);
    assert!(!holds(&doc, "select-basic-ads"), "{doc}");
    // Control: the standalone record alone grants it.
    let cookie = format!("euconsent-v2={TCF_PURPOSES_2_10}");
    let (doc, _) = explain(&["--country", "DE", "--cookie", &cookie]);
    assert!(holds(&doc, "select-basic-ads"), "{doc}");
}
