//! Jurisdiction matching and permission resolution against the shipped policy.

use gatehouse_core::policy::{Acquisition, MatchKind, Policy, PolicyError, Signals, UsOptOut};

use super::{default_country, embedded, gpc, id, minimal, names, set, tcf};

const US_GRANTED_WITHOUT_SIGNAL: [&str; 12] = [
    "store-on-device",
    "select-basic-ads",
    "create-ads-profile",
    "select-personalised-ads",
    "create-content-profile",
    "select-personalised-content",
    "measure-ad-performance",
    "measure-content-performance",
    "understand-audiences",
    "develop-improve-services",
    "select-basic-content",
    "scan-device-characteristics",
];

#[test]
fn shipped_policy_parses_and_is_parsed_once() {
    let first = embedded();
    let second = embedded();
    assert!(std::ptr::eq(first, second), "embedded policy is cached");
    assert_eq!(first.permission_count(), 13);
    assert_eq!(first.source(), "permissions.yaml");
    for group in ["gdpr-eu", "gdpr-uk", "us-opt-out", "non-regulated"] {
        assert!(
            first.group_names().any(|name| name == group),
            "group `{group}`"
        );
    }
}

#[test]
fn shipped_policy_covers_every_eu_and_eea_country_with_gdpr_eu() {
    let policy = embedded();
    let default = default_country(policy, "US");
    let eu_eea = [
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE", "IS", "LI", "NO",
    ];
    for country in eu_eea {
        let matched = policy.match_jurisdiction(Some(country), None, &default);
        assert_eq!(matched.match_kind(), MatchKind::Country, "{country}");
        assert_eq!(matched.group_name(), "gdpr-eu", "{country}");
        assert!(matched.gdpr_applies(), "{country}");
        assert!(!matched.us_privacy_applies(), "{country}");
    }
}

#[test]
fn shipped_policy_maps_every_permission_to_exactly_one_tcf_field() {
    let policy = embedded();
    for (permission, name, description) in policy.permissions() {
        assert!(
            policy.tcf_source(permission).is_some(),
            "`{name}` is mapped to tcf"
        );
        assert!(!description.is_empty(), "`{name}` has a description");
    }
    for purpose in 1..=11 {
        let expected = matches!(purpose, 2 | 7 | 8 | 9 | 10 | 11);
        assert_eq!(
            policy.tcf_legitimate_interest_allowed(purpose),
            expected,
            "purpose {purpose}"
        );
    }
}

#[test]
fn de_without_consent_holds_nothing() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("DE"), None, &default_country(policy, "US"));
    assert_eq!(matched.rule_key(), "DE");
    assert_eq!(matched.group_name(), "gdpr-eu");
    assert!(matched.resolve(&Signals::default()).is_empty());
    // A US-style opt-out neither grants nor matters here.
    assert!(matched.resolve(&gpc()).is_empty());
}

#[test]
fn de_with_tcf_purpose_1_consent_holds_store_on_device_only() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("DE"), None, &default_country(policy, "US"));
    let held = matched.resolve(&tcf(&[1], &[], &[]));
    assert_eq!(names(policy, held), ["store-on-device"]);
}

#[test]
fn de_legitimate_interest_counts_only_where_the_policy_accepts_it() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("DE"), None, &default_country(policy, "US"));
    // LI for every purpose: only 2, 7, 8, 9, 10, 11 are accepted; 1, 3, 4, 5, 6 need consent.
    let held = matched.resolve(&tcf(&[], &[1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[]));
    assert_eq!(
        names(policy, held),
        [
            "select-basic-ads",
            "measure-ad-performance",
            "measure-content-performance",
            "understand-audiences",
            "develop-improve-services",
            "select-basic-content",
        ]
    );
}

