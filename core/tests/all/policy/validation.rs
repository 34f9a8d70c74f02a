//! Every way a policy file can be wrong is a startup error naming the file, the key path and
//! the reason.

use gatehouse_core::policy::{InvalidPolicy, Policy, PolicyError, UnknownPermission};

use super::{MINIMAL, embedded, minimal, set};

/// Parses `MINIMAL` with `from` replaced by `to` and expects it to fail.
fn invalid(from: &str, to: &str) -> PolicyError {
    assert!(MINIMAL.contains(from), "fixture contains {from:?}");
    let text = MINIMAL.replacen(from, to, 1);
    Policy::from_yaml_str(&text, "bad.yaml").expect_err("the mutated policy is invalid")
}

/// Asserts the error is `Invalid` at `path`, and that the message names the file, the path and
/// every `mentions` (in backticks).
fn assert_at(error: &PolicyError, path: &str, mentions: &[&str]) {
    assert_eq!(error.path(), Some(path), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("bad.yaml: "), "{message}");
    assert!(message.contains(&format!("`{path}`")), "{message}");
    for mention in mentions {
        assert!(
            message.contains(&format!("`{mention}`")),
            "{message} mentions `{mention}`"
        );
    }
    let prose = outside_backticks(&message);
    assert_eq!(prose, prose.to_lowercase(), "prose is lowercase: {message}");
}

/// The message with every backticked item removed.
fn outside_backticks(message: &str) -> String {
    message.split('`').step_by(2).collect()
}

#[test]
fn the_minimal_fixture_is_valid() {
    let policy = minimal();
    assert_eq!(policy.permission_count(), 3);
    assert_eq!(
        policy.rule_keys().collect::<Vec<_>>(),
        ["FR", "US", "US/CA"]
    );
}

#[test]
fn rule_naming_an_unknown_group_fails() {
    let error = invalid("  FR: strict", "  FR: stric");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::UnknownGroup { group, .. }) if group == "stric"
    ));
    assert_at(&error, "rules.FR", &["stric"]);

    let error = invalid("{ group: open, overrides", "{ group: opne, overrides");
    assert_at(&error, "rules.US/CA.group", &["opne"]);
}

#[test]
fn rule_in_a_space_separated_form_fails_with_a_hint() {
    let error = invalid("  FR: strict", "  FR: strict +b");
    assert_at(&error, "rules.FR", &["strict +b"]);
    assert!(error.to_string().contains("long form"), "{error}");
}

#[test]
fn group_naming_an_unknown_permission_fails() {
    let error = invalid("      c: denied", "      c: denied\n      d: denied");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::UnknownPermission { permission }) if permission == "d"
    ));
    assert_at(&error, "groups.strict.permissions.d", &["d"]);
}

#[test]
fn group_missing_a_permission_fails() {
    let error = invalid("      c: denied\n", "");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::MissingPermission { permission }) if permission == "c"
    ));
    assert_at(&error, "groups.strict.permissions.c", &["c"]);
    assert!(error.to_string().contains("missing permission"), "{error}");
}

#[test]
fn unknown_acquisition_value_fails() {
    let error = invalid("      a: requires-signal", "      a: requires_signal");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::UnknownAcquisition { value }) if value == "requires_signal"
    ));
    assert_at(
        &error,
        "groups.strict.permissions.a",
        &["requires_signal", "granted", "denied"],
    );

    let error = invalid("      a: granted", "      a: true");
    assert_at(&error, "groups.open.permissions.a", &["true"]);
}

#[test]
fn override_without_sign_fails() {
    let error = invalid("overrides: [-c]", "overrides: [c]");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::MalformedOverride { value }) if value == "c"
    ));
    assert_at(&error, "rules.US/CA.overrides[0]", &["c"]);

    let error = invalid("overrides: [-c]", "overrides: [\"+\"]");
    assert_at(&error, "rules.US/CA.overrides[0]", &["+"]);
}

#[test]
fn override_of_an_unknown_permission_fails() {
    let error = invalid("overrides: [-c]", "overrides: [-z]");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::UnknownPermission { permission }) if permission == "z"
    ));
    assert_at(&error, "rules.US/CA.overrides[0]", &["z"]);
}

