//! The fail-closed jurisdiction for a failed geo call: never more than any rule would hold.

use gatehouse_core::policy::{Acquisition, MatchKind, Policy, Signals, TcfSignal, UsOptOut};

use super::support::policy;

fn signal_cases() -> Vec<Signals> {
    let all_purposes = TcfSignal {
        purpose_consents: (1 << 11) - 1,
        purpose_li: (1 << 11) - 1,
        special_feature_optins: 0b11,
    };
    vec![
        Signals::default(),
        Signals {
            gpc: true,
            ..Signals::default()
        },
        Signals {
            tcf: Some(all_purposes),
            ..Signals::default()
        },
        Signals {
            tcf: Some(TcfSignal {
                purpose_consents: 1,
                ..TcfSignal::default()
            }),
            gpc: true,
            ..Signals::default()
        },
    ]
}

/// For every signal case, the geo-failure permissions are a subset of every rule's.
fn assert_never_more_than_any_rule(policy: &Policy) {
    let failed = policy.match_geo_failure();
    assert_eq!(failed.match_kind(), MatchKind::GeoFailed);
    let default = policy
        .default_country(policy.rule_keys().next().expect("a rule"))
        .expect("default");
    for signals in signal_cases() {
        let held = failed.resolve(&signals);
        for key in policy.rule_keys() {
            let (country, region) = key
                .split_once('/')
                .map_or((key, None), |(c, r)| (c, Some(r)));
            let rule = policy.match_jurisdiction(Some(country), region, &default);
            assert_eq!(rule.rule_key(), key);
            let by_rule = rule.resolve(&signals);
            assert!(
                by_rule.contains_all(held),
                "geo failure holds more than `{key}` for {signals:?}"
            );
        }
    }
}

#[test]
fn geo_failure_on_the_shipped_policy_needs_a_signal_for_everything() {
    let policy = policy();
    let failed = policy.match_geo_failure();
    assert_eq!(failed.rule_key(), "geo-failed");
    assert_eq!(failed.group_name(), "fail-closed (geo failed)");
    let baseline = failed.baseline();
    assert!(baseline.granted().is_empty());
    let denied: Vec<&str> = policy.names(baseline.denied()).collect();
    assert_eq!(
        denied,
        vec!["use-precise-geolocation", "scan-device-characteristics"]
    );
    assert!(failed.gdpr_applies() && failed.us_privacy_applies());
    assert!(failed.resolve(&Signals::default()).is_empty());
    assert_never_more_than_any_rule(policy);
    // The audit view explains it like any rule.
    let explanation = failed.explain(&Signals::default());
    assert_eq!(explanation.matched_by, MatchKind::GeoFailed);
    assert!(explanation.held.is_empty());
}

#[test]
fn geo_failure_is_the_intersection_of_the_rules_of_a_custom_policy() {
    // Only permissive rules: what every one of them grants stays granted, and the one rule that
    // denies a permission denies it on a geo failure too.
    let yaml = gatehouse_core::policy::EMBEDDED_POLICY_YAML;
    let start = yaml.find("\nrules:\n").expect("rules section");
    let end = yaml.find("\nsignals:\n").expect("signals section");
    let custom = format!(
        "{}\nrules:\n  US: us-opt-out\n  US/CA: {{ group: us-opt-out, overrides: [-scan-device-characteristics] }}\n  AU: non-regulated\n{}",
        &yaml[..start],
        &yaml[end..]
    );
    let policy = Policy::from_yaml_str(&custom, "custom.yaml").expect("valid");
    let failed = policy.match_geo_failure();
    let id = |name: &str| policy.permission_id(name).expect("known");
    let baseline = failed.baseline();
    assert_eq!(
        baseline.acquisition(id("store-on-device")),
        Acquisition::Granted
    );
    assert_eq!(
        baseline.acquisition(id("use-precise-geolocation")),
        Acquisition::RequiresSignal
    );
    assert_eq!(
        baseline.acquisition(id("scan-device-characteristics")),
        Acquisition::Denied
    );
    assert!(!failed.gdpr_applies());
    assert!(failed.us_privacy_applies());
    // Opt-outs still revoke.
    let gpc = Signals {
        gpc: true,
        ..Signals::default()
    };
    assert!(!failed.resolve(&gpc).contains(id("store-on-device")));
    assert!(
        policy
            .revoked_by(UsOptOut::Gpc)
            .contains(id("store-on-device"))
    );
    assert_never_more_than_any_rule(&policy);
}

#[test]
fn the_startup_log_describes_the_geo_failure_jurisdiction() {
    let summary = policy().geo_failure_summary();
    assert!(
        summary.starts_with(
            "on geo failure, jurisdiction `geo-failed` (group `fail-closed (geo failed)`; gdpr \
             applies: yes; us privacy applies: yes): without any signal 0 of 13 permissions held \
             [none]"
        ),
        "{summary}"
    );
    assert!(
        summary.ends_with("denied [use-precise-geolocation, scan-device-characteristics]"),
        "{summary}"
    );
}