#[test]
fn de_special_features_need_an_opt_in() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("DE"), None, &default_country(policy, "US"));
    let all_purposes: Vec<u8> = (1..=11).collect();
    let without = matched.resolve(&tcf(&all_purposes, &[], &[]));
    assert!(!without.contains(id(policy, "use-precise-geolocation")));
    assert!(!without.contains(id(policy, "scan-device-characteristics")));
    let with = matched.resolve(&tcf(&all_purposes, &[], &[1, 2]));
    assert_eq!(with, policy.all_permissions());
}

#[test]
fn gb_requires_a_signal_like_the_eu() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("GB"), None, &default_country(policy, "US"));
    assert_eq!(matched.group_name(), "gdpr-uk");
    assert!(matched.gdpr_applies());
    assert!(matched.resolve(&Signals::default()).is_empty());
    assert_eq!(
        names(policy, matched.resolve(&tcf(&[1, 7], &[], &[]))),
        ["store-on-device", "measure-ad-performance"]
    );
}

#[test]
fn us_baseline_grants_everything_but_precise_geolocation() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("US"), None, &default_country(policy, "FR"));
    assert_eq!(matched.group_name(), "us-opt-out");
    assert!(!matched.gdpr_applies());
    assert!(matched.us_privacy_applies());
    assert_eq!(
        matched
            .baseline()
            .acquisition(id(policy, "use-precise-geolocation")),
        Acquisition::RequiresSignal
    );
    assert_eq!(
        matched.resolve(&Signals::default()),
        set(policy, &US_GRANTED_WITHOUT_SIGNAL)
    );
}

#[test]
fn us_gpc_revokes_exactly_the_gpc_revocation_list() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("US"), None, &default_country(policy, "FR"));
    let baseline = matched.resolve(&Signals::default());
    let revoked = policy.revoked_by(UsOptOut::Gpc);
    assert!(revoked.contains(id(policy, "store-on-device")));
    assert!(revoked.contains(id(policy, "select-personalised-ads")));
    let held = matched.resolve(&gpc());
    assert_eq!(held, baseline.difference(revoked));
    assert!(
        held.contains(id(policy, "measure-ad-performance")),
        "measurement survives gpc"
    );
}

#[test]
fn us_each_opt_out_signal_revokes_its_own_list() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("US"), None, &default_country(policy, "FR"));
    let baseline = matched.resolve(&Signals::default());
    let targeted = Signals {
        gpp_targeted_ads_opt_out: true,
        ..Signals::default()
    };
    assert_eq!(
        matched.resolve(&targeted),
        baseline.difference(set(
            policy,
            &["create-ads-profile", "select-personalised-ads"]
        ))
    );
    let us_privacy = Signals {
        us_privacy_opt_out: true,
        ..Signals::default()
    };
    assert_eq!(
        matched.resolve(&us_privacy),
        baseline.difference(policy.revoked_by(UsOptOut::UsPrivacy))
    );
    let combined = Signals {
        gpp_sharing_opt_out: true,
        gpp_targeted_ads_opt_out: true,
        ..Signals::default()
    };
    assert_eq!(
        matched.resolve(&combined),
        baseline
            .difference(policy.revoked_by(UsOptOut::GppSharing))
            .difference(policy.revoked_by(UsOptOut::GppTargetedAds))
    );
}

#[test]
fn us_opt_outs_override_a_granting_tcf_record_only_where_the_group_says_so() {
    let all_purposes: Vec<u8> = (1..=11).collect();
    let mut signals = tcf(&all_purposes, &[], &[2]);
    signals.gpc = true;
    signals.us_privacy_opt_out = true;

    // Shipped: `us-opt-out` says `opt-outs-override-tcf: true`, so GPC revokes its list.
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("US"), None, &default_country(policy, "FR"));
    assert!(matched.opt_outs_override_tcf());
    let held = matched.resolve(&signals);
    assert!(!held.contains(id(policy, "store-on-device")));
    assert!(
        held.contains(id(policy, "select-basic-ads")),
        "not on the gpc list"
    );

    // With the key `false`, a tcf record granting everything wins over the opt-outs.
    let tcf_wins = Policy::from_yaml_str(
        &gatehouse_core::policy::EMBEDDED_POLICY_YAML.replace(
            "opt-outs-override-tcf: true",
            "opt-outs-override-tcf: false",
        ),
        "tcf-wins.yaml",
    )
    .expect("valid");
    let matched = tcf_wins.match_jurisdiction(Some("US"), None, &default_country(&tcf_wins, "FR"));
    assert!(!matched.opt_outs_override_tcf());
    assert_eq!(
        matched.resolve(&signals),
        set(&tcf_wins, &US_GRANTED_WITHOUT_SIGNAL),
        "a tcf record granting everything overrides the opt-outs"
    );
}