#[test]
fn duplicate_override_fails() {
    for duplicate in ["[-c, -c]", "[-c, +c]"] {
        let error = invalid("overrides: [-c]", &format!("overrides: {duplicate}"));
        assert!(matches!(
            error.invalid_reason(),
            Some(InvalidPolicy::DuplicateOverride { permission }) if permission == "c"
        ));
        assert_at(&error, "rules.US/CA.overrides[1]", &["c"]);
    }
}

#[test]
fn overrides_that_are_not_a_list_fail() {
    let error = invalid("overrides: [-c]", "overrides: -c");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::WrongType { .. })
    ));
    assert_at(&error, "rules.US/CA.overrides", &[]);
}

#[test]
fn malformed_rule_keys_fail() {
    for key in ["USA", "U1", "US/", "US/ABCD", "US-CA", "U", "/CA", "US/C-A"] {
        let error = invalid("  US: open", &format!("  \"{key}\": open"));
        assert!(
            matches!(
                error.invalid_reason(),
                Some(InvalidPolicy::MalformedRuleKey { key: found }) if found == key
            ),
            "{key}: {error}"
        );
        assert_at(&error, &format!("rules.{key}"), &[key]);
    }
}

#[test]
fn rule_keys_that_differ_only_in_case_are_duplicates() {
    let error = invalid("  US: open", "  US: open\n  us: open");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::DuplicateRuleKey { key, first }) if key == "us" && first == "US"
    ));
    assert_at(&error, "rules.us", &["us", "US"]);

    let error = invalid("  US: open", "  US: open\n  us/Ca: open");
    assert_at(&error, "rules.US/CA", &["US/CA", "us/Ca"]);
}

#[test]
fn exact_duplicate_keys_are_a_yaml_error() {
    let error = invalid("  US: open", "  US: open\n  US: strict");
    assert!(matches!(error, PolicyError::Syntax { .. }), "{error}");
    let message = error.to_string();
    assert!(message.starts_with("bad.yaml: invalid yaml:"), "{message}");
    assert!(message.contains("duplicate"), "{message}");
}

#[test]
fn invalid_yaml_names_the_file_and_position() {
    let error = Policy::from_yaml_str("permissions: [unclosed", "bad.yaml").expect_err("not yaml");
    assert!(matches!(error, PolicyError::Syntax { .. }));
    assert!(
        error.to_string().starts_with("bad.yaml: invalid yaml:"),
        "{error}"
    );
    assert!(error.to_string().contains("line"), "{error}");
}

#[test]
fn more_than_64_permissions_fail() {
    let mut text = String::from("permissions:\n");
    for n in 0..65 {
        text.push_str(&format!("  p{n}: permission {n}\n"));
    }
    text.push_str("groups: {}\nrules: {}\nsignals: {}\n");
    let error = Policy::from_yaml_str(&text, "bad.yaml").expect_err("65 permissions");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::TooManyPermissions { count: 65, max: 64 })
    ));
    assert_at(&error, "permissions", &[]);

    // Exactly 64 is fine.
    let text = text.replace("  p64: permission 64\n", "").replace(
        "signals: {}",
        "signals:\n  tcf: { purposes: {}, special-features: {} }\n  us-opt-outs: { gpc: [], us-privacy: [], gpp-sale: [], gpp-sharing: [], gpp-targeted-ads: [] }",
    );
    let policy = Policy::from_yaml_str(&text, "ok.yaml").expect("64 permissions are supported");
    assert_eq!(policy.all_permissions().len(), 64);
}

#[test]
fn an_empty_vocabulary_fails() {
    let error = Policy::from_yaml_str(
        "permissions: {}\ngroups: {}\nrules: {}\nsignals: {}",
        "bad.yaml",
    )
    .expect_err("no permissions");
    assert_eq!(error.invalid_reason(), Some(&InvalidPolicy::NoPermissions));
}

#[test]
fn unknown_keys_fail_at_every_level() {
    let error = invalid("permissions:\n", "colour: blue\npermissions:\n");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::UnknownKey { key, .. }) if key == "colour"
    ));
    assert_at(&error, "colour", &["colour", "permissions", "signals"]);

    let error = invalid(
        "    gdpr-applies: true",
        "    gdpr-applies: true\n    gdpr: true",
    );
    assert_at(&error, "groups.strict.gdpr", &["gdpr"]);

    let error = invalid(
        "{ group: open, overrides",
        "{ group: open, overide: [], overrides",
    );
    assert_at(
        &error,
        "rules.US/CA.overide",
        &["overide", "group", "overrides"],
    );

    let error = invalid("  tcf:\n", "  gpp: {}\n  tcf:\n");
    assert_at(&error, "signals.gpp", &["gpp"]);

    let error = invalid(
        "    gpc: [a]",
        "    gpc: [a]\n    global-privacy-control: [a]",
    );
    assert_at(
        &error,
        "signals.us-opt-outs.global-privacy-control",
        &["global-privacy-control"],
    );

    let error = invalid("1: { permission: a }", "1: { permission: a, li: true }");
    assert_at(&error, "signals.tcf.purposes.1.li", &["li"]);
}

