//! The decision flow: which providers run, with what evidence, and what the request holds.

use gatehouse_core::pipeline::{
    Classification, DeviceClass, EcOutput, EdgeCookieDecision, GeoOutcome, Location,
    ProviderFailure, ProviderKind, is_page_request,
};
use gatehouse_core::policy::MatchKind;
use gatehouse_core::provider::Read;

use super::support::{
    CLIENT, MINTED, Mock, UA, View, full_consent, pipeline, policy, run, spec, tc_string,
};

fn held(names: &[&str]) -> gatehouse_core::policy::PermissionSet {
    policy().set_from_names(names).expect("names")
}

#[test]
fn fr_without_consent_gates_the_edge_cookie_and_calls_nothing_that_needs_consent() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("FR"), None).with_device(
        &["scan-device-characteristics"],
        Ok(super::support::desktop()),
    );
    let view = View::page()
        .header("x-geo-country", "FR")
        .header("cookie", "ts-ec=abc.def; theme=dark");
    let outcome = run(&pipeline, &view, &mut providers);
    let decision = outcome.decision.expect("page request");

    assert_eq!(decision.rule.rule_key(), "FR");
    assert_eq!(decision.rule.match_kind(), MatchKind::Country);
    assert!(decision.permissions.is_empty());
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    assert_eq!(
        decision.gated,
        vec![ProviderKind::Device, ProviderKind::EdgeCookie]
    );
    // Only geo (which needs nothing) ran.
    assert_eq!(providers.calls.len(), 1);
    assert!(providers.called(ProviderKind::Geo));
    assert!(decision.consent.gdpr_applies());
    assert_eq!(outcome.response.set_cookie, None);
    assert!(outcome.forward.strip_edge_cookie);
}

#[test]
fn us_visitor_without_a_cookie_gets_a_minted_edge_cookie() {
    let pipeline = pipeline("FR");
    let mut providers = Mock::standard(Some("US"), Some("NY"));
    let outcome = run(&pipeline, &View::page(), &mut providers);
    let decision = outcome.decision.expect("page request");

    assert_eq!(decision.rule.rule_key(), "US");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
    assert_eq!(
        outcome.response.set_cookie.as_deref(),
        Some(
            "ts-ec=minted0123456789.abcDEF; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=31536000"
        )
    );
    assert!(!outcome.forward.strip_edge_cookie);
    assert!(decision.failures.is_empty() && decision.gated.is_empty());
    // The Edge Cookie provider got exactly its declared reads, and no current cookie.
    let calls: Vec<_> = providers.calls.iter().map(|c| c.kind()).collect();
    assert_eq!(
        calls,
        vec![
            ProviderKind::Geo,
            ProviderKind::Device,
            ProviderKind::EdgeCookie
        ]
    );
    let Some(super::support::Call::Generate(evidence, current)) = providers.calls.last() else {
        panic!("edge cookie call recorded last");
    };
    assert_eq!(current, &None);
    assert_eq!(evidence.client_ip, Some(CLIENT.parse().expect("ip")));
    assert_eq!(evidence.user_agent.as_deref(), Some(UA));
    assert!(evidence.headers.is_empty() && evidence.path.is_none());
}

#[test]
fn returning_visitor_keeps_a_valid_edge_cookie() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("US"), None);
    let view = View::page().header("cookie", "theme=dark; ts-ec=kept.value1");
    let outcome = run(&pipeline, &view, &mut providers);
    let decision = outcome.decision.expect("page request");

    assert_eq!(
        decision.edge_cookie,
        EdgeCookieDecision::Keep("kept.value1".into())
    );
    assert_eq!(outcome.response.set_cookie, None);
    assert!(!outcome.forward.strip_edge_cookie);
    assert!(matches!(
        providers.calls.last(),
        Some(super::support::Call::Generate(_, Some(current))) if current == "kept.value1"
    ));
}

