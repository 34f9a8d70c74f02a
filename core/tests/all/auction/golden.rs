//! Must-show 1 (core half): for a matrix of consent signals and jurisdictions, the exact bid
//! request each of three bidders receives (url, timeout, headers, JSON body), pinned by golden
//! files in `golden/`. Regenerate with `BLESS=1 cargo test -p gatehouse-core --test all auction`
//! and review the diff. Each scenario also asserts the behaviour it exists for.

use std::path::PathBuf;

use gatehouse_core::auction::OutboundBidRequest;
use serde_json::{Value, json};

use super::support::{
    NOW, VISITOR_EC, auction, body, build, full_consent, tc_string, tc_string_updated_at, to, view,
};

/// A GPP string with a US national section (`usnat`, id 7) and `__gpp_sid=7`.
const GPP_USNAT: &str = "DBABLA~BVVVVVVVVWA.YA";
const AC: &str = "2~1.35.41~dv.9.21";

/// Each request as the bidder receives it: request line, headers, then the body exactly as
/// serialised (pretty-printed for review, field order as sent).
fn render(requests: &[OutboundBidRequest]) -> String {
    let mut text = String::new();
    for r in requests {
        text.push_str(&format!(
            "### bidder `{}`, timeout {} ms\nPOST {}\n",
            r.bidder, r.timeout_ms, r.url
        ));
        for (name, value) in r.headers() {
            text.push_str(&format!("{name}: {value}\n"));
        }
        let pretty = serde_json::to_string_pretty(&r.body).expect("json");
        // The pretty form is the sent bytes re-indented: same fields, same order.
        assert_eq!(
            serde_json::from_str::<Value>(&pretty).expect("json"),
            body(r)
        );
        text.push('\n');
        text.push_str(&pretty);
        text.push_str("\n\n");
    }
    text
}

fn golden(name: &str, requests: &[OutboundBidRequest]) {
    let actual = render(requests);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/all/auction/golden")
        .join(format!("{name}.http"));
    if std::env::var_os("BLESS").is_some_and(|bless| bless == "1") {
        std::fs::write(&path, &actual).expect("golden file is writable");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|error| {
        panic!(
            "{}: {error} (run with BLESS=1 to create it)",
            path.display()
        )
    });
    assert_eq!(
        expected,
        actual,
        "{} is out of date (run with BLESS=1 and review the diff)",
        path.display()
    );
}

