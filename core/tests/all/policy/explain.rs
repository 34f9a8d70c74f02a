//! `explain`: the audit view a policy owner reads. Text and JSON are pinned by golden files in
//! `golden/`; regenerate them with `BLESS=1 cargo test -p gatehouse-core` and review the diff.

use std::path::PathBuf;

use gatehouse_core::policy::{Decision, Explanation, MatchKind, Policy, Signals, UsOptOut};
use serde_json::{Value, json};

use super::{default_country, embedded, gpc, tcf};

/// Explains a request against the shipped policy with `geo.default_country = FR`.
fn explain(country: &str, region: Option<&str>, signals: &Signals) -> Explanation {
    let policy = embedded();
    policy
        .match_jurisdiction(Some(country), region, &default_country(policy, "FR"))
        .explain(signals)
}

fn to_json(explanation: &Explanation) -> Value {
    serde_json::to_value(explanation).expect("explanations serialise")
}

fn entry<'e>(json: &'e Value, permission: &str) -> &'e Value {
    json["permissions"]
        .as_array()
        .expect("permissions is a list")
        .iter()
        .find(|entry| entry["permission"] == permission)
        .unwrap_or_else(|| panic!("`{permission}` is explained"))
}

/// Compares `actual` with `golden/<name>`, or rewrites it when `BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/all/policy/golden")
        .join(name);
    if std::env::var_os("BLESS").is_some_and(|bless| bless == "1") {
        std::fs::write(&path, actual).expect("golden file is writable");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (run with BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} is out of date (run with BLESS=1 and review the diff)",
        path.display()
    );
}

fn golden_both(name: &str, explanation: &Explanation) {
    golden(&format!("{name}.txt"), &explanation.to_string());
    let pretty = serde_json::to_string_pretty(explanation).expect("explanations serialise");
    golden(&format!("{name}.json"), &format!("{pretty}\n"));
}

#[test]
fn de_without_consent_explains_every_permission_needs_a_tcf_record() {
    let explanation = explain("DE", None, &Signals::default());
    let json = to_json(&explanation);
    assert_eq!(json["country"], "DE");
    assert_eq!(json["region"], Value::Null);
    assert_eq!(json["matched_rule"], "DE");
    assert_eq!(json["matched_by"], "country");
    assert_eq!(json["group"], "gdpr-eu");
    assert_eq!(json["gdpr_applies"], true);
    assert_eq!(json["us_privacy_applies"], false);
    assert_eq!(json["held"], json!([]));
    assert_eq!(json["signals"]["tcf"], Value::Null);
    let store = entry(&json, "store-on-device");
    assert_eq!(store["held"], false);
    assert_eq!(store["baseline"], "requires_signal");
    assert_eq!(
        store["baseline_set_by"],
        json!({"rule": "DE", "group": "gdpr-eu", "override": null})
    );
    assert_eq!(store["tcf_mapping"], json!({"purpose": 1}));
    assert_eq!(store["decided_by"], json!({"kind": "no_tcf_record"}));
    assert_eq!(store["reason"], "no tcf record");
    assert_eq!(
        entry(&json, "scan-device-characteristics")["tcf_mapping"],
        json!({"special_feature": 2})
    );

    let text = explanation.to_string();
    assert!(text.contains("matched rule  DE (country rule)"), "{text}");
    assert!(text.contains("group         gdpr-eu"), "{text}");
    assert!(text.contains("gdpr applies  yes"), "{text}");
    assert!(text.contains("held          0 of 13"), "{text}");
    golden_both("de-no-signal", &explanation);
}

#[test]
fn de_with_gpc_still_needs_a_tcf_record() {
    // GPC is an opt-out; under GDPR nothing is granted without consent, so it changes no decision
    // but is reported as a signal the request carried.
    let explanation = explain("DE", None, &gpc());
    let json = to_json(&explanation);
    assert_eq!(json["signals"]["gpc"], true);
    assert_eq!(json["held"], json!([]));
    assert_eq!(
        entry(&json, "store-on-device")["decided_by"],
        json!({"kind": "no_tcf_record"})
    );
    assert!(explanation.to_string().contains("signals       gpc"));
    golden_both("de-gpc", &explanation);
}