#[test]
fn a_malformed_current_cookie_is_never_passed_to_the_provider() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("US"), None);
    let view = View::page().header("cookie", "ts-ec=\"a b\\\"; other=1");
    let outcome = run(&pipeline, &view, &mut providers);
    assert!(matches!(
        providers.calls.last(),
        Some(super::support::Call::Generate(_, None))
    ));
    assert_eq!(
        outcome.decision.expect("page").edge_cookie,
        EdgeCookieDecision::Set(MINTED.into())
    );
}

#[test]
fn gpc_in_a_us_opt_out_region_gates_the_edge_cookie_and_synthesises_us_privacy() {
    let pipeline = pipeline("FR");
    let mut providers = Mock::standard(Some("US"), Some("CA"));
    let view = View::page().header("sec-gpc", "1");
    let outcome = run(&pipeline, &view, &mut providers);
    let decision = outcome.decision.expect("page request");

    assert_eq!(decision.rule.rule_key(), "US/CA");
    assert_eq!(decision.rule.match_kind(), MatchKind::Region);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    assert!(!providers.called(ProviderKind::EdgeCookie));
    assert!(outcome.forward.strip_edge_cookie);
    // The consent context carries the matched jurisdiction: GPC → US Privacy for partners.
    assert!(decision.consent.us_privacy_synthesized());
    assert_eq!(
        decision
            .consent
            .us_privacy()
            .map(ToString::to_string)
            .as_deref(),
        Some("1YYN")
    );
    assert!(!decision.consent.gdpr_applies());
    assert!(decision.consent.jurisdiction().us_privacy_applies);
    // Basic ads and measurement stay: GPC revokes cross-context use only.
    assert!(
        decision
            .permissions
            .contains_all(held(&["select-basic-ads", "measure-ad-performance"]))
    );
}

#[test]
fn gpc_outside_a_us_opt_out_region_synthesises_nothing() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("DE"), None);
    let view = View::page().header("sec-gpc", "1");
    let decision = run(&pipeline, &view, &mut providers)
        .decision
        .expect("page request");
    assert!(!decision.consent.us_privacy_synthesized());
    assert!(decision.consent.us_privacy().is_none());
    assert!(decision.consent.gdpr_applies());
}

#[test]
fn de_with_a_tcf_string_granting_storage_gets_an_edge_cookie() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("DE"), None);
    let view = View::page().header("cookie", &format!("euconsent-v2={}", full_consent()));
    let outcome = run(&pipeline, &view, &mut providers);
    let decision = outcome.decision.expect("page request");

    assert_eq!(decision.rule.rule_key(), "DE");
    assert!(
        decision.consent.warnings().is_empty(),
        "{:?}",
        decision.consent.warnings()
    );
    assert!(decision.consent.tcf().is_some());
    assert!(decision.consent.gdpr_applies());
    assert_eq!(decision.permissions, policy().all_permissions());
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
    assert!(!outcome.forward.strip_edge_cookie);
}

#[test]
fn de_with_a_tcf_string_refusing_storage_gets_no_edge_cookie_and_the_one_it_has_expires() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("DE"), None);
    let refusing = tc_string(&[2, 7], &[]);
    let view = View::page().header(
        "cookie",
        &format!("euconsent-v2={refusing}; ts-ec=kept.value1"),
    );
    let outcome = run(&pipeline, &view, &mut providers);
    let decision = outcome.decision.expect("page request");
    assert_eq!(
        decision.permissions,
        held(&["select-basic-ads", "measure-ad-performance"])
    );
    // Refusing purpose 1 is an explicit withdrawal: the cookie present is expired (there is no
    // store to tombstone here), and the provider is never called.
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Withdrawn);
    assert!(
        outcome
            .response
            .set_cookie
            .as_deref()
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
    assert!(!providers.called(ProviderKind::EdgeCookie));
    assert!(outcome.forward.strip_edge_cookie);

    // Without a cookie there is nothing to withdraw: not permitted, nothing set.
    let view = View::page().header("cookie", &format!("euconsent-v2={refusing}"));
    let outcome = run(&pipeline, &view, &mut Mock::standard(Some("DE"), None));
    let decision = outcome.decision.expect("page request");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
    assert_eq!(outcome.response.set_cookie, None);
}

