//! Must-show 3 (core half): the outbound `Cookie` header per `consent_forwarding` mode, and what
//! each mode puts in the body.

use gatehouse_core::auction::{AuctionConfig, BidderConfig, ConsentForwarding};
use serde_json::Value;

use super::support::{auction_with, bidders, body, build, config, full_consent, to, view};

const USP: &str = "1YNN";
const GPP_USNAT: &str = "DBABLA~BVVVVVVVVWA.YA";

fn one_bidder(mode: ConsentForwarding, forward: &[&str]) -> AuctionConfig {
    let bidder = BidderConfig {
        consent_forwarding: mode,
        forward_cookies: forward.iter().map(|s| (*s).to_owned()).collect(),
        partner: None,
        ..bidders().remove(0)
    };
    AuctionConfig {
        bidders: vec![bidder],
        ..config()
    }
}

/// The Cookie header and body `alpha` receives for a visitor in `country` with TCF, GPP, a US
/// Privacy string, the Edge Cookie, `pub_seg` and `other`.
fn outbound(mode: ConsentForwarding, forward: &[&str], country: &str) -> (Option<String>, Value) {
    let tc = full_consent();
    let requests = build(
        &auction_with(one_bidder(mode, forward)),
        &view(
            &[
                ("euconsent-v2", &tc),
                ("__gpp", GPP_USNAT),
                ("__gpp_sid", "7"),
                ("us_privacy", USP),
            ],
            &[],
        ),
        Some(country),
        None,
    );
    let alpha = to(&requests, "alpha");
    (alpha.cookie.clone(), body(alpha))
}

#[test]
fn openrtb_only_strips_every_consent_cookie_and_keeps_allowlisted_cookies() {
    let (cookie, body) = outbound(ConsentForwarding::OpenrtbOnly, &["pub_seg"], "FR");
    assert_eq!(cookie.as_deref(), Some("pub_seg=sports"));
    assert_eq!(body["user"]["consent"], full_consent().as_str());
    assert_eq!(body["regs"]["gpp"], GPP_USNAT);
    assert_eq!(body["regs"]["us_privacy"], USP);
}

#[test]
fn openrtb_only_without_allowlisted_cookies_sends_no_cookie_header() {
    let (cookie, _) = outbound(ConsentForwarding::OpenrtbOnly, &[], "FR");
    assert_eq!(cookie, None);
}

#[test]
fn cookies_only_forwards_consent_cookies_verbatim_and_no_consent_string_in_the_body() {
    let (cookie, body) = outbound(ConsentForwarding::CookiesOnly, &[], "FR");
    let tc = full_consent();
    assert_eq!(
        cookie.as_deref(),
        Some(
            format!("euconsent-v2={tc}; __gpp={GPP_USNAT}; __gpp_sid=7; us_privacy={USP}").as_str()
        )
    );
    assert!(body["user"].get("consent").is_none());
    assert!(body["user"].get("ext").is_none());
    // regs.gdpr is a fact of jurisdiction, not a cookie: it stays.
    assert_eq!(
        body["regs"],
        serde_json::json!({"gdpr": 1, "ext": {"gdpr": 1}})
    );
}

#[test]
fn both_forwards_consent_in_cookies_and_body() {
    let (cookie, body) = outbound(ConsentForwarding::Both, &["pub_seg"], "FR");
    let tc = full_consent();
    assert_eq!(
        cookie.as_deref(),
        Some(
            format!(
                "pub_seg=sports; euconsent-v2={tc}; __gpp={GPP_USNAT}; __gpp_sid=7; us_privacy={USP}"
            )
            .as_str()
        )
    );
    assert_eq!(body["user"]["consent"], tc.as_str());
    assert_eq!(body["regs"]["gpp_sid"], serde_json::json!([7]));
}

#[test]
fn the_edge_cookie_and_unlisted_cookies_never_reach_a_bidder_cookie_header() {
    for mode in [
        ConsentForwarding::Both,
        ConsentForwarding::CookiesOnly,
        ConsentForwarding::OpenrtbOnly,
    ] {
        let (cookie, _) = outbound(mode, &["pub_seg"], "US");
        let cookie = cookie.unwrap_or_default();
        assert!(!cookie.contains("ts-ec"), "{mode:?}: {cookie}");
        assert!(!cookie.contains("other="), "{mode:?}: {cookie}");
    }
}

