//! Provider response headers: allowlist, per-provider bounds (fail closed), dropped ones counted.

use gatehouse_core::pipeline::{
    DropReason, DroppedHeader, EcOutput, EdgeCookieDecision, EdgeCookieSettings, PipelineSettings,
    ProviderFailure, ProviderHeaderLimits, ProviderKind, RequestOutcome,
};

use super::support::{MINTED, Mock, View, pipeline_with, run};

fn settings(allowed: &[&str], limits: ProviderHeaderLimits) -> PipelineSettings {
    PipelineSettings {
        edge_cookie: EdgeCookieSettings {
            allowed_headers: allowed.iter().map(|s| (*s).to_owned()).collect(),
            header_limits: limits,
            ..EdgeCookieSettings::default()
        },
        ..PipelineSettings::new("US")
    }
}

fn answer(headers: Vec<(&str, &str)>, limits: ProviderHeaderLimits) -> RequestOutcome<'static> {
    let pipeline = pipeline_with(settings(&["X-EC-Id", "x-ec-score"], limits));
    let headers: Vec<(String, String)> = headers
        .into_iter()
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let mut providers = Mock::standard(Some("US"), None).with_ec(move |_| {
        Ok(EcOutput {
            id: Some(MINTED.into()),
            headers: headers.clone(),
        })
    });
    run(&pipeline, &View::page(), &mut providers)
}

#[test]
fn allowlisted_provider_headers_reach_the_response() {
    let outcome = answer(
        vec![("X-EC-ID", "abc"), ("x-ec-score", "7")],
        ProviderHeaderLimits::default(),
    );
    assert_eq!(
        outcome.response.headers,
        vec![
            ("x-ec-id".to_owned(), "abc".to_owned()),
            ("x-ec-score".to_owned(), "7".to_owned())
        ]
    );
    assert!(outcome.decision.expect("page").dropped_headers.is_empty());
}

#[test]
fn dropped_provider_headers_are_counted_with_their_reason() {
    let outcome = answer(
        vec![
            ("x-ec-id", "ok"),
            ("x-not-listed", "1"),
            ("x-ec-score", "a\r\nset-cookie: evil=1"),
            ("x-ec-score", "caf\u{e9}"),
            ("bad name", "1"),
            ("x-\n", "1"),
        ],
        ProviderHeaderLimits::default(),
    );
    let decision = outcome.decision.expect("page");
    assert_eq!(
        outcome.response.headers,
        vec![("x-ec-id".into(), "ok".into())]
    );
    assert_eq!(
        decision.dropped_headers,
        vec![
            DroppedHeader {
                reason: DropReason::NotAllowlisted,
                name: Some("x-not-listed".into())
            },
            DroppedHeader {
                reason: DropReason::InvalidValue,
                name: Some("x-ec-score".into())
            },
            DroppedHeader {
                reason: DropReason::InvalidValue,
                name: Some("x-ec-score".into())
            },
            DroppedHeader {
                reason: DropReason::InvalidName,
                name: None
            },
            DroppedHeader {
                reason: DropReason::InvalidName,
                name: None
            },
        ]
    );
    // Dropping headers is not a failure: the cookie is still set.
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Set(MINTED.into()));
}

#[test]
fn too_many_provider_headers_fail_the_provider_closed() {
    let limits = ProviderHeaderLimits {
        max_count: 2,
        max_bytes: 4096,
    };
    let outcome = answer(
        vec![("x-ec-id", "1"), ("x-ec-id", "2"), ("x-ec-id", "3")],
        limits,
    );
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Failed);
    assert!(matches!(
        decision.failures.as_slice(),
        [(ProviderKind::EdgeCookie, ProviderFailure::InvalidOutput(m))] if m.contains("`ec.max_headers`")
    ));
    assert_eq!(outcome.response, Default::default());

    // At the limit is fine.
    let outcome = answer(vec![("x-ec-id", "1"), ("x-ec-id", "2")], limits);
    assert_eq!(outcome.response.headers.len(), 2);
}

#[test]
fn oversized_provider_headers_fail_the_provider_closed() {
    let huge = "v".repeat(1 << 20);
    let outcome = answer(vec![("x-ec-id", &huge)], ProviderHeaderLimits::default());
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Failed);
    assert!(matches!(
        decision.failures.as_slice(),
        [(ProviderKind::EdgeCookie, ProviderFailure::InvalidOutput(m))] if m.contains("`ec.max_header_bytes`")
    ));
    assert_eq!(outcome.response, Default::default());

    // Names count too; exactly at the limit passes.
    let limits = ProviderHeaderLimits {
        max_count: 8,
        max_bytes: 10,
    };
    assert_eq!(
        answer(vec![("x-ec-id", "abc")], limits)
            .response
            .headers
            .len(),
        1
    );
    assert!(
        answer(vec![("x-ec-id", "abcd")], limits)
            .response
            .headers
            .is_empty()
    );
}

#[test]
fn a_provider_setting_set_cookie_fails_closed_whatever_the_allowlist() {
    let outcome = answer(
        vec![("Set-Cookie", "other=1")],
        ProviderHeaderLimits::default(),
    );
    let decision = outcome.decision.expect("page");
    assert_eq!(decision.edge_cookie, EdgeCookieDecision::Failed);
    assert_eq!(outcome.response.set_cookie, None);
}