#[test]
fn de_with_tcf_names_the_purpose_that_decided() {
    let explanation = explain("DE", None, &tcf(&[1], &[3, 7], &[]));
    let json = to_json(&explanation);
    assert_eq!(
        json["held"],
        json!(["store-on-device", "measure-ad-performance"])
    );
    assert_eq!(
        json["signals"]["tcf"],
        json!({"purpose_consents": [1], "purpose_legitimate_interests": [3, 7], "special_feature_opt_ins": []})
    );
    assert_eq!(
        entry(&json, "store-on-device")["reason"],
        "tcf purpose 1 consent"
    );
    assert_eq!(
        entry(&json, "measure-ad-performance")["decided_by"],
        json!({"kind": "tcf_legitimate_interest", "purpose": 7})
    );
    assert_eq!(
        entry(&json, "measure-ad-performance")["reason"],
        "tcf purpose 7 legitimate interest"
    );
    assert_eq!(
        entry(&json, "create-ads-profile")["decided_by"],
        json!({"kind": "tcf_purpose_refused", "purpose": 3, "legitimate_interest_not_accepted": true})
    );
    assert_eq!(
        entry(&json, "use-precise-geolocation")["reason"],
        "tcf special feature 1: no opt-in"
    );
    golden_both("de-tcf", &explanation);
}

#[test]
fn gb_explains_gdpr_uk() {
    let explanation = explain("gb", None, &Signals::default());
    assert_eq!(explanation.group, "gdpr-uk");
    assert_eq!(explanation.matched_rule, "GB");
    assert_eq!(explanation.country.as_deref(), Some("GB"));
    assert!(explanation.held.is_empty());
    golden_both("gb-no-signal", &explanation);

    let explanation = explain("GB", None, &gpc());
    let json = to_json(&explanation);
    assert_eq!(json["signals"]["gpc"], true);
    assert!(explanation.to_string().contains("signals       gpc"));
    assert_eq!(
        entry(&json, "store-on-device")["decided_by"],
        json!({"kind": "no_tcf_record"})
    );
    golden_both("gb-gpc", &explanation);
}

#[test]
fn us_ca_explains_the_override_and_the_gpc_revocation() {
    let explanation = explain("US", Some("CA"), &Signals::default());
    let json = to_json(&explanation);
    assert_eq!(json["matched_rule"], "US/CA");
    assert_eq!(json["matched_by"], "region");
    assert_eq!(json["region"], "CA");
    assert_eq!(json["overrides"], json!(["-scan-device-characteristics"]));
    assert_eq!(json["us_privacy_applies"], true);
    let scan = entry(&json, "scan-device-characteristics");
    assert_eq!(scan["baseline"], "denied");
    assert_eq!(
        scan["baseline_set_by"]["override"],
        "-scan-device-characteristics"
    );
    assert_eq!(scan["decided_by"], json!({"kind": "denied_by_override"}));
    let store = entry(&json, "store-on-device");
    assert_eq!(store["held"], true);
    assert_eq!(store["baseline"], "granted");
    assert_eq!(store["decided_by"], json!({"kind": "granted"}));
    let text = explanation.to_string();
    assert!(text.contains("matched rule  US/CA (region rule)"), "{text}");
    assert!(
        text.contains("override -scan-device-characteristics"),
        "{text}"
    );
    golden_both("us-ca-no-signal", &explanation);

    let explanation = explain("US", Some("CA"), &gpc());
    let json = to_json(&explanation);
    let store = entry(&json, "store-on-device");
    assert_eq!(store["held"], false);
    assert_eq!(
        store["decided_by"],
        json!({"kind": "revoked_by_opt_out", "signals": ["gpc"]})
    );
    assert_eq!(store["reason"], "gpc revoked");
    assert_eq!(entry(&json, "measure-ad-performance")["held"], true);
    golden_both("us-ca-gpc", &explanation);
}

/// The shipped policy with every `opt-outs-override-tcf: true` turned `false`.
fn tcf_wins_policy() -> Policy {
    Policy::from_yaml_str(
        &gatehouse_core::policy::EMBEDDED_POLICY_YAML.replace(
            "opt-outs-override-tcf: true",
            "opt-outs-override-tcf: false",
        ),
        "permissions.yaml",
    )
    .expect("valid")
}

