//! Forwarded-request and response edits, applied through `EditableHeaders`.

use gatehouse_core::pipeline::{
    EditableHeaders, ForwardEdits, ResponseEdits, expire_cookie_header, private_cache_control,
    remove_cookie,
};

use super::support::{Mock, View, pipeline, run, values};

fn response(headers: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), v.as_bytes().to_vec()))
        .collect()
}

fn minted() -> ResponseEdits {
    ResponseEdits {
        set_cookie: Some("ts-ec=abc; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=10".into()),
        headers: Vec::new(),
    }
}

#[test]
fn the_edge_cookie_is_removed_from_the_forwarded_cookie_header_without_store_on_device() {
    let pipeline = pipeline("US");
    let view = View::page()
        .header("x-geo-country", "DE")
        .header("cookie", "a=1;  ts-ec=abc.def ;b=2")
        .header("cookie", "ts-ec=second")
        .header("cookie", "c=3");
    let mut providers = Mock::standard(Some("DE"), None);
    let outcome = run(&pipeline, &view, &mut providers);
    assert!(outcome.forward.strip_edge_cookie);

    let mut forwarded = view.forwarded_headers();
    // A line that is not UTF-8 holding the Edge Cookie is handled too, the rest of it kept.
    forwarded.push(("cookie".into(), b"d=\xff; ts-ec=x".to_vec()));
    pipeline.edit_forwarded_request(&outcome.forward, &mut forwarded);
    let cookies: Vec<&[u8]> = forwarded.values("cookie");
    assert_eq!(cookies, vec![&b"a=1; b=2"[..], b"c=3", b"d=\xff"]);
    assert!(forwarded.values("user-agent").len() == 1);
}

#[test]
fn the_edge_cookie_is_forwarded_untouched_when_store_on_device_is_held() {
    let pipeline = pipeline("US");
    let view = View::page().header("cookie", "a=1;  ts-ec=kept.value1 ;b=2");
    let outcome = run(&pipeline, &view, &mut Mock::standard(Some("US"), None));
    assert!(!outcome.forward.strip_edge_cookie);
    let mut forwarded = view.forwarded_headers();
    pipeline.edit_forwarded_request(&outcome.forward, &mut forwarded);
    assert_eq!(
        values(&forwarded, "cookie"),
        vec!["a=1;  ts-ec=kept.value1 ;b=2"]
    );
}

#[test]
fn removing_the_edge_cookie_keeps_other_cookies_byte_for_byte() {
    assert_eq!(remove_cookie(b"a=1; b=2", "ts-ec"), None);
    assert_eq!(
        remove_cookie(b"ts-ec=x; a=1", "ts-ec").as_deref(),
        Some(&b"a=1"[..])
    );
    assert_eq!(
        remove_cookie(b"ts-ec=x", "ts-ec").as_deref(),
        Some(&b""[..])
    );
    assert_eq!(
        remove_cookie(b"a=%E2%9C%93;ts-ec=x;ts-ec-other=y", "ts-ec").as_deref(),
        Some(&b"a=%E2%9C%93; ts-ec-other=y"[..])
    );
    // The name is case-sensitive, as cookie names are.
    assert_eq!(remove_cookie(b"TS-EC=x", "ts-ec"), None);
}

#[test]
fn a_client_cannot_send_its_own_gatehouse_decision_to_the_origin() {
    let pipeline = pipeline("US");
    let forged = "rule=\"US\", permissions=(store-on-device)";
    for view in [
        View::page()
            .header("x-geo-country", "DE")
            .header("gatehouse-decision", forged),
        View::page()
            .path("/app.js")
            .header("Gatehouse-Decision", forged),
    ] {
        let outcome = run(&pipeline, &view, &mut Mock::standard(Some("DE"), None));
        let mut forwarded = view.forwarded_headers();
        pipeline.edit_forwarded_request(&outcome.forward, &mut forwarded);
        let decisions = values(&forwarded, "gatehouse-decision");
        assert!(!decisions.contains(&forged), "{decisions:?}");
        assert!(decisions.len() <= 1);
        assert_eq!(decisions.len(), usize::from(outcome.decision.is_some()));
    }
}

#[test]
fn the_origin_is_told_the_rule_and_the_held_permissions() {
    let pipeline = pipeline("FR");
    let view = View::page().header("sec-gpc", "1");
    let outcome = run(
        &pipeline,
        &view,
        &mut Mock::standard(Some("US"), Some("CA")),
    );
    assert_eq!(
        outcome.forward.decision.as_deref(),
        Some(
            "rule=\"US/CA\", group=\"us-opt-out\", geo=region, permissions=(select-basic-ads \
             measure-ad-performance measure-content-performance develop-improve-services \
             select-basic-content)"
        )
    );
    let outcome = run(
        &pipeline,
        &View::page(),
        &mut Mock::standard(Some("DE"), None),
    );
    assert_eq!(
        outcome.forward.decision.as_deref(),
        Some("rule=\"DE\", group=\"gdpr-eu\", geo=country, permissions=()")
    );
    let outcome = run(&pipeline, &View::page(), &mut Mock::none());
    assert_eq!(
        outcome.forward.decision.as_deref(),
        Some("rule=\"FR\", group=\"gdpr-eu\", geo=default, permissions=()")
    );
    let outcome = run(
        &pipeline,
        &View::page(),
        &mut Mock::none().with_geo(Err(gatehouse_core::pipeline::ProviderFailure::Deadline)),
    );
    assert_eq!(
        outcome.forward.decision.as_deref(),
        Some("rule=\"geo-failed\", group=\"fail-closed (geo failed)\", geo=failed, permissions=()")
    );
}