#[test]
fn the_consent_fingerprint_covers_the_signals_of_the_request() {
    let pipeline = pipeline("US");
    let a = run(
        &pipeline,
        &View::page().header("sec-gpc", "1"),
        &mut Mock::standard(Some("US"), None),
    );
    let b = run(
        &pipeline,
        &View::page(),
        &mut Mock::standard(Some("US"), None),
    );
    let fingerprint = |o: &gatehouse_core::pipeline::RequestOutcome<'_>| {
        o.decision.as_ref().expect("page").consent.fingerprint()
    };
    assert_ne!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn a_bot_never_gets_an_edge_cookie() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("US"), None).with_device(
        &[],
        Ok(Classification {
            class: DeviceClass::Bot,
            bot_name: Some("examplebot".into()),
        }),
    );
    let outcome = run(&pipeline, &View::page(), &mut providers);
    let decision = outcome.decision.expect("page request");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Bot);
    assert!(!providers.called(ProviderKind::EdgeCookie));
    assert_eq!(outcome.response.set_cookie, None);
}

#[test]
fn a_failing_device_provider_means_an_unknown_device_not_a_bot() {
    let pipeline = pipeline("US");
    let mut providers =
        Mock::standard(Some("US"), None).with_device(&[], Err(ProviderFailure::Deadline));
    let decision = run(&pipeline, &View::page(), &mut providers)
        .decision
        .expect("page request");
    assert_eq!(decision.device.class, DeviceClass::Unknown);
    assert_eq!(
        decision.failures,
        vec![(ProviderKind::Device, ProviderFailure::Deadline)]
    );
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
}

#[test]
fn a_failing_edge_cookie_provider_sets_nothing() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("US"), None)
        .with_ec(|_| Err(ProviderFailure::Trap("unreachable".into())));
    let outcome = run(&pipeline, &View::page(), &mut providers);
    let decision = outcome.decision.expect("page request");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Failed);
    assert_eq!(decision.failures.len(), 1);
    assert_eq!(decision.failures[0].0, ProviderKind::EdgeCookie);
    assert_eq!(outcome.response, Default::default());
}

#[test]
fn an_edge_cookie_value_that_could_inject_attributes_fails_the_provider() {
    let pipeline = pipeline("US");
    for bad in ["a; Domain=evil.example", "", "with space", &"x".repeat(257)] {
        let bad = bad.to_owned();
        let mut providers = Mock::standard(Some("US"), None).with_ec(move |_| {
            Ok(EcOutput {
                id: Some(bad.clone()),
                headers: Vec::new(),
            })
        });
        let outcome = run(&pipeline, &View::page(), &mut providers);
        let decision = outcome.decision.expect("page request");
        assert_eq!(decision.edge_cookie, EdgeCookieDecision::Failed);
        assert!(matches!(
            decision.failures.as_slice(),
            [(ProviderKind::EdgeCookie, ProviderFailure::InvalidOutput(_))]
        ));
        assert_eq!(outcome.response.set_cookie, None);
    }
}

#[test]
fn the_provider_choosing_nothing_sets_nothing() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("US"), None).with_ec(|_| Ok(EcOutput::default()));
    let outcome = run(&pipeline, &View::page(), &mut providers);
    assert_eq!(
        outcome.decision.expect("page").edge_cookie,
        EdgeCookieDecision::NoneFromProvider
    );
    assert_eq!(outcome.response.set_cookie, None);
}

#[test]
fn geo_answering_an_unknown_country_uses_the_default_country() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(None, None);
    let decision = run(&pipeline, &View::page(), &mut providers)
        .decision
        .expect("page request");
    assert_eq!(decision.geo, GeoOutcome::Answered(Location::default()));
    assert_eq!(decision.rule.rule_key(), "US");
    assert_eq!(decision.rule.match_kind(), MatchKind::Default);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
}