/// A TC string granting every purpose, legitimate interest and special feature, with GPC.
fn granting_tcf_with_gpc() -> Signals {
    let all: Vec<u8> = (1..=11).collect();
    let mut signals = tcf(&all, &all, &[1, 2]);
    signals.gpc = true;
    signals
}

#[test]
fn us_ca_granting_tcf_with_gpc_under_both_values_of_opt_outs_override_tcf() {
    // Shipped: `opt-outs-override-tcf: true` for `us-opt-out`, so GPC revokes its list even
    // though the TC string grants it (California §7025: GPC over business-specific settings).
    let explanation = explain("US", Some("CA"), &granting_tcf_with_gpc());
    assert!(explanation.opt_outs_override_tcf);
    let json = to_json(&explanation);
    assert_eq!(json["opt_outs_override_tcf"], true);
    let store = entry(&json, "store-on-device");
    assert_eq!(store["held"], false);
    assert_eq!(
        store["decided_by"],
        json!({"kind": "opt_out_overrides_tcf", "signals": ["gpc"]})
    );
    assert_eq!(
        store["reason"],
        "gpc revoked (opt-outs override tcf in this group)"
    );
    assert_eq!(entry(&json, "select-basic-ads")["held"], true);
    assert!(
        explanation
            .to_string()
            .contains("opt-outs      override tcf (opt-outs-override-tcf: true)")
    );
    golden_both("us-ca-tcf-gpc-opt-outs-override-tcf", &explanation);

    // `false`: the TC string decides what it maps, GPC included.
    let policy = tcf_wins_policy();
    let explanation = policy
        .match_jurisdiction(Some("US"), Some("CA"), &default_country(&policy, "FR"))
        .explain(&granting_tcf_with_gpc());
    assert!(!explanation.opt_outs_override_tcf);
    let json = to_json(&explanation);
    let store = entry(&json, "store-on-device");
    assert_eq!(store["held"], true);
    assert_eq!(store["opt_outs_superseded_by_tcf"], json!(["gpc"]));
    assert_eq!(
        entry(&json, "scan-device-characteristics")["held"],
        false,
        "the CA override still denies"
    );
    golden_both("us-ca-tcf-gpc-tcf-wins", &explanation);
}

#[test]
fn fail_closed_sections_are_named_in_the_explanation() {
    let mut signals = Signals {
        gpp_sale_opt_out: true,
        ..Signals::default()
    };
    signals.fail_closed_gpp_sections.insert(7);
    let explanation = explain("US", None, &signals);
    let json = to_json(&explanation);
    assert_eq!(json["signals"]["fail_closed_gpp_sections"], json!([7]));
    assert_eq!(
        entry(&json, "store-on-device")["reason"],
        "gpp sale opt-out revoked (fail closed: gpp section 7 did not decode)"
    );
    assert!(
        explanation
            .to_string()
            .contains("fail closed: gpp section 7 did not decode, counted as opted out")
    );
}

#[test]
fn us_explains_that_a_tcf_record_wins_over_opt_outs_where_the_group_says_so() {
    let mut signals = tcf(&[1], &[], &[]);
    signals.gpc = true;
    signals.us_privacy_opt_out = true;
    let policy = tcf_wins_policy();
    let explanation = policy
        .match_jurisdiction(Some("US"), None, &default_country(&policy, "FR"))
        .explain(&signals);
    let store = explanation
        .permissions
        .iter()
        .find(|entry| entry.permission == "store-on-device")
        .expect("explained");
    assert!(store.held);
    assert_eq!(store.decided_by, Decision::TcfConsent { purpose: 1 });
    assert_eq!(
        store.opt_outs_superseded_by_tcf,
        [UsOptOut::Gpc, UsOptOut::UsPrivacy]
    );
    assert_eq!(
        store.reason,
        "tcf purpose 1 consent (tcf record wins over gpc, us-privacy opt-out)"
    );
    let ads = explanation
        .permissions
        .iter()
        .find(|entry| entry.permission == "select-basic-ads")
        .expect("explained");
    assert!(
        !ads.held,
        "the record refuses purpose 2 even though the baseline grants it"
    );
}