#[test]
fn us_tcf_record_refusing_a_purpose_removes_a_granted_permission() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("US"), None, &default_country(policy, "FR"));
    // Consent to everything but purpose 1: the record is authoritative even for `granted`.
    let held = matched.resolve(&tcf(&[2, 3, 4, 5, 6, 7, 8, 9, 10, 11], &[], &[]));
    assert!(!held.contains(id(policy, "store-on-device")));
    assert!(held.contains(id(policy, "select-basic-ads")));
    // A TCF special feature opt-in grants `requires-signal` precise geolocation in the US.
    let held = matched.resolve(&tcf(&[], &[], &[1]));
    assert_eq!(names(policy, held), ["use-precise-geolocation"]);
}

#[test]
fn us_ca_override_denies_device_scanning_even_with_tcf_opt_in() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    let us = policy.match_jurisdiction(Some("US"), Some("NY"), &default);
    let ca = policy.match_jurisdiction(Some("US"), Some("CA"), &default);
    assert_eq!(us.match_kind(), MatchKind::Country);
    assert_eq!(us.rule_key(), "US");
    assert_eq!(ca.match_kind(), MatchKind::Region);
    assert_eq!(ca.rule_key(), "US/CA");
    assert_eq!(ca.group_name(), "us-opt-out");
    let scan = id(policy, "scan-device-characteristics");
    assert!(us.resolve(&Signals::default()).contains(scan));
    assert!(!ca.resolve(&Signals::default()).contains(scan));
    assert_eq!(ca.baseline().acquisition(scan), Acquisition::Denied);
    assert!(!ca.resolve(&tcf(&[], &[], &[1, 2])).contains(scan));
    assert_eq!(
        ca.resolve(&Signals::default()),
        us.resolve(&Signals::default())
            .difference(set(policy, &["scan-device-characteristics"]))
    );
}

#[test]
fn us_wa_override_denies_precise_geolocation_even_with_tcf_opt_in() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    let geolocation = id(policy, "use-precise-geolocation");
    let opt_in = tcf(&[], &[], &[1]);
    let us = policy.match_jurisdiction(Some("US"), None, &default);
    let wa = policy.match_jurisdiction(Some("US"), Some("WA"), &default);
    assert!(us.resolve(&opt_in).contains(geolocation));
    assert!(!wa.resolve(&opt_in).contains(geolocation));
}

#[test]
fn br_has_no_rule_and_falls_back_to_the_default_country() {
    let policy = embedded();
    let fr = default_country(policy, "FR");
    let matched = policy.match_jurisdiction(Some("BR"), Some("SP"), &fr);
    assert_eq!(matched.match_kind(), MatchKind::Default);
    assert_eq!(matched.rule_key(), "FR");
    assert!(matched.resolve(&Signals::default()).is_empty());

    let us_ca = default_country(policy, "US/CA");
    let matched = policy.match_jurisdiction(Some("BR"), None, &us_ca);
    assert_eq!(matched.match_kind(), MatchKind::Default);
    assert_eq!(matched.rule_key(), "US/CA");
    assert_eq!(
        matched.resolve(&Signals::default()),
        set(policy, &US_GRANTED_WITHOUT_SIGNAL)
            .difference(set(policy, &["scan-device-characteristics"]))
    );
}

