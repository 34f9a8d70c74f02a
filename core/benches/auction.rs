//! The auction's own cost per page call, beside nothing but the network: parse the page's
//! input, build and serialise one bid request for each of three bidders, then read their three
//! answers, choose the winners and serialise the page's answer. This is Gatehouse's overhead
//! beyond the slowest bidder (the host adds its HTTP work on top; the end-to-end p50 is measured
//! on the host). Two jurisdictions: FR with full TCF consent (consent strings and identifiers
//! forwarded) and US without signals.
//!
//! Run: `cargo bench -p gatehouse-core --bench auction`.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use gatehouse_core::auction::{
    Auction, AuctionConfig, AuctionContext, BidderConfig, BidderOutcome, ConsentForwarding,
    GdprApplies,
};
use gatehouse_core::consent::{ConsentConfig, ConsentContext, ConsentInput, JurisdictionFacts};
use gatehouse_core::policy::Policy;

const NOW: u64 = 1_700_000_000;
/// Purposes 1-11 and both special features, last updated a day before `NOW`.
const TC: &str = "CP1OjsAP1OjsAAHABBENBkEsAP_gAAAAAAYgAAoAAgAA";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0 Safari/537.36";
const INPUT: &[u8] = br#"{"page_url": "https://news.example/sport/article-1?ref=home",
  "ad_units": [
    {"code": "top", "media_type": "banner", "sizes": [[728, 90], [970, 250]]},
    {"code": "side", "media_type": "banner", "sizes": [[300, 250], [300, 600]], "floor": 0.5},
    {"code": "footer", "media_type": "banner", "sizes": [[728, 90]]}],
  "eids": [{"source": "id5-sync.com", "uids": [{"id": "ID5*abcdefghijklmnop", "atype": 1}]}]}"#;

fn auction(policy: &Policy) -> Auction {
    let bidder = |name: &str, mode, bidstream| BidderConfig {
        name: name.to_owned(),
        url: format!("http://127.0.0.1:9000/{name}"),
        timeout_ms: None,
        publisher_id: Some("pub-1".to_owned()),
        bidstream_enabled: bidstream,
        consent_forwarding: mode,
        forward_cookies: vec!["pub_seg".to_owned()],
        partner: None,
    };
    let config = AuctionConfig {
        tmax_ms: 300,
        allowed_eid_sources: vec!["id5-sync.com".to_owned()],
        bidders: vec![
            bidder("alpha", ConsentForwarding::Both, true),
            bidder("beta", ConsentForwarding::OpenrtbOnly, false),
            bidder("gamma", ConsentForwarding::CookiesOnly, true),
        ],
        ..AuctionConfig::default()
    };
    Auction::new(policy, config, &ConsentConfig::default(), "ts-ec").expect("valid config")
}

fn answer(request_id: &str, price: f64) -> Vec<u8> {
    format!(
        r#"{{"id":"{request_id}","cur":"USD","seatbid":[{{"seat":"s","bid":[
        {{"id":"1","impid":"1","price":{price},"adm":"<div>creative markup of a realistic length, a few hundred bytes of html and a tracking pixel</div>","w":728,"h":90,"crid":"c1","adomain":["brand.example"]}},
        {{"id":"2","impid":"2","price":{price},"adm":"<div>creative</div>","w":300,"h":250,"crid":"c2"}},
        {{"id":"3","impid":"3","price":0.1,"nurl":"https://ssp.example/win?p=${{AUCTION_PRICE}}","crid":"c3"}}]}}],"ext":{{"debug":{{}}}}}}"#
    )
    .into_bytes()
}

fn bench_auction(c: &mut Criterion) {
    let policy = Policy::embedded().expect("embedded policy");
    let auction = auction(policy);
    let consent_config = ConsentConfig::default();
    let cookie =
        format!("ts-ec=visitor0123456789.abcDEF; pub_seg=sports; euconsent-v2={TC}; other=1");
    let request_id = "2f8c0b6e-0d4e-4a51-9c55-6f3f4f1f8a10";
    let answers = [
        answer(request_id, 1.25),
        answer(request_id, 1.5),
        answer(request_id, 0.75),
    ];

    let mut group = c.benchmark_group("auction");
    group.measurement_time(Duration::from_secs(4));
    // Same-run baseline: only parsing the page's JSON into a `Value` and writing three bodies'
    // worth of JSON back, the least any implementation does.
    group.bench_function("baseline/json-round-trip", |b| {
        b.iter(|| {
            let value: serde_json::Value = serde_json::from_slice(black_box(INPUT)).expect("json");
            (0..3)
                .map(|_| serde_json::to_vec(&value).expect("json").len())
                .sum::<usize>()
        });
    });
    for (label, country, cookie_header) in [
        ("fr-tcf-3-bidders", "FR", Some(cookie.as_str())),
        (
            "us-no-signal-3-bidders",
            "US",
            Some("ts-ec=visitor0123456789.abcDEF; pub_seg=sports"),
        ),
    ] {
        let rule = policy.match_jurisdiction(
            Some(country),
            None,
            &policy.default_country("US").expect("US rule"),
        );
        let consent = ConsentContext::build(
            &consent_config,
            &ConsentInput {
                cookie_header,
                headers: &[("sec-gpc", "0")],
                jurisdiction: JurisdictionFacts {
                    gdpr_applies: rule.gdpr_applies(),
                    us_privacy_applies: rule.us_privacy_applies(),
                },
                now_unix_seconds: NOW,
            },
        );
        let permissions = rule.resolve(&consent.signals());
        let ctx = AuctionContext {
            request_id,
            transaction_id: "7d4c2a10-59b1-4c55-8f7e-0a1b2c3d4e5f",
            consent: &consent,
            gdpr: GdprApplies::from_rule(&rule),
            permissions,
            country: Some(country),
            edge_cookie: Some("visitor0123456789.abcDEF"),
            user_agent: Some(UA),
            client_ip: Some("203.0.113.7".parse().expect("ip")),
            cookie_header,
        };
        group.bench_function(format!("{label}/build"), |b| {
            b.iter(|| {
                let input = auction.parse_input(black_box(INPUT)).expect("valid input");
                let requests = auction.build_requests(&input, &ctx);
                requests.iter().map(|r| r.body_json().len()).sum::<usize>()
            });
        });
        let input = auction.parse_input(INPUT).expect("valid input");
        group.bench_function(format!("{label}/winners"), |b| {
            b.iter(|| {
                let outcomes: Vec<_> = answers
                    .iter()
                    .map(|body| BidderOutcome::Answered { status: 200, body })
                    .collect();
                let result = auction.choose_winners(&input, request_id, black_box(&outcomes));
                serde_json::to_vec(&result).expect("json").len()
            });
        });
        group.bench_function(format!("{label}/total"), |b| {
            b.iter(|| {
                let input = auction.parse_input(black_box(INPUT)).expect("valid input");
                let requests = auction.build_requests(&input, &ctx);
                let sent: usize = requests.iter().map(|r| r.body_json().len()).sum();
                let outcomes: Vec<_> = answers
                    .iter()
                    .map(|body| BidderOutcome::Answered { status: 200, body })
                    .collect();
                let result = auction.choose_winners(&input, request_id, &outcomes);
                sent + serde_json::to_vec(&result).expect("json").len()
            });
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = bench_auction
}
criterion_main!(benches);
