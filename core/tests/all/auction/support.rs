//! Shared fixtures: a deployment with three bidders and a request decided by the page pipeline.

use gatehouse_core::auction::{
    Auction, AuctionConfig, AuctionContext, AuctionInput, BidderConfig, ConsentForwarding,
    OutboundBidRequest,
};
use gatehouse_core::consent::ConsentConfig;
use gatehouse_core::pipeline::DEFAULT_COOKIE_NAME;
use serde_json::{Value, json};

pub use crate::pipeline::support::{
    CLOCK, Mock, NOW, View, full_consent, pipeline, policy, tc_string, tc_string_updated_at,
};

pub const REQUEST_ID: &str = "req-7f3a";
pub const TID: &str = "tid-91c2";
pub const VISITOR_EC: &str = "visitor0123456789.abcDEF";

/// `alpha`: identifiers allowed, consent in body and cookies, forwards `pub_seg`.
/// `beta`: no identifiers, consent in the body only. `gamma`: identifiers allowed, consent in
/// cookies only, its own timeout and publisher id.
pub fn bidders() -> Vec<BidderConfig> {
    vec![
        BidderConfig {
            name: "alpha".into(),
            url: "http://127.0.0.1:9001/openrtb2/auction".into(),
            timeout_ms: None,
            publisher_id: None,
            bidstream_enabled: true,
            consent_forwarding: ConsentForwarding::Both,
            forward_cookies: vec!["pub_seg".into()],
            partner: None,
        },
        BidderConfig {
            name: "beta".into(),
            url: "http://127.0.0.1:9002/bid".into(),
            timeout_ms: None,
            publisher_id: None,
            bidstream_enabled: false,
            consent_forwarding: ConsentForwarding::OpenrtbOnly,
            forward_cookies: Vec::new(),
            partner: None,
        },
        BidderConfig {
            name: "gamma".into(),
            url: "https://ssp.example/rtb".into(),
            timeout_ms: Some(300),
            publisher_id: Some("pub-123".into()),
            bidstream_enabled: true,
            consent_forwarding: ConsentForwarding::CookiesOnly,
            forward_cookies: Vec::new(),
            partner: None,
        },
    ]
}

pub fn config() -> AuctionConfig {
    AuctionConfig {
        tmax_ms: 500,
        allowed_eid_sources: vec!["id5-sync.com".into()],
        bidders: bidders(),
        ..AuctionConfig::default()
    }
}

pub fn auction() -> Auction {
    auction_with(config())
}

pub fn auction_with(config: AuctionConfig) -> Auction {
    Auction::new(
        policy(),
        config,
        &ConsentConfig::default(),
        DEFAULT_COOKIE_NAME,
    )
    .expect("valid auction config")
}

/// Two ad units, one with a floor; two client EIDs, one from a source that is not allowed.
pub fn input_json() -> Value {
    json!({
        "page_url": "https://news.example/sport/article-1?ref=home",
        "ad_units": [
            {"code": "top", "media_type": "banner", "sizes": [[728, 90], [970, 250]]},
            {"code": "side", "media_type": "banner", "sizes": [[300, 250]], "floor": 0.5}
        ],
        "eids": [
            {"source": "id5-sync.com", "uids": [{"id": "ID5*client", "atype": 1}]},
            {"source": "tracker.example", "uids": [{"id": "not-allowed"}]}
        ]
    })
}

pub fn input() -> AuctionInput {
    AuctionInput::from_value(&input_json()).expect("valid input")
}

/// A visitor's auction call: `POST /_ts/api/v1/auction` with a User-Agent, the visitor's
/// Edge Cookie, a publisher cookie, another cookie and `cookies` (consent cookies).
pub fn view(cookies: &[(&str, &str)], headers: &[(&str, &str)]) -> View {
    let mut jar = vec![
        format!("{DEFAULT_COOKIE_NAME}={VISITOR_EC}"),
        "pub_seg=sports".to_owned(),
    ];
    jar.extend(cookies.iter().map(|(n, v)| format!("{n}={v}")));
    jar.push("other=1".to_owned());
    let mut view = View::page()
        .method("POST")
        .path("/_ts/api/v1/auction")
        .header("cookie", &jar.join("; "));
    for (name, value) in headers {
        view = view.header(name, value);
    }
    view
}

/// Runs the page pipeline on `view` with geo answering `country`/`region` and builds the bid
/// requests.
pub fn build(
    auction: &Auction,
    view: &View,
    country: Option<&str>,
    region: Option<&str>,
) -> Vec<OutboundBidRequest> {
    let pipeline = pipeline("US");
    let mut providers = Mock::standard(country, region);
    let outcome = pipeline.run_api(view, &CLOCK, &mut providers);
    let decision = outcome.decision.expect("api requests are decided");
    let cookie = view
        .headers
        .iter()
        .find(|(n, _)| n == "cookie")
        .map(|(_, v)| v.as_str());
    let ua = view
        .headers
        .iter()
        .find(|(n, _)| n == "user-agent")
        .map(|(_, v)| v.as_str());
    let ctx = AuctionContext::from_decision(&decision, REQUEST_ID, TID, ua, view.client_ip, cookie);
    auction.build_requests(&input(), &ctx)
}

/// The request `name` received.
pub fn to<'r>(requests: &'r [OutboundBidRequest], name: &str) -> &'r OutboundBidRequest {
    requests
        .iter()
        .find(|r| r.bidder == name)
        .unwrap_or_else(|| panic!("a request for `{name}`"))
}

/// The request body as JSON.
pub fn body(request: &OutboundBidRequest) -> Value {
    serde_json::from_slice(&request.body_json()).expect("bodies are json")
}