#[test]
fn missing_or_unrecognised_geo_uses_the_default_country() {
    let policy = embedded();
    let default = default_country(policy, "GB");
    for (country, region) in [
        (None, None),
        (None, Some("CA")),
        (Some(""), None),
        (Some("USA"), Some("CA")),
        (Some("U1"), None),
    ] {
        let matched = policy.match_jurisdiction(country, region, &default);
        assert_eq!(
            matched.match_kind(),
            MatchKind::Default,
            "{country:?} {region:?}"
        );
        assert_eq!(matched.rule_key(), "GB");
    }
}

#[test]
fn an_unknown_region_falls_back_to_its_country_rule() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    for region in ["TX", "ZZZ", "not a region", "", "CA-ON"] {
        let matched = policy.match_jurisdiction(Some("US"), Some(region), &default);
        assert_eq!(matched.match_kind(), MatchKind::Country, "{region:?}");
        assert_eq!(matched.rule_key(), "US");
    }
}

#[test]
fn jurisdiction_matching_ignores_case_and_accepts_iso_3166_2_regions() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    for (country, region) in [
        ("us", "ca"),
        ("US", "Ca"),
        ("uS", "US-CA"),
        ("US", "us/ca"),
        (" US ", " CA "),
    ] {
        let matched = policy.match_jurisdiction(Some(country), Some(region), &default);
        assert_eq!(
            matched.match_kind(),
            MatchKind::Region,
            "{country:?} {region:?}"
        );
        assert_eq!(
            matched.rule_key(),
            "US/CA",
            "the key as written in the file"
        );
    }
    let de = policy.match_jurisdiction(Some("de"), None, &default);
    assert_eq!(de.rule_key(), "DE");
}

#[test]
fn default_country_is_validated_case_insensitively() {
    let policy = embedded();
    assert_eq!(default_country(policy, "us/ca").rule_key(), "US/CA");
    assert_eq!(default_country(policy, " fr ").rule_key(), "FR");

    let error = policy.default_country("BR").expect_err("BR has no rule");
    assert!(matches!(&error, PolicyError::UnknownDefaultCountry { value, .. } if value == "BR"));
    let message = error.to_string();
    assert!(message.contains("`geo.default_country`"), "{message}");
    assert!(message.contains("`BR`"), "{message}");
    assert!(message.contains("permissions.yaml"), "{message}");

    // A region without its own rule does not silently fall back to the country.
    let error = policy
        .default_country("US/NY")
        .expect_err("US/NY has no rule");
    assert!(matches!(error, PolicyError::UnknownDefaultCountry { .. }));
    assert!(matches!(
        policy.default_country("France"),
        Err(PolicyError::UnknownDefaultCountry { .. })
    ));
    let error = policy.default_country("  ").expect_err("empty is unset");
    assert_eq!(error, PolicyError::MissingDefaultCountry);
    assert!(
        error
            .to_string()
            .contains("`geo.default_country` is not set")
    );
}

#[test]
fn baseline_summary_describes_the_default_jurisdiction() {
    let policy = embedded();
    let fr = policy.baseline_summary(&default_country(policy, "FR"));
    assert!(fr.contains("`FR`"), "{fr}");
    assert!(fr.contains("`gdpr-eu`"), "{fr}");
    assert!(fr.contains("0 of 13 permissions held [none]"), "{fr}");
    assert!(!fr.contains('\n'));

    let us_ca = policy.baseline_summary(&default_country(policy, "US/CA"));
    assert!(us_ca.contains("-scan-device-characteristics"), "{us_ca}");
    assert!(us_ca.contains("11 of 13 permissions held"), "{us_ca}");
    assert!(
        us_ca.contains("requires a signal [use-precise-geolocation]"),
        "{us_ca}"
    );
    assert!(
        us_ca.contains("denied [scan-device-characteristics]"),
        "{us_ca}"
    );
}

