//! Pipeline settings are validated once, at startup, and every refusal names its config key.

use gatehouse_core::pipeline::{
    EdgeCookieSettings, NEVER_ALLOWLISTED, PagePipeline, PipelineConfigError, PipelineSettings,
};
use gatehouse_core::policy::{Policy, PolicyError};

use super::support::policy;

fn with_cookie(edit: impl FnOnce(&mut EdgeCookieSettings)) -> Result<(), PipelineConfigError> {
    let mut settings = PipelineSettings::new("US");
    edit(&mut settings.edge_cookie);
    PagePipeline::new(policy(), settings).map(|_| ())
}

#[test]
fn default_settings_build() {
    let pipeline = PagePipeline::new(policy(), PipelineSettings::new("us/ca")).expect("valid");
    assert_eq!(pipeline.default_country().rule_key(), "US/CA");
    assert_eq!(pipeline.edge_cookie().name, "ts-ec");
}

#[test]
fn an_unknown_default_country_is_refused_naming_the_key() {
    let err = PagePipeline::new(policy(), PipelineSettings::new("BR")).expect_err("no BR rule");
    assert!(matches!(
        err,
        PipelineConfigError::DefaultCountry(PolicyError::UnknownDefaultCountry { .. })
    ));
    assert!(err.to_string().contains("`geo.default_country`"), "{err}");
    let err = PagePipeline::new(policy(), PipelineSettings::new("")).expect_err("empty");
    assert!(err.to_string().contains("`geo.default_country`"), "{err}");
}

#[test]
fn a_cookie_name_that_is_not_a_token_is_refused() {
    for name in ["a b;c", "", "ts=ec", "\"q\"", "é"] {
        let err = with_cookie(|c| c.name = name.into()).expect_err(name);
        assert!(matches!(err, PipelineConfigError::InvalidCookieName { .. }));
        assert!(
            err.to_string().starts_with("config key `ec.cookie_name`"),
            "{err}"
        );
    }
    with_cookie(|c| c.name = "__Host-ec_1".into()).expect("a token");
}

#[test]
fn a_cookie_domain_that_is_not_a_hostname_is_refused() {
    for domain in [
        "example.com; SameSite=None",
        "",
        "exa mple.com",
        "-example.com",
        "example..com",
        "example.com\r\nx",
    ] {
        let err = with_cookie(|c| c.domain = Some(domain.into())).expect_err(domain);
        assert!(matches!(
            err,
            PipelineConfigError::InvalidCookieDomain { .. }
        ));
        let text = err.to_string();
        assert!(text.starts_with("config key `ec.cookie_domain`"), "{text}");
        assert!(!text.contains('\n') && !text.contains('\r'), "{text}");
    }
    for domain in ["example.com", ".example.com", "www.example-site.co.uk"] {
        with_cookie(|c| c.domain = Some(domain.into())).expect(domain);
    }
}

#[test]
fn a_max_age_out_of_range_is_refused() {
    for value in [0, 400 * 86_400 + 1] {
        let err = with_cookie(|c| c.max_age_secs = value).expect_err("out of range");
        assert!(
            err.to_string().starts_with("config key `ec.max_age_secs`"),
            "{err}"
        );
    }
    with_cookie(|c| c.max_age_secs = 400 * 86_400).expect("400 days");
}

#[test]
fn framing_hop_by_hop_cookie_and_cache_headers_can_never_be_allowlisted() {
    for name in [
        "set-cookie",
        "Set-Cookie",
        "content-length",
        "transfer-encoding",
        "connection",
        "cache-control",
        "cdn-cache-control",
    ] {
        let err = with_cookie(|c| c.allowed_headers = vec![name.into()]).expect_err(name);
        assert!(
            matches!(err, PipelineConfigError::ForbiddenAllowedHeader { .. }),
            "{name}"
        );
        assert!(
            err.to_string()
                .starts_with("config key `ec.allowed_headers[0]`"),
            "{err}"
        );
    }
    for name in NEVER_ALLOWLISTED {
        assert!(with_cookie(|c| c.allowed_headers = vec![(*name).into()]).is_err());
    }
    for name in ["", "with space", "x:y", "x\r\n"] {
        let err =
            with_cookie(|c| c.allowed_headers = vec!["x-ok".into(), name.into()]).expect_err(name);
        assert!(matches!(
            err,
            PipelineConfigError::InvalidAllowedHeader { index: 1, .. }
        ));
        assert!(
            err.to_string()
                .starts_with("config key `ec.allowed_headers[1]`"),
            "{err}"
        );
    }
}

#[test]
fn allowlisted_headers_are_lowercased_once() {
    let mut settings = PipelineSettings::new("US");
    settings.edge_cookie.allowed_headers = vec!["X-EC-Id".into(), "x-ec-id".into()];
    let pipeline = PagePipeline::new(policy(), settings).expect("valid");
    assert_eq!(pipeline.edge_cookie().allowed_headers, vec!["x-ec-id"]);
}

#[test]
fn a_policy_without_store_on_device_is_refused() {
    let yaml =
        gatehouse_core::policy::EMBEDDED_POLICY_YAML.replace("store-on-device", "store-stuff");
    let custom = Policy::from_yaml_str(&yaml, "custom.yaml").expect("still valid");
    let err = PagePipeline::new(&custom, PipelineSettings::new("US")).expect_err("no permission");
    assert!(matches!(
        err,
        PipelineConfigError::MissingStoreOnDevice { .. }
    ));
    assert!(err.to_string().contains("`store-on-device`"), "{err}");
}

#[test]
fn the_pipeline_and_its_outcome_can_cross_threads() {
    // Hosts run provider calls off their async workers (e.g. `spawn_blocking`) and send the
    // outcome back: both must be `Send`, and the pipeline shared (`Sync`).
    fn assert_send_sync<T: Send + Sync>() {}
    fn assert_send<T: Send>() {}
    assert_send_sync::<PagePipeline<'static>>();
    assert_send::<gatehouse_core::pipeline::RequestOutcome<'static>>();
}