#[test]
fn missing_required_keys_fail() {
    let error = invalid("    us-privacy-applies: false\n", "");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::MissingKey { key }) if key == "us-privacy-applies"
    ));
    assert_at(&error, "groups.strict", &["us-privacy-applies"]);

    let text = &MINIMAL[..MINIMAL.find("signals:").expect("fixture has signals")];
    let error = Policy::from_yaml_str(text, "bad.yaml").expect_err("no signals");
    assert_at(&error, "(root)", &["signals"]);

    let error = invalid("    gpp-targeted-ads: []\n", "");
    assert_at(&error, "signals.us-opt-outs", &["gpp-targeted-ads"]);
}

#[test]
fn wrong_value_types_fail() {
    let error = invalid("    gdpr-applies: true", "    gdpr-applies: yes");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::WrongType { .. })
    ));
    assert_at(&error, "groups.strict.gdpr-applies", &["yes"]);

    let error = invalid("  a: permission a", "  a: [permission a]");
    assert_at(&error, "permissions.a", &[]);

    let error = invalid("  a: permission a", "  a: \"\"");
    assert_at(&error, "permissions.a", &[]);
    assert!(
        error.to_string().contains("one-line description"),
        "{error}"
    );

    let error = invalid("  a: permission a", "  a: |\n    line one\n    line two");
    assert!(error.to_string().contains("several lines"), "{error}");

    let error = invalid("  FR: strict", "  FR: 7");
    assert_at(&error, "rules.FR", &["7"]);

    let error = Policy::from_yaml_str("", "bad.yaml").expect_err("empty document");
    assert_at(&error, "(root)", &[]);
}

#[test]
fn permission_and_group_names_must_be_kebab_case() {
    let error = invalid("  a: permission a", "  Store_On_Device: permission a");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::InvalidName { name }) if name == "Store_On_Device"
    ));
    assert_at(&error, "permissions.Store_On_Device", &["Store_On_Device"]);

    let error = invalid("  strict:", "  -strict:");
    assert_at(&error, "groups.-strict", &["-strict"]);
}

#[test]
fn legitimate_interest_is_rejected_where_tcf_forbids_it() {
    let error = invalid(
        "1: { permission: a }",
        "1: { permission: a, legitimate-interest: true }",
    );
    assert_eq!(
        error.invalid_reason(),
        Some(&InvalidPolicy::LegitimateInterestForbidden { purpose: 1 })
    );
    assert_at(&error, "signals.tcf.purposes.1.legitimate-interest", &["1"]);

    // Turning it off where TCF allows it is fine.
    let text = MINIMAL.replace(
        "2: { permission: b }",
        "2: { permission: b, legitimate-interest: false }",
    );
    let policy = Policy::from_yaml_str(&text, "ok.yaml").expect("valid");
    assert!(!policy.tcf_legitimate_interest_allowed(2));
    assert!(
        minimal().tcf_legitimate_interest_allowed(2),
        "default for purpose 2"
    );
}

#[test]
fn tcf_numbers_out_of_range_fail() {
    for (number, max) in [("0", 24), ("25", 24), ("two", 24)] {
        let error = invalid(
            "1: { permission: a }",
            &format!("{number}: {{ permission: a }}"),
        );
        assert!(matches!(
            error.invalid_reason(),
            Some(InvalidPolicy::InvalidTcfNumber { max: m, .. }) if *m == max
        ));
        assert_at(&error, &format!("signals.tcf.purposes.{number}"), &[number]);
    }
    let error = invalid("special-features: {}", "special-features: { 13: c }");
    assert_at(&error, "signals.tcf.special-features.13", &["13"]);
}