#[test]
fn opt_outs_are_honoured_in_non_regulated_countries_too() {
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("AU"), None, &default_country(policy, "FR"));
    assert_eq!(matched.group_name(), "non-regulated");
    assert_eq!(
        matched.resolve(&Signals::default()),
        policy.all_permissions()
    );
    assert_eq!(
        matched.resolve(&gpc()),
        policy
            .all_permissions()
            .difference(policy.revoked_by(UsOptOut::Gpc))
    );
}

#[test]
fn plus_override_grants_a_permission_the_group_requires_a_signal_for() {
    let text = super::MINIMAL.replace("  FR: strict", "  FR: { group: strict, overrides: [+b] }");
    let policy = Policy::from_yaml_str(&text, "t.yaml").expect("valid");
    let fr = policy.match_jurisdiction(Some("FR"), None, &default_country(&policy, "FR"));
    assert_eq!(
        fr.baseline().acquisition(id(&policy, "b")),
        Acquisition::Granted
    );
    assert_eq!(names(&policy, fr.resolve(&Signals::default())), ["b"]);
    // `+b` makes it granted, so a TCF record is still authoritative for it.
    assert_eq!(names(&policy, fr.resolve(&tcf(&[1], &[], &[]))), ["a"]);
}

#[test]
fn minus_override_denies_a_permission_whatever_the_signals() {
    let policy = minimal();
    let default = default_country(&policy, "FR");
    let us = policy.match_jurisdiction(Some("US"), None, &default);
    let ca = policy.match_jurisdiction(Some("US"), Some("CA"), &default);
    assert_eq!(
        names(&policy, us.resolve(&Signals::default())),
        ["a", "b", "c"]
    );
    assert_eq!(names(&policy, ca.resolve(&Signals::default())), ["a", "b"]);
    assert_eq!(names(&policy, ca.resolve(&gpc())), ["b"]);
}

#[test]
fn a_tcf_record_leaves_unmapped_granted_permissions_to_the_opt_outs() {
    // `c` is granted in `open` and mapped to no TCF field: a TCF record does not decide it, so
    // a US-style opt-out still can.
    let text = super::MINIMAL.replace("gpc: [a]", "gpc: [a, c]");
    let policy = Policy::from_yaml_str(&text, "t.yaml").expect("valid");
    let us = policy.match_jurisdiction(Some("US"), None, &default_country(&policy, "FR"));
    let mut signals = tcf(&[1, 2], &[], &[]);
    assert_eq!(names(&policy, us.resolve(&signals)), ["a", "b", "c"]);
    signals.gpc = true;
    assert_eq!(
        names(&policy, us.resolve(&signals)),
        ["a", "b"],
        "gpc still revokes unmapped `c`"
    );
    // And `requires-signal` without a TCF mapping can never be held.
    let text = super::MINIMAL.replace("      c: denied", "      c: requires-signal");
    let policy = Policy::from_yaml_str(&text, "t.yaml").expect("valid");
    let fr = policy.match_jurisdiction(Some("FR"), None, &default_country(&policy, "FR"));
    assert_eq!(
        names(&policy, fr.resolve(&tcf(&[1, 2, 3], &[3], &[1]))),
        ["a", "b"]
    );
}

#[test]
fn resolve_permissions_is_match_then_resolve() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    let signals = tcf(&[1, 2], &[7], &[]);
    assert_eq!(
        policy.resolve_permissions(Some("de"), None, &default, &signals),
        policy
            .match_jurisdiction(Some("DE"), None, &default)
            .resolve(&signals)
    );
}

#[test]
fn a_default_country_from_another_policy_with_the_same_rule_still_works() {
    let other = minimal();
    let default = default_country(&other, "US/CA");
    let policy = embedded();
    let matched = policy.match_jurisdiction(Some("BR"), None, &default);
    assert_eq!(matched.rule_key(), "US/CA");
    assert_eq!(matched.match_kind(), MatchKind::Default);
}