fn eid_sources(body: &Value) -> Vec<&str> {
    body["user"]["eids"]
        .as_array()
        .map(|eids| eids.iter().filter_map(|e| e["source"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn tcf_with_purposes_1_and_4_forwards_consent_everywhere_and_identifiers_to_bidstream_partners() {
    let tc = full_consent();
    let requests = build(
        &auction(),
        &view(&[("euconsent-v2", &tc), ("addtl_consent", AC)], &[]),
        Some("FR"),
        None,
    );
    golden("fr-tcf-full", &requests);
    let alpha = body(to(&requests, "alpha"));
    assert_eq!(alpha["regs"]["gdpr"], 1);
    assert_eq!(alpha["regs"]["ext"]["gdpr"], 1);
    assert_eq!(alpha["user"]["consent"], tc.as_str());
    assert_eq!(alpha["user"]["ext"]["consent"], tc.as_str());
    assert_eq!(
        alpha["user"]["ext"]["ConsentedProvidersSettings"]["consented_providers"],
        AC
    );
    assert_eq!(eid_sources(&alpha), ["news.example", "id5-sync.com"]);
    assert_eq!(alpha["user"]["eids"][0]["uids"][0]["id"], VISITOR_EC);
    assert_eq!(alpha["device"]["ip"], "203.0.113.7");
    assert_eq!(alpha["device"]["geo"]["country"], "FRA");
    // Not bidstream-enabled: consent, but no identifier.
    let beta = body(to(&requests, "beta"));
    assert_eq!(beta["user"]["consent"], tc.as_str());
    assert!(eid_sources(&beta).is_empty());
}

#[test]
fn tcf_without_purposes_1_and_4_forwards_consent_but_no_identifier_and_a_truncated_ip() {
    let tc = tc_string(&[2, 3, 7, 9, 10], &[]);
    let requests = build(
        &auction(),
        &view(&[("euconsent-v2", &tc)], &[]),
        Some("FR"),
        None,
    );
    golden("fr-tcf-without-1-4", &requests);
    for request in &requests {
        let b = body(request);
        assert!(eid_sources(&b).is_empty(), "{}", request.bidder);
        assert_eq!(b["device"]["ip"], "203.0.113.0");
    }
    assert_eq!(body(to(&requests, "alpha"))["user"]["consent"], tc.as_str());
}

#[test]
fn expired_tcf_is_forwarded_nowhere_and_counts_as_no_consent() {
    let expired = tc_string_updated_at(&[1, 2, 3, 4], &[], NOW - 400 * 86_400);
    let requests = build(
        &auction(),
        &view(&[("euconsent-v2", &expired)], &[]),
        Some("DE"),
        None,
    );
    golden("de-tcf-expired", &requests);
    for request in &requests {
        let b = body(request);
        assert_eq!(b["regs"]["gdpr"], 1);
        assert!(b["user"].get("consent").is_none(), "{}", request.bidder);
        assert!(eid_sources(&b).is_empty());
        assert_eq!(b["device"]["ip"], "203.0.113.0");
        // Not even in the Cookie header of a partner that takes cookies.
        let cookie = request.cookie.as_deref().unwrap_or_default();
        assert!(!cookie.contains("euconsent-v2"), "{cookie}");
    }
}

#[test]
fn gpp_with_section_ids_is_forwarded_in_2_6_and_2_5_locations() {
    let requests = build(
        &auction(),
        &view(&[("__gpp", GPP_USNAT), ("__gpp_sid", "7")], &[]),
        Some("US"),
        Some("CA"),
    );
    golden("us-ca-gpp-usnat", &requests);
    let alpha = body(to(&requests, "alpha"));
    assert_eq!(alpha["regs"]["gpp"], GPP_USNAT);
    assert_eq!(alpha["regs"]["gpp_sid"], json!([7]));
    assert_eq!(alpha["regs"]["ext"]["gpp"], GPP_USNAT);
    assert_eq!(alpha["regs"]["ext"]["gpp_sid"], json!([7]));
    assert_eq!(alpha["regs"]["gdpr"], 0);
    assert_eq!(alpha["device"]["geo"]["country"], "USA");
}

#[test]
fn us_privacy_opt_out_is_forwarded_and_withholds_identifiers() {
    let requests = build(
        &auction(),
        &view(&[("us_privacy", "1YYN")], &[]),
        Some("US"),
        None,
    );
    golden("us-usp-opt-out", &requests);
    let alpha = body(to(&requests, "alpha"));
    assert_eq!(alpha["regs"]["us_privacy"], "1YYN");
    assert_eq!(alpha["regs"]["ext"]["us_privacy"], "1YYN");
    assert!(eid_sources(&alpha).is_empty());
    assert_eq!(alpha["device"]["ip"], "203.0.113.0");
}

#[test]
fn gpc_in_a_us_opt_out_region_synthesises_us_privacy_and_reaches_every_partner() {
    let requests = build(
        &auction(),
        &view(&[], &[("sec-gpc", "1")]),
        Some("US"),
        Some("CA"),
    );
    golden("us-ca-gpc", &requests);
    let alpha = body(to(&requests, "alpha"));
    assert_eq!(alpha["regs"]["us_privacy"], "1YYN");
    assert!(eid_sources(&alpha).is_empty());
    assert!(requests.iter().all(|r| r.sec_gpc));
}

#[test]
fn no_signal_in_france_sends_gdpr_1_and_nothing_identifying() {
    let requests = build(&auction(), &view(&[], &[]), Some("FR"), None);
    golden("fr-no-signal", &requests);
    let alpha = body(to(&requests, "alpha"));
    assert_eq!(alpha["regs"], json!({"gdpr": 1, "ext": {"gdpr": 1}}));
    assert!(alpha.get("user").is_none());
    assert_eq!(alpha["device"]["ip"], "203.0.113.0");
}

#[test]
fn no_signal_in_the_us_sends_gdpr_0_and_identifiers_to_bidstream_partners() {
    let requests = build(&auction(), &view(&[], &[]), Some("US"), None);
    golden("us-no-signal", &requests);
    let alpha = body(to(&requests, "alpha"));
    assert_eq!(alpha["regs"], json!({"gdpr": 0, "ext": {"gdpr": 0}}));
    assert_eq!(eid_sources(&alpha), ["news.example", "id5-sync.com"]);
    assert_eq!(alpha["device"]["ip"], "203.0.113.7");
}

#[test]
fn no_signal_in_an_unknown_country_omits_regs_gdpr_rather_than_sending_0() {
    // Geo answers, but with no country: `geo.default_country` (US) applies; GDPR is unknown.
    let requests = build(&auction(), &view(&[], &[]), None, None);
    golden("unknown-country-no-signal", &requests);
    for request in &requests {
        let b = body(request);
        assert!(b.get("regs").is_none(), "{}: {}", request.bidder, b["regs"]);
        assert!(b["device"].get("geo").is_none());
    }
}

#[test]
fn a_country_without_a_rule_also_omits_regs_gdpr() {
    let requests = build(&auction(), &view(&[], &[]), Some("BR"), None);
    let b = body(to(&requests, "alpha"));
    assert!(b.get("regs").is_none(), "{}", b["regs"]);
    assert_eq!(b["device"]["geo"]["country"], "BRA");
}

#[test]
fn absent_fields_are_absent_never_null() {
    fn no_nulls(value: &Value, path: &str) {
        match value {
            Value::Null => panic!("null at `{path}`"),
            Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    no_nulls(item, &format!("{path}[{i}]"));
                }
            }
            Value::Object(map) => {
                for (k, v) in map {
                    no_nulls(v, &format!("{path}.{k}"));
                }
            }
            _ => {}
        }
    }
    for (country, cookies) in [
        (None, vec![]),
        (Some("FR"), vec![("euconsent-v2", full_consent())]),
    ] {
        let cookies: Vec<(&str, &str)> = cookies.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for request in build(&auction(), &view(&cookies, &[]), country, None) {
            no_nulls(&body(&request), "");
        }
    }
}

#[test]
fn a_client_eid_cannot_replace_the_edge_cookie_and_repeated_sources_are_sent_once() {
    let mut config = super::support::config();
    config.allowed_eid_sources = vec!["id5-sync.com".into(), "news.example".into()];
    let auction = super::support::auction_with(config);
    let input = gatehouse_core::auction::AuctionInput::from_value(&json!({
        "page_url": "https://news.example/",
        "ad_units": [{"code": "a", "media_type": "banner", "sizes": [[300, 250]]}],
        "eids": [
            {"source": "news.example", "uids": [{"id": "spoofed"}]},
            {"source": "id5-sync.com", "uids": [{"id": "first"}]},
            {"source": "id5-sync.com", "uids": [{"id": "second"}]}
        ]
    }))
    .expect("valid input");
    let view = view(&[], &[]);
    let pipeline = super::support::pipeline("US");
    let mut providers = super::support::Mock::standard(Some("US"), None);
    let outcome = pipeline.run_api(&view, &super::support::CLOCK, &mut providers);
    let decision = outcome.decision.expect("decided");
    let ctx = gatehouse_core::auction::AuctionContext::from_decision(
        &decision, "r", "t", None, None, None,
    );
    let requests = auction.build_requests(&input, &ctx);
    let b = body(to(&requests, "alpha"));
    assert_eq!(
        b["user"]["eids"],
        json!([
            {"source": "news.example", "uids": [{"id": VISITOR_EC, "atype": 1}]},
            {"source": "id5-sync.com", "uids": [{"id": "first"}]}
        ])
    );
}

#[test]
fn an_api_request_is_decided_like_a_page_load() {
    let view = view(&[], &[]);
    let pipeline = super::support::pipeline("US");
    let mut providers = super::support::Mock::standard(Some("US"), None);
    // `run` ignores a POST (not a page load); `run_api` decides it.
    assert!(
        pipeline
            .run(&view, &super::support::CLOCK, &mut providers)
            .decision
            .is_none()
    );
    let outcome = pipeline.run_api(&view, &super::support::CLOCK, &mut providers);
    let decision = outcome.decision.expect("decided");
    assert_eq!(decision.rule.rule_key(), "US");
    assert!(matches!(
        decision.edge_cookie,
        gatehouse_core::pipeline::EdgeCookieDecision::Keep(ref id) if id == VISITOR_EC
    ));
}

#[test]
fn a_geo_failure_sends_gdpr_1_as_the_most_regulated_jurisdiction_and_no_country() {
    let view = view(&[], &[]);
    let pipeline = super::support::pipeline("US");
    let mut providers = super::support::Mock::standard(None, None)
        .with_geo(Err(gatehouse_core::pipeline::ProviderFailure::Deadline));
    let outcome = pipeline.run_api(&view, &super::support::CLOCK, &mut providers);
    let decision = outcome.decision.expect("decided");
    let ctx = gatehouse_core::auction::AuctionContext::from_decision(
        &decision,
        "r",
        "t",
        None,
        view.client_ip,
        None,
    );
    let requests = auction().build_requests(&super::support::input(), &ctx);
    let b = body(to(&requests, "alpha"));
    assert_eq!(b["regs"]["gdpr"], 1);
    assert!(b["device"].get("geo").is_none());
    // Fail-closed: nothing is held without a TCF record, so no identifier and a truncated IP.
    assert!(b["user"].get("eids").is_none());
    assert_eq!(b["device"]["ip"], "203.0.113.0");
}