#[test]
fn a_permission_mapped_by_two_tcf_fields_fails() {
    let error = invalid("special-features: {}", "special-features: { 1: a }");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::DuplicateSignalMapping { permission, first })
            if permission == "a" && first == "signals.tcf.purposes.1.permission"
    ));
    assert_at(
        &error,
        "signals.tcf.special-features.1",
        &["a", "signals.tcf.purposes.1.permission"],
    );
}

#[test]
fn tcf_mapping_to_an_unknown_permission_fails() {
    let error = invalid("2: { permission: b }", "2: { permission: bee }");
    assert_at(&error, "signals.tcf.purposes.2.permission", &["bee"]);
}

#[test]
fn revocation_lists_must_name_known_permissions_once() {
    let error = invalid("gpc: [a]", "gpc: [a, nope]");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::UnknownPermission { permission }) if permission == "nope"
    ));
    assert_at(&error, "signals.us-opt-outs.gpc[1]", &["nope"]);

    let error = invalid("gpc: [a]", "gpc: [a, a]");
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::DuplicatePermission { permission }) if permission == "a"
    ));
    assert_at(&error, "signals.us-opt-outs.gpc[1]", &["a"]);
}

#[test]
fn manifest_permission_names_resolve_against_the_vocabulary() {
    let policy = embedded();
    let required = policy
        .set_from_names(&[
            "store-on-device",
            "select-personalised-ads",
            "store-on-device",
        ])
        .expect("known names");
    assert_eq!(required.len(), 2);
    assert_eq!(
        required,
        set(policy, &["select-personalised-ads", "store-on-device"])
    );
    assert!(
        policy
            .set_from_names::<&str>(&[])
            .expect("empty is fine")
            .is_empty()
    );
    let owned = vec![String::from("measure-ad-performance")];
    assert_eq!(
        policy.set_from_names(&owned).expect("owned strings").len(),
        1
    );

    let error = policy
        .set_from_names(&["store-on-device", "Store-On-Device", "read-minds"])
        .expect_err("names are exact");
    assert_eq!(
        error,
        UnknownPermission {
            name: "Store-On-Device".to_owned()
        }
    );
    assert!(
        error
            .to_string()
            .contains("unknown permission `Store-On-Device`"),
        "{error}"
    );
}

#[test]
fn permission_ids_round_trip_through_names() {
    let policy = embedded();
    for (id, name, _) in policy.permissions() {
        assert_eq!(policy.permission_id(name), Some(id));
        assert_eq!(policy.permission_name(id), name);
    }
    assert_eq!(policy.permission_id("nope"), None);
}

#[test]
fn opt_outs_override_tcf_must_be_a_boolean() {
    let error = invalid(
        "    us-privacy-applies: true\n",
        "    us-privacy-applies: true\n    opt-outs-override-tcf: yes-please\n",
    );
    assert!(matches!(
        error.invalid_reason(),
        Some(InvalidPolicy::WrongType { .. })
    ));
    assert_at(&error, "groups.open.opt-outs-override-tcf", &[]);
    // Absent means `false`; `true` is accepted and reported.
    assert!(
        !minimal()
            .match_jurisdiction(Some("US"), None, &super::default_country(&minimal(), "FR"))
            .opt_outs_override_tcf()
    );
    let text = MINIMAL.replacen(
        "    us-privacy-applies: true\n",
        "    us-privacy-applies: true\n    opt-outs-override-tcf: true\n",
        1,
    );
    let policy = Policy::from_yaml_str(&text, "ok.yaml").expect("valid");
    let default = super::default_country(&policy, "FR");
    assert!(
        policy
            .match_jurisdiction(Some("US"), None, &default)
            .opt_outs_override_tcf()
    );
    // A misspelt key is an unknown key, never ignored.
    let error = invalid(
        "    us-privacy-applies: true\n",
        "    us-privacy-applies: true\n    opt-out-override-tcf: true\n",
    );
    assert_at(
        &error,
        "groups.open.opt-out-override-tcf",
        &["opt-outs-override-tcf"],
    );
}

#[test]
fn publisher_tc_authoritative_must_be_a_boolean() {
    let error = invalid(
        "    special-features: {}\n",
        "    special-features: {}\n    publisher-tc-authoritative: 1\n",
    );
    assert_at(&error, "signals.tcf.publisher-tc-authoritative", &[]);
    assert!(!minimal().publisher_tc_authoritative());
    assert!(!embedded().publisher_tc_authoritative(), "shipped default");
}