#[test]
fn geo_failure_with_a_permissive_default_never_grants_what_a_signal_must() {
    let pipeline = pipeline("US");
    for failure in [
        ProviderFailure::Deadline,
        ProviderFailure::Trap("unreachable".into()),
        ProviderFailure::Provider("no database".into()),
    ] {
        let mut providers = Mock::standard(Some("DE"), None).with_geo(Err(failure.clone()));
        let view = View::page().header("x-geo-country", "DE");
        let outcome = run(&pipeline, &view, &mut providers);
        let decision = outcome.decision.expect("page request");
        assert_eq!(decision.geo, GeoOutcome::Failed);
        assert_eq!(decision.rule.match_kind(), MatchKind::GeoFailed);
        assert_eq!(decision.rule.rule_key(), "geo-failed");
        assert!(decision.permissions.is_empty(), "{failure}");
        assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
        assert!(!providers.called(ProviderKind::EdgeCookie));
        assert_eq!(decision.failures, vec![(ProviderKind::Geo, failure)]);
        assert!(decision.consent.gdpr_applies());
        assert!(outcome.forward.strip_edge_cookie);
        assert!(
            outcome
                .forward
                .decision
                .as_deref()
                .is_some_and(|d| d.contains("geo=failed")),
            "{:?}",
            outcome.forward.decision
        );
        assert!(
            decision
                .to_string()
                .contains("geo failed, fail-closed jurisdiction")
        );
    }
}

#[test]
fn geo_failure_still_honours_a_tcf_grant() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(None, None).with_geo(Err(ProviderFailure::Deadline));
    let view = View::page().header("cookie", &format!("euconsent-v2={}", full_consent()));
    let decision = run(&pipeline, &view, &mut providers)
        .decision
        .expect("page request");
    assert!(
        decision
            .permissions
            .contains_all(held(&["store-on-device"]))
    );
    // Denied by some rule (US/CA, US/WA): never held after a geo failure, whatever the signal.
    assert!(
        !decision
            .permissions
            .contains_all(held(&["scan-device-characteristics"]))
    );
    assert!(
        !decision
            .permissions
            .contains_all(held(&["use-precise-geolocation"]))
    );
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
}

#[test]
fn geo_is_gated_against_the_default_country_baseline() {
    let pipeline = pipeline("FR");
    let mut providers = Mock::standard(Some("US"), None);
    providers.geo.as_mut().expect("geo").0 = spec(&["use-precise-geolocation"], &[]);
    let decision = run(&pipeline, &View::page(), &mut providers)
        .decision
        .expect("page request");
    assert_eq!(decision.geo, GeoOutcome::Gated);
    assert!(!providers.called(ProviderKind::Geo));
    assert_eq!(decision.rule.rule_key(), "FR");
    assert!(decision.gated.contains(&ProviderKind::Geo));

    // The same provider runs once the visitor's signal grants what it needs.
    let mut providers = Mock::standard(Some("US"), None);
    providers.geo.as_mut().expect("geo").0 = spec(&["use-precise-geolocation"], &[]);
    let view = View::page().header("cookie", &format!("euconsent-v2={}", full_consent()));
    let decision = run(&pipeline, &view, &mut providers)
        .decision
        .expect("page request");
    assert!(providers.called(ProviderKind::Geo));
    assert_eq!(decision.rule.rule_key(), "US");
}

#[test]
fn without_providers_the_default_country_decides() {
    let pipeline = pipeline("US");
    let mut providers = Mock::none();
    let outcome = run(
        &pipeline,
        &View::page().header("sec-gpc", "1"),
        &mut providers,
    );
    let decision = outcome.decision.expect("page request");
    assert_eq!(decision.geo, GeoOutcome::NotConfigured);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotConfigured);
    assert_eq!(decision.rule.rule_key(), "US");
    assert!(decision.consent.us_privacy_synthesized());
    assert!(providers.calls.is_empty());
}