#[test]
fn a_malformed_consent_cookie_is_forwarded_neither_in_cookies_nor_in_the_body() {
    let requests = build(
        &auction_with(one_bidder(ConsentForwarding::Both, &[])),
        &view(
            &[("euconsent-v2", "not-a-tc-string"), ("us_privacy", USP)],
            &[],
        ),
        Some("FR"),
        None,
    );
    let alpha = to(&requests, "alpha");
    assert_eq!(alpha.cookie.as_deref(), Some("us_privacy=1YNN"));
    assert!(body(alpha)["user"].get("consent").is_none());
}

#[test]
fn a_repeated_consent_cookie_is_forwarded_once_the_first_as_decoded() {
    let tc = full_consent();
    let requests = build(
        &auction_with(one_bidder(ConsentForwarding::CookiesOnly, &[])),
        &view(&[("euconsent-v2", &tc), ("euconsent-v2", "second")], &[]),
        Some("FR"),
        None,
    );
    assert_eq!(
        to(&requests, "alpha").cookie.as_deref(),
        Some(format!("euconsent-v2={tc}").as_str())
    );
}

#[test]
fn an_expired_tcf_section_in_gpp_withholds_the_gpp_string_everywhere() {
    // Last updated in 2022, over `max_consent_age_days` before the fixed clock (2023-11-14).
    let expired_gpp = "DBABMA~CPXuQIAPXuQIAAfKABENB-CgACAAAAAAAAYgF5wAQF5gAAAA.YAAAAAAAAAAA";
    let requests = build(
        &auction_with(one_bidder(ConsentForwarding::Both, &[])),
        &view(&[("__gpp", expired_gpp), ("__gpp_sid", "2")], &[]),
        Some("DE"),
        None,
    );
    let alpha = to(&requests, "alpha");
    let b = body(alpha);
    assert!(b["regs"].get("gpp").is_none(), "{}", b["regs"]);
    assert!(b["regs"]["ext"].get("gpp").is_none(), "{}", b["regs"]);
    assert!(b.get("user").is_none(), "{}", b["user"]);
    assert_eq!(alpha.cookie.as_deref(), Some("__gpp_sid=2"));
}

#[test]
fn a_tcf_record_that_came_only_in_gpp_is_forwarded_as_user_consent() {
    let tc = full_consent();
    let gpp = format!("DBABMA~{tc}");
    let requests = build(
        &auction_with(one_bidder(ConsentForwarding::OpenrtbOnly, &[])),
        &view(&[("__gpp", &gpp), ("__gpp_sid", "2")], &[]),
        Some("DE"),
        None,
    );
    let b = body(to(&requests, "alpha"));
    assert_eq!(b["regs"]["gpp"], gpp.as_str());
    assert_eq!(b["user"]["consent"], tc.as_str());
    assert_eq!(b["user"]["ext"]["consent"], tc.as_str());
    // Purposes 1 and 4 granted through GPP: identifiers flow to a bidstream partner.
    assert_eq!(b["user"]["eids"][0]["source"], "news.example");
}

#[test]
fn on_a_tcf_conflict_user_consent_is_the_record_the_restrictive_resolution_picked() {
    let standalone = full_consent();
    let in_gpp = super::support::tc_string(&[2, 7], &[]);
    let gpp = format!("DBABMA~{in_gpp}");
    let requests = build(
        &auction_with(one_bidder(ConsentForwarding::Both, &[])),
        &view(&[("euconsent-v2", &standalone), ("__gpp", &gpp)], &[]),
        Some("DE"),
        None,
    );
    let b = body(to(&requests, "alpha"));
    assert_eq!(b["user"]["consent"], in_gpp.as_str());
    // The intersection holds neither purpose 1 nor 4: no identifier.
    assert!(b["user"].get("eids").is_none());
}

#[test]
fn an_empty_consent_cookie_before_the_real_one_is_skipped_like_extraction_skips_it() {
    let tc = full_consent();
    let requests = build(
        &auction_with(one_bidder(ConsentForwarding::CookiesOnly, &[])),
        &view(&[("euconsent-v2", ""), ("euconsent-v2", &tc)], &[]),
        Some("FR"),
        None,
    );
    assert_eq!(
        to(&requests, "alpha").cookie.as_deref(),
        Some(format!("euconsent-v2={tc}").as_str())
    );
}
