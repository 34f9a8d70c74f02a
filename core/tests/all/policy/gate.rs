//! `provider_gate`: the one decision of whether a provider is called, shared by the request path
//! and `permissions explain --config`.

use gatehouse_core::policy::{
    ConfiguredProvider, GateBasis, GatePermissions, PermissionSet, Signals, provider_gate,
};
use gatehouse_core::provider::ProviderKind;

use super::{default_country, embedded, gpc, id, names, set, tcf};

fn held_for(country: &str, default: &str, signals: &Signals) -> GatePermissions {
    let policy = embedded();
    let default = default_country(policy, default);
    GatePermissions {
        request: policy
            .match_jurisdiction(Some(country), None, &default)
            .resolve(signals),
        default_country_baseline: policy
            .match_jurisdiction(None, None, &default)
            .resolve(signals),
        store_on_device: id(policy, "store-on-device"),
    }
}

#[test]
fn edge_cookie_without_consent_in_de_is_stopped_by_store_on_device() {
    let policy = embedded();
    let gate = provider_gate(
        ProviderKind::EdgeCookie,
        PermissionSet::EMPTY,
        &held_for("DE", "FR", &Signals::default()),
    );
    assert!(!gate.is_called());
    assert_eq!(gate.basis, GateBasis::Request);
    assert_eq!(names(policy, gate.missing), ["store-on-device"]);
}

#[test]
fn edge_cookie_needs_store_on_device_even_when_its_provider_requires_nothing() {
    let policy = embedded();
    let gate = provider_gate(
        ProviderKind::EdgeCookie,
        set(policy, &["measure-ad-performance"]),
        &held_for("US", "FR", &gpc()),
    );
    assert_eq!(
        names(policy, gate.needed),
        ["store-on-device", "measure-ad-performance"]
    );
    assert_eq!(names(policy, gate.missing), ["store-on-device"]);
    let us = provider_gate(
        ProviderKind::EdgeCookie,
        set(policy, &["measure-ad-performance"]),
        &held_for("US", "FR", &Signals::default()),
    );
    assert!(us.is_called());
}

#[test]
fn device_is_gated_on_the_request_and_names_every_missing_permission() {
    let policy = embedded();
    let required = set(policy, &["scan-device-characteristics", "select-basic-ads"]);
    let de = provider_gate(
        ProviderKind::Device,
        required,
        &held_for("DE", "US", &Signals::default()),
    );
    assert_eq!(de.basis, GateBasis::Request);
    assert_eq!(
        names(policy, de.missing),
        ["select-basic-ads", "scan-device-characteristics"]
    );
    // A TCF record granting special feature 2 and purpose 2 lets it run in DE.
    let consented = provider_gate(
        ProviderKind::Device,
        required,
        &held_for("DE", "US", &tcf(&[2], &[], &[2])),
    );
    assert!(consented.is_called(), "{:?}", consented.missing);
}

#[test]
fn geo_is_gated_on_the_default_country_not_the_request() {
    let policy = embedded();
    let required = set(policy, &["use-precise-geolocation"]);
    // The request's own country (AU, everything granted) does not count: geo runs before it is
    // known, so the FR default decides.
    let gate = provider_gate(
        ProviderKind::Geo,
        required,
        &held_for("AU", "FR", &Signals::default()),
    );
    assert_eq!(gate.basis, GateBasis::DefaultCountryBaseline);
    assert_eq!(names(policy, gate.missing), ["use-precise-geolocation"]);
    let au_default = provider_gate(
        ProviderKind::Geo,
        required,
        &held_for("DE", "AU", &Signals::default()),
    );
    assert!(au_default.is_called());
}

#[test]
fn explain_providers_says_why_each_configured_provider_is_or_is_not_called() {
    let policy = embedded();
    let default = default_country(policy, "FR");
    let providers = [
        ConfiguredProvider {
            kind: ProviderKind::Geo,
            name: "header-geo",
            required: PermissionSet::EMPTY,
        },
        ConfiguredProvider {
            kind: ProviderKind::EdgeCookie,
            name: "hmac",
            required: set(policy, &["store-on-device"]),
        },
    ];
    let store = id(policy, "store-on-device");
    let de = policy
        .match_jurisdiction(Some("DE"), None, &default)
        .explain_providers(&default, &Signals::default(), store, &providers);
    assert!(de[0].called);
    assert_eq!(de[0].reason, "called");
    assert!(!de[1].called);
    assert_eq!(de[1].missing, ["store-on-device"]);
    assert_eq!(de[1].reason, "not called: missing `store-on-device`");
    assert_eq!(de[1].unless, None);
    let us = policy
        .match_jurisdiction(Some("US"), None, &default)
        .explain_providers(&default, &Signals::default(), store, &providers);
    assert!(us[1].called);
    assert_eq!(us[1].reason, "called unless the device provider says bot");
}