#[test]
fn a_provider_never_sees_undeclared_headers() {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(Some("US"), None);
    providers.device.as_mut().expect("device").0 = spec(
        &[],
        &[Read::UserAgent, Read::Header("Accept-Language".into())],
    );
    let view = View::page()
        .header("cookie", "session=secret; ts-ec=kept.value1")
        .header("authorization", "Bearer secret")
        .header("accept-language", "de-DE")
        .header("x-geo-country", "US")
        .header("x-other", "secret")
        .path("/account");
    run(&pipeline, &view, &mut providers);

    let geo = providers.evidence(ProviderKind::Geo).expect("geo ran");
    assert_eq!(geo.headers, vec![("x-geo-country".into(), "US".into())]);
    assert_eq!(
        (geo.client_ip, &geo.user_agent, &geo.path),
        (None, &None, &None)
    );

    let device = providers
        .evidence(ProviderKind::Device)
        .expect("device ran");
    assert_eq!(device.user_agent.as_deref(), Some(UA));
    assert_eq!(
        device.headers,
        vec![("accept-language".into(), "de-DE".into())]
    );
    assert_eq!(device.client_ip, None);

    let ec = providers
        .evidence(ProviderKind::EdgeCookie)
        .expect("ec ran");
    assert!(ec.headers.is_empty());
    for call in &providers.calls {
        let text = format!("{call:?}");
        assert!(!text.contains("secret"), "{text}");
    }
}

#[test]
fn non_page_requests_call_no_provider_and_carry_no_decision() {
    let pipeline = pipeline("US");
    for view in [
        View::page().path("/static/app.JS"),
        View::page().path("/img/logo.png"),
        View::page().method("POST"),
        View::page().header("sec-fetch-dest", "image"),
    ] {
        let mut providers = Mock::standard(Some("US"), None);
        let outcome = run(&pipeline, &view, &mut providers);
        assert!(outcome.decision.is_none(), "{view:?}");
        assert!(providers.calls.is_empty());
        assert!(outcome.forward.strip_edge_cookie);
        assert_eq!(outcome.forward.decision, None);
        assert_eq!(outcome.response, Default::default());
    }
}

#[test]
fn page_requests_are_get_or_head_documents_without_an_asset_extension() {
    let yes = [
        View::page(),
        View::page().method("HEAD"),
        View::page().path("/articles/2024/some.story"),
        View::page().path("/docs/v1.2/"),
        View::page().header("sec-fetch-dest", "document"),
        View::page().header("sec-fetch-dest", "iframe"),
    ];
    let no = [
        View::page().method("PUT"),
        View::page().method("OPTIONS"),
        View::page().path("/app.mjs"),
        View::page().path("/font.woff2"),
        View::page().path("/data.json"),
        View::page().header("sec-fetch-dest", "script"),
        View::page().header("sec-fetch-dest", "empty"),
    ];
    for view in yes {
        assert!(is_page_request(&view), "{view:?}");
    }
    for view in no {
        assert!(!is_page_request(&view), "{view:?}");
    }
}

/// A view that, like the trait says, is only ever asked for lowercase names.
struct LowercaseOnly(View);

impl gatehouse_core::pipeline::RequestView for LowercaseOnly {
    fn method(&self) -> &str {
        &self.0.method
    }
    fn path(&self) -> &str {
        &self.0.path
    }
    fn query(&self) -> Option<&str> {
        self.0.query.as_deref()
    }
    fn header_values(&self, name: &str) -> Vec<&str> {
        assert_eq!(
            name,
            name.to_ascii_lowercase(),
            "asked for a non-lowercase name"
        );
        gatehouse_core::pipeline::RequestView::header_values(&self.0, name)
    }
    fn client_ip(&self) -> Option<std::net::IpAddr> {
        self.0.client_ip
    }
}

#[test]
fn configured_consent_header_names_are_looked_up_in_lowercase() {
    let mut settings = gatehouse_core::pipeline::PipelineSettings::new("US");
    settings.consent.header_names.us_privacy = Some("X-US-Privacy".into());
    let pipeline = super::support::pipeline_with(settings);
    let view = LowercaseOnly(
        View::page()
            .header("x-us-privacy", "1YYN")
            .header("sec-gpc", "1"),
    );
    let decision = pipeline
        .run(
            &view,
            &super::support::CLOCK,
            &mut Mock::standard(Some("US"), None),
        )
        .decision
        .expect("page request");
    assert!(decision.consent.signals().us_privacy_opt_out);
    assert!(decision.consent.signals().gpc);
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::NotPermitted);
}
