//! Manifest validation: what a provider may declare before it loads.

use gatehouse_core::policy::Policy;
use gatehouse_core::provider::Read;
use gatehouse_core::provider::manifest::{
    Manifest, ManifestError, ManifestRules, is_semver, validate,
};

fn policy() -> &'static Policy {
    Policy::embedded().expect("embedded policy")
}

fn manifest() -> Manifest {
    Manifest {
        id: "vendor-ec".into(),
        version: "1.2.3".into(),
        required_permissions: vec!["store-on-device".into()],
        reads: vec![Read::ClientIp, Read::Header("X-Geo-Country".into())],
        call_budget_ms: Some(3),
    }
}

fn refused(m: &Manifest) -> ManifestError {
    validate(m, policy(), &ManifestRules::default()).expect_err("refused")
}

#[test]
fn a_valid_manifest_yields_its_spec_with_lowercase_headers() {
    let valid = validate(&manifest(), policy(), &ManifestRules::default()).expect("valid");
    assert_eq!(valid.id, "vendor-ec");
    assert!(valid.spec.reads.client_ip);
    assert!(!valid.spec.reads.user_agent);
    assert_eq!(valid.spec.reads.headers, ["x-geo-country"]);
    assert_eq!(valid.call_budget_ms, Some(3));
    assert_eq!(
        valid.spec.required,
        policy()
            .set_from_names(&["store-on-device"])
            .expect("known")
    );
}

#[test]
fn cookie_authorization_and_proxy_authorization_are_refused_naming_the_header() {
    for header in ["cookie", "Authorization", "proxy-authorization"] {
        let mut m = manifest();
        m.reads.push(Read::Header(header.into()));
        let err = refused(&m).to_string();
        assert!(
            err.contains(&format!("header `{}`", header.to_ascii_lowercase())),
            "{err}"
        );
        assert!(err.contains("`reads[2]`"), "{err}");
    }
}

#[test]
fn publisher_forbidden_headers_are_refused() {
    let mut m = manifest();
    m.reads.push(Read::Header("x-session".into()));
    let rules = ManifestRules {
        forbidden_headers: vec!["X-Session".into()],
        ..ManifestRules::default()
    };
    let err = validate(&m, policy(), &rules).expect_err("refused");
    assert!(
        matches!(err, ManifestError::ForbiddenHeader { ref header, .. } if header == "x-session")
    );
}

#[test]
fn reads_the_host_cannot_supply_are_refused_naming_the_read() {
    let mut m = manifest();
    m.reads = vec![Read::Ja4];
    assert!(refused(&m).to_string().contains("read `ja4`"));
    m.reads = vec![Read::Http2Fingerprint];
    assert!(refused(&m).to_string().contains("read `http2-fingerprint`"));
    let rules = ManifestRules {
        supplies_http2_fingerprint: true,
        ..ManifestRules::default()
    };
    assert!(validate(&m, policy(), &rules).is_ok());
}

#[test]
fn ids_with_control_characters_are_refused_naming_the_field_without_echoing_them() {
    let mut m = manifest();
    m.id = "evil\u{1b}[31m\nx".into();
    let err = refused(&m);
    assert!(matches!(err, ManifestError::ControlCharacter { ref field, .. } if field == "id"));
    let text = err.to_string();
    assert!(text.contains("`id`"), "{text}");
    assert!(!text.chars().any(char::is_control), "{text:?}");
}

#[test]
fn over_long_values_are_refused_naming_the_field_and_truncated() {
    let mut m = manifest();
    m.id = "a".repeat(65);
    let err = refused(&m);
    assert!(
        matches!(err, ManifestError::TooLong { ref field, len: 65, max: 64, .. } if field == "id")
    );
    let mut m = manifest();
    m.version = format!("1.0.0-{}", "x".repeat(5000));
    let text = refused(&m).to_string();
    assert!(text.contains("`version`"), "{text}");
    assert!(
        text.len() < 400,
        "the value is truncated: {} bytes",
        text.len()
    );
    let mut m = manifest();
    m.reads = vec![Read::Path; 33];
    assert!(matches!(
        refused(&m),
        ManifestError::TooMany { field: "reads", .. }
    ));
}

#[test]
fn ids_outside_the_alphabet_are_refused() {
    for id in ["", "Vendor", "vendor_ec", "vendor.ec", "v\u{e9}"] {
        let mut m = manifest();
        m.id = id.into();
        assert!(
            matches!(refused(&m), ManifestError::InvalidId { .. }),
            "{id:?}"
        );
    }
}

#[test]
fn versions_must_be_semver() {
    for good in ["0.1.0", "1.2.3-rc.1", "1.0.0+build.5", "10.20.30-alpha-1"] {
        assert!(is_semver(good), "{good}");
    }
    for bad in [
        "1.0", "01.0.0", "1.0.0-", "1.0.0-01", "v1.0.0", "1.0.0+", "1..0",
    ] {
        assert!(!is_semver(bad), "{bad}");
    }
    let mut m = manifest();
    m.version = "latest".into();
    assert!(refused(&m).to_string().contains("`version`"));
}

#[test]
fn unknown_permissions_and_bad_header_names_are_refused() {
    let mut m = manifest();
    m.required_permissions.push("read-minds".into());
    assert!(refused(&m).to_string().contains("`read-minds`"));
    let mut m = manifest();
    m.reads = vec![Read::Header("x geo".into())];
    assert!(matches!(
        refused(&m),
        ManifestError::InvalidHeaderName { .. }
    ));
}

#[test]
fn call_budget_must_be_positive_and_bounded() {
    let mut m = manifest();
    m.call_budget_ms = Some(0);
    assert!(refused(&m).to_string().contains("`call-budget-ms`"));
    m.call_budget_ms = Some(u32::MAX);
    assert!(matches!(
        refused(&m),
        ManifestError::InvalidCallBudget { .. }
    ));
}