#[test]
fn br_explains_the_fallback_to_the_default_country() {
    let explanation = explain("BR", Some("SP"), &Signals::default());
    let json = to_json(&explanation);
    assert_eq!(json["country"], "BR");
    assert_eq!(json["region"], "SP");
    assert_eq!(json["matched_rule"], "FR");
    assert_eq!(json["matched_by"], "default");
    assert_eq!(json["group"], "gdpr-eu");
    let text = explanation.to_string();
    assert!(text.contains("country       BR"), "{text}");
    assert!(
        text.contains("matched rule  FR (geo.default_country, no rule matched)"),
        "{text}"
    );
    golden_both("br-no-signal", &explanation);

    let policy = embedded();
    let explanation = policy
        .match_jurisdiction(Some("BR"), None, &default_country(policy, "US/CA"))
        .explain(&gpc());
    assert_eq!(explanation.matched_by, MatchKind::Default);
    assert_eq!(explanation.matched_rule, "US/CA");
    assert!(!explanation.held.contains(&"store-on-device".to_owned()));
    golden_both("br-default-us-ca-gpc", &explanation);
}

#[test]
fn unrecognised_geo_is_reported_as_such() {
    let explanation = explain("Brazil", Some("SP"), &Signals::default());
    assert_eq!(explanation.country.as_deref(), Some("unrecognised"));
    assert_eq!(
        explanation.region.as_deref(),
        Some("SP"),
        "shown, but unused without a country"
    );
    assert_eq!(explanation.matched_by, MatchKind::Default);
    let explanation = explain("US", Some("California"), &Signals::default());
    assert_eq!(explanation.region.as_deref(), Some("unrecognised"));
    assert_eq!(explanation.matched_by, MatchKind::Country);
    let explanation = explain(" ", Some(""), &Signals::default());
    assert_eq!(explanation.country, None, "a blank geo header is absent");
    assert_eq!(explanation.region, None);
}

/// A tiny deterministic generator so the exhaustive check needs no extra dependency.
fn next(state: &mut u64) -> u64 {
    *state = state
        .wrapping_mul(6_364_136_223_846_793_005)
        .wrapping_add(1_442_695_040_888_963_407);
    *state >> 16
}

#[test]
fn explain_agrees_with_resolve_for_every_rule_and_many_signal_combinations() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    let mut state = 7;
    for key in policy.rule_keys() {
        let (country, region) = key
            .split_once('/')
            .map_or((key, None), |(c, r)| (c, Some(r)));
        let matched = policy.match_jurisdiction(Some(country), region, &default);
        assert_eq!(matched.rule_key(), key);
        for _ in 0..200 {
            let bits = next(&mut state);
            let mut signals = if bits & 1 == 0 {
                Signals::default()
            } else {
                // Truncation intended: random bit patterns.
                let tcf = gatehouse_core::policy::TcfSignal {
                    purpose_consents: (bits >> 1) as u32 & 0xfff,
                    purpose_li: (bits >> 13) as u32 & 0xfff,
                    special_feature_optins: (bits >> 25) as u16 & 0x3,
                    publisher: (bits & (1 << 35) != 0).then_some(
                        gatehouse_core::policy::PublisherTcfSignal {
                            purpose_consents: (bits >> 36) as u32 & 0xfff,
                            purpose_li: (bits >> 48) as u32 & 0xfff,
                        },
                    ),
                };
                Signals {
                    tcf: Some(tcf),
                    ..Signals::default()
                }
            };
            signals.gpc = bits & (1 << 30) != 0;
            signals.us_privacy_opt_out = bits & (1 << 31) != 0;
            signals.gpp_sale_opt_out = bits & (1 << 32) != 0;
            signals.gpp_sharing_opt_out = bits & (1 << 33) != 0;
            signals.gpp_targeted_ads_opt_out = bits & (1 << 34) != 0;
            let held = matched.resolve(&signals);
            let explanation = matched.explain(&signals);
            let explained: Vec<&str> = explanation
                .permissions
                .iter()
                .filter(|entry| entry.held)
                .map(|entry| entry.permission.as_str())
                .collect();
            assert_eq!(
                explained,
                policy.names(held).collect::<Vec<_>>(),
                "{key} {signals:?}"
            );
            assert_eq!(explanation.held, explained);
        }
    }
}
