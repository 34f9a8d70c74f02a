//! `diff_policies`: what a policy change changes, computed by resolving both policies.

use gatehouse_core::policy::{Outcome, Policy, Situation, diff_policies};

use super::{default_country, embedded};

fn edited(from: &str, to: &str) -> Policy {
    let yaml = gatehouse_core::policy::EMBEDDED_POLICY_YAML;
    assert!(yaml.contains(from), "the shipped policy contains {from:?}");
    Policy::from_yaml_str(&yaml.replacen(from, to, 1), "new.yaml").expect("the edit is valid")
}

fn diff(new: &Policy) -> gatehouse_core::policy::PolicyDiff {
    let old = embedded();
    diff_policies(
        old,
        &default_country(old, "FR"),
        new,
        &default_country(new, "FR"),
    )
}

#[test]
fn identical_policies_have_no_changes() {
    let same = edited("AU: non-regulated", "AU: non-regulated");
    let report = diff(&same);
    assert!(!report.changed);
    assert_eq!(report.outcome_change_count(), 0);
    assert!(report.to_string().contains("no changes"));
}

#[test]
fn moving_us_to_gdpr_eu_changes_only_us_outcomes() {
    let report = diff(&edited("  US: us-opt-out\n", "  US: gdpr-eu\n"));
    assert!(report.changed);
    assert_eq!(report.rules_changed.len(), 1);
    assert_eq!(report.jurisdictions.len(), 1, "{report}");
    let us = &report.jurisdictions[0];
    assert_eq!(us.jurisdiction, "US");
    assert_eq!(
        us.gdpr_applies.as_ref().map(|c| (c.old, c.new)),
        Some((false, true))
    );
    let store_no_signal = us
        .outcomes
        .iter()
        .find(|c| c.permission == "store-on-device" && c.situation == Situation::NoSignal)
        .expect("store-on-device without a signal changes");
    assert_eq!(
        (store_no_signal.change.old, store_no_signal.change.new),
        (Outcome::Held, Outcome::NotHeld)
    );
    // A TCF record decides mapped permissions the same way in both groups.
    assert!(
        !us.outcomes
            .iter()
            .any(|c| c.situation == Situation::TcfGrantsAll && c.permission == "store-on-device"),
        "{report}"
    );
}

#[test]
fn a_deny_override_is_reported_with_its_outcome_changes() {
    let report = diff(&edited(
        "overrides: [-use-precise-geolocation] }",
        "overrides: [-use-precise-geolocation, -store-on-device] }",
    ));
    let rule = &report.rules_changed[0];
    assert_eq!(rule.key, "US/WA");
    assert!(rule.group.is_none());
    assert_eq!(
        rule.overrides.as_ref().map(|c| c.new.clone()),
        Some(vec![
            "-store-on-device".to_owned(),
            "-use-precise-geolocation".to_owned()
        ])
    );
    let situations: Vec<Situation> = report.jurisdictions[0]
        .outcomes
        .iter()
        .map(|c| c.situation)
        .collect();
    assert_eq!(
        situations,
        [
            Situation::NoSignal,
            Situation::TcfGrantsAll,
            Situation::GppTargetedAdsOptOut
        ]
    );
}

#[test]
fn a_renamed_group_is_a_rename_without_outcome_changes() {
    let yaml = gatehouse_core::policy::EMBEDDED_POLICY_YAML.replace("non-regulated", "no-regime");
    let renamed = Policy::from_yaml_str(&yaml, "new.yaml").expect("valid");
    let report = diff(&renamed);
    assert!(report.changed, "a rename is a change a reviewer sees");
    assert_eq!(report.groups_renamed.len(), 1);
    assert_eq!(report.groups_renamed[0].from, "non-regulated");
    assert_eq!(report.groups_renamed[0].to, "no-regime");
    assert!(report.groups_added.is_empty() && report.groups_removed.is_empty());
    assert!(report.rules_changed.is_empty(), "{report}");
    assert_eq!(report.outcome_change_count(), 0);
}

#[test]
fn a_rule_added_for_an_unlisted_country_is_compared_with_the_default() {
    let report = diff(&edited(
        "  AU: non-regulated\n",
        "  AU: non-regulated\n  BR: us-opt-out\n",
    ));
    assert_eq!(report.rules_added.len(), 1);
    assert_eq!(report.rules_added[0].key, "BR");
    let br = &report.jurisdictions[0];
    assert_eq!(br.jurisdiction, "BR");
    assert_eq!(
        br.matched.old.rule, "FR",
        "BR fell back to the default before"
    );
    assert!(
        br.outcomes
            .iter()
            .any(|c| c.situation == Situation::NoSignal)
    );
}

#[test]
fn changing_a_signal_mapping_is_reported() {
    let report = diff(&edited(
        "    gpp-targeted-ads:\n      - create-ads-profile\n",
        "    gpp-targeted-ads:\n      - store-on-device\n      - create-ads-profile\n",
    ));
    assert_eq!(report.us_opt_outs.len(), 1);
    assert_eq!(report.us_opt_outs[0].now_revokes, ["store-on-device"]);
    assert!(
        report.jurisdictions.iter().any(|j| j.jurisdiction == "US"
            && j.outcomes
                .iter()
                .any(|c| c.situation == Situation::GppTargetedAdsOptOut)),
        "{report}"
    );
}