#[test]
fn the_origins_own_set_cookie_for_the_edge_cookie_name_is_dropped() {
    let pipeline = pipeline("US");
    let mut headers = response(&[
        ("set-cookie", "session=1; HttpOnly"),
        ("Set-Cookie", "ts-ec=origin-value; Path=/"),
        ("set-cookie", " ts-ec =spaced"),
        ("set-cookie", "ts-ec-other=kept"),
        ("content-type", "text/html"),
    ]);
    // Even on a response without any edit of ours (a non-page request).
    pipeline.edit_response(&ResponseEdits::default(), &mut headers);
    assert_eq!(
        values(&headers, "set-cookie"),
        vec!["session=1; HttpOnly", "ts-ec-other=kept"]
    );
    assert!(values(&headers, "cache-control").is_empty());

    let mut headers = response(&[("set-cookie", "ts-ec=origin; Max-Age=99")]);
    pipeline.edit_response(&minted(), &mut headers);
    assert_eq!(
        values(&headers, "set-cookie"),
        vec!["ts-ec=abc; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=10"]
    );
}

#[test]
fn a_minted_edge_cookie_makes_a_public_response_private() {
    let pipeline = pipeline("US");
    let mut headers = response(&[
        ("cache-control", "public, max-age=600, s-maxage=3600"),
        ("cache-control", "stale-while-revalidate=30"),
        ("cdn-cache-control", "max-age=3600"),
        ("surrogate-control", "max-age=3600"),
    ]);
    pipeline.edit_response(&minted(), &mut headers);
    assert_eq!(
        values(&headers, "cache-control"),
        vec!["max-age=600, stale-while-revalidate=30, private"]
    );
    assert!(values(&headers, "cdn-cache-control").is_empty());
    assert!(values(&headers, "surrogate-control").is_empty());
}

#[test]
fn an_expired_edge_cookie_makes_the_response_private_too() {
    let pipeline = pipeline("US");
    let expired = ResponseEdits {
        set_cookie: Some(expire_cookie_header("ts-ec", Some("example.com"))),
        headers: Vec::new(),
    };
    assert_eq!(
        expired.set_cookie.as_deref(),
        Some("ts-ec=; Domain=example.com; Path=/; Secure; SameSite=Lax; HttpOnly; Max-Age=0")
    );
    let mut headers = response(&[("cache-control", "public")]);
    pipeline.edit_response(&expired, &mut headers);
    assert_eq!(values(&headers, "cache-control"), vec!["private"]);
}

#[test]
fn a_response_without_cache_control_carrying_an_edge_cookie_becomes_private() {
    let pipeline = pipeline("US");
    let mut headers = response(&[("content-type", "text/html")]);
    pipeline.edit_response(&minted(), &mut headers);
    assert_eq!(values(&headers, "cache-control"), vec!["private"]);
}

#[test]
fn provider_headers_alone_make_the_response_private() {
    let pipeline = pipeline("US");
    let edits = ResponseEdits {
        set_cookie: None,
        headers: vec![("x-ec-id".into(), "abc".into())],
    };
    let mut headers = response(&[("cache-control", "public, max-age=60")]);
    pipeline.edit_response(&edits, &mut headers);
    assert_eq!(values(&headers, "x-ec-id"), vec!["abc"]);
    assert_eq!(
        values(&headers, "cache-control"),
        vec!["max-age=60, private"]
    );
}

#[test]
fn a_response_without_an_edge_cookie_keeps_its_cache_control() {
    let pipeline = pipeline("US");
    let mut headers = response(&[("cache-control", "public, s-maxage=60")]);
    pipeline.edit_response(&ResponseEdits::default(), &mut headers);
    assert_eq!(
        values(&headers, "cache-control"),
        vec!["public, s-maxage=60"]
    );
}

#[test]
fn cache_control_keeps_the_origins_other_directives() {
    let line = |s: &str| vec![s.as_bytes().to_vec()];
    // `no-store` stays: it is stronger than `private`.
    assert_eq!(
        private_cache_control(&line("no-store")),
        "no-store, private"
    );
    // A field-qualified `private` lets shared caches store the rest: replaced by the plain one.
    assert_eq!(
        private_cache_control(&line("private=\"set-cookie, x-a\", max-age=5")),
        "max-age=5, private"
    );
    assert_eq!(
        private_cache_control(&line("no-cache=\"set-cookie, x-a\", PUBLIC, S-MaxAge=9")),
        "no-cache=\"set-cookie, x-a\", private"
    );
    assert_eq!(private_cache_control(&line("private")), "private");
    assert_eq!(private_cache_control(&[]), "private");
    assert_eq!(
        private_cache_control(&[b"public\r\nx: y".to_vec(), b"must-revalidate".to_vec()]),
        "must-revalidate, private"
    );
}

#[test]
fn a_forward_edit_without_stripping_leaves_cookies_alone() {
    let pipeline = pipeline("US");
    let mut headers = response(&[("cookie", "ts-ec=a")]);
    pipeline.edit_forwarded_request(&ForwardEdits::default(), &mut headers);
    assert_eq!(values(&headers, "cookie"), vec!["ts-ec=a"]);
}
